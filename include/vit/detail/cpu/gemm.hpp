// Linear layers: C = act(A * W^T + bias) * scale + residual, with W prepared once at load.
//
// packed_linear<float> runs the kernel it is given at construction (resolved
// by cpu/dispatch.hpp): AVX-512 (x86/gemm_avx512.hpp), AVX2+FMA
// (x86/gemm_avx2.hpp) or plain C++ (portable/gemm.hpp; the only path for
// double).
// packed_linear_bf16 (gemm_bf16.hpp) and packed_linear_int8 (gemm_int8.hpp)
// have the same run() and epilogue. Threads split the output columns
// (thread_pool::balanced_ranges over the weight panels), so each streams its
// share of the weights and packs the activations it needs; shares follow the
// threads' measured speeds, and every output column is computed alike whoever
// computes it, so results do not depend on the split. Scratch is per thread
// and reused, so calls do not allocate once the largest layer has run on each
// thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "dispatch.hpp"
#include "epilogue.hpp"
#include "memory.hpp"
#include "portable/gemm.hpp"
#include "thread_pool.hpp"
#include "x86/gemm_avx2.hpp"
#include "x86/gemm_avx512.hpp"

namespace vit::detail {

// A Linear layer's weight [n, k] (PyTorch's [out, in]) laid out for the product.
template <class T>
class packed_linear {
public:
    packed_linear() = default;
    packed_linear(const T* w_nk, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : packed_linear([w_nk, k](std::int64_t j) { return w_nk + j * k; }, n, k, want) {}

    // From rows that need not form one block (stacked layers, tensors in a
    // memory-mapped file): row(j) points at the k weights of output j. Packs
    // straight from them, so loading makes no intermediate copy.
    template <class RowFn, class = std::enable_if_t<std::is_invocable_r_v<const T*, RowFn&, std::int64_t>>>
    packed_linear(RowFn row, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : n_(n), k_(k) {
        // k == 0 (a product of nothing) is left to the portable path.
        kernel_ = std::is_same_v<T, float> && k > 0 ? resolve_kernel(want) : gemm_kernel::portable;
#ifdef VIT_X86
        if constexpr (std::is_same_v<T, float>) {
            if (kernel_ == gemm_kernel::avx512) {
                packed_.reset(static_cast<std::size_t>(avx512::packed_size<avx512::f32_policy>(n, k)));
                std::vector<const T*> rows(static_cast<std::size_t>(n));  // row(j) once, not per element
                for (std::int64_t j = 0; j < n; ++j) rows[std::size_t(j)] = row(j);
                avx512::pack_weights<avx512::f32_policy>(
                    n, k, packed_.data(), [&rows](std::int64_t j, std::int64_t kk) { return rows[std::size_t(j)][kk]; });
                return;
            }
            if (kernel_ == gemm_kernel::avx2) {
                packed_.reset(static_cast<std::size_t>((n + 15) / 16 * 16 * k));
                avx2::pack_f32(row, n, k, packed_.data());
                return;
            }
        }
#endif
        packed_.reset(static_cast<std::size_t>(portable::packed_size<T>(n, k)));
        portable::pack<T>(row, n, k, packed_.data(), [](T x) { return x; });
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return kernel_; }

    // a: [m, k] with row stride lda; c: [m, n] with row stride ldc. Safe to call
    // concurrently (each thread's scratch is its own).
    void run(const T* a, std::int64_t m, std::int64_t lda, T* c, std::int64_t ldc, const epilogue<T>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
#ifdef VIT_X86
        if constexpr (std::is_same_v<T, float>) {
            if (kernel_ == gemm_kernel::avx512) {
                pool.balanced_ranges((n_ + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
                    avx512::run_panels<avx512::f32_policy>(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
                });
                return;
            }
            if (kernel_ == gemm_kernel::avx2) {
                pool.balanced_ranges((n_ + 15) / 16, [&](std::int64_t p0, std::int64_t p1) {
                    avx2::f32_run_panels(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
                });
                return;
            }
        }
#endif
        pool.balanced_ranges((n_ + portable::params<T>::nr - 1) / portable::params<T>::nr,
                             [&](std::int64_t p0, std::int64_t p1) {
                                 portable::run_panels<T>(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
                             });
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    gemm_kernel kernel_ = gemm_kernel::portable;
    aligned_array<T> packed_;  // panels of the kernel's width
};

}  // namespace vit::detail
