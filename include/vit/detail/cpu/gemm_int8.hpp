// int8 linear layer: per-output-channel symmetric int8 weights, activations
// quantized per row (asymmetric u8, computed at each call), products by
// AVX512_VNNI's vpdpbusd (u8 x s8, four k values per 32-bit lane), exact int32
// accumulation, fp32 epilogue.
//
// With a = s_a (q - z) per row and w = s_w[j] w8 per column:
//   sum_k a w = s_a s_w[j] (sum_k q w8 - z sum_k w8)
// where sum_k w8 is computed at load, so the zero point costs nothing in the
// inner loop.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dispatch.hpp"
#include "gemm.hpp"
#include "quant.hpp"
#include "x86/gemm_int8.hpp"

namespace vit::detail {

// A Linear layer with int8 weights w8 [n, k] and per-output-channel scales
// (weight = scale[j] * w8[j, k]). quantize() makes them from fp32 weights.
//
// Error against the same layer in exact arithmetic with the dequantized
// weights: activations are quantized per row with step s_i = (max(row, 0) -
// min(row, 0)) / 255, each within s_i / 2, and the integer products are exact,
// so |c_ij - c_exact_ij| <= (s_i / 2) sum_k |scale_j w8_jk| (1 + 2^-20) plus
// fp32 rounding of the epilogue (relative 2^-22) — before the activation,
// whose slope is at most 1.13 for GELU.
class packed_linear_int8 {
public:
    packed_linear_int8() = default;
    packed_linear_int8(const std::int8_t* w_nk, const float* scales, std::int64_t n, std::int64_t k,
                       gemm_kernel want = gemm_kernel::automatic)
        : n_(n), k_(k), scale_((n + 31) / 32 * 32), sum_((n + 31) / 32 * 32) {
        for (std::int64_t j = 0; j < n; ++j) {
            scale_.data()[j] = scales[j];
            std::int32_t s = 0;
            for (std::int64_t kk = 0; kk < k; ++kk) s += w_nk[j * k + kk];
            sum_.data()[j] = s;
        }
        // Off x86 the resolver answers portable, whatever was asked.
        [[maybe_unused]] const gemm_kernel kernel = k > 0 ? resolve_int8_kernel(want) : gemm_kernel::portable;
#ifdef VIT_X86
        if (kernel == gemm_kernel::avx512) {
            kernel_ = gemm_kernel::avx512;
            packed_.reset(static_cast<std::size_t>(avx512::packed_size<avx512::int8_policy>(n, k)));
            avx512::pack_weights<avx512::int8_policy>(n, k, packed_.data(),
                                                      [&](std::int64_t j, std::int64_t kk) { return w_nk[j * k + kk]; });
            return;
        }
#endif
        w8_.assign(w_nk, w_nk + n * k);
    }

    // Symmetric per-output-channel quantization of fp32 weights [n, k]:
    // scale_j = max_k |w_jk| / 127, w8 = round(w / scale_j).
    static void quantize(const float* w_nk, std::int64_t n, std::int64_t k, std::vector<std::int8_t>& w8,
                         std::vector<float>& scales) {
        w8.resize(n * k);
        scales.resize(n);
        for (std::int64_t j = 0; j < n; ++j) {
            float mx = 0;
            for (std::int64_t kk = 0; kk < k; ++kk) mx = std::max(mx, std::fabs(w_nk[j * k + kk]));
            const float s = mx > 0 ? mx / 127.f : 1.f;
            scales[j] = s;
            for (std::int64_t kk = 0; kk < k; ++kk)
                w8[j * k + kk] = static_cast<std::int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(w_nk[j * k + kk] / s))));
        }
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return kernel_; }

    void run(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc, const epilogue<float>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
#ifdef VIT_X86
        if (kernel_ == gemm_kernel::avx512) {
            // Quantize the activations once, split over the threads (every
            // thread then reads all of them), then split the columns.
            using P = avx512::int8_policy;
            const std::int64_t kblocks = (k_ + P::kc - 1) / P::kc;
            auto* qa = static_cast<std::uint8_t*>(thread_scratch(scratch::kernel_2, std::size_t(kblocks * m * P::kc)));
            auto* rq = static_cast<row_quant*>(thread_scratch(scratch::kernel_1, sizeof(row_quant) * m));
            const std::int64_t parts = std::min<std::int64_t>(pool.size(), m);
            pool.parallel_for(parts, [&](std::int64_t t) {
                const std::int64_t r0 = even_split(m, parts, t), r1 = even_split(m, parts, t + 1);
                avx512::int8_row_quants(a + r0 * lda, lda, r1 - r0, k_, rq + r0);
                for (std::int64_t kb = 0; kb < kblocks; ++kb) {
                    const std::int64_t k0 = kb * P::kc;
                    avx512::int8_pack_a(a + r0 * lda + k0, lda, r1 - r0,
                                        static_cast<int>(std::min<std::int64_t>(P::kc, k_ - k0)), rq + r0,
                                        qa + kb * m * P::kc + r0 * P::kc);
                }
            });
            pool.balanced_ranges((n_ + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
                avx512::int8_run_panels(qa, rq, m, packed_.data(), scale_.data(), sum_.data(), n_, k_, c, ldc, ep,
                                        p0, p1);
            });
            return;
        }
#endif
        run_portable(a, m, lda, c, ldc, ep, pool);
    }

private:
    // The same arithmetic in scalar code (same quantization, exact integer
    // sums), for CPUs without VNNI and as the tests' cross-check.
    void run_portable(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc,
                      const epilogue<float>& ep, thread_pool& pool) const {
        pool.parallel_for(m, [&](std::int64_t i) {
            const float* row = a + i * lda;
            float lo = 0, hi = 0;
            for (std::int64_t kk = 0; kk < k_; ++kk) {
                lo = std::min(lo, row[kk]);
                hi = std::max(hi, row[kk]);
            }
            const row_quant q = make_row_quant(lo, hi);
            auto* qa = static_cast<std::uint8_t*>(thread_scratch(scratch::kernel_0, std::size_t(std::max<std::int64_t>(1, k_))));
            for (std::int64_t kk = 0; kk < k_; ++kk) qa[kk] = quantize_u8(row[kk], q);
            float* out = c + i * ldc;
            for (std::int64_t j = 0; j < n_; ++j) {
                std::int32_t s = 0;
                const std::int8_t* w = w8_.data() + j * k_;
                for (std::int64_t kk = 0; kk < k_; ++kk) s += std::int32_t(qa[kk]) * w[kk];
                float v = branch_value(ep, j, float(s - q.zero * sum_.data()[j]) * (q.scale * scale_.data()[j]));
                if (ep.residual) v += ep.residual[i * ep.ld_residual + j];
                out[j] = v;
            }
        });
    }

    std::int64_t n_ = 0, k_ = 0;
    gemm_kernel kernel_ = gemm_kernel::portable;
    aligned_array<float> scale_;
    aligned_array<std::int32_t> sum_;
    std::vector<std::int8_t> w8_;            // portable path
    aligned_array<std::int8_t> packed_;      // VNNI path
};

}  // namespace vit::detail
