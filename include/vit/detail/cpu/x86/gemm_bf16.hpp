// AVX512_BF16 kernels for the bf16 linear layer: the policy that runs them
// through the blocked AVX-512 driver (gemm_avx512.hpp) and the micro-kernel.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86_BF16
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../float_formats.hpp"
#include "gemm_avx512.hpp"

namespace vit::detail {

namespace avx512 {

template <int MR>
VIT_AVX512_BF16 void bf16_tile(int kc, const std::uint16_t* a, const std::uint16_t* b, float* c, std::int64_t ldc,
                               bool load_c, __mmask16 m0, __mmask16 m1, const tile_prefetch& pf);

struct bf16_policy {
    using a_t = std::uint16_t;
    using w_t = std::uint16_t;
    static constexpr bool coarse_gelu = true;  // the next layer rounds its input to bf16
    static constexpr int kstep = 2;
    static constexpr int mr = 14;
    static constexpr int kc = 512;  // B micro-panel 512 x 32 bf16 = 32 KiB (L1)
    static constexpr int mc = 192;  // A k-block 192 x 512 bf16 = 192 KiB (L2)
    static constexpr int chunk_panels = 16;
    using tile_fn = void (*)(int, const std::uint16_t*, const std::uint16_t*, float*, std::int64_t, bool, __mmask16,
                             __mmask16, const tile_prefetch&);

    // Rows of kc floats -> bf16 rows of stride kc (an odd kc gets a zero
    // partner: masked loads fill with zeros).
    VIT_AVX512_BF16 static void pack_a(const float* a, std::int64_t lda, std::int64_t rows, int kc_,
                                       std::uint16_t* dst) {
        for (std::int64_t i = 0; i < rows; ++i) {
            const float* src = a + i * lda;
            std::uint16_t* out = dst + i * kc;
            for (int k = 0; k < kc_; k += 32) {
                const int left = kc_ - k;
                const __mmask16 lo = lanes(left);
                const __mmask16 hi = lanes(left - 16);
                const __m512 x0 = _mm512_maskz_loadu_ps(lo, src + k);
                const __m512 x1 = _mm512_maskz_loadu_ps(hi, src + k + 16);
                _mm512_storeu_si512(out + k, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
            }
        }
    }
    static tile_fn tile_for(int rows) {
        static constexpr tile_fn table[] = {nullptr,       bf16_tile<1>,  bf16_tile<2>,  bf16_tile<3>,  bf16_tile<4>,
                                            bf16_tile<5>,  bf16_tile<6>,  bf16_tile<7>,  bf16_tile<8>,  bf16_tile<9>,
                                            bf16_tile<10>, bf16_tile<11>, bf16_tile<12>, bf16_tile<13>, bf16_tile<14>};
        static_assert(sizeof(table) / sizeof(table[0]) == mr + 1, "one tile per row count");
        return table[rows];
    }
};

template <int MR>
VIT_AVX512_BF16 void bf16_tile(int kc, const std::uint16_t* a, const std::uint16_t* b, float* c, std::int64_t ldc,
                               bool load_c, __mmask16 m0, __mmask16 m1, const tile_prefetch& pf) {
    constexpr int KC = bf16_policy::kc;
    prefetch_c(pf, ldc);
    // Fresh accumulators per k-block, added to C at the end (as the fp32
    // tile: two-level summation, and no wait on C before the first product).
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    const int steps = (kc + 1) / 2;
#pragma GCC unroll 2
    for (int s = 0; s < steps; ++s) {
        if (s < pf.b_lines) _mm_prefetch(reinterpret_cast<const char*>(pf.b) + 64 * s, _MM_HINT_T0);
        const __m512i b0 = _mm512_load_si512(b + 64 * s);
        const __m512i b1 = _mm512_load_si512(b + 64 * s + 32);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            std::int32_t pair;
            std::memcpy(&pair, a + i * KC + 2 * s, 4);
            const __m512i ai = _mm512_set1_epi32(pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], (__m512bh)ai, (__m512bh)b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], (__m512bh)ai, (__m512bh)b1);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        if (load_c) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c + i * ldc));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
        }
        _mm512_mask_storeu_ps(c + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c1[i]);
    }
}

// float_to_bf16 (round to nearest even, NaN kept quiet) on 16 values at a
// time, in integer arithmetic: the same bits.
VIT_AVX512 inline void to_bf16(const float* x, std::int64_t count, std::uint16_t* out) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    for (std::int64_t i = 0; i < count; i += 16) {
        const __mmask16 m = lanes(count - i);
        const __m512i v = _mm512_maskz_loadu_epi32(m, x + i);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, abs_mask), inf);
        const __mmask16 full = 0xffff;  // the zero-masked forms: GCC 12 warns about the others
        const __m512i hi = _mm512_maskz_srli_epi32(full, v, 16);
        __m512i r =
            _mm512_maskz_srli_epi32(full, _mm512_add_epi32(v, _mm512_add_epi32(half, _mm512_and_si512(hi, one))), 16);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet));
        _mm512_mask_cvtepi32_storeu_epi16(out + i, m, r);
    }
}

}  // namespace avx512

}  // namespace vit::detail

#endif
