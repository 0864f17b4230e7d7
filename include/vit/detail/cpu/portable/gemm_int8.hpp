// The int8 product in scalar code: the same quantization and exact integer
// sums as the VNNI kernel, for CPUs without it and as the tests' cross-check.
// Weights stay [n][k] as given.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../epilogue.hpp"
#include "../memory.hpp"
#include "../quant.hpp"
#include "../thread_pool.hpp"

namespace vit::detail::portable {

inline std::int64_t int8_packed_size(std::int64_t n, std::int64_t k) { return n * k; }

inline void int8_pack(const std::int8_t* w_nk, std::int64_t n, std::int64_t k, std::int8_t* out) {
    std::copy(w_nk, w_nk + n * k, out);
}

// One row per task: quantize it, then every column.
inline void int8_run(const float* a, std::int64_t m, std::int64_t lda, const std::int8_t* w8, const float* col_scale,
                     const std::int32_t* col_sum, std::int64_t n, std::int64_t k, float* c, std::int64_t ldc,
                     const epilogue<float>& ep, thread_pool& pool) {
    pool.parallel_for(m, [&](std::int64_t i) {
        const float* row = a + i * lda;
        float lo = 0, hi = 0;
        for (std::int64_t kk = 0; kk < k; ++kk) {
            lo = std::min(lo, row[kk]);
            hi = std::max(hi, row[kk]);
        }
        const row_quant q = make_row_quant(lo, hi);
        auto* qa = static_cast<std::uint8_t*>(thread_scratch(scratch::kernel_0, std::size_t(std::max<std::int64_t>(1, k))));
        for (std::int64_t kk = 0; kk < k; ++kk) qa[kk] = quantize_u8(row[kk], q);
        float* out = c + i * ldc;
        for (std::int64_t j = 0; j < n; ++j) {
            std::int32_t s = 0;
            const std::int8_t* w = w8 + j * k;
            for (std::int64_t kk = 0; kk < k; ++kk) s += std::int32_t(qa[kk]) * w[kk];
            float v = branch_value(ep, j, float(s - q.zero * col_sum[j]) * (q.scale * col_scale[j]));
            if (ep.residual) v += ep.residual[i * ep.ld_residual + j];
            out[j] = v;
        }
    });
}

}  // namespace vit::detail::portable
