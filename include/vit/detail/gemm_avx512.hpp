// AVX-512 fp32 linear layer: packed weight panels, register-blocked micro-kernel,
// vectorised epilogue. Compiled with target attributes, so a binary built
// without -march flags carries it and uses it only where the CPU has AVX-512.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define VIT_GEMM_X86 1
#include <immintrin.h>

#include <cstdint>

#include "gemm_common.hpp"

#define VIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,bmi,bmi2")))
#define VIT_AVX512_INLINE VIT_AVX512 inline __attribute__((always_inline))

namespace vit::detail::avx512 {

// ---------------------------------------------------------------------------
// Vector math for the epilogue.

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
// max(1, |x|), in ~60% of gelu_erf_ps's operations (GELU had been 12-19% of
// the int8 MLP up-projection).
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

// Coarse: the bf16 and int8 layers' GELU (gelu_erf_coarse_ps).
template <activation A, bool Coarse = false>
VIT_AVX512_INLINE __m512 activate_ps(__m512 v) {
    if constexpr (A == activation::gelu_erf && Coarse) return gelu_erf_coarse_ps(v);
    if constexpr (A == activation::gelu_erf) return gelu_erf_ps(v);
    if constexpr (A == activation::gelu_tanh) return gelu_tanh_ps(v);
    if constexpr (A == activation::relu) return max_ps(v, _mm512_setzero_ps());
    return v;
}

// c[i, 0:16*vecs] = act(c + bias) + residual over a block of rows, in place.
// `mask` covers the last vector (output column tail). Four rows at a time:
// GELU is one long dependency chain per vector, and four independent chains
// side by side keep both FP pipes busy (one at a time ran at half speed).
template <activation A, bool Coarse>
VIT_AVX512 void epilogue_rows(float* c, std::int64_t ldc, int rows, int vecs, __mmask16 mask, const float* bias,
                              const float* res, std::int64_t ldr) {
    constexpr int R = 4;
    for (int v = 0; v < vecs; ++v) {
        const __mmask16 mk = v == vecs - 1 ? mask : __mmask16(0xffff);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * v) : _mm512_setzero_ps();
        int i = 0;
        for (; i + R <= rows; i += R) {
            __m512 x[R];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
                x[r] = activate_ps<A, Coarse>(_mm512_add_ps(_mm512_maskz_loadu_ps(mk, c + (i + r) * ldc + 16 * v), b));
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) {
                if (res) x[r] = _mm512_add_ps(x[r], _mm512_maskz_loadu_ps(mk, res + (i + r) * ldr + 16 * v));
                _mm512_mask_storeu_ps(c + (i + r) * ldc + 16 * v, mk, x[r]);
            }
        }
        for (; i < rows; ++i) {
            float* p = c + i * ldc + 16 * v;
            __m512 x = activate_ps<A, Coarse>(_mm512_add_ps(_mm512_maskz_loadu_ps(mk, p), b));
            if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, res + i * ldr + 16 * v));
            _mm512_mask_storeu_ps(p, mk, x);
        }
    }
}

template <bool Coarse>
inline void epilogue_rows_any(activation act, float* c, std::int64_t ldc, int rows, int vecs, __mmask16 mask,
                              const float* bias, const float* res, std::int64_t ldr) {
    switch (act) {
        case activation::none:
            return epilogue_rows<activation::none, Coarse>(c, ldc, rows, vecs, mask, bias, res, ldr);
        case activation::gelu_erf:
            return epilogue_rows<activation::gelu_erf, Coarse>(c, ldc, rows, vecs, mask, bias, res, ldr);
        case activation::gelu_tanh:
            return epilogue_rows<activation::gelu_tanh, Coarse>(c, ldc, rows, vecs, mask, bias, res, ldr);
        case activation::relu:
            return epilogue_rows<activation::relu, Coarse>(c, ldc, rows, vecs, mask, bias, res, ldr);
    }
}

// ---------------------------------------------------------------------------
// Blocked product shared by the fp32 / bf16 kernels.
//
// Weights: panels of 32 output columns (two zmm of fp32 results), padded with
// zero columns, cut into k-blocks. Layout: k-blocks outermost, then panels,
// then the block's [k][32]: the panels a thread sweeps for one k-block (in one
// column chunk) are one contiguous stream, which the prefetchers follow from
// DRAM (the weights never stay in cache from one layer to the next).
// Activations: per (row block, k block) copied / converted to [rows][KC]
// (fixed row stride, so the micro-kernel addresses row i with an immediate
// offset from one pointer).
// Micro-kernel: up to 14 rows x 32 columns of accumulators (28 zmm), one
// broadcast of A per row and two B loads per k step: loads stay well below
// two per cycle while both FMA pipes are busy.
//
// A policy P supplies: a_t / w_t (element types of packed A and weights),
// kstep (k values per weight element group: 1 for fp32, 2 for bf16 pairs),
// kc (k per block), mc (rows per block), chunk_panels (panels per column
// chunk), coarse_gelu (whether GELU may be gelu_erf_coarse_ps), pack_a(...)
// and tile_for(rows).

// Memory the micro-kernel touches next, fetched while it computes: the next
// tile's output rows (their partial sums come from L2 / L3) and a share of
// the next weight micro-panel (from DRAM, one line per k step).
struct tile_prefetch {
    const char* b = nullptr;
    int b_lines = 0;
    const float* c = nullptr;
    int c_rows = 0;
};

VIT_AVX512_INLINE void prefetch_c(const tile_prefetch& pf, std::int64_t ldc) {
    for (int i = 0; i < pf.c_rows; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(pf.c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(pf.c + i * ldc + 16), _MM_HINT_T0);
    }
}

template <class P>
inline std::int64_t block_offset(std::int64_t panels, std::int64_t k, std::int64_t k0, std::int64_t p) {
    const std::int64_t kcb = std::min<std::int64_t>(P::kc, k - k0);
    const std::int64_t kcb_pad = (kcb + P::kstep - 1) / P::kstep * P::kstep;
    return k0 * panels * 32 + p * kcb_pad * 32;
}

template <class P>
inline std::int64_t packed_size(std::int64_t n, std::int64_t k) {
    const std::int64_t panels = (n + 31) / 32;
    const std::int64_t kpad = (k + P::kstep - 1) / P::kstep * P::kstep;
    return panels * 32 * kpad;
}

// The weight block a sweep takes after panel p of the k-block at k0: the
// next panel of the column chunk [q0, q1), else the chunk's first panel in
// the next k-block, else the next chunk's first panel (chunks end at p_end).
struct weight_block {
    std::int64_t p = -1, k0 = 0;  // p < 0: none (the sweep ends)
};
inline weight_block next_weight_block(std::int64_t p, std::int64_t k0, std::int64_t kc, bool last, std::int64_t q0,
                                      std::int64_t q1, std::int64_t p_end) {
    if (p + 1 < q1) return {p + 1, k0};
    if (!last) return {q0, k0 + kc};
    if (q1 < p_end) return {q1, 0};
    return {};
}

// Tile t of `tiles` fetches its share of block nb's lines while it computes:
// spread over the tiles, the next block arrives from DRAM in time.
template <class P>
inline void fetch_share(tile_prefetch& pf, const typename P::w_t* wp, std::int64_t panels, std::int64_t k,
                        weight_block nb, std::int64_t t, std::int64_t tiles) {
    if (nb.p < 0) return;
    const std::int64_t first = block_offset<P>(panels, k, nb.k0, nb.p);
    const std::int64_t lines =
        std::int64_t(sizeof(typename P::w_t)) * (block_offset<P>(panels, k, nb.k0, nb.p + 1) - first) / 64;
    const std::int64_t l0 = lines * t / tiles, l1 = lines * (t + 1) / tiles;
    pf.b = reinterpret_cast<const char*>(wp + first) + 64 * l0;
    pf.b_lines = static_cast<int>(l1 - l0);
}

// Packs w[n][k] (get(j, kk) returns element (j, kk) already converted to
// w_t); element (j, kk) of a block lands at [kk / kstep][j][kk % kstep].
template <class P, class Get>
inline void pack_weights(std::int64_t n, std::int64_t k, typename P::w_t* out, Get&& get) {
    const std::int64_t panels = (n + 31) / 32;
    for (std::int64_t k0 = 0; k0 < k; k0 += P::kc) {
        const std::int64_t kc = std::min<std::int64_t>(P::kc, k - k0);
        for (std::int64_t p = 0; p < panels; ++p) {
            typename P::w_t* dst = out + block_offset<P>(panels, k, k0, p);
            const std::int64_t cols = std::min<std::int64_t>(32, n - p * 32);
            for (std::int64_t j = 0; j < cols; ++j)
                for (std::int64_t kk = 0; kk < kc; ++kk)
                    dst[(kk / P::kstep) * 32 * P::kstep + j * P::kstep + kk % P::kstep] = get(p * 32 + j, k0 + kk);
        }
    }
}

// Splits `total` into `parts` nearly equal pieces; returns the start of piece i.
inline std::int64_t even_split(std::int64_t total, std::int64_t parts, std::int64_t i) {
    return total / parts * i + std::min(i, total % parts);
}

// Computes output columns [32 * p_begin, min(n, 32 * p_end)) for all m rows.
// Each thread takes its own column range, so it streams only its share of
// the weights; row tiles are sized evenly (145 rows -> 11 tiles of 13-14)
// so no tile runs at a fraction of the register block.
template <class P>
VIT_AVX512 void run_panels(const float* a, std::int64_t m, std::int64_t lda, const typename P::w_t* wp,
                           std::int64_t n, std::int64_t k, float* c, std::int64_t ldc, const epilogue<float>& ep,
                           std::int64_t p_begin, std::int64_t p_end) {
    using a_t = typename P::a_t;
    if (p_begin >= p_end) return;
    const std::int64_t col0 = p_begin * 32, col1 = std::min(n, p_end * 32), ncols = col1 - col0;

    const residual_view rv = residual_for(ep, c, ldc, m, col0, ncols);
    const bool seed_with_c = rv.seed_with_c;
    const float* res = rv.res;  // element (i, col0)
    const std::int64_t ldr = rv.ldr;

    const std::int64_t panels = (n + 31) / 32;
    const std::int64_t mblocks = (m + P::mc - 1) / P::mc;
    const std::int64_t kblocks = (k + P::kc - 1) / P::kc;
    // The row block's activations, all k-blocks ([kb][rows][KC]), packed once
    // and reused by every column chunk.
    a_t* ap = static_cast<a_t*>(thread_scratch(0, sizeof(a_t) * P::mc * P::kc * kblocks));
    for (std::int64_t mb = 0; mb < mblocks; ++mb) {
        const std::int64_t r0 = even_split(m, mblocks, mb), rows = even_split(m, mblocks, mb + 1) - r0;
        const std::int64_t tiles = (rows + P::mr - 1) / P::mr;
        for (std::int64_t kb = 0; kb < kblocks; ++kb) {
            const std::int64_t k0 = kb * P::kc;
            P::pack_a(a + r0 * lda + k0, lda, rows, static_cast<int>(std::min<std::int64_t>(P::kc, k - k0)),
                      ap + kb * rows * P::kc);
        }
        // Column chunks small enough that their output rows stay in L2
        // across the k-blocks (each k-block reloads and stores them).
        for (std::int64_t q0 = p_begin; q0 < p_end; q0 += P::chunk_panels) {
            const std::int64_t q1 = std::min(p_end, q0 + P::chunk_panels);
            for (std::int64_t kb = 0; kb < kblocks; ++kb) {
                const std::int64_t k0 = kb * P::kc;
                const int kc = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0));
                const bool first = kb == 0, last = kb + 1 == kblocks;
                const a_t* apk = ap + kb * rows * P::kc;
                for (std::int64_t p = q0; p < q1; ++p) {
                    const std::int64_t j0 = p * 32;
                    const int width = static_cast<int>(std::min<std::int64_t>(32, n - j0));
                    const __mmask16 m0 = width >= 16 ? 0xffff : __mmask16((1u << width) - 1);
                    const __mmask16 m1 =
                        width >= 32 ? 0xffff : width <= 16 ? 0 : __mmask16((1u << (width - 16)) - 1);
                    const typename P::w_t* bp = wp + block_offset<P>(panels, k, k0, p);
                    const weight_block nb = next_weight_block(p, k0, P::kc, last, q0, q1, p_end);
                    for (std::int64_t t = 0; t < tiles; ++t) {
                        const std::int64_t i0 = even_split(rows, tiles, t), tr = even_split(rows, tiles, t + 1) - i0;
                        float* ct = c + (r0 + i0) * ldc + j0;
                        tile_prefetch pf;
                        fetch_share<P>(pf, wp, panels, k, nb, t, tiles);
                        if (t + 1 < tiles) {
                            pf.c = c + (r0 + i0 + tr) * ldc + j0;
                            pf.c_rows = static_cast<int>(even_split(rows, tiles, t + 2) - (i0 + tr));
                        } else if (nb.p >= 0) {
                            pf.c = c + r0 * ldc + nb.p * 32;
                            pf.c_rows = static_cast<int>(even_split(rows, tiles, 1));
                        }
                        P::tile_for(static_cast<int>(tr))(kc, apk + i0 * P::kc, bp, ct, ldc, !first || seed_with_c,
                                                          m0, m1, pf);
                        if (last) {
                            const int vecs = (width + 15) / 16;
                            const __mmask16 tail =
                                width % 16 ? __mmask16((1u << (width % 16)) - 1) : __mmask16(0xffff);
                            epilogue_rows_any<P::coarse_gelu>(ep.act, ct, ldc, static_cast<int>(tr), vecs, tail,
                                              ep.bias ? ep.bias + j0 : nullptr,
                                              res ? res + (r0 + i0) * ldr + (j0 - col0) : nullptr, ldr);
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// fp32.

template <int MR>
VIT_AVX512 void f32_tile(int kc, const float* a, const float* b, float* c, std::int64_t ldc, bool load_c,
                         __mmask16 m0, __mmask16 m1, const tile_prefetch& pf);

struct f32_policy {
    using a_t = float;
    using w_t = float;
    static constexpr bool coarse_gelu = false;
    static constexpr int kstep = 1;
    static constexpr int mr = 14;
    static constexpr int kc = 256;  // B micro-panel kc x 32 floats = 32 KiB: stays in L1 across row tiles
    static constexpr int mc = 192;  // A k-block mc x kc floats = 192 KiB: stays in L2 across panels
    static constexpr int chunk_panels = 16;  // output rows of a chunk: mc x 512 floats = 384 KiB
    using tile_fn = void (*)(int, const float*, const float*, float*, std::int64_t, bool, __mmask16, __mmask16,
                             const tile_prefetch&);

    static void pack_a(const float* a, std::int64_t lda, std::int64_t rows, int kc_, float* dst) {
        for (std::int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * kc, a + i * lda, sizeof(float) * kc_);
    }
    static tile_fn tile_for(int rows) {
        static constexpr tile_fn table[] = {nullptr,      f32_tile<1>,  f32_tile<2>,  f32_tile<3>,  f32_tile<4>,
                                            f32_tile<5>,  f32_tile<6>,  f32_tile<7>,  f32_tile<8>,  f32_tile<9>,
                                            f32_tile<10>, f32_tile<11>, f32_tile<12>, f32_tile<13>, f32_tile<14>};
        static_assert(sizeof(table) / sizeof(table[0]) == mr + 1, "one tile per row count");
        return table[rows];
    }
};

template <int MR>
VIT_AVX512 void f32_tile(int kc, const float* a, const float* b, float* c, std::int64_t ldc, bool load_c,
                         __mmask16 m0, __mmask16 m1, const tile_prefetch& pf) {
    constexpr int KC = f32_policy::kc;
    prefetch_c(pf, ldc);
    // Each k-block sums into fresh accumulators and is then added to C: two
    // levels of summation (kc terms, then k / kc blocks) instead of one chain
    // of k terms, which keeps long products (k = 3072, 4096) as accurate as a
    // BLAS and the model within 1e-5 of the float64 reference.
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; ++k) {
        if (k < pf.b_lines) _mm_prefetch(pf.b + 64 * k, _MM_HINT_T0);
        const __m512 b0 = _mm512_load_ps(b + 32 * k);
        const __m512 b1 = _mm512_load_ps(b + 32 * k + 16);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i * KC + k]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
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

inline void pack_f32(const float* w_nk, std::int64_t n, std::int64_t k, float* out) {
    pack_weights<f32_policy>(n, k, out, [&](std::int64_t j, std::int64_t kk) { return w_nk[j * k + kk]; });
}

}  // namespace vit::detail::avx512

#endif
