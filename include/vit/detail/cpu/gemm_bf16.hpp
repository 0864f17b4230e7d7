// bf16 linear layer: weights stored as bf16, activations rounded to bf16 per
// block, products accumulated in fp32 by AVX512_BF16's vdpbf16ps (two k
// values per 32-bit lane, twice the fp32 FMA rate). Same epilogue as fp32.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../float_formats.hpp"
#include "dispatch.hpp"
#include "gemm.hpp"
#include "x86/gemm_bf16.hpp"

namespace vit::detail {

// A Linear layer with bf16 weights: the fp32 weight [n, k] is rounded to bf16
// at load. Error against the fp32 product: each term a*w becomes
// a(1+d1) w(1+d2) with |d| <= 2^-9, so |c - c_fp32| <= (2^-8 + 2^-18) sum|a w|
// plus fp32 accumulation; typically ~2^-9 sqrt(k) rms(a w).
class packed_linear_bf16 {
public:
    packed_linear_bf16() = default;
    packed_linear_bf16(const float* w_nk, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : n_(n), k_(k) {
        // Off x86 the resolver answers portable, whatever was asked.
        [[maybe_unused]] const gemm_kernel kernel = k > 0 ? resolve_bf16_kernel(want) : gemm_kernel::portable;
#ifdef VIT_X86_BF16
        if (kernel == gemm_kernel::avx512) {
            kernel_ = gemm_kernel::avx512;
            packed_.reset(static_cast<std::size_t>(avx512::packed_size<avx512::bf16_policy>(n, k)));
            avx512::pack_weights<avx512::bf16_policy>(
                n, k, packed_.data(), [&](std::int64_t j, std::int64_t kk) { return float_to_bf16(w_nk[j * k + kk]); });
            return;
        }
#endif
        w_.reset(static_cast<std::size_t>(portable::packed_size<float>(n, k)));
        portable::pack<float>([w_nk, k](std::int64_t j) { return w_nk + j * k; }, n, k, w_.data(),
                              [](float x) { return round_bf16(x); });
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return kernel_; }

    void run(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc, const epilogue<float>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
#ifdef VIT_X86_BF16
        if (kernel_ == gemm_kernel::avx512) {
            pool.balanced_ranges((n_ + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
                avx512::run_panels<avx512::bf16_policy>(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
            });
            return;
        }
#endif
        // Portable: the same rounding of the activations, then fp32.
        float* ar = static_cast<float*>(thread_scratch(scratch::kernel_0, sizeof(float) * std::max<std::int64_t>(1, m * k_)));
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t kk = 0; kk < k_; ++kk) ar[i * k_ + kk] = round_bf16(a[i * lda + kk]);
        pool.balanced_ranges((n_ + portable::params<float>::nr - 1) / portable::params<float>::nr,
                             [&](std::int64_t p0, std::int64_t p1) {
                                 portable::run_panels<float>(ar, m, k_, w_.data(), n_, k_, c, ldc, ep, p0, p1);
                             });
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    gemm_kernel kernel_ = gemm_kernel::portable;
    aligned_array<float> w_;  // portable path: bf16-rounded, in portable::pack's panels
    aligned_array<std::uint16_t> packed_;
};

}  // namespace vit::detail
