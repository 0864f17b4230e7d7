// AVX-512 LayerNorm row, with the portable row's double statistics.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "vmath.hpp"

namespace vit::detail::avx512 {
// Lanes 0-7 / 8-15 of v widened to double.
VIT_AVX512_INLINE __m512d lo_pd(__m512 v) { return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 0)); }
VIT_AVX512_INLINE __m512d hi_pd(__m512 v) {
    return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 1));
}
VIT_AVX512_INLINE double sum_pd(__m512d v) {
    alignas(64) double t[8];
    _mm512_store_pd(t, v);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// One row of layer_norm<float>::run, with the same double statistics: the
// float values widened 8 at a time into independent double sums.
VIT_AVX512 inline void layer_norm_row(const float* in, float* out, const float* w, const float* b,
                                      std::int64_t h, double eps) {
    const __mmask16 all = 0xffff;
    const auto lo = lo_pd;
    const auto hi = hi_pd;
    const auto sum8 = sum_pd;
    const std::int64_t full = h / 16;
    const __mmask16 tail = lanes(h % 16);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (std::int64_t v = 0; v < full; ++v) {
        const __m512 x = _mm512_loadu_ps(in + 16 * v);
        s0 = _mm512_add_pd(s0, lo(x));
        s1 = _mm512_add_pd(s1, hi(x));
    }
    if (tail) {
        const __m512 x = _mm512_maskz_loadu_ps(tail, in + 16 * full);
        s0 = _mm512_add_pd(s0, lo(x));
        s1 = _mm512_add_pd(s1, hi(x));
    }
    const double mean = sum8(_mm512_add_pd(s0, s1)) / double(h);
    const __m512d m = _mm512_set1_pd(mean);
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    for (std::int64_t v = 0; v < full; ++v) {
        const __m512 x = _mm512_loadu_ps(in + 16 * v);
        const __m512d d0 = _mm512_sub_pd(lo(x), m), d1 = _mm512_sub_pd(hi(x), m);
        q0 = _mm512_fmadd_pd(d0, d0, q0);
        q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    if (tail) {
        const __m512 x = _mm512_maskz_loadu_ps(tail, in + 16 * full);
        const __m512d d0 = _mm512_maskz_sub_pd(__mmask8(tail), lo(x), m);
        const __m512d d1 = _mm512_maskz_sub_pd(__mmask8(tail >> 8), hi(x), m);
        q0 = _mm512_fmadd_pd(d0, d0, q0);
        q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    const double var = sum8(_mm512_add_pd(q0, q1)) / double(h);
    const __m512d inv = _mm512_set1_pd(1.0 / std::sqrt(var + eps));
    for (std::int64_t v = 0; v <= full; ++v) {
        const __mmask16 mk = v < full ? all : tail;
        if (!mk) break;
        const __m512 x = _mm512_maskz_loadu_ps(mk, in + 16 * v);
        const __m256 n0 = _mm512_maskz_cvtpd_ps(__mmask8(0xff), _mm512_mul_pd(_mm512_sub_pd(lo(x), m), inv));
        const __m256 n1 = _mm512_maskz_cvtpd_ps(__mmask8(0xff), _mm512_mul_pd(_mm512_sub_pd(hi(x), m), inv));
        const __m512 n = _mm512_maskz_insertf32x8(all, _mm512_castps256_ps512(n0), n1, 1);
        const __m512 y = _mm512_add_ps(_mm512_mul_ps(n, _mm512_maskz_loadu_ps(mk, w + 16 * v)),
                                       _mm512_maskz_loadu_ps(mk, b + 16 * v));
        _mm512_mask_storeu_ps(out + 16 * v, mk, y);
    }
}

}  // namespace vit::detail::avx512

#endif
