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
#include <vector>

#include "dispatch.hpp"
#include "epilogue.hpp"
#include "memory.hpp"
#include "thread_pool.hpp"

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
        config_ = &int8_for(k > 0 ? want : gemm_kernel::portable);
        packed_.reset(static_cast<std::size_t>(config_->packed_size(n, k)));
        config_->pack(w_nk, n, k, packed_.data());
    }

    // Symmetric per-output-channel quantization of fp32 weights [n, k]:
    // scale_j = max_k |w_jk| / 127, w8 = round(w / scale_j).
    static void quantize(const float* w_nk, std::int64_t n, std::int64_t k, std::vector<std::int8_t>& w8,
                         std::vector<float>& scales) {
        quantize_rows([w_nk, k](std::int64_t j) { return w_nk + j * k; }, n, k, w8, scales);
    }
    // The same from rows that need not form one block (row(j): output j's k
    // weights, in a mapped file), on the kernel table's row (same bits).
    template <class RowFn>
    static void quantize_rows(RowFn row, std::int64_t n, std::int64_t k, std::vector<std::int8_t>& w8,
                              std::vector<float>& scales) {
        w8.resize(std::size_t(n * k));
        scales.resize(std::size_t(n));
        const auto fast = kernels().quantize_int8_row;
        for (std::int64_t j = 0; j < n; ++j) {
            const float* w = row(j);
            std::int8_t* out = w8.data() + j * k;
            if (fast) {
                fast(w, k, out, &scales[std::size_t(j)]);
                continue;
            }
            float mx = 0;
            for (std::int64_t kk = 0; kk < k; ++kk) mx = std::max(mx, std::fabs(w[kk]));
            const float s = mx > 0 ? mx / 127.f : 1.f;
            scales[std::size_t(j)] = s;
            for (std::int64_t kk = 0; kk < k; ++kk)
                out[kk] = static_cast<std::int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(w[kk] / s))));
        }
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return config_ ? config_->kernel : gemm_kernel::portable; }

    void run(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc, const epilogue<float>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
        config_->run(a, m, lda, packed_.data(), scale_.data(), sum_.data(), n_, k_, c, ldc, ep, pool);
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    const int8_config* config_ = nullptr;  // a row of the kernel table
    aligned_array<float> scale_;
    aligned_array<std::int32_t> sum_;
    aligned_array<std::int8_t> packed_;    // the kernel's layout ([n][k] on the portable kernel)
};

}  // namespace vit::detail
