// The bf16 product in plain C++: weights and activations rounded to bf16,
// then the float32 portable product. For CPUs without AVX512_BF16 and as the
// tests' cross-check; it keeps the weights as floats, so it saves no memory.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../float_formats.hpp"
#include "../epilogue.hpp"
#include "../memory.hpp"
#include "../thread_pool.hpp"
#include "gemm.hpp"

namespace vit::detail::portable {

inline std::int64_t bf16_packed_bytes(std::int64_t n, std::int64_t k) {
    return std::int64_t(sizeof(float)) * packed_size<float>(n, k);
}

inline void bf16_pack(const float* w_nk, std::int64_t n, std::int64_t k, void* out) {
    pack<float>([w_nk, k](std::int64_t j) { return w_nk + j * k; }, n, k, static_cast<float*>(out),
                [](float x) { return round_bf16(x); });
}

// The activations rounded once (the calling thread's scratch, read by all),
// then the threads split the panels.
inline void bf16_run(const float* a, std::int64_t m, std::int64_t lda, const void* wp, std::int64_t n,
                     std::int64_t k, float* c, std::int64_t ldc, const epilogue<float>& ep, thread_pool& pool) {
    float* ar = static_cast<float*>(thread_scratch(scratch::kernel_0, sizeof(float) * std::max<std::int64_t>(1, m * k)));
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t kk = 0; kk < k; ++kk) ar[i * k + kk] = round_bf16(a[i * lda + kk]);
    const float* w = static_cast<const float*>(wp);
    pool.balanced_ranges((n + params<float>::nr - 1) / params<float>::nr, [&](std::int64_t p0, std::int64_t p1) {
        run_panels<float>(ar, m, k, w, n, k, c, ldc, ep, p0, p1);
    });
}

}  // namespace vit::detail::portable
