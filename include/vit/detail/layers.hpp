// The layers of a ViT, templated on the scalar type. Each layer loads its own
// weights (checking names, shapes and dtypes) and computes into buffers it is
// handed: layers never allocate while computing.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "gemm.hpp"
#include "gemm_bf16.hpp"
#include "gemm_direct.hpp"
#include "gemm_int8.hpp"
#include "tensor_store.hpp"
#include "thread_pool.hpp"

namespace vit {

// How the Linear layers compute: float32, bfloat16 weights (fp32
// accumulation), or int8 weights with per-row quantized activations.
enum class precision { f32, bf16, int8 };

}  // namespace vit

namespace vit::detail {

using index_t = std::int64_t;

// Looks tensors up by their classic hub name without the "vit." prefix
// ("encoder.layer.3.output.dense.weight", "classifier.bias"), whatever the
// file calls them: the hub's names, a backbone's unprefixed names, or the
// names transformers 5 writes.
class weight_source {
public:
    weight_source(const tensor_store& store, std::string where) : store_(store), where_(std::move(where)) {
        prefix_ = (store.contains("vit.embeddings.cls_token") || store.contains("vit.embeddings.position_embeddings"))
                      ? "vit."
                      : "";
        new_names_ = store.contains(prefix_ + "layers.0.layernorm_before.weight") &&
                     !store.contains(prefix_ + "encoder.layer.0.layernorm_before.weight");
    }

    // The name the file uses for a canonical name.
    std::string file_name(const std::string& canonical) const {
        if (canonical.rfind("classifier.", 0) == 0) return canonical;
        if (!new_names_ || canonical.rfind("encoder.layer.", 0) != 0) return prefix_ + canonical;
        // encoder.layer.N.REST -> layers.N.REST', transformers 5's layout
        const std::string rest = canonical.substr(14);
        const std::size_t dot = rest.find('.');
        const std::string n = rest.substr(0, dot), tail = rest.substr(dot + 1);
        static const std::pair<const char*, const char*> renames[] = {
            {"attention.attention.query.", "attention.q_proj."}, {"attention.attention.key.", "attention.k_proj."},
            {"attention.attention.value.", "attention.v_proj."}, {"attention.output.dense.", "attention.o_proj."},
            {"intermediate.dense.", "mlp.fc1."},                 {"output.dense.", "mlp.fc2."}};
        for (const auto& r : renames) {
            const std::string from = r.first;
            if (tail.rfind(from, 0) == 0) return prefix_ + "layers." + n + "." + r.second + tail.substr(from.size());
        }
        return prefix_ + "layers." + n + "." + tail;
    }

    bool has(const std::string& canonical) const { return store_.contains(file_name(canonical)); }
    const std::string& where() const { return where_; }

    // The tensor's dtype; f32 for a missing tensor (read() then names it).
    dtype dtype_of(const std::string& canonical) const {
        const tensor_store::entry* e = store_.find(file_name(canonical));
        return e ? e->tensor.type : dtype::f32;
    }

    // A tensor's values as T without a copy when the file already holds them
    // as T (aligned), else converted into `owned`.
    template <class T>
    struct view {
        const T* data = nullptr;
        std::vector<T> owned;
        const tensor_ref* source = nullptr;
    };
    template <class T>
    view<T> read_view(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        view<T> v;
        v.source = &t;
        const bool same = (t.type == dtype::f32 && std::is_same<T, float>::value) ||
                          (t.type == dtype::f64 && std::is_same<T, double>::value);
        if (same && reinterpret_cast<std::uintptr_t>(t.data) % alignof(T) == 0) {
            v.data = reinterpret_cast<const T*>(t.data);
        } else {
            v.owned = read<T>(canonical, shape);
            v.data = v.owned.data();
        }
        return v;
    }
    // Done with a tensor: its file pages may leave memory (see tensor_store::release).
    void release(const tensor_ref* t) const {
        if (t) store_.release(*t);
    }

    // An I8 tensor's values, after checking presence and shape.
    std::vector<std::int8_t> read_int8(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        if (t.type != dtype::i8)
            throw error(find_or_throw(canonical).file + ": tensor '" + file_name(canonical) + "': dtype " +
                        dtype_name(t.type) + ", expected I8");
        std::vector<std::int8_t> out(t.nbytes);
        std::memcpy(out.data(), t.data, t.nbytes);
        return out;
    }

    // The tensor's values as T, after checking presence, dtype and shape.
    template <class T>
    std::vector<T> read(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        if (t.type != dtype::f32 && t.type != dtype::f16 && t.type != dtype::bf16 && t.type != dtype::f64)
            throw error(find_or_throw(canonical).file + ": tensor '" + file_name(canonical) + "': dtype " +
                        dtype_name(t.type) + ", expected F32, F16, BF16 or F64");
        std::vector<T> out(static_cast<std::size_t>(t.numel()));
        if (t.type == dtype::f32 && std::is_same<T, float>::value) {
            std::memcpy(out.data(), t.data, t.nbytes);
        } else {
            for (std::size_t i = 0; i < out.size(); ++i) out[i] = element_as<T>(t, i);
        }
        return out;
    }

private:
    const tensor_store::entry& find_or_throw(const std::string& canonical) const {
        const tensor_store::entry* e = store_.find(file_name(canonical));
        if (!e) throw error(where_ + ": tensor '" + file_name(canonical) + "' is missing");
        return *e;
    }
    const tensor_ref& checked(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_store::entry& e = find_or_throw(canonical);
        if (e.tensor.shape != shape)
            throw error(e.file + ": tensor '" + file_name(canonical) + "': shape " + shape_string(e.tensor.shape) +
                        ", expected " + shape_string(shape));
        return e.tensor;
    }

    const tensor_store& store_;
    std::string where_;
    std::string prefix_;
    bool new_names_ = false;
};

#ifdef VIT_GEMM_X86
namespace avx512 {
// Lanes 0-7 / 8-15 of v widened to double.
VIT_AVX512_INLINE __m512d lo_pd(__m512 v) { return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 0)); }
VIT_AVX512_INLINE __m512d hi_pd(__m512 v) {
    return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 1));
}
VIT_AVX512_INLINE double sum_pd(__m512d v) {
    alignas(64) double t[8];
    _mm512_store_pd(t, v);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// One row of layer_norm<float>::run, with the same double statistics: the
// float values widened 8 at a time into independent double sums.
VIT_AVX512 inline void layer_norm_row(const float* in, float* out, const float* w, const float* b,
                                      std::int64_t h, double eps) {
    const __mmask16 all = 0xffff;
    const auto lo = lo_pd;
    const auto hi = hi_pd;
    const auto sum8 = sum_pd;
    const std::int64_t full = h / 16;
    const __mmask16 tail = __mmask16((1u << (h % 16)) - 1);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (std::int64_t v = 0; v < full; ++v) {
        const __m512 x = _mm512_loadu_ps(in + 16 * v);
        s0 = _mm512_add_pd(s0, lo(x));
        s1 = _mm512_add_pd(s1, hi(x));
    }
    if (tail) {
        const __m512 x = _mm512_maskz_loadu_ps(tail, in + 16 * full);
        s0 = _mm512_add_pd(s0, lo(x));
        s1 = _mm512_add_pd(s1, hi(x));
    }
    const double mean = sum8(_mm512_add_pd(s0, s1)) / double(h);
    const __m512d m = _mm512_set1_pd(mean);
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    for (std::int64_t v = 0; v < full; ++v) {
        const __m512 x = _mm512_loadu_ps(in + 16 * v);
        const __m512d d0 = _mm512_sub_pd(lo(x), m), d1 = _mm512_sub_pd(hi(x), m);
        q0 = _mm512_fmadd_pd(d0, d0, q0);
        q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    if (tail) {
        const __m512 x = _mm512_maskz_loadu_ps(tail, in + 16 * full);
        const __m512d d0 = _mm512_maskz_sub_pd(__mmask8(tail), lo(x), m);
        const __m512d d1 = _mm512_maskz_sub_pd(__mmask8(tail >> 8), hi(x), m);
        q0 = _mm512_fmadd_pd(d0, d0, q0);
        q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    const double var = sum8(_mm512_add_pd(q0, q1)) / double(h);
    const __m512d inv = _mm512_set1_pd(1.0 / std::sqrt(var + eps));
    for (std::int64_t v = 0; v <= full; ++v) {
        const __mmask16 mk = v < full ? all : tail;
        if (!mk) break;
        const __m512 x = _mm512_maskz_loadu_ps(mk, in + 16 * v);
        const __m256 n0 = _mm512_maskz_cvtpd_ps(__mmask8(0xff), _mm512_mul_pd(_mm512_sub_pd(lo(x), m), inv));
        const __m256 n1 = _mm512_maskz_cvtpd_ps(__mmask8(0xff), _mm512_mul_pd(_mm512_sub_pd(hi(x), m), inv));
        const __m512 n = _mm512_maskz_insertf32x8(all, _mm512_castps256_ps512(n0), n1, 1);
        const __m512 y = _mm512_add_ps(_mm512_mul_ps(n, _mm512_maskz_loadu_ps(mk, w + 16 * v)),
                                       _mm512_maskz_loadu_ps(mk, b + 16 * v));
        _mm512_mask_storeu_ps(out + 16 * v, mk, y);
    }
}
}  // namespace avx512
#endif

template <class T>
struct layer_norm {
    std::vector<T> weight, bias;  // [H]
    double eps = 1e-12;

    void load(const weight_source& w, const std::string& name, index_t hidden, double eps_) {
        weight = w.read<T>(name + ".weight", {hidden});
        bias = w.read<T>(name + ".bias", {hidden});
        eps = eps_;
    }

    // y[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias, biased variance.
    // Statistics in double: 24 layers of float rounding stay within 1e-5.
    void run(const T* x, T* y, index_t rows, thread_pool& pool) const {
        const index_t h = static_cast<index_t>(weight.size());
        const index_t block = 16;
        pool.parallel_for((rows + block - 1) / block, [&](index_t t) {
            for (index_t r = t * block; r < std::min(rows, (t + 1) * block); ++r) {
#ifdef VIT_GEMM_X86
                if constexpr (std::is_same_v<T, float>) {
                    if (fast_) {
                        avx512::layer_norm_row(x + r * h, y + r * h, weight.data(), bias.data(), h, eps);
                        continue;
                    }
                }
#endif
                row(x + r * h, y + r * h, h);
            }
        });
    }

    // The portable row: the reference for the vectorised one.
    void row(const T* in, T* out, index_t h) const {
        double mean = 0;
        for (index_t i = 0; i < h; ++i) mean += double(in[i]);
        mean /= double(h);
        double var = 0;
        for (index_t i = 0; i < h; ++i) var += (double(in[i]) - mean) * (double(in[i]) - mean);
        var /= double(h);
        const double inv = 1.0 / std::sqrt(var + eps);
        for (index_t i = 0; i < h; ++i) out[i] = T((double(in[i]) - mean) * inv) * weight[i] + bias[i];
    }

    bool fast_ = cpu_has_avx512();  // tests turn it off to compare
};

// nn.Linear, or several stacked into one (query|key|value): a weight
// [out, in] and a bias [out] (zeros when the checkpoint has none), computed in
// the chosen precision. An int8 checkpoint (tensor `NAME.weight` of dtype I8 with
// per-output-channel scales `NAME.weight_scale` [out], as vit-convert writes)
// runs the int8 kernel; for double it is dequantized.
template <class T>
struct linear {
    precision mode = precision::f32;
    packed_linear<T> w;           // mode f32 (and every mode for double)
    packed_linear_bf16 w_bf16;    // mode bf16
    packed_linear_int8 w_int8;    // mode int8
    std::vector<T> bias;

    // Deferred packing (float32 weights held as float32 in a mapped file, on
    // an AVX-512 CPU): load() keeps pointers into the file and pack_deferred()
    // builds `w` later, on another thread. Until `packed` is set, run()
    // computes straight from the file with the direct kernel, which gives the
    // packed kernel's results bit for bit (gemm_direct.hpp): a forward's
    // output does not depend on how far packing has got.
    struct file_weights {
        std::vector<const float*> parts;  // each [part_out, in], rows contiguous
        std::vector<const tensor_ref*> sources;
        index_t part_out = 0, in = 0;
    };
    file_weights file_;
    std::unique_ptr<std::atomic<bool>> packed;  // null: `w` (or the bf16 / int8 one) is ready

    // Whether load(..., defer = true, ...) can leave a layer unpacked here.
    static bool can_defer() {
#ifdef VIT_GEMM_X86
        return std::is_same<T, float>::value && cpu_has_avx512();
#else
        return false;
#endif
    }

    struct spec {
        std::vector<std::string> names;   // one per stacked part
        index_t out = 0, in = 0;          // of each part
        std::vector<index_t> file_shape;  // when the file's shape is not [out, in] (a conv's [out, C, P, P])
        bool has_bias = true;
    };

    void load(const weight_source& src, const spec& s, precision want, bool defer = false) {
        const index_t parts = index_t(s.names.size()), rows = parts * s.out;
        const std::vector<index_t> shape = s.file_shape.empty() ? std::vector<index_t>{s.out, s.in} : s.file_shape;
        bias.clear();
        for (const auto& n : s.names) {
            const std::vector<T> b = s.has_bias ? src.read<T>(n + ".bias", {s.out}) : std::vector<T>(std::size_t(s.out), T(0));
            bias.insert(bias.end(), b.begin(), b.end());
        }
        std::size_t int8_parts = 0;
        for (const auto& n : s.names) int8_parts += src.dtype_of(n + ".weight") == dtype::i8;
        if (int8_parts != 0 && int8_parts != s.names.size())
            throw error(src.where() + ": tensor '" + src.file_name(s.names[0] + ".weight") +
                        "': int8 and float weights mixed in one layer");
        if (int8_parts) {
            std::vector<std::int8_t> w8;
            std::vector<float> scales;
            for (const auto& n : s.names) {
                const auto q = src.read_int8(n + ".weight", shape);
                w8.insert(w8.end(), q.begin(), q.end());
                const auto sc = src.read<float>(n + ".weight_scale", {s.out});
                scales.insert(scales.end(), sc.begin(), sc.end());
            }
            if constexpr (std::is_same<T, float>::value) {
                mode = precision::int8;
                w_int8 = packed_linear_int8(w8.data(), scales.data(), rows, s.in);
            } else {
                std::vector<T> deq(w8.size());
                for (std::size_t i = 0; i < deq.size(); ++i) deq[i] = T(w8[i]) * T(scales[i / std::size_t(s.in)]);
                mode = precision::f32;
                w = packed_linear<T>(deq.data(), rows, s.in);
            }
            return;
        }
        mode = std::is_same<T, float>::value ? want : precision::f32;
        std::vector<typename weight_source::template view<T>> views;
        for (const auto& n : s.names) views.push_back(src.read_view<T>(n + ".weight", shape));
        const index_t out = s.out, in = s.in;
        if constexpr (std::is_same<T, float>::value) {
            bool in_file = true;
            for (const auto& v : views) in_file = in_file && v.owned.empty();
            if (defer && mode == precision::f32 && in_file && s.file_shape.empty() && can_defer()) {
                file_ = {{}, {}, out, in};
                for (const auto& v : views) {
                    file_.parts.push_back(v.data);
                    file_.sources.push_back(v.source);
                }
                packed = std::make_unique<std::atomic<bool>>(false);
                return;
            }
        }
        auto row = [&views, out, in](index_t j) { return views[std::size_t(j / out)].data + (j % out) * in; };
        if (mode == precision::f32) {
            w = packed_linear<T>(row, rows, in);
        } else if constexpr (std::is_same<T, float>::value) {
            std::vector<float> weight(std::size_t(rows * in));
            for (index_t j = 0; j < rows; ++j) std::copy(row(j), row(j) + in, weight.data() + j * in);
            if (mode == precision::bf16) {
                w_bf16 = packed_linear_bf16(weight.data(), rows, in);
            } else {  // int8, quantized at load as vit-convert would
                std::vector<std::int8_t> w8;
                std::vector<float> scales;
                packed_linear_int8::quantize(weight.data(), rows, in, w8, scales);
                w_int8 = packed_linear_int8(w8.data(), scales.data(), rows, in);
            }
        }
        for (const auto& v : views) src.release(v.source);
    }

    // Builds the packed layout of a deferred layer and publishes it; then the
    // layer's file pages may leave memory. Called once, by one thread.
    void pack_deferred(const tensor_store& store) {
        if constexpr (std::is_same<T, float>::value) {
            if (!packed || packed->load()) return;
            const file_weights& f = file_;
            auto row = [&f](index_t j) { return f.parts[std::size_t(j / f.part_out)] + (j % f.part_out) * f.in; };
            w = packed_linear<T>(row, index_t(f.parts.size()) * f.part_out, f.in);
            packed->store(true, std::memory_order_release);
            for (const tensor_ref* t : f.sources) store.release(*t);
        } else {
            (void)store;  // never deferred (can_defer)
        }
    }

    // y[m, out] = act(x[m, in] * W^T + b) (+ residual, which may be y itself)
    void run(const T* x, index_t m, index_t ldx, T* y, index_t ldy, thread_pool& pool,
             activation act = activation::none, const T* residual = nullptr, index_t ld_residual = 0) const {
        epilogue<T> ep;
        ep.bias = bias.data();
        ep.act = act;
        ep.residual = residual;
        ep.ld_residual = ld_residual;
        if constexpr (std::is_same<T, float>::value) {
#ifdef VIT_GEMM_X86
            if (packed && !packed->load(std::memory_order_acquire)) {
                // Straight from the file, one stacked part at a time: columns
                // are independent, so this equals the stacked product.
                for (std::size_t p = 0; p < file_.parts.size(); ++p) {
                    const index_t off = index_t(p) * file_.part_out;
                    epilogue<T> part = ep;
                    part.bias = ep.bias + off;
                    if (ep.residual) part.residual = ep.residual + off;
                    avx512::direct_run(x, m, ldx, file_.parts[p], file_.part_out, file_.in, file_.in, y + off, ldy,
                                       part, pool);
                }
                return;
            }
#endif
            if (mode == precision::bf16) return w_bf16.run(x, m, ldx, y, ldy, ep, pool);
            if (mode == precision::int8) return w_int8.run(x, m, ldx, y, ldy, ep, pool);
        }
        w.run(x, m, ldx, y, ldy, ep, pool);
    }
};

// Bicubic resize of a [in_h, in_w, C] grid to [out_h, out_w, C] as PyTorch's
// interpolate(mode="bicubic", align_corners=False) does: cubic convolution with
// A = -0.75, source (dst + 0.5) * in/out - 0.5, neighbours clamped to the edge.
inline std::vector<double> bicubic_resize(const std::vector<double>& src, index_t in_h, index_t in_w, index_t c,
                                          index_t out_h, index_t out_w) {
    const double A = -0.75;
    auto near = [A](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };        // |x| <= 1
    auto far = [A](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
    auto taps = [&](index_t dst, index_t in, index_t out, index_t idx[4], double w[4]) {
        const double real = (double(dst) + 0.5) * (double(in) / double(out)) - 0.5;
        const double f = std::floor(real);
        const double t = real - f;
        w[0] = far(t + 1);
        w[1] = near(t);
        w[2] = near(1 - t);
        w[3] = far(2 - t);
        for (int k = 0; k < 4; ++k)
            idx[k] = std::min<index_t>(std::max<index_t>(index_t(f) - 1 + k, 0), in - 1);
    };
    std::vector<double> out(static_cast<std::size_t>(out_h * out_w * c), 0.0);
    for (index_t oy = 0; oy < out_h; ++oy) {
        index_t iy[4];
        double wy[4];
        taps(oy, in_h, out_h, iy, wy);
        for (index_t ox = 0; ox < out_w; ++ox) {
            index_t ix[4];
            double wx[4];
            taps(ox, in_w, out_w, ix, wx);
            double* o = &out[static_cast<std::size_t>((oy * out_w + ox) * c)];
            for (int a = 0; a < 4; ++a)
                for (int b = 0; b < 4; ++b) {
                    const double wgt = wy[a] * wx[b];
                    const double* s = &src[static_cast<std::size_t>((iy[a] * in_w + ix[b]) * c)];
                    for (index_t ch = 0; ch < c; ++ch) o[ch] += wgt * s[ch];
                }
        }
    }
    return out;
}

}  // namespace vit::detail
