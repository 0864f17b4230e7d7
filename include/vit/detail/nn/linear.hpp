// nn.Linear on the product kernels, in float32, bf16 or int8.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../../error.hpp"
#include "../../options.hpp"
#include "../cpu/dispatch.hpp"
#include "../cpu/packed_linear.hpp"
#include "../cpu/packed_linear_bf16.hpp"
#include "../cpu/packed_linear_int8.hpp"
#include "../cpu/thread_pool.hpp"
#include "../io/weight_source.hpp"

namespace vit::detail {

// The product a layer runs, one per weight format; each has the same
// run(a, m, lda, c, ldc, epilogue, pool). double has float64 products only.
template <class T>
using product_for = std::conditional_t<std::is_same_v<T, float>,
                                       std::variant<packed_linear<float>, packed_linear_bf16, packed_linear_int8>,
                                       std::variant<packed_linear<T>>>;

template <class T>
struct linear {
    product_for<T> product;
    std::vector<T> bias;

    // Deferred packing (float32 weights held as float32 in a mapped file, on
    // an AVX-512 CPU): load() keeps pointers into the file and pack_deferred()
    // builds `product` later, on another thread. Until `packed` is set, run()
    // computes straight from the file with the direct kernel, which gives the
    // packed kernel's results bit for bit (gemm_direct.hpp): a forward's
    // output does not depend on how far packing has got.
    struct file_weights {
        std::vector<const float*> parts;  // each [part_out, in], rows contiguous
        std::vector<const tensor_ref*> sources;
        index_t part_out = 0, in = 0;
    };
    file_weights file_;
    std::unique_ptr<std::atomic<bool>> packed;  // null: `product` is ready

    // Whether load(..., defer = true, ...) can leave a layer unpacked here.
    static bool can_defer() { return direct_available<T>(); }

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
                product = packed_linear_int8(w8.data(), scales.data(), rows, s.in);
            } else {
                std::vector<T> deq(w8.size());
                for (std::size_t i = 0; i < deq.size(); ++i) deq[i] = T(w8[i]) * T(scales[i / std::size_t(s.in)]);
                product = packed_linear<T>(deq.data(), rows, s.in);
            }
            return;
        }
        const precision mode = std::is_same<T, float>::value ? want : precision::f32;
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
            product = packed_linear<T>(row, rows, in);
        } else if constexpr (std::is_same<T, float>::value) {
            std::vector<float> weight(std::size_t(rows * in));
            for (index_t j = 0; j < rows; ++j) std::copy(row(j), row(j) + in, weight.data() + j * in);
            if (mode == precision::bf16) {
                product = packed_linear_bf16(weight.data(), rows, in);
            } else {  // int8, quantized at load as vit-convert would
                std::vector<std::int8_t> w8;
                std::vector<float> scales;
                packed_linear_int8::quantize(weight.data(), rows, in, w8, scales);
                product = packed_linear_int8(w8.data(), scales.data(), rows, in);
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
            product = packed_linear<T>(row, index_t(f.parts.size()) * f.part_out, f.in);
            packed->store(true, std::memory_order_release);
            for (const tensor_ref* t : f.sources) store.release(*t);
        } else {
            (void)store;  // never deferred (can_defer)
        }
    }

    // y[m, out] = act(x[m, in] * W^T + b)
    void run(const T* x, index_t m, index_t ldx, T* y, index_t ldy, thread_pool& pool,
             activation act = activation::none) const {
        epilogue<T> ep;
        ep.bias = bias.data();
        ep.act = act;
        compute(x, m, ldx, y, ldy, ep, pool);
    }

    // y[m, out] += (x[m, in] * W^T + b) * scale: a residual branch added to
    // its stream, times a layer scale [out] unless scale is null.
    void add_to(const T* x, index_t m, index_t ldx, T* y, index_t ldy, thread_pool& pool,
                const T* scale = nullptr) const {
        epilogue<T> ep;
        ep.bias = bias.data();
        ep.scale = scale;
        ep.residual = y;
        ep.ld_residual = ldy;
        compute(x, m, ldx, y, ldy, ep, pool);
    }

private:
    void compute(const T* x, index_t m, index_t ldx, T* y, index_t ldy, const epilogue<T>& ep,
                 thread_pool& pool) const {
        if constexpr (std::is_same<T, float>::value) {
            if (packed && !packed->load(std::memory_order_acquire)) {
                const direct_run_fn direct = kernels().direct_f32;  // set: can_defer() said so
                // Straight from the file, one stacked part at a time: columns
                // are independent, so this equals the stacked product.
                for (std::size_t p = 0; p < file_.parts.size(); ++p) {
                    const index_t off = index_t(p) * file_.part_out;
                    epilogue<T> part = ep;
                    part.bias = ep.bias + off;
                    if (ep.scale) part.scale = ep.scale + off;
                    if (ep.residual) part.residual = ep.residual + off;
                    direct(x, m, ldx, file_.parts[p], file_.part_out, file_.in, file_.in, y + off, ldy, part, pool);
                }
                return;
            }
        }
        std::visit([&](const auto& p) { p.run(x, m, ldx, y, ldy, ep, pool); }, product);
    }
};

}  // namespace vit::detail
