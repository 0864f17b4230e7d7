// Pieces shared by every linear-layer implementation: the epilogue description,
// scalar activations, aligned storage, per-thread scratch and CPU detection.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>
#include <new>
#include <utility>

namespace vit::detail {

enum class activation { none, gelu_erf, gelu_tanh, relu };

template <class T>
inline T activate(activation act, T x) {
    switch (act) {
        case activation::none: return x;
        case activation::gelu_erf: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
        case activation::gelu_tanh: {
            const T c = T(0.79788456080286535588);  // sqrt(2/pi)
            return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
        }
        case activation::relu: return x > T(0) ? x : T(0);
    }
    return x;
}

// What happens to each output element after the product, fused so the output
// is written once: c = act(acc + bias[j]) + residual[i, j].
template <class T>
struct epilogue {
    const T* bias = nullptr;          // [n] or null
    activation act = activation::none;
    const T* residual = nullptr;      // [m, ld_residual] or null; may be exactly c (same ld)
    std::int64_t ld_residual = 0;
};

// Which code computes the product. `automatic` picks the fastest the CPU runs;
// the others exist so tests can compare paths (a request the CPU cannot run
// falls back to the best it can).
enum class gemm_kernel { automatic, portable, avx2, avx512 };

inline bool cpu_has_avx512() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                            __builtin_cpu_supports("fma");
    return yes;
#else
    return false;
#endif
}
inline bool cpu_has_avx2() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
#else
    return false;
#endif
}
inline bool cpu_has_avx512_bf16() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && (__GNUC__ >= 11 || defined(__clang__))
    static const bool yes = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
    return yes;
#else
    return false;
#endif
}
inline bool cpu_has_avx512_vnni() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool yes = cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
    return yes;
#else
    return false;
#endif
}

inline gemm_kernel resolve_kernel(gemm_kernel want) {
    const gemm_kernel best = cpu_has_avx512() ? gemm_kernel::avx512
                             : cpu_has_avx2() ? gemm_kernel::avx2
                                              : gemm_kernel::portable;
    if (want == gemm_kernel::automatic) return best;
    if (want == gemm_kernel::avx512 && best != gemm_kernel::avx512) return best;
    if (want == gemm_kernel::avx2 && best == gemm_kernel::portable) return best;
    return want;
}

// 64-byte aligned array (a cache line, a zmm register). Copyable so that the
// layers holding one stay regular values.
template <class T>
class aligned_array {
public:
    aligned_array() = default;
    explicit aligned_array(std::size_t n) { reset(n); }
    aligned_array(const aligned_array& o) {
        reset(o.n_);
        if (n_) std::memcpy(p_, o.p_, n_ * sizeof(T));
    }
    aligned_array(aligned_array&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    aligned_array& operator=(aligned_array o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    ~aligned_array() { std::free(p_); }

    // Zero-filled: padding lanes of packed weights must be zero.
    void reset(std::size_t n) {
        std::free(p_);
        p_ = nullptr;
        n_ = 0;
        if (!n) return;
        // Large arrays (packed weights) go on 2 MiB-aligned transparent huge
        // pages: faulting in 1.2 GB of 4 KiB pages costs seconds on a VM,
        // huge pages a few hundred faults.
        const std::size_t huge = std::size_t(2) << 20;
        const std::size_t align = n * sizeof(T) >= huge ? huge : 64;
        const std::size_t bytes = (n * sizeof(T) + align - 1) / align * align;
        p_ = static_cast<T*>(std::aligned_alloc(align, bytes));
        if (!p_) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        if (align == huge) ::madvise(static_cast<void*>(p_), bytes, MADV_HUGEPAGE);
#endif
        std::memset(static_cast<void*>(p_), 0, bytes);
        n_ = n;
    }
    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

// Per-thread scratch that only grows: the products run on long-lived pool
// threads, so after the first call of the largest layer no call allocates
// (fresh pages are expensive to fault in). `slot` keeps apart buffers that
// are live at the same time.
inline void* thread_scratch(int slot, std::size_t bytes) {
    struct buffers {
        aligned_array<unsigned char> b[6];
    };
    static thread_local buffers tl;
    auto& buf = tl.b[slot];
    if (buf.size() < bytes) buf.reset(bytes + bytes / 4);
    return buf.data();
}

// The residual that output columns [col0, col0 + ncols) of c add, by the one
// rule every kernel follows (so their sums associate alike): when the
// residual is c itself and the epilogue is linear, it seeds the sums
// (seed_with_c, res null); when it is c but an activation comes first, the
// columns are saved to scratch before the product overwrites them.
struct residual_view {
    bool seed_with_c = false;
    const float* res = nullptr;  // element (0, col0), or null
    std::int64_t ldr = 0;
};

inline residual_view residual_for(const epilogue<float>& ep, const float* c, std::int64_t ldc, std::int64_t m,
                                  std::int64_t col0, std::int64_t ncols) {
    residual_view r;
    const bool res_is_c = ep.residual == c && ep.ld_residual == ldc;
    r.seed_with_c = res_is_c && ep.act == activation::none;
    if (!ep.residual || r.seed_with_c) return r;
    if (!res_is_c) {
        r.res = ep.residual + col0;
        r.ldr = ep.ld_residual;
        return r;
    }
    float* saved = static_cast<float*>(thread_scratch(1, sizeof(float) * m * ncols));
    for (std::int64_t i = 0; i < m; ++i) std::memcpy(saved + i * ncols, c + i * ldc + col0, sizeof(float) * ncols);
    r.res = saved;
    r.ldr = ncols;
    return r;
}

}  // namespace vit::detail
