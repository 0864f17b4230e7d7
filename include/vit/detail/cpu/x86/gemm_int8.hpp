// AVX512_VNNI kernels for the int8 linear layer: activations quantized per
// row to uint8, products by vpdpbusd into int32, the fp32 epilogue.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../quant.hpp"
#include "gemm_avx512.hpp"

namespace vit::detail {

namespace avx512 {

struct int8_policy {
    using w_t = std::int8_t;
    static constexpr int kstep = 4;
    static constexpr int mr = 14;
    static constexpr int kc = 1024;  // B micro-panel 1024 x 32 bytes = 32 KiB (L1); A row stride 1 KiB
    static constexpr int mc = 320;
};

// What the last k-block of a tile does with its sums.
struct int8_out {
    const float* row_scale;   // [rows]
    const std::int32_t* row_zero;
    const float* col_scale;   // [32] (this panel)
    const std::int32_t* col_sum;
    const float* bias;        // [32] or null
    bool add_c;               // c holds the residual: add it (linear epilogue)
};

// kq: k quads in this block. part: int32 partial sums of earlier blocks
// ([rows][ldp]), read if load_part, written unless out is given (last block).
template <int MR>
VIT_AVX512_VNNI void int8_tile(int kq, const std::uint8_t* a, const std::int8_t* b, std::int32_t* part,
                               std::int64_t ldp, bool load_part, const int8_out* out, float* c, std::int64_t ldc,
                               __mmask16 m0, __mmask16 m1, const tile_prefetch& pf) {
    constexpr int KC = int8_policy::kc;
    // The output rows this tile writes at the end are usually cold (last
    // written a layer ago): fetching them now hides the misses behind the sums.
    if (out)
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            __builtin_prefetch(c + i * ldc, 1);
            __builtin_prefetch(c + i * ldc + 16, 1);
        }
    __m512i c0[MR], c1[MR];
    if (load_part) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            c0[i] = _mm512_load_si512(part + i * ldp);
            c1[i] = _mm512_load_si512(part + i * ldp + 16);
        }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
    }
#pragma GCC unroll 2
    for (int s = 0; s < kq; ++s) {
        if (s < pf.b_lines) _mm_prefetch(pf.b + 64 * s, _MM_HINT_T0);
        const __m512i b0 = _mm512_load_si512(b + 128 * s);
        const __m512i b1 = _mm512_load_si512(b + 128 * s + 64);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            std::int32_t quad;
            std::memcpy(&quad, a + i * KC + 4 * s, 4);
            const __m512i ai = _mm512_set1_epi32(quad);
            c0[i] = _mm512_dpbusd_epi32(c0[i], ai, b0);
            c1[i] = _mm512_dpbusd_epi32(c1[i], ai, b1);
        }
    }
    if (!out) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            _mm512_store_si512(part + i * ldp, c0[i]);
            _mm512_store_si512(part + i * ldp + 16, c1[i]);
        }
        return;
    }
    const __m512 cs0 = _mm512_loadu_ps(out->col_scale), cs1 = _mm512_loadu_ps(out->col_scale + 16);
    const __m512i ws0 = _mm512_loadu_si512(out->col_sum), ws1 = _mm512_loadu_si512(out->col_sum + 16);
    const __m512 b0 = out->bias ? _mm512_maskz_loadu_ps(m0, out->bias) : _mm512_setzero_ps();
    const __m512 b1 = out->bias ? _mm512_maskz_loadu_ps(m1, out->bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        const __m512i z = _mm512_set1_epi32(out->row_zero[i]);
        const __m512 rs = _mm512_set1_ps(out->row_scale[i]);
        const __m512i q0 = _mm512_sub_epi32(c0[i], _mm512_mullo_epi32(z, ws0));
        const __m512i q1 = _mm512_sub_epi32(c1[i], _mm512_mullo_epi32(z, ws1));
        __m512 v0 = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(__mmask16(0xffff), q0), _mm512_mul_ps(rs, cs0), b0);
        __m512 v1 = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(__mmask16(0xffff), q1), _mm512_mul_ps(rs, cs1), b1);
        if (out->add_c) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c + i * ldc));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
        }
        _mm512_mask_storeu_ps(c + i * ldc, m0, v0);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, v1);
    }
}

using int8_tile_fn = void (*)(int, const std::uint8_t*, const std::int8_t*, std::int32_t*, std::int64_t, bool,
                              const int8_out*, float*, std::int64_t, __mmask16, __mmask16, const tile_prefetch&);

inline int8_tile_fn int8_tile_for(int rows) {
    static constexpr int8_tile_fn table[] = {
        nullptr,       int8_tile<1>,  int8_tile<2>,  int8_tile<3>,  int8_tile<4>,  int8_tile<5>,
        int8_tile<6>,  int8_tile<7>,  int8_tile<8>,  int8_tile<9>,  int8_tile<10>, int8_tile<11>,
        int8_tile<12>, int8_tile<13>, int8_tile<14>};
    static_assert(sizeof(table) / sizeof(table[0]) == int8_policy::mr + 1, "one tile per row count");
    return table[rows];
}

// Row ranges of a (vectorised min / max over all k).
VIT_AVX512_VNNI inline void int8_row_quants(const float* a, std::int64_t lda, std::int64_t rows, std::int64_t k,
                                            row_quant* out) {
    for (std::int64_t i = 0; i < rows; ++i) {
        const float* src = a + i * lda;
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
        for (std::int64_t kk = 0; kk < k; kk += 16) {
            const std::int64_t left = k - kk;
            const __mmask16 mk = lanes(left);
            const __m512 x = _mm512_maskz_loadu_ps(mk, src + kk);  // zeros do not move a range holding 0
            lo = _mm512_maskz_min_ps(__mmask16(0xffff), lo, x);
            hi = _mm512_maskz_max_ps(__mmask16(0xffff), hi, x);
        }
        alignas(64) float l[16], h[16];
        _mm512_store_ps(l, lo);
        _mm512_store_ps(h, hi);
        for (int v = 1; v < 16; ++v) {
            l[0] = std::min(l[0], l[v]);
            h[0] = std::max(h[0], h[v]);
        }
        out[i] = make_row_quant(l[0], h[0]);
    }
}

// (The maskz forms with a full mask below avoid GCC 12's -Wmaybe-uninitialized
// on the plain intrinsics; same instructions.)

// Rows of kc floats -> u8 rows of stride KC, zero padded to a multiple of 4
// (the weights' padding is 0, so the pad value does not matter).
VIT_AVX512_VNNI inline void int8_pack_a(const float* a, std::int64_t lda, std::int64_t rows, int kc,
                                        const row_quant* q, std::uint8_t* dst) {
    for (std::int64_t i = 0; i < rows; ++i) {
        const float* src = a + i * lda;
        std::uint8_t* out = dst + i * int8_policy::kc;
        const __m512 inv = _mm512_set1_ps(q[i].inv_scale);
        const __m512i z = _mm512_set1_epi32(q[i].zero);
        for (int kk = 0; kk < kc; kk += 16) {
            const int left = kc - kk;
            const __mmask16 mk = lanes(left);
            const __m512 x = _mm512_maskz_loadu_ps(mk, src + kk);
            __m512i v = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(__mmask16(0xffff), _mm512_mul_ps(x, inv)), z);
            v = _mm512_maskz_max_epi32(__mmask16(0xffff), v, _mm512_setzero_si512());
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + kk), _mm512_maskz_cvtusepi32_epi8(__mmask16(0xffff), v));
        }
    }
}

// Output columns [32 p_begin, min(n, 32 p_end)) for all rows, from the
// activations already quantized (qa: [k-block][m][KC], rq: [m]); see
// run_panels (gemm_avx512.hpp) for the blocking. Sums of earlier k-blocks stay
// int32 in scratch (exact).
VIT_AVX512_VNNI inline void int8_run_panels(const std::uint8_t* qa, const row_quant* rq, std::int64_t m,
                                            const std::int8_t* wp, const float* col_scale,
                                            const std::int32_t* col_sum, std::int64_t n, std::int64_t k, float* c,
                                            std::int64_t ldc, const epilogue<float>& ep, std::int64_t p_begin,
                                            std::int64_t p_end) {
    using P = int8_policy;
    if (p_begin >= p_end) return;
    const std::int64_t col0 = p_begin * 32, col1 = std::min(n, p_end * 32), ncols = col1 - col0;
    const std::int64_t ncols_pad = (p_end - p_begin) * 32;

    const residual_view rv = residual_for(ep, c, ldc, m, col0, ncols);
    const bool seed_with_c = rv.seed_with_c;
    const float* res = rv.res;
    const std::int64_t ldr = rv.ldr;

    const std::int64_t panels = (n + 31) / 32;
    const std::int64_t mblocks = (m + P::mc - 1) / P::mc;
    std::int32_t* part = k > P::kc ? static_cast<std::int32_t*>(thread_scratch(scratch::kernel_0, 4 * std::min(m, std::int64_t(P::mc)) *
                                                                                        ncols_pad))
                                   : nullptr;
    float rs[P::mr];
    std::int32_t rz[P::mr];
    for (std::int64_t mb = 0; mb < mblocks; ++mb) {
        const std::int64_t r0 = even_split(m, mblocks, mb), rows = even_split(m, mblocks, mb + 1) - r0;
        const std::int64_t tiles = (rows + P::mr - 1) / P::mr;
        for (std::int64_t k0 = 0; k0 < k; k0 += P::kc) {
            const int kc = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0));
            const std::uint8_t* ap = qa + (k0 / P::kc) * m * P::kc + r0 * P::kc;
            const bool first = k0 == 0, last = k0 + kc >= k;
            for (std::int64_t p = p_begin; p < p_end; ++p) {
                const std::int64_t j0 = p * 32;
                const int width = static_cast<int>(std::min<std::int64_t>(32, n - j0));
                const __mmask16 m0 = lanes(width);
                const __mmask16 m1 = lanes(width - 16);
                const std::int8_t* bp = wp + block_offset<P>(panels, k, k0, p);
                const weight_block nb = next_weight_block(p, k0, P::kc, last, p_begin, p_end, p_end);
                for (std::int64_t t = 0; t < tiles; ++t) {
                    tile_prefetch pf;
                    fetch_share<P>(pf, wp, panels, k, nb, t, tiles);
                    const std::int64_t i0 = even_split(rows, tiles, t), tr = even_split(rows, tiles, t + 1) - i0;
                    float* ct = c + (r0 + i0) * ldc + j0;
                    std::int32_t* pt = part ? part + i0 * ncols_pad + (j0 - col0) : nullptr;
                    int8_out out{rs, rz, col_scale + j0, col_sum + j0, ep.bias ? ep.bias + j0 : nullptr, seed_with_c};
                    if (last)
                        for (int i = 0; i < tr; ++i) {
                            rs[i] = rq[r0 + i0 + i].scale;
                            rz[i] = rq[r0 + i0 + i].zero;
                        }
                    int8_tile_for(static_cast<int>(tr))((kc + 3) / 4, ap + i0 * P::kc, bp, pt, ncols_pad, !first,
                                                        last ? &out : nullptr, ct, ldc, m0, m1, pf);
                    if (last && (!ep.adds_only() || res)) {
                        const int vecs = (width + 15) / 16;
                        const __mmask16 tail = lanes(width % 16 ? width % 16 : 16);
                        epilogue_rows_any<true>(ep.act, ct, ldc, static_cast<int>(tr), vecs, tail, nullptr,
                                                ep.scale ? ep.scale + j0 : nullptr,
                                                res ? res + (r0 + i0) * ldr + (j0 - col0) : nullptr, ldr);
                    }
                }
            }
        }
    }
}

// The whole product: the activations quantized once, split over the threads
// (every thread then reads all of them), then the threads split the panels.
inline void int8_run(const float* a, std::int64_t m, std::int64_t lda, const std::int8_t* wp, const float* col_scale,
                     const std::int32_t* col_sum, std::int64_t n, std::int64_t k, float* c, std::int64_t ldc,
                     const epilogue<float>& ep, thread_pool& pool) {
    using P = int8_policy;
    const std::int64_t kblocks = (k + P::kc - 1) / P::kc;
    auto* qa = static_cast<std::uint8_t*>(thread_scratch(scratch::kernel_2, std::size_t(kblocks * m * P::kc)));
    auto* rq = static_cast<row_quant*>(thread_scratch(scratch::kernel_1, sizeof(row_quant) * m));
    const std::int64_t parts = std::min<std::int64_t>(pool.size(), m);
    pool.parallel_for(parts, [&](std::int64_t t) {
        const std::int64_t r0 = even_split(m, parts, t), r1 = even_split(m, parts, t + 1);
        int8_row_quants(a + r0 * lda, lda, r1 - r0, k, rq + r0);
        for (std::int64_t kb = 0; kb < kblocks; ++kb) {
            const std::int64_t k0 = kb * P::kc;
            int8_pack_a(a + r0 * lda + k0, lda, r1 - r0, static_cast<int>(std::min<std::int64_t>(P::kc, k - k0)),
                        rq + r0, qa + kb * m * P::kc + r0 * P::kc);
        }
    });
    pool.balanced_ranges((n + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
        int8_run_panels(qa, rq, m, wp, col_scale, col_sum, n, k, c, ldc, ep, p0, p1);
    });
}

// One weight row's symmetric quantization, as packed_linear_int8::quantize
// computes it element by element (the same division and round-to-nearest-
// even, so the same bits): scale = max |w| / 127 (1 for a zero row),
// out = clamp(round(w / scale), -127, 127).
VIT_AVX512 inline void quantize_weight_row(const float* w, std::int64_t k, std::int8_t* out, float* scale) {
    __m512 mx = _mm512_setzero_ps();
    for (std::int64_t kk = 0; kk < k; kk += 16) {
        const __mmask16 m = lanes(k - kk);
        mx = max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(m, w + kk)), mx);  // NaN: keeps mx, as std::max
    }
    alignas(64) float lane[16];
    _mm512_store_ps(lane, mx);
    float top = 0;
    for (float v : lane) top = std::max(top, v);
    const float s = top > 0 ? top / 127.f : 1.f;
    *scale = s;
    const __m512 sv = _mm512_set1_ps(s), hi = _mm512_set1_ps(127.f), lo = _mm512_set1_ps(-127.f);
    for (std::int64_t kk = 0; kk < k; kk += 16) {
        const __mmask16 m = lanes(k - kk);
        const __m512 q = roundscale_ps<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>(
            _mm512_div_ps(_mm512_maskz_loadu_ps(m, w + kk), sv));
        const __m512 c = max_ps(min_ps(q, hi), lo);  // NaN: 127, as std::min(127.f, q)
        _mm512_mask_cvtepi32_storeu_epi8(out + kk, m, _mm512_maskz_cvtps_epi32(__mmask16(0xffff), c));
    }
}

}  // namespace avx512

}  // namespace vit::detail

#endif
