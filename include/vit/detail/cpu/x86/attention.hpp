// Fused AVX-512 attention for one image and head: scores, softmax and the
// weighted sum per block of query rows while they are in L1, exp
// vectorised; and its bf16 variant (AVX512_BF16) for the bf16 compute mode.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../attention_args.hpp"
#include "../memory.hpp"
#include "../thread_pool.hpp"
#include "vmath.hpp"

namespace vit::detail::avx512 {

// c[i][0:32] = sum_k a[i * lda + k] * b[k * ldb + 0:32] for R rows; m0 / m1
// mask the two 16-column halves of b's rows and of the stores.
template <int R>
VIT_AVX512 void rows_times_32(std::int64_t kn, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                              float* c, std::int64_t ldc, __mmask16 m0, __mmask16 m1) {
    __m512 c0[R], c1[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (std::int64_t k = 0; k < kn; ++k) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + k * ldb);
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, b + k * ldb + 16);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c1[i]);
    }
}

constexpr int attention_rows = 12;  // query rows per block: 24 accumulators

inline void rows_times_32_any(int rows, std::int64_t kn, const float* a, std::int64_t lda, const float* b,
                              std::int64_t ldb, float* c, std::int64_t ldc, __mmask16 m0, __mmask16 m1) {
    using fn = void (*)(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, float*, std::int64_t,
                        __mmask16, __mmask16);
    static constexpr fn table[] = {nullptr,           rows_times_32<1>, rows_times_32<2>,  rows_times_32<3>,
                                   rows_times_32<4>,  rows_times_32<5>, rows_times_32<6>,  rows_times_32<7>,
                                   rows_times_32<8>,  rows_times_32<9>, rows_times_32<10>, rows_times_32<11>,
                                   rows_times_32<12>};
    static_assert(sizeof(table) / sizeof(table[0]) == attention_rows + 1, "one kernel per row count");
    table[rows](kn, a, lda, b, ldb, c, ldc, m0, m1);
}


// Horizontal max (Max) or sum of the 16 lanes. The zero-masked shuffles with
// a full mask avoid GCC 12's -Wuninitialized on the unmasked forms.
template <bool Max>
VIT_AVX512_INLINE __m512 combine_ps(__m512 p, __m512 q) {
    if constexpr (Max) return max_ps(p, q);
    else return _mm512_add_ps(p, q);
}
template <bool Max>
VIT_AVX512_INLINE float reduce_ps(__m512 x) {
    constexpr auto op = combine_ps<Max>;
    x = op(x, _mm512_maskz_shuffle_f32x4(__mmask16(0xffff), x, x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = op(x, _mm512_maskz_shuffle_f32x4(__mmask16(0xffff), x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    x = op(x, _mm512_maskz_permute_ps(__mmask16(0xffff), x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = op(x, _mm512_maskz_permute_ps(__mmask16(0xffff), x, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(x);
}

// probs[i][0:n] = softmax(s[i][0:n]), s padded to whole vectors.
VIT_AVX512 inline void softmax_row(const float* s, std::int64_t n, float* probs) {
    const std::int64_t full = n / 16;
    const __mmask16 tail = lanes(n % 16);
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::int64_t v = 0; v < full; ++v) mx = max_ps(mx, _mm512_loadu_ps(s + 16 * v));
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + 16 * full));
    const __m512 m = _mm512_set1_ps(reduce_ps<true>(mx));
    __m512 sum = _mm512_setzero_ps();
    for (std::int64_t v = 0; v < full; ++v) {
        const __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * v), m), _mm512_setzero_ps());
        _mm512_storeu_ps(probs + 16 * v, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (tail) {
        const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + 16 * full), m), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(probs + 16 * full, tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.f / reduce_ps<false>(sum));
    for (std::int64_t v = 0; v < full; ++v)
        _mm512_storeu_ps(probs + 16 * v, _mm512_mul_ps(_mm512_loadu_ps(probs + 16 * v), inv));
    if (tail)
        _mm512_mask_storeu_ps(probs + 16 * full, tail,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, probs + 16 * full), inv));
}

// Query q's probabilities over the keys it sees (attention_args::keys_seen),
// zero for the masked ones.
VIT_AVX512 inline void masked_softmax_row(const attention_args<float>& a, std::int64_t b, std::int64_t q,
                                          const float* s, float* probs) {
    const std::int64_t seen = a.keys_seen(b, q);
    softmax_row(s, seen, probs);
    std::fill(probs + seen, probs + a.tokens, 0.f);
}

// kt[c][j] = k[j][c] * scale for c < d, j < np (zero for j >= n), by 16 x 16
// blocks (a strided scalar copy is far slower; BENCHMARKS.md).
VIT_AVX512 inline void transpose_scaled(const float* k, std::int64_t ld, std::int64_t n, std::int64_t d, float scale,
                                        float* kt, std::int64_t np) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (std::int64_t j0 = 0; j0 < np; j0 += 16)
        for (std::int64_t c0 = 0; c0 < d; c0 += 16) {
            const __mmask16 cols = lanes(d - c0);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; ++i)
                r[i] = j0 + i < n ? _mm512_mul_ps(_mm512_maskz_loadu_ps(cols, k + (j0 + i) * ld + c0), sc)
                                  : _mm512_setzero_ps();
            transpose16(r);
            for (std::int64_t i = 0; i < std::min<std::int64_t>(16, d - c0); ++i)
                _mm512_storeu_ps(kt + (c0 + i) * np + j0, r[i]);
        }
}

// Fetches rows [j0, j1) of a head's q, k and v (d floats each, q at `q`, k
// and v H further on, rows ld apart) into L2.
inline void prefetch_qkv_rows(const float* q, std::int64_t ld, std::int64_t H, std::int64_t d, std::int64_t j0,
                              std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j)
        for (std::int64_t part = 0; part < 3; ++part)
            for (std::int64_t c = 0; c < d; c += 16)
                _mm_prefetch(reinterpret_cast<const char*>(q + j * ld + part * H + c), _MM_HINT_T1);
}

// `next`: the image-major head index (b * heads + h) this thread computes
// after this one, or -1. Its q, k, v rows are fetched into L2 a share per row
// block: they are d floats every 3 H (a stride the hardware prefetchers do not
// follow) and come from L3 or DRAM, which cost a third of the time unfetched.
VIT_AVX512 inline void attention_head(const attention_args<float>& a, std::int64_t b, std::int64_t h,
                                      std::int64_t next) {
    const std::int64_t H = a.heads * a.d, n = a.tokens, d = a.d, ld = 3 * H;
    const std::int64_t np = (n + 31) / 32 * 32;  // keys padded to the 32-wide blocks
    const float scale = 1.f / std::sqrt(float(a.d));
    const float* q = a.qkv + b * n * ld + h * d;
    const float* k = q + H;
    const float* v = q + 2 * H;
    float* probs = a.probs ? a.probs + (b * a.heads + h) * n * n : nullptr;
    float* ctx = a.ctx + b * n * H + h * d;

    // kt = k^T * scale [d][np], zero past n; scores = q kt is then the plain
    // product (the scale is 1/8 for d = 64, so scaling k first is exact there).
    float* kt = static_cast<float*>(thread_scratch(scratch::attention, sizeof(float) * ((d + attention_rows) * np + attention_rows * n)));
    float* s = kt + d * np;                         // one row block's scores [attention_rows][np]
    float* block_probs = s + attention_rows * np;  // and its probabilities [attention_rows][n], if not kept
    transpose_scaled(k, ld, n, d, scale, kt, np);

    // Row blocks of nearly equal size (145 -> 13 blocks of 11-12 rows, not
    // 12 x 12 + 1), so none runs at a fraction of the register block.
    const std::int64_t nq = a.queries;
    const std::int64_t blocks = (nq + attention_rows - 1) / attention_rows;
    const float* next_q = next < 0 ? nullptr : a.qkv + (next / a.heads) * n * ld + (next % a.heads) * d;
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
        if (next_q) prefetch_qkv_rows(next_q, ld, H, d, even_split(n, blocks, blk), even_split(n, blocks, blk + 1));
        const std::int64_t i0 = even_split(nq, blocks, blk);
        const int rows = static_cast<int>(even_split(nq, blocks, blk + 1) - i0);
        for (std::int64_t j0 = 0; j0 < np; j0 += 32)
            rows_times_32_any(rows, d, q + i0 * ld, ld, kt + j0, np, s + j0, np, 0xffff, 0xffff);
        float* p = probs ? probs + i0 * n : block_probs;
        for (int i = 0; i < rows; ++i) masked_softmax_row(a, b, i0 + i, s + i * np, p + i * n);
        for (std::int64_t c0 = 0; c0 < d; c0 += 32)
            rows_times_32_any(rows, n, p, n, v + c0, ld, ctx + i0 * H + c0, H, lanes(d - c0),
                              lanes(d - c0 - 16));
    }
}

// ---------------------------------------------------------------------------
// bf16 variant, for the bf16 compute mode (as PyTorch's bf16 runs attention):
// q, k, the probabilities and v rounded to bf16, products by vdpbf16ps (two
// k values per 32-bit lane, twice the fp32 FMA rate) with fp32 sums, scores
// and softmax in fp32. Operands are 32-bit words holding bf16 pairs along
// the summed dimension.

#ifdef VIT_X86_BF16

// c[i][0:32] = sum_s a[i * lda + s] . b[s * ldb + 0:32] over kn word pairs
// (each word two bf16); b rows padded to whole 32-word blocks.
template <int R>
VIT_AVX512_BF16 void rows_times_32_bf16(std::int64_t kn, const std::uint32_t* a, std::int64_t lda,
                                            const std::uint32_t* b, std::int64_t ldb, float* c, std::int64_t ldc,
                                            __mmask16 m0, __mmask16 m1) {
    __m512 c0[R], c1[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (std::int64_t s = 0; s < kn; ++s) {
        const __m512i b0 = _mm512_loadu_si512(b + s * ldb);
        const __m512i b1 = _mm512_loadu_si512(b + s * ldb + 16);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const __m512i ai = _mm512_set1_epi32(static_cast<int>(a[i * lda + s]));
            c0[i] = _mm512_dpbf16_ps(c0[i], (__m512bh)ai, (__m512bh)b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], (__m512bh)ai, (__m512bh)b1);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c1[i]);
    }
}

inline void rows_times_32_bf16_any(int rows, std::int64_t kn, const std::uint32_t* a, std::int64_t lda,
                                   const std::uint32_t* b, std::int64_t ldb, float* c, std::int64_t ldc, __mmask16 m0,
                                   __mmask16 m1) {
    using fn = void (*)(std::int64_t, const std::uint32_t*, std::int64_t, const std::uint32_t*, std::int64_t, float*,
                        std::int64_t, __mmask16, __mmask16);
    static constexpr fn table[] = {nullptr,
                                   rows_times_32_bf16<1>,
                                   rows_times_32_bf16<2>,
                                   rows_times_32_bf16<3>,
                                   rows_times_32_bf16<4>,
                                   rows_times_32_bf16<5>,
                                   rows_times_32_bf16<6>,
                                   rows_times_32_bf16<7>,
                                   rows_times_32_bf16<8>,
                                   rows_times_32_bf16<9>,
                                   rows_times_32_bf16<10>,
                                   rows_times_32_bf16<11>,
                                   rows_times_32_bf16<12>};
    static_assert(sizeof(table) / sizeof(table[0]) == attention_rows + 1, "one kernel per row count");
    table[rows](kn, a, lda, b, ldb, c, ldc, m0, m1);
}

// Row x[0:n] * scale as words of bf16 pairs, (n + 1) / 2 of them (an odd n
// gets a zero partner), rounded to nearest even.
VIT_AVX512_BF16 inline void pairs_of(const float* x, std::int64_t n, float scale, std::uint32_t* out) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (std::int64_t c = 0; c < n; c += 32) {
        const __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n - c), x + c), sc);
        const __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n - c - 16), x + c + 16), sc);
        const std::int64_t words = std::min<std::int64_t>(16, (n - c + 1) / 2);
        _mm512_mask_storeu_epi32(out + c / 2, lanes(words), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

VIT_AVX512_BF16 inline void attention_head_bf16(const attention_args<float>& a, std::int64_t b, std::int64_t h,
                                                    std::int64_t next) {
    const std::int64_t H = a.heads * a.d, n = a.tokens, d = a.d, ld = 3 * H;
    const std::int64_t np = (n + 31) / 32 * 32;  // keys padded to the 32-wide blocks
    const std::int64_t dw = (d + 1) / 2, nw = (n + 1) / 2;  // word pairs along d and along the keys
    const std::int64_t dp = (d + 31) / 32 * 32;  // value columns padded to the 32-wide blocks
    const float scale = 1.f / std::sqrt(float(a.d));
    const float* q = a.qkv + b * n * ld + h * d;
    const float* k = q + H;
    const float* v = q + 2 * H;
    float* probs = a.probs ? a.probs + (b * a.heads + h) * n * n : nullptr;
    float* ctx = a.ctx + b * n * H + h * d;

    // Scratch: kt [dw][np] (k^T * scale, zero past n), vw [nw][dp], then per
    // row block: q words [rows][dw], scores [rows][np], probabilities
    // [rows][n] (if not kept) and their words [rows][nw].
    const std::int64_t R = attention_rows;
    auto* kt = static_cast<std::uint32_t*>(thread_scratch(
        scratch::attention, 4 * (dw * np + nw * dp + R * dw + R * np + R * n + R * nw)));
    std::uint32_t* vw = kt + dw * np;
    std::uint32_t* qw = vw + nw * dp;
    float* s = reinterpret_cast<float*>(qw + R * dw);
    float* block_probs = s + R * np;
    std::uint32_t* pw = reinterpret_cast<std::uint32_t*>(block_probs + R * n);

    // k^T: 16 keys at a time, their word rows transposed in registers.
    for (std::int64_t j0 = 0; j0 < np; j0 += 16)
        for (std::int64_t w0 = 0; w0 < dw; w0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; ++i) {
                if (j0 + i < n) {
                    alignas(64) std::uint32_t row[16] = {};
                    pairs_of(k + (j0 + i) * ld + 2 * w0, std::min<std::int64_t>(32, d - 2 * w0), scale, row);
                    r[i] = _mm512_load_ps(reinterpret_cast<const float*>(row));
                } else {
                    r[i] = _mm512_setzero_ps();
                }
            }
            transpose16(r);
            for (std::int64_t w = 0; w < std::min<std::int64_t>(16, dw - w0); ++w)
                _mm512_storeu_ps(reinterpret_cast<float*>(kt + (w0 + w) * np + j0), r[w]);
        }
    // v as pairs of consecutive keys: word (j2, c) = v[2 j2][c] | v[2 j2 + 1][c] << 16.
    for (std::int64_t j2 = 0; j2 < nw; ++j2) {
        const float* v0 = v + 2 * j2 * ld;
        const bool has1 = 2 * j2 + 1 < n;
        for (std::int64_t c = 0; c < dp; c += 16) {
            const __mmask16 mk = lanes(d - c);
            const __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, v0 + c));
            const __m256i hi =
                has1 ? (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, v0 + ld + c)) : _mm256_setzero_si256();
            // (zero-masked forms with a full mask: GCC 12 warns about the plain ones)
            const __mmask16 full = 0xffff;
            _mm512_storeu_si512(vw + j2 * dp + c,
                                _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(full, lo),
                                                _mm512_maskz_slli_epi32(full, _mm512_maskz_cvtepu16_epi32(full, hi), 16)));
        }
    }

    const std::int64_t nq = a.queries;
    const std::int64_t blocks = (nq + R - 1) / R;
    const float* next_q = next < 0 ? nullptr : a.qkv + (next / a.heads) * n * ld + (next % a.heads) * d;
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
        if (next_q) prefetch_qkv_rows(next_q, ld, H, d, even_split(n, blocks, blk), even_split(n, blocks, blk + 1));
        const std::int64_t i0 = even_split(nq, blocks, blk);
        const int rows = static_cast<int>(even_split(nq, blocks, blk + 1) - i0);
        for (int i = 0; i < rows; ++i) pairs_of(q + (i0 + i) * ld, d, 1.f, qw + i * dw);
        for (std::int64_t j0 = 0; j0 < np; j0 += 32)
            rows_times_32_bf16_any(rows, dw, qw, dw, kt + j0, np, s + j0, np, 0xffff, 0xffff);
        float* p = probs ? probs + i0 * n : block_probs;
        for (int i = 0; i < rows; ++i) {
            masked_softmax_row(a, b, i0 + i, s + i * np, p + i * n);
            pairs_of(p + i * n, n, 1.f, pw + i * nw);
        }
        for (std::int64_t c0 = 0; c0 < d; c0 += 32)
            rows_times_32_bf16_any(rows, nw, pw, nw, vw + c0, dp, ctx + i0 * H + c0, H, lanes(d - c0),
                                   lanes(d - c0 - 16));
    }
}
#endif

}  // namespace vit::detail::avx512

#endif
