// AVX-512 fp32 linear layer: packed weight panels, register-blocked
// micro-kernel, vectorised epilogue; its blocked driver also runs the bf16
// kernel (policies f32_policy, bf16_policy).
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../epilogue.hpp"
#include "../memory.hpp"
#include "../thread_pool.hpp"
#include "vmath.hpp"

namespace vit::detail::avx512 {

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

// Packs panels [p0, p1) of the k-block at k0 from rows (rows[j]: output j's
// k weights, already of w_t), with k a multiple of kstep: a block is
// [k / kstep][32] words of kstep weights (32 bits), row j's words in turn, so
// packing is a transpose of 32-bit words, done 16 x 16 in registers. Zeros
// past column n: every element of those blocks is written, so `out` needs no
// zeroing first. As pack_weights<P> lays them out, many times faster.
template <class P>
VIT_AVX512 void pack_block(const typename P::w_t* const* rows, std::int64_t n, std::int64_t k, typename P::w_t* out,
                           std::int64_t k0, std::int64_t p0, std::int64_t p1) {
    static_assert(sizeof(typename P::w_t) * P::kstep == 4, "32-bit words of weights");
    const std::int64_t panels = (n + 31) / 32;
    const int words = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0) / P::kstep);
    for (std::int64_t p = p0; p < p1; ++p) {
        float* dst = reinterpret_cast<float*>(out + block_offset<P>(panels, k, k0, p));
        for (int h = 0; h < 2; ++h) {
            const std::int64_t j0 = p * 32 + h * 16;
            const std::int64_t cols = std::max<std::int64_t>(0, std::min<std::int64_t>(16, n - j0));
            for (int kw = 0; kw < words; kw += 16) {
                const int len = std::min(16, words - kw);
                const __mmask16 mk = lanes(len);
                __m512 r[16];  // bits moved, never computed on
                for (int i = 0; i < 16; ++i)
                    r[i] = i < cols ? _mm512_maskz_loadu_ps(mk, reinterpret_cast<const float*>(rows[j0 + i] + k0) + kw)
                                    : _mm512_setzero_ps();
                transpose16(r);
                for (int t = 0; t < len; ++t) _mm512_storeu_ps(dst + (kw + t) * 32 + h * 16, r[t]);
            }
        }
    }
}

// Panels [p0, p1), every k-block (k a multiple of kstep).
template <class P>
VIT_AVX512 void pack_panels(const typename P::w_t* const* rows, std::int64_t n, std::int64_t k, typename P::w_t* out,
                            std::int64_t p0, std::int64_t p1) {
    for (std::int64_t k0 = 0; k0 < k; k0 += P::kc) pack_block<P>(rows, n, k, out, k0, p0, p1);
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
    a_t* ap = static_cast<a_t*>(thread_scratch(scratch::packed_a, sizeof(a_t) * P::mc * P::kc * kblocks));
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
                    const __mmask16 m0 = lanes(width);
                    const __mmask16 m1 =
                        lanes(width - 16);
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
                                lanes(width % 16 ? width % 16 : 16);
                            epilogue_rows_any<P::coarse_gelu>(ep.act, ct, ldc, static_cast<int>(tr), vecs, tail,
                                              ep.bias ? ep.bias + j0 : nullptr, ep.scale ? ep.scale + j0 : nullptr,
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
