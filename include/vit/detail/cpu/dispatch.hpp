// The one place that knows what this CPU runs: it reads the CPU once and fills
// one table of the kernels a forward uses (products, attention, LayerNorm's
// row, SwiGLU's gate), in the spirit of XNNPACK's gemm-config.c. Layers and
// product classes call through the table and never name an instruction set.
//
// A new instruction set is a folder beside x86/ with its kernels and a
// features header, plus its block in detect_cpu() and its rows in
// make_kernel_table() below.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "arch.hpp"
#include "attention_args.hpp"
#include "epilogue.hpp"
#include "portable/attention.hpp"
#include "portable/gemm.hpp"
#include "portable/gemm_bf16.hpp"
#include "portable/gemm_int8.hpp"
#include "thread_pool.hpp"
#include "x86/attention.hpp"
#include "x86/features.hpp"
#include "x86/gemm_avx2.hpp"
#include "x86/gemm_avx512.hpp"
#include "x86/gemm_bf16.hpp"
#include "x86/gemm_direct.hpp"
#include "x86/gemm_int8.hpp"
#include "x86/layer_norm.hpp"
#include "x86/vmath.hpp"

namespace vit::detail {

// Which code computes a product. `automatic` is the fastest the CPU runs; the
// others exist so tests can compare paths (a request the CPU cannot run falls
// back to the fastest it can at or below it).
enum class gemm_kernel { automatic, portable, avx2, avx512 };

// Which attention kernel runs: the portable one (Eigen; double, CPUs without
// AVX-512), the fused fp32 one, or the fused bf16 one (bf16 compute mode).
enum class attention_kernel { portable, f32, bf16 };

struct cpu_features {
    bool avx2 = false, avx512 = false, avx512_bf16 = false, avx512_vnni = false;
    bool amx = false;  // AMX-BF16 tiles, enabled by the OS: detected for build_info, no kernel uses them yet
    // Whether the AVX512_BF16 dot products outrun fp32 FMAs (AMD's do; Intel's
    // do not, there bf16 buys half the weight memory, not speed).
    bool bf16_faster = false;
};

// Building with VIT_FORCE_PORTABLE defined makes an x86 CPU report none of
// its features, so everything runs the portable kernels, as on aarch64: a way
// to test that path natively (and to time it) without an emulator.
inline cpu_features detect_cpu() {
    cpu_features c;
#if defined(VIT_X86) && !defined(VIT_FORCE_PORTABLE)
    const x86::features f = x86::detect();
    c.avx2 = f.avx2;
    c.avx512 = f.avx512;
    c.avx512_bf16 = f.avx512_bf16;
    c.avx512_vnni = f.avx512_vnni;
    c.amx = f.amx_bf16 && f.amx_tile && f.amx_os;
    c.bf16_faster = f.avx512_bf16 && f.amd;
#endif
    return c;
}

// A float32 (or float64) product on one kernel: weights packed once into
// packed_size(n, k) elements; per call the threads split the panels of nr
// columns and each runs run_panels on its share.
template <class T>
struct gemm_config {
    gemm_kernel kernel = gemm_kernel::portable;
    std::int64_t nr = 0;
    std::int64_t (*packed_size)(std::int64_t n, std::int64_t k) = nullptr;
    void (*pack)(const T* const* rows, std::int64_t n, std::int64_t k, T* out) = nullptr;  // rows[j]: output j's k weights
    void (*run_panels)(const T* a, std::int64_t m, std::int64_t lda, const T* wp, std::int64_t n, std::int64_t k, T* c,
                       std::int64_t ldc, const epilogue<T>& ep, std::int64_t p_begin, std::int64_t p_end) = nullptr;
    // Panels [p_begin, p_end) only, every element written (no zeroing
    // first), so threads can share a pack; null on the kernels without it.
    void (*pack_panels)(const T* const* rows, std::int64_t n, std::int64_t k, T* out, std::int64_t p_begin,
                        std::int64_t p_end) = nullptr;
};

// The bf16 product on one kernel (packed weights are the kernel's own
// layout). run is the whole call: activations are rounded before the threads
// split the panels.
struct bf16_config {
    gemm_kernel kernel = gemm_kernel::portable;
    std::int64_t (*packed_bytes)(std::int64_t n, std::int64_t k) = nullptr;
    void (*pack)(const float* w_nk, std::int64_t n, std::int64_t k, void* out) = nullptr;
    void (*run)(const float* a, std::int64_t m, std::int64_t lda, const void* wp, std::int64_t n, std::int64_t k,
                float* c, std::int64_t ldc, const epilogue<float>& ep, thread_pool& pool) = nullptr;
};

// The int8 product on one kernel: run is the whole call, the activations
// quantized before the threads share the columns.
struct int8_config {
    gemm_kernel kernel = gemm_kernel::portable;
    std::int64_t (*packed_size)(std::int64_t n, std::int64_t k) = nullptr;
    void (*pack)(const std::int8_t* w_nk, std::int64_t n, std::int64_t k, std::int8_t* out) = nullptr;
    void (*run)(const float* a, std::int64_t m, std::int64_t lda, const std::int8_t* wp, const float* col_scale,
                const std::int32_t* col_sum, std::int64_t n, std::int64_t k, float* c, std::int64_t ldc,
                const epilogue<float>& ep, thread_pool& pool) = nullptr;
};

// One image and head of attention; next is the head this thread takes after
// it (-1: none), whose operands a kernel may start fetching.
template <class T>
using attention_head_fn = void (*)(const attention_args<T>& a, std::int64_t b, std::int64_t h, std::int64_t next);

// A float32 layer straight from rows where they lie (row stride ldw): the
// packed AVX-512 product's results bit for bit (x86/gemm_direct.hpp).
using direct_run_fn = void (*)(const float* a, std::int64_t m, std::int64_t lda, const float* w, std::int64_t n,
                               std::int64_t k, std::int64_t ldw, float* c, std::int64_t ldc, const epilogue<float>& ep,
                               thread_pool& pool);

// One LayerNorm row, statistics in double; and SwiGLU's gate on one row.
template <class T>
using layer_norm_row_fn = void (*)(const T* in, T* out, const T* w, const T* b, std::int64_t h, double eps);
template <class T>
using silu_gate_row_fn = void (*)(const T* x1, const T* x2, T* out, std::int64_t n);

// What this CPU runs. Rows are indexed by kernel (gemm_kernel minus one,
// attention_kernel); an empty row (null entries) is one the CPU or the
// compiler cannot run. Null vector rows mean the layer's portable loop.
struct kernel_table {
    cpu_features cpu;
    gemm_config<float> f32[3];   // portable, avx2, avx512
    gemm_config<double> f64;     // portable
    bf16_config bf16[3];         // portable, -, avx512 (AVX512_BF16)
    int8_config int8[3];         // portable, -, avx512 (AVX512_VNNI)
    direct_run_fn direct_f32 = nullptr;
    attention_head_fn<float> attention_f32[3] = {};  // portable, f32, bf16
    attention_head_fn<double> attention_f64 = nullptr;
    layer_norm_row_fn<float> layer_norm_f32 = nullptr;
    silu_gate_row_fn<float> silu_gate_f32 = nullptr;
    // One fp32 weight row quantized to int8 (null: packed_linear_int8's loop).
    void (*quantize_int8_row)(const float* w, std::int64_t k, std::int8_t* out, float* scale) = nullptr;
};

template <class T>
gemm_config<T> portable_gemm() {
    gemm_config<T> g;
    g.kernel = gemm_kernel::portable;
    g.nr = portable::params<T>::nr;
    g.packed_size = &portable::packed_size<T>;
    g.pack = [](const T* const* rows, std::int64_t n, std::int64_t k, T* out) {
        portable::pack<T>([rows](std::int64_t j) { return rows[j]; }, n, k, out, [](T x) { return x; });
    };
    g.run_panels = &portable::run_panels<T>;
    return g;
}

template <class T>
void attention_head_portable_next(const attention_args<T>& a, std::int64_t b, std::int64_t h, std::int64_t) {
    attention_head_portable(a, b, h);
}

inline kernel_table make_kernel_table() {
    kernel_table t;
    t.cpu = detect_cpu();
    const cpu_features& c = t.cpu;

    t.f32[0] = portable_gemm<float>();
    t.f64 = portable_gemm<double>();
    t.bf16[0] = {gemm_kernel::portable, &portable::bf16_packed_bytes, &portable::bf16_pack, &portable::bf16_run};
    t.int8[0] = {gemm_kernel::portable, &portable::int8_packed_size, &portable::int8_pack, &portable::int8_run};
    t.attention_f32[0] = &attention_head_portable_next<float>;
    t.attention_f64 = &attention_head_portable_next<double>;

#ifdef VIT_X86
    if (c.avx2) {
        gemm_config<float>& g = t.f32[1];
        g.kernel = gemm_kernel::avx2;
        g.nr = avx2::f32_params::nr;
        g.packed_size = [](std::int64_t n, std::int64_t k) { return (n + 15) / 16 * 16 * k; };
        g.pack = [](const float* const* rows, std::int64_t n, std::int64_t k, float* out) {
            avx2::pack_f32([rows](std::int64_t j) { return rows[j]; }, n, k, out);
        };
        g.run_panels = &avx2::f32_run_panels;
    }
    if (c.avx512) {
        gemm_config<float>& g = t.f32[2];
        g.kernel = gemm_kernel::avx512;
        g.nr = 32;
        g.packed_size = &avx512::packed_size<avx512::f32_policy>;
        g.pack = [](const float* const* rows, std::int64_t n, std::int64_t k, float* out) {
            avx512::pack_panels<avx512::f32_policy>(rows, n, k, out, 0, (n + 31) / 32);
        };
        g.run_panels = &avx512::run_panels<avx512::f32_policy>;
        g.pack_panels = &avx512::pack_panels<avx512::f32_policy>;
        t.direct_f32 = &avx512::direct_run;
        t.attention_f32[1] = &avx512::attention_head;
        t.layer_norm_f32 = &avx512::layer_norm_row;
        t.silu_gate_f32 = &avx512::silu_gate_row;
        t.quantize_int8_row = &avx512::quantize_weight_row;
    }
    if (c.avx512_vnni) {
        t.int8[2] = {gemm_kernel::avx512, &avx512::packed_size<avx512::int8_policy>,
                     [](const std::int8_t* w_nk, std::int64_t n, std::int64_t k, std::int8_t* out) {
                         if (k % 4 == 0) {  // whole 32-bit words: the register transpose
                             std::vector<const std::int8_t*> rows(static_cast<std::size_t>(n));
                             for (std::int64_t j = 0; j < n; ++j) rows[std::size_t(j)] = w_nk + j * k;
                             avx512::pack_panels<avx512::int8_policy>(rows.data(), n, k, out, 0, (n + 31) / 32);
                             return;
                         }
                         avx512::pack_weights<avx512::int8_policy>(
                             n, k, out, [&](std::int64_t j, std::int64_t kk) { return w_nk[j * k + kk]; });
                     },
                     &avx512::int8_run};
    }
#endif
#ifdef VIT_X86_BF16
    if (c.avx512_bf16) {
        t.bf16[2].kernel = gemm_kernel::avx512;
        t.bf16[2].packed_bytes = [](std::int64_t n, std::int64_t k) {
            return std::int64_t(sizeof(std::uint16_t)) * avx512::packed_size<avx512::bf16_policy>(n, k);
        };
        t.bf16[2].pack = [](const float* w_nk, std::int64_t n, std::int64_t k, void* out) {
            if (k % 2 == 0) {  // whole 32-bit words (bf16 pairs): round, then the register transpose
                std::vector<std::uint16_t> h(static_cast<std::size_t>(n * k));
                avx512::to_bf16(w_nk, n * k, h.data());
                std::vector<const std::uint16_t*> rows(static_cast<std::size_t>(n));
                for (std::int64_t j = 0; j < n; ++j) rows[std::size_t(j)] = h.data() + j * k;
                avx512::pack_panels<avx512::bf16_policy>(rows.data(), n, k, static_cast<std::uint16_t*>(out), 0,
                                                         (n + 31) / 32);
                return;
            }
            avx512::pack_weights<avx512::bf16_policy>(
                n, k, static_cast<std::uint16_t*>(out),
                [&](std::int64_t j, std::int64_t kk) { return float_to_bf16(w_nk[j * k + kk]); });
        };
        t.bf16[2].run = [](const float* a, std::int64_t m, std::int64_t lda, const void* wp, std::int64_t n,
                           std::int64_t k, float* c, std::int64_t ldc, const epilogue<float>& ep, thread_pool& pool) {
            pool.balanced_ranges((n + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
                avx512::run_panels<avx512::bf16_policy>(a, m, lda, static_cast<const std::uint16_t*>(wp), n, k, c, ldc,
                                                        ep, p0, p1);
            });
        };
        t.attention_f32[2] = &avx512::attention_head_bf16;
    }
#endif
    (void)c;
    return t;
}

// Built once per process.
inline const kernel_table& kernels() {
    static const kernel_table t = make_kernel_table();
    return t;
}

inline const cpu_features& cpu() { return kernels().cpu; }

// The fastest filled row at or below the request (automatic: the top).
template <class Row>
gemm_kernel resolve_row(const Row (&rows)[3], gemm_kernel want) {
    int i = want == gemm_kernel::automatic ? 2 : int(want) - 1;
    while (i > 0 && !rows[i].pack) --i;
    return gemm_kernel(i + 1);
}

// The float32 product kernel that runs for a request.
inline gemm_kernel resolve_kernel(gemm_kernel want) { return resolve_row(kernels().f32, want); }
// The bf16 and int8 products have an AVX-512 kernel (AVX512_BF16, VNNI) and
// the portable one.
inline gemm_kernel resolve_bf16_kernel(gemm_kernel want) { return resolve_row(kernels().bf16, want); }
inline gemm_kernel resolve_int8_kernel(gemm_kernel want) { return resolve_row(kernels().int8, want); }

// The product a request runs on (double: the portable one).
template <class T>
const gemm_config<T>& gemm_for(gemm_kernel want) {
    if constexpr (std::is_same_v<T, float>) {
        return kernels().f32[int(resolve_kernel(want)) - 1];
    } else {
        (void)want;
        return kernels().f64;
    }
}
inline const bf16_config& bf16_for(gemm_kernel want) { return kernels().bf16[int(resolve_bf16_kernel(want)) - 1]; }
inline const int8_config& int8_for(gemm_kernel want) { return kernels().int8[int(resolve_int8_kernel(want)) - 1]; }

// The attention kernel that runs for a request: bf16 falls back to the fused
// fp32 kernel, that to the portable one; only float has fused kernels.
template <class T>
attention_kernel resolve_attention(attention_kernel want) {
    if (!std::is_same_v<T, float>) return attention_kernel::portable;
    int i = int(want);
    while (i > 0 && !kernels().attention_f32[i]) --i;
    return attention_kernel(i);
}
template <class T>
bool attention_available(attention_kernel kernel) {
    return resolve_attention<T>(kernel) == kernel;
}
template <class T>
attention_head_fn<T> attention_head_for(attention_kernel want) {
    if constexpr (std::is_same_v<T, float>) {
        return kernels().attention_f32[int(resolve_attention<T>(want))];
    } else {
        (void)want;
        return kernels().attention_f64;
    }
}

// LayerNorm's vectorised row for T, or null (the layer's portable row).
template <class T>
layer_norm_row_fn<T> layer_norm_row_for() {
    if constexpr (std::is_same_v<T, float>) return kernels().layer_norm_f32;
    return nullptr;
}
template <class T>
bool layer_norm_vectorized() {
    return layer_norm_row_for<T>() != nullptr;
}

// SwiGLU's vectorised gate row for T, or null (the portable loop).
template <class T>
silu_gate_row_fn<T> silu_gate_row_for() {
    if constexpr (std::is_same_v<T, float>) return kernels().silu_gate_f32;
    return nullptr;
}
template <class T>
bool swiglu_vectorized() {
    return silu_gate_row_for<T>() != nullptr;
}

// Whether a float32 layer can run straight from the checkpoint's mapped
// rows (the direct kernel) until its packed copy is ready.
template <class T>
bool direct_available() {
    return std::is_same_v<T, float> && kernels().direct_f32;
}

}  // namespace vit::detail
