// AVX-512 vector math shared by the kernels: the epilogue's activations,
// exp for softmax, a register transpose, lane masks.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <cstdint>

#include "../epilogue.hpp"

namespace vit::detail::avx512 {

// The first `count` of 16 lanes (none for count <= 0, all for count >= 16).
inline __mmask16 lanes(std::int64_t count) {
    return count >= 16 ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// GCC 12 warns (-Wmaybe-uninitialized) about the unmasked forms of these
// intrinsics, whose source operand is left undefined; the zero-masked forms
// with a full mask are the same instructions.
VIT_AVX512_INLINE __m512 max_ps(__m512 a, __m512 b) { return _mm512_maskz_max_ps(__mmask16(0xffff), a, b); }
VIT_AVX512_INLINE __m512 min_ps(__m512 a, __m512 b) { return _mm512_maskz_min_ps(__mmask16(0xffff), a, b); }
VIT_AVX512_INLINE __m512 scalef_ps(__m512 a, __m512 b) { return _mm512_maskz_scalef_ps(__mmask16(0xffff), a, b); }
VIT_AVX512_INLINE __m512 rcp14_ps(__m512 a) { return _mm512_maskz_rcp14_ps(__mmask16(0xffff), a); }
template <int Imm>
VIT_AVX512_INLINE __m512 roundscale_ps(__m512 a) { return _mm512_maskz_roundscale_ps(__mmask16(0xffff), a, Imm); }


// 16 x 16 transpose in registers: r[i] lane j -> r[j] lane i.
VIT_AVX512_INLINE void transpose16(__m512 r[16]) {
    // Zero-masked forms with a full mask: GCC 12 warns about the unmasked
    // ones' undefined source operand.
    const __mmask16 full = 0xffff;
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_maskz_unpacklo_ps(full, r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_maskz_unpackhi_ps(full, r[2 * i], r[2 * i + 1]);
    }
    // Lane group L of r[4i + q]: column 4L + q of rows 4i .. 4i + 3.
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        r[4 * i] = _mm512_maskz_shuffle_ps(full, t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_maskz_shuffle_ps(full, t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_maskz_shuffle_ps(full, t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_maskz_shuffle_ps(full, t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    // 4 x 4 transpose of 128-bit lane groups among r[q], r[4 + q], r[8 + q], r[12 + q].
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
        const __m512 u0 = _mm512_maskz_shuffle_f32x4(full, r[q], r[4 + q], 0x44);
        const __m512 u1 = _mm512_maskz_shuffle_f32x4(full, r[q], r[4 + q], 0xee);
        const __m512 u2 = _mm512_maskz_shuffle_f32x4(full, r[8 + q], r[12 + q], 0x44);
        const __m512 u3 = _mm512_maskz_shuffle_f32x4(full, r[8 + q], r[12 + q], 0xee);
        t[q] = _mm512_maskz_shuffle_f32x4(full, u0, u2, 0x88);
        t[4 + q] = _mm512_maskz_shuffle_f32x4(full, u0, u2, 0xdd);
        t[8 + q] = _mm512_maskz_shuffle_f32x4(full, u1, u3, 0x88);
        t[12 + q] = _mm512_maskz_shuffle_f32x4(full, u1, u3, 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// exp(hi + lo), |lo| <= ~2: the caller's argument is the sum of a large
// exact-ish part and a small one (e.g. -a*a split by FMA, plus a polynomial),
// and keeping them apart through the range reduction keeps erfc's relative
// error near float rounding instead of growing with a*a. hi - n*C1 is exact
// (both are multiples of hi's ulp and their difference is below 4).
// Clamped = false: the caller guarantees hi + lo in [-150, 100].
template <bool Clamped = true>
VIT_AVX512_INLINE __m512 exp_ps(__m512 hi, __m512 lo) {
    if constexpr (Clamped) hi = max_ps(min_ps(hi, _mm512_set1_ps(100.f)), _mm512_set1_ps(-150.f));
    const __m512 n = roundscale_ps<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>(
        _mm512_mul_ps(_mm512_add_ps(hi, lo), _mm512_set1_ps(1.44269504088896341f)));
    // Cody-Waite: 0.693359375 has few bits so n*C1 is exact.
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), hi);
    r = _mm512_add_ps(r, lo);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    // Taylor to degree 7 on |r| <= 0.35 (truncation 5e-9 relative), in
    // Estrin's form: the epilogue is bound by the latency of these chains.
    const __m512 r2 = _mm512_mul_ps(r, r);
    const __m512 r4 = _mm512_mul_ps(r2, r2);
    const __m512 a01 = _mm512_add_ps(r, _mm512_set1_ps(1.f));
    const __m512 a23 = _mm512_fmadd_ps(r, _mm512_set1_ps(1.f / 6), _mm512_set1_ps(0.5f));
    const __m512 a45 = _mm512_fmadd_ps(r, _mm512_set1_ps(1.f / 120), _mm512_set1_ps(1.f / 24));
    const __m512 a67 = _mm512_fmadd_ps(r, _mm512_set1_ps(1.f / 5040), _mm512_set1_ps(1.f / 720));
    const __m512 b0 = _mm512_fmadd_ps(a23, r2, a01);
    const __m512 b1 = _mm512_fmadd_ps(a67, r2, a45);
    const __m512 p = _mm512_fmadd_ps(b1, r4, b0);
    return scalef_ps(p, n);  // 2^n without overflow tricks; saturates to 0 / inf
}

// 0.5 x (1 + erf(x / sqrt 2)). 1 + erf(z) is erfc(-z): computing erfc(|z|)
// with a relative error of a few 1e-8 gives 1 + erf with that relative error
// for z < 0 (no cancellation in the tail, unlike 1 + erf) and an absolute one
// below 1e-7 for z >= 0. erfc(a) = t exp(-a^2 + P(u)), t = 2 / (2 + a),
// u = (t - 7/12) / (5/12), P a degree-11 Chebyshev fit on a in [0, 10]
// (max fit error 2.7e-9; a is clamped at 10 where erfc is 2e-45).
VIT_AVX512_INLINE __m512 gelu_erf_ps(__m512 x) {
    // |x| clamped where erfc(a) = erfc(10) = 2e-45 is below every float.
    const __m512 xc = min_ps(_mm512_abs_ps(x), _mm512_set1_ps(14.142135f));
    const __m512 a = _mm512_mul_ps(xc, _mm512_set1_ps(0.70710678118654752f));
    // t = 2 / (2 + a), 2 + a in [2, 12]: reciprocal estimate (2^-14) and one
    // Newton step (2^-28) instead of a division, which would dominate the cost.
    const __m512 d = _mm512_add_ps(a, _mm512_set1_ps(2.f));
    const __m512 r0 = rcp14_ps(d);
    const __m512 r1 = _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(1.f)), r0);
    const __m512 t = _mm512_add_ps(r1, r1);
    const __m512 u = _mm512_fmadd_ps(t, _mm512_set1_ps(2.4f), _mm512_set1_ps(-1.4f));
    // P in Estrin's form (shorter dependency chain than Horner).
    const __m512 u2 = _mm512_mul_ps(u, u);
    const __m512 u4 = _mm512_mul_ps(u2, u2);
    const __m512 u8 = _mm512_mul_ps(u4, u4);
    const __m512 p01 = _mm512_fmadd_ps(u, _mm512_set1_ps(5.703071524e-01f), _mm512_set1_ps(-5.585953538e-01f));
    const __m512 p23 = _mm512_fmadd_ps(u, _mm512_set1_ps(-2.947132709e-02f), _mm512_set1_ps(1.574507910e-02f));
    const __m512 p45 = _mm512_fmadd_ps(u, _mm512_set1_ps(3.713026487e-03f), _mm512_set1_ps(-1.045591842e-03f));
    const __m512 p67 = _mm512_fmadd_ps(u, _mm512_set1_ps(-5.470131720e-04f), _mm512_set1_ps(-2.758495092e-04f));
    const __m512 p89 = _mm512_fmadd_ps(u, _mm512_set1_ps(6.755849376e-05f), _mm512_set1_ps(1.297409379e-04f));
    const __m512 p1011 = _mm512_fmadd_ps(u, _mm512_set1_ps(-4.619178593e-06f), _mm512_set1_ps(-2.280496016e-05f));
    const __m512 q0 = _mm512_fmadd_ps(p23, u2, p01);
    const __m512 q1 = _mm512_fmadd_ps(p67, u2, p45);
    const __m512 q2 = _mm512_fmadd_ps(p1011, u2, p89);
    const __m512 p = _mm512_fmadd_ps(q2, u8, _mm512_fmadd_ps(q1, u4, q0));
    // a^2 = x^2 / 2 from x itself (exact as hi + lo): going through the
    // rounded a would cost a relative error of a^2 ulps in the tail.
    const __m512 x2 = _mm512_mul_ps(xc, xc);
    const __m512 x2_err = _mm512_fmsub_ps(xc, xc, x2);
    const __m512 erfc = _mm512_mul_ps(
        t, exp_ps<false>(_mm512_mul_ps(x2, _mm512_set1_ps(-0.5f)), _mm512_fnmadd_ps(x2_err, _mm512_set1_ps(0.5f), p)));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 one_plus_erf = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.f), erfc), erfc);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), one_plus_erf);
}

// GELU for layers whose output the next product rounds anyway: to bf16
// (relative 2^-9) or to 8 bits per row. 0.5 erfc(|x| / sqrt 2) by Abramowitz
// & Stegun 7.1.26 (absolute error <= 1.5e-7 on erfc, here with the factor 0.5
// folded into the coefficients) and an exp of degree 6: |error| <= 2e-7
// max(1, |x|), in fewer operations than gelu_erf_ps (BENCHMARKS.md).
VIT_AVX512_INLINE __m512 gelu_erf_coarse_ps(__m512 x) {
    // z = |x| / sqrt 2, clamped where erfc(z) = erfc(10) = 2e-45 is below every float.
    const __m512 z = min_ps(_mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f)),
                            _mm512_set1_ps(10.f));
    // t = 1 / (1 + p z): reciprocal estimate and one Newton step (2^-28).
    const __m512 d = _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f));
    const __m512 r0 = rcp14_ps(d);
    const __m512 t = _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(1.f)), r0);
    __m512 q = _mm512_fmadd_ps(t, _mm512_set1_ps(0.5f * 1.061405429f), _mm512_set1_ps(0.5f * -1.453152027f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.5f * 1.421413741f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.5f * -0.284496736f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.5f * 0.254829592f));
    q = _mm512_mul_ps(q, t);
    // exp(-z^2), -z^2 in [-100, 0]: n = round(y / ln 2), r = y - n ln 2 in
    // [-0.35, 0.35] (one-step reduction: n <= 145 costs 2e-7 relative), then
    // Taylor to degree 6 (truncation 1.2e-7).
    const __m512 y = _mm512_fnmadd_ps(z, z, _mm512_setzero_ps());
    const __m512 n = roundscale_ps<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>(
        _mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)));
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.69314718055994531f), y);
    __m512 e = _mm512_fmadd_ps(r, _mm512_set1_ps(1.f / 720), _mm512_set1_ps(1.f / 120));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f / 24));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f / 6));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(0.5f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f));
    const __m512 tail = _mm512_mul_ps(q, scalef_ps(e, n));  // Phi(-|x|) = 0.5 erfc(z)
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 phi = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.f), tail), tail);
    return _mm512_mul_ps(x, phi);
}

// 0.5 x (1 + tanh(y)) == x / (1 + exp(-2y)): no cancellation for small y.
VIT_AVX512_INLINE __m512 gelu_tanh_ps(__m512 x) {
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 y = _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x),
                                   _mm512_set1_ps(0.79788456080286535588f));
    const __m512 e = exp_ps(_mm512_mul_ps(y, _mm512_set1_ps(-2.f)), _mm512_setzero_ps());
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), e));
}

// x sigmoid(1.702 x) = x / (1 + exp(-1.702 x)): CLIP's quick_gelu.
VIT_AVX512_INLINE __m512 quick_gelu_ps(__m512 x) {
    const __m512 e = exp_ps(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)), _mm512_setzero_ps());
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), e));
}

// out[j] = silu(x1[j]) x2[j] = x1 / (1 + exp(-x1)) x2 for j < n, SwiGLU's
// gate. out may be x1: each vector is read before its store.
inline VIT_AVX512 void silu_gate_row(const float* x1, const float* x2, float* out, std::int64_t n) {
    for (std::int64_t j = 0; j < n; j += 16) {
        const __mmask16 mk = lanes(n - j);
        const __m512 a = _mm512_maskz_loadu_ps(mk, x1 + j);
        const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), _mm512_setzero_ps());
        const __m512 silu = _mm512_div_ps(a, _mm512_add_ps(_mm512_set1_ps(1.f), e));
        _mm512_mask_storeu_ps(out + j, mk, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mk, x2 + j)));
    }
}

// Coarse: the bf16 and int8 layers' GELU (gelu_erf_coarse_ps).
template <activation A, bool Coarse = false>
VIT_AVX512_INLINE __m512 activate_ps(__m512 v) {
    if constexpr (A == activation::gelu_erf && Coarse) return gelu_erf_coarse_ps(v);
    if constexpr (A == activation::gelu_erf) return gelu_erf_ps(v);
    if constexpr (A == activation::gelu_tanh) return gelu_tanh_ps(v);
    if constexpr (A == activation::relu) return max_ps(v, _mm512_setzero_ps());
    if constexpr (A == activation::quick_gelu) return quick_gelu_ps(v);
    return v;
}

// a * b rounded on its own, as in scalar code: GCC contracts a plain
// _mm512_mul_ps and the add after it into one FMA, rounded once. (Zero-masked
// with a full mask, as max_ps above.)
VIT_AVX512_INLINE __m512 mul_rounded_ps(__m512 a, __m512 b) {
    return _mm512_maskz_mul_round_ps(__mmask16(0xffff), a, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// act(v + b) * s, an epilogue's branch (times s only if scaled).
template <activation A, bool Coarse = false>
VIT_AVX512_INLINE __m512 branch_ps(__m512 v, __m512 b, __m512 s, bool scaled) {
    const __m512 x = activate_ps<A, Coarse>(_mm512_add_ps(v, b));
    return scaled ? mul_rounded_ps(x, s) : x;
}

// c[i, 0:16*vecs] = act(c + bias) * scale + residual over a block of rows, in place.
// `mask` covers the last vector (output column tail). Four rows at a time:
// GELU is one long dependency chain per vector, and four independent chains
// side by side keep both FP pipes busy (one at a time ran at half speed).
template <activation A, bool Coarse>
VIT_AVX512 void epilogue_rows(float* c, std::int64_t ldc, int rows, int vecs, __mmask16 mask, const float* bias,
                              const float* scale, const float* res, std::int64_t ldr) {
    constexpr int R = 4;
    for (int v = 0; v < vecs; ++v) {
        const __mmask16 mk = v == vecs - 1 ? mask : __mmask16(0xffff);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * v) : _mm512_setzero_ps();
        const __m512 s = scale ? _mm512_maskz_loadu_ps(mk, scale + 16 * v) : _mm512_setzero_ps();
        int i = 0;
        for (; i + R <= rows; i += R) {
            __m512 x[R];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
                x[r] = branch_ps<A, Coarse>(_mm512_maskz_loadu_ps(mk, c + (i + r) * ldc + 16 * v), b, s, scale != nullptr);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) {
                if (res) x[r] = _mm512_add_ps(x[r], _mm512_maskz_loadu_ps(mk, res + (i + r) * ldr + 16 * v));
                _mm512_mask_storeu_ps(c + (i + r) * ldc + 16 * v, mk, x[r]);
            }
        }
        for (; i < rows; ++i) {
            float* p = c + i * ldc + 16 * v;
            __m512 x = branch_ps<A, Coarse>(_mm512_maskz_loadu_ps(mk, p), b, s, scale != nullptr);
            if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, res + i * ldr + 16 * v));
            _mm512_mask_storeu_ps(p, mk, x);
        }
    }
}

template <bool Coarse>
inline void epilogue_rows_any(activation act, float* c, std::int64_t ldc, int rows, int vecs, __mmask16 mask,
                              const float* bias, const float* scale, const float* res, std::int64_t ldr) {
    switch (act) {
        case activation::none:
            return epilogue_rows<activation::none, Coarse>(c, ldc, rows, vecs, mask, bias, scale, res, ldr);
        case activation::gelu_erf:
            return epilogue_rows<activation::gelu_erf, Coarse>(c, ldc, rows, vecs, mask, bias, scale, res, ldr);
        case activation::gelu_tanh:
            return epilogue_rows<activation::gelu_tanh, Coarse>(c, ldc, rows, vecs, mask, bias, scale, res, ldr);
        case activation::relu:
            return epilogue_rows<activation::relu, Coarse>(c, ldc, rows, vecs, mask, bias, scale, res, ldr);
        case activation::quick_gelu:
            return epilogue_rows<activation::quick_gelu, Coarse>(c, ldc, rows, vecs, mask, bias, scale, res, ldr);
    }
}

}  // namespace vit::detail::avx512

#endif
