// AVX2+FMA fp32 linear layer: the path for x86 CPUs without AVX-512. Same
// structure as the AVX-512 one with 6 x 16 register blocks; the epilogue is
// scalar (it is a small part of the work and keeps this fallback short).
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "../epilogue.hpp"
#include "../memory.hpp"

namespace vit::detail::avx2 {

struct f32_params {
    static constexpr int nr = 16;
    static constexpr int mr = 6;
    static constexpr int kc = 256;  // B micro-panel 16 KiB
    static constexpr int mc = 240;
};

// row(j) points at the k weights of output j.
template <class RowFn>
inline void pack_f32(RowFn&& row, std::int64_t n, std::int64_t k, float* out) {
    const std::int64_t panels = (n + 15) / 16;
    for (std::int64_t p = 0; p < panels; ++p) {
        float* dst = out + p * k * 16;
        const std::int64_t cols = std::min<std::int64_t>(16, n - p * 16);
        for (std::int64_t j = 0; j < cols; ++j) {
            const float* src = row(p * 16 + j);
            for (std::int64_t kk = 0; kk < k; ++kk) dst[kk * 16 + j] = src[kk];
        }
    }
}

// c is always a full 16-wide tile here (tails go through a local copy).
template <int MR>
VIT_AVX2 void f32_tile(int kc, const float* a, const float* b, float* c, std::int64_t ldc, bool load_c) {
    constexpr int KC = f32_params::kc;
    // Fresh accumulators per k-block, added to C at the end: see the AVX-512
    // tile for why (two-level summation).
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(b + 16 * k);
        const __m256 b1 = _mm256_load_ps(b + 16 * k + 8);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a + i * KC + k);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
        if (load_c) {
            c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(c + i * ldc));
            c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(c + i * ldc + 8));
        }
        _mm256_storeu_ps(c + i * ldc, c0[i]);
        _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
}

using f32_tile_fn = void (*)(int, const float*, const float*, float*, std::int64_t, bool);

inline f32_tile_fn f32_tile_for(int rows) {
    static constexpr f32_tile_fn table[] = {nullptr,     f32_tile<1>, f32_tile<2>, f32_tile<3>,
                                            f32_tile<4>, f32_tile<5>, f32_tile<6>};
    return table[rows];
}

inline std::int64_t split_at(std::int64_t total, std::int64_t parts, std::int64_t i) {
    return total / parts * i + std::min(i, total % parts);
}

inline void f32_run_panels(const float* a, std::int64_t m, std::int64_t lda, const float* wp, std::int64_t n,
                           std::int64_t k, float* c, std::int64_t ldc, const epilogue<float>& ep,
                           std::int64_t p_begin, std::int64_t p_end) {
    using P = f32_params;
    if (p_begin >= p_end) return;
    const std::int64_t col0 = p_begin * 16, col1 = std::min(n, p_end * 16), ncols = col1 - col0;
    const residual_view rv = residual_for(ep, c, ldc, m, col0, ncols);
    const bool seed_with_c = rv.seed_with_c;
    const float* res = rv.res;
    const std::int64_t ldr = rv.ldr;
    const std::int64_t mblocks = (m + P::mc - 1) / P::mc;
    float* ap = static_cast<float*>(thread_scratch(scratch::packed_a, sizeof(float) * P::mc * P::kc));
    alignas(32) float tmp[P::mr * 16];
    for (std::int64_t mb = 0; mb < mblocks; ++mb) {
        const std::int64_t r0 = split_at(m, mblocks, mb), rows = split_at(m, mblocks, mb + 1) - r0;
        const std::int64_t tiles = (rows + P::mr - 1) / P::mr;
        for (std::int64_t k0 = 0; k0 < k; k0 += P::kc) {
            const int kc = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0));
            for (std::int64_t i = 0; i < rows; ++i)
                std::memcpy(ap + i * P::kc, a + (r0 + i) * lda + k0, sizeof(float) * kc);
            const bool first = k0 == 0, last = k0 + kc >= k;
            for (std::int64_t p = p_begin; p < p_end; ++p) {
                const std::int64_t j0 = p * 16;
                const int width = static_cast<int>(std::min<std::int64_t>(16, n - j0));
                const float* bp = wp + p * k * 16 + k0 * 16;
                for (std::int64_t t = 0; t < tiles; ++t) {
                    const std::int64_t i0 = split_at(rows, tiles, t);
                    const int tr = static_cast<int>(split_at(rows, tiles, t + 1) - i0);
                    float* ct = c + (r0 + i0) * ldc + j0;
                    const bool load = !first || seed_with_c;
                    if (width == 16) {
                        f32_tile_for(tr)(kc, ap + i0 * P::kc, bp, ct, ldc, load);
                    } else {
                        if (load)
                            for (int i = 0; i < tr; ++i) std::memcpy(tmp + i * 16, ct + i * ldc, sizeof(float) * width);
                        f32_tile_for(tr)(kc, ap + i0 * P::kc, bp, tmp, 16, load);
                        for (int i = 0; i < tr; ++i) std::memcpy(ct + i * ldc, tmp + i * 16, sizeof(float) * width);
                    }
                    if (last) {
                        for (int i = 0; i < tr; ++i) {
                            float* out = ct + i * ldc;
                            const float* r = res ? res + (r0 + i0 + i) * ldr + (j0 - col0) : nullptr;
                            for (int j = 0; j < width; ++j) {
                                const float v = branch_value(ep, j0 + j, out[j]);
                                out[j] = r ? v + r[j] : v;
                            }
                        }
                    }
                }
            }
        }
    }
}

}  // namespace vit::detail::avx2

#endif
