// AVX-512 fp32 linear layer computed straight from the weights as stored:
// W[n][k] row-major (PyTorch's [out, in]), e.g. a tensor of a memory-mapped
// safetensors file. Nothing is packed at load, so a model can serve its first
// forwards while the packed layout (gemm_avx512.hpp) is built in the
// background; and because every output is computed with the packed kernel's
// exact sequence of float operations, the results are bit-identical to it:
// outputs do not depend on which kernel happened to serve a call.
//
// The sequence to reproduce, per output (i, j): k cut into blocks of
// f32_policy::kc; within a block acc = fma(a[i][k], w[j][k], acc) from zero,
// k ascending; after the first block C = acc (or acc + residual when the
// output is its own residual and the epilogue is linear, run_panels'
// seed_with_c), after each later block C = acc + C; finally
// act(C + bias) + residual with epilogue_rows' vector functions. FMA's
// product is exact, so fma(w, a, acc) == fma(a, w, acc): the operands may
// swap roles as long as the blocking and the association stay.
//
// Roles swapped: the packed kernel broadcasts activations and loads weight
// vectors, which needs the weights laid out [k][32 columns]. Here the
// activations, which are small (145 x 1024 floats for an image) and change
// every call, are transposed once per call into panels At[k][32 rows]; the
// micro-kernel loads At vectors and broadcasts weights, which it reads along
// W's rows, as stored. A tile is up to 14 weight rows x 32 activation rows
// (28 zmm accumulators), the mirror of the packed kernel's 14 x 32: per k
// step 2 vector loads and 14 broadcasts for 28 FMAs. The only copy of weights
// is transient: a group's 14 rows x 256 k (14 KiB) go into an L1 buffer
// before the tiles of all activation panels reuse them (direct_columns).
// A short row tail (145 = 9 x 16 + 1) would waste most of a vector; it is
// computed against a transposed copy of that buffer instead, fused into the
// last panel's tile (direct_tail_tile).
//
// Accumulators hold columns of C (16 rows of one output column each), so the
// partial sums live in a transposed scratch Ct[column][row] across k-blocks;
// the epilogue transposes 16 x 16 blocks back in registers and applies the
// bias, activation and residual on rows of C, in the same vector functions as
// epilogue_rows. C itself is written once, at the end, which also makes an
// aliased residual (residual == c) safe to read in the epilogue without the
// copy run_panels needs.
//
// The weight rows are read from DRAM in 1 KiB pieces 4 or 16 KiB apart, which
// only software prefetch covers; on the mapped file's 4 KiB pages it is slower
// than the packed kernel (speeds in BENCHMARKS.md, bench/direct_bench.cpp).
#pragma once

#include "gemm_avx512.hpp"
#include "../thread_pool.hpp"

#ifdef VIT_X86

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace vit::detail::avx512 {

struct direct_policy {
    static constexpr int kc = f32_policy::kc;  // the packed kernel's blocking: part of the result
    static constexpr int nr = 14;              // weight rows per tile (broadcast operand)
    static constexpr int mw = 32;              // activation rows per At panel (two zmm)
    // Output columns per chunk, a multiple of 16 (whole transposed blocks in
    // the epilogue). Its Ct (chunk x rows floats, 70 KiB at 145 rows) stays
    // in L2 across the k-blocks.
    static constexpr int chunk = 112;
    // Activation panels per row block: the block's At (panels x 32 KiB per
    // k-block) stays in L2 across the weight groups. Every row block streams
    // the weights again, as in the packed kernel (its mc = 192 rows).
    static constexpr int mc_panels = 6;
    // Row tails of up to this many rows past a multiple of 16 (145 = 9 x 16
    // + 1: one image) are computed the packed kernel's way, broadcasting
    // activations against a transposed copy of the weight block, instead of
    // as a vector of 16 rows with 15 of them padding. The transposition
    // costs a fraction of a shuffle per weight, so longer tails stay vectors.
    static constexpr int max_tail = 4;
};

// Offset of the At block (k-block starting at k0, panel p): k-blocks
// outermost, then panels, then the block's [k][32]. A tile reads one panel's
// block front to back, and the tiles of a weight group sweep the panels in
// order: one contiguous stream per k-block for the prefetchers.
inline std::int64_t direct_at_offset(std::int64_t panels, std::int64_t k, std::int64_t k0, std::int64_t p) {
    const std::int64_t kcb = std::min<std::int64_t>(direct_policy::kc, k - k0);
    return k0 * panels * direct_policy::mw + p * kcb * direct_policy::mw;
}

// Transposes a[rows 32p .. 32p + 31][k0 .. k0 + kcb) into its At block; rows
// past m are zero.
inline VIT_AVX512 void direct_pack_at(const float* a, std::int64_t m, std::int64_t lda, std::int64_t k,
                                      std::int64_t panels, std::int64_t k0, std::int64_t p, float* at) {
    const int kcb = static_cast<int>(std::min<std::int64_t>(direct_policy::kc, k - k0));
    float* dst = at + direct_at_offset(panels, k, k0, p);
    for (int h = 0; h < 2; ++h) {
        const std::int64_t r0 = p * direct_policy::mw + 16 * h;
        const int rows = static_cast<int>(std::clamp<std::int64_t>(m - r0, 0, 16));
        for (int kk = 0; kk < kcb; kk += 16) {
            const int width = std::min(16, kcb - kk);
            const __mmask16 mk = lanes(width);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; ++i)
                r[i] = i < rows ? _mm512_maskz_loadu_ps(mk, a + (r0 + i) * lda + k0 + kk) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < width; ++q) _mm512_store_ps(dst + (kk + q) * direct_policy::mw + 16 * h, r[q]);
        }
    }
}

// Lines of a strided region (rows of floats `stride` bytes apart, `per_row`
// lines each): the tile fetches `count` of them from line `first`, row by row.
struct line_stream {
    const char* base = nullptr;
    std::int64_t stride = 0;
    int per_row = 1, first = 0, count = 0;

    // rows x cols floats from p, row stride ld floats. Rows need not start on
    // a line: a row spans one line more than its length.
    static line_stream of(const float* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
        line_stream s;
        const char* first = reinterpret_cast<const char*>(p);
        const std::uintptr_t skew = reinterpret_cast<std::uintptr_t>(first) % 64;
        s.base = first - skew;
        s.stride = ld * std::int64_t(sizeof(float));
        s.per_row = static_cast<int>((skew + sizeof(float) * cols + 63) / 64);
        s.count = static_cast<int>(rows * s.per_row);  // the whole region; callers take shares
        return s;
    }
    // Share t of `parts`.
    line_stream share(std::int64_t t, std::int64_t parts) const {
        line_stream s = *this;
        s.first = static_cast<int>(count * t / parts);
        s.count = static_cast<int>(count * (t + 1) / parts) - s.first;
        return s;
    }
};

struct line_cursor {
    const char* row;
    std::int64_t stride;
    int per_row, col, left;
    explicit line_cursor(const line_stream& s)
        : row(s.count > 0 ? s.base + (s.first / s.per_row) * s.stride : nullptr), stride(s.stride),
          per_row(s.per_row), col(s.count > 0 ? s.first % s.per_row : 0), left(s.count) {}
    VIT_AVX512_INLINE void next() {
        _mm_prefetch(row + 64 * col, _MM_HINT_T0);
        --left;
        if (++col == per_row) {
            col = 0;
            row += stride;
        }
    }
};

// What a tile fetches while it computes: a share of the next weight group
// (from DRAM), and the next tile's partial sums (ct columns, `ct_cols` of
// them, 128 bytes each), needed all at once at the tile's end.
struct direct_prefetch {
    line_stream w;
    const float* ct = nullptr;
    int ct_cols = 0;
};

// Issues the tile's prefetches one at a time, evenly over its k loop: a burst
// of DRAM misses would exceed the L1's outstanding-miss slots, and prefetches
// that find none are lost.
struct prefetch_pacer {
    line_cursor w;
    int every, wait = 1;
    prefetch_pacer(const direct_prefetch& pf, int kc) : w(pf.w), every(std::max(1, kc / std::max(1, pf.w.count))) {}
    VIT_AVX512_INLINE void step() {
        if (w.left > 0 && --wait == 0) {
            wait = every;
            w.next();
        }
    }
};

// NR weight rows (w: the copy, row stride kc, so that every broadcast has an
// immediate offset) x 16 MV activation rows (one At panel block) over one k-block; the sums go to ct[i][0 : 16 MV] (row stride ldct)
// as acc, or acc + ct when load_c.
template <int NR, int MV>
VIT_AVX512 void direct_tile(int kc, const float* w, const float* at, float* ct, std::int64_t ldct, bool load_c,
                            const direct_prefetch& pf) {
    constexpr int MW = direct_policy::mw, KC = direct_policy::kc;
    for (int i = 0; i < pf.ct_cols; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(pf.ct + i * ldct), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(pf.ct + i * ldct + 16), _MM_HINT_T0);
    }
    __m512 acc[NR][MV];
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < MV; ++v) acc[i][v] = _mm512_setzero_ps();
    prefetch_pacer pace(pf, kc);
#pragma GCC unroll 2
    for (int k = 0; k < kc; ++k) {
        pace.step();
        __m512 av[MV];
#pragma GCC unroll 2
        for (int v = 0; v < MV; ++v) av[v] = _mm512_load_ps(at + MW * k + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < NR; ++i) {
            const __m512 wi = _mm512_set1_ps(w[i * KC + k]);
#pragma GCC unroll 2
            for (int v = 0; v < MV; ++v) acc[i][v] = _mm512_fmadd_ps(wi, av[v], acc[i][v]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < MV; ++v) {
            float* p = ct + i * ldct + 16 * v;
            // acc + C, as the packed kernel adds a block to C.
            if (load_c) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_load_ps(p));
            _mm512_store_ps(p, acc[i][v]);
        }
}

using direct_tile_fn = void (*)(int, const float*, const float*, float*, std::int64_t, bool, const direct_prefetch&);

inline direct_tile_fn direct_tile_for(int rows, int vecs) {
    static constexpr direct_tile_fn one[] = {
        nullptr,              direct_tile<1, 1>,  direct_tile<2, 1>,  direct_tile<3, 1>,  direct_tile<4, 1>,
        direct_tile<5, 1>,    direct_tile<6, 1>,  direct_tile<7, 1>,  direct_tile<8, 1>,  direct_tile<9, 1>,
        direct_tile<10, 1>,   direct_tile<11, 1>, direct_tile<12, 1>, direct_tile<13, 1>, direct_tile<14, 1>};
    static constexpr direct_tile_fn two[] = {
        nullptr,              direct_tile<1, 2>,  direct_tile<2, 2>,  direct_tile<3, 2>,  direct_tile<4, 2>,
        direct_tile<5, 2>,    direct_tile<6, 2>,  direct_tile<7, 2>,  direct_tile<8, 2>,  direct_tile<9, 2>,
        direct_tile<10, 2>,   direct_tile<11, 2>, direct_tile<12, 2>, direct_tile<13, 2>, direct_tile<14, 2>};
    static_assert(sizeof(one) / sizeof(one[0]) == direct_policy::nr + 1, "one tile per row count");
    return vecs == 1 ? one[rows] : two[rows];
}

// The last panel of an activation block whose rows end T <= max_tail rows
// past a multiple of 16: NR weight rows x 16 activation rows (the panel's
// first vector, none if NR == 0) as direct_tile, and the T tail rows (panel
// rows 16 [NR > 0] + t) against wt, the group's weights transposed to
// [k][16]: per k one wt vector and one broadcast activation per tail row,
// the packed kernel's arrangement. TT >= T accumulators are computed, T
// stored (row t to ctail + t * ldt, gn lanes). Fused into one k loop, the
// tail's dependency chains hide behind the main part's FMAs.
template <int NR, int TT>
VIT_AVX512 void direct_tail_tile(int kc, const float* w, const float* wt, const float* at, float* ct,
                                 std::int64_t ldct, bool load_c, const direct_prefetch& pf, int tail, int gn,
                                 float* ctail, std::int64_t ldt) {
    constexpr int MW = direct_policy::mw, KC = direct_policy::kc, T0 = NR > 0 ? 16 : 0;
    __m512 acc[NR > 0 ? NR : 1], tacc[TT];
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int t = 0; t < TT; ++t) tacc[t] = _mm512_setzero_ps();
    prefetch_pacer pace(pf, kc);
#pragma GCC unroll 2
    for (int k = 0; k < kc; ++k) {
        pace.step();
        if constexpr (NR > 0) {
            const __m512 a0 = _mm512_load_ps(at + MW * k);
#pragma GCC unroll 16
            for (int i = 0; i < NR; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(w[i * KC + k]), a0, acc[i]);
        }
        const __m512 wk = _mm512_load_ps(wt + 16 * k);
#pragma GCC unroll 4
        for (int t = 0; t < TT; ++t) tacc[t] = _mm512_fmadd_ps(_mm512_set1_ps(at[MW * k + T0 + t]), wk, tacc[t]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i) {
        float* p = ct + i * ldct;
        if (load_c) acc[i] = _mm512_add_ps(acc[i], _mm512_load_ps(p));
        _mm512_store_ps(p, acc[i]);
    }
    const __mmask16 mk = lanes(gn);
    for (int t = 0; t < tail; ++t) {
        float* p = ctail + t * ldt;
        __m512 x = tacc[0];
#pragma GCC unroll 4
        for (int u = 1; u < TT; ++u)
            if (u == t) x = tacc[u];
        if (load_c) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, p));
        _mm512_mask_storeu_ps(p, mk, x);
    }
}

using direct_tail_fn = void (*)(int, const float*, const float*, const float*, float*, std::int64_t, bool,
                                const direct_prefetch&, int, int, float*, std::int64_t);

// nr weight rows (0: the panel has no full vector), tail 1 .. max_tail rows.
inline direct_tail_fn direct_tail_for(int nr, int tail) {
    static constexpr direct_tail_fn one[] = {
        direct_tail_tile<0, 1>,  direct_tail_tile<1, 1>,  direct_tail_tile<2, 1>,  direct_tail_tile<3, 1>,
        direct_tail_tile<4, 1>,  direct_tail_tile<5, 1>,  direct_tail_tile<6, 1>,  direct_tail_tile<7, 1>,
        direct_tail_tile<8, 1>,  direct_tail_tile<9, 1>,  direct_tail_tile<10, 1>, direct_tail_tile<11, 1>,
        direct_tail_tile<12, 1>, direct_tail_tile<13, 1>, direct_tail_tile<14, 1>};
    static constexpr direct_tail_fn four[] = {
        direct_tail_tile<0, 4>,  direct_tail_tile<1, 4>,  direct_tail_tile<2, 4>,  direct_tail_tile<3, 4>,
        direct_tail_tile<4, 4>,  direct_tail_tile<5, 4>,  direct_tail_tile<6, 4>,  direct_tail_tile<7, 4>,
        direct_tail_tile<8, 4>,  direct_tail_tile<9, 4>,  direct_tail_tile<10, 4>, direct_tail_tile<11, 4>,
        direct_tail_tile<12, 4>, direct_tail_tile<13, 4>, direct_tail_tile<14, 4>};
    static_assert(direct_policy::max_tail == 4, "tiles for tails of 1 and up to 4 rows");
    return tail == 1 ? one[nr] : four[nr];
}

// Rows i0 .. i0 + 15 (those below m) of a 16-column block, fetched one row
// block ahead in the epilogue and the seed: rows of C are 4 or 16 KiB apart,
// a pattern the hardware prefetchers do not follow, and these passes have no
// arithmetic to hide the misses behind.
VIT_AVX512_INLINE void prefetch_rows(const float* p, std::int64_t ld, std::int64_t i0, std::int64_t m) {
    const std::int64_t end = std::min(m, i0 + 16);
    for (std::int64_t i = i0; i < end; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + i * ld), _MM_HINT_T0);
}

// c[i][j0 + j] for i < m, j < cols from ct[j][i] (row stride ldct):
// act(ct + bias) * scale + residual, the operations of epilogue_rows.
template <activation A>
VIT_AVX512 void direct_epilogue(const float* ct, std::int64_t ldct, std::int64_t m, int cols, float* c,
                                std::int64_t ldc, const float* bias, const float* scale, const float* res,
                                std::int64_t ldr) {
    for (std::int64_t i0 = 0; i0 < m; i0 += 16) {
        const int rows = static_cast<int>(std::min<std::int64_t>(16, m - i0));
        for (int j = 0; j < cols; j += 16) {
            prefetch_rows(c + j, ldc, i0 + 16, m);
            if (res && res != c) prefetch_rows(res + j, ldr, i0 + 16, m);
            const int width = std::min(16, cols - j);
            const __mmask16 mk = lanes(width);
            const __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + j) : _mm512_setzero_ps();
            const __m512 s = scale ? _mm512_maskz_loadu_ps(mk, scale + j) : _mm512_setzero_ps();
            __m512 r[16];
#pragma GCC unroll 16
            for (int q = 0; q < 16; ++q)
                r[q] = q < width ? _mm512_load_ps(ct + (j + q) * ldct + i0) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < rows; ++q) {
                float* p = c + (i0 + q) * ldc + j;
                __m512 x = branch_ps<A>(r[q], b, s, scale != nullptr);
                if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, res + (i0 + q) * ldr + j));
                _mm512_mask_storeu_ps(p, mk, x);
            }
        }
    }
}

inline void direct_epilogue_any(activation act, const float* ct, std::int64_t ldct, std::int64_t m, int cols,
                                float* c, std::int64_t ldc, const float* bias, const float* scale, const float* res,
                                std::int64_t ldr) {
    switch (act) {
        case activation::none: return direct_epilogue<activation::none>(ct, ldct, m, cols, c, ldc, bias, scale, res, ldr);
        case activation::gelu_erf:
            return direct_epilogue<activation::gelu_erf>(ct, ldct, m, cols, c, ldc, bias, scale, res, ldr);
        case activation::gelu_tanh:
            return direct_epilogue<activation::gelu_tanh>(ct, ldct, m, cols, c, ldc, bias, scale, res, ldr);
        case activation::relu: return direct_epilogue<activation::relu>(ct, ldct, m, cols, c, ldc, bias, scale, res, ldr);
        case activation::quick_gelu:
            return direct_epilogue<activation::quick_gelu>(ct, ldct, m, cols, c, ldc, bias, scale, res, ldr);
    }
}

// The tail rows' epilogue: c[t][j] = act(ctail[t][j] + bias) * scale +
// residual, rows as epilogue_rows computes them.
template <activation A>
VIT_AVX512 void direct_tail_epilogue(const float* ctail, std::int64_t ldt, int tail, int cols, float* c,
                                     std::int64_t ldc, const float* bias, const float* scale, const float* res,
                                     std::int64_t ldr) {
    for (int j = 0; j < cols; j += 16) {
        const __mmask16 mk = lanes(std::min(16, cols - j));
        const __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + j) : _mm512_setzero_ps();
        const __m512 s = scale ? _mm512_maskz_loadu_ps(mk, scale + j) : _mm512_setzero_ps();
        for (int t = 0; t < tail; ++t) {
            __m512 x = branch_ps<A>(_mm512_maskz_loadu_ps(mk, ctail + t * ldt + j), b, s, scale != nullptr);
            if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, res + t * ldr + j));
            _mm512_mask_storeu_ps(c + t * ldc + j, mk, x);
        }
    }
}

inline void direct_tail_epilogue_any(activation act, const float* ctail, std::int64_t ldt, int tail, int cols,
                                     float* c, std::int64_t ldc, const float* bias, const float* scale,
                                     const float* res, std::int64_t ldr) {
    switch (act) {
        case activation::none:
            return direct_tail_epilogue<activation::none>(ctail, ldt, tail, cols, c, ldc, bias, scale, res, ldr);
        case activation::gelu_erf:
            return direct_tail_epilogue<activation::gelu_erf>(ctail, ldt, tail, cols, c, ldc, bias, scale, res, ldr);
        case activation::gelu_tanh:
            return direct_tail_epilogue<activation::gelu_tanh>(ctail, ldt, tail, cols, c, ldc, bias, scale, res, ldr);
        case activation::relu:
            return direct_tail_epilogue<activation::relu>(ctail, ldt, tail, cols, c, ldc, bias, scale, res, ldr);
        case activation::quick_gelu:
            return direct_tail_epilogue<activation::quick_gelu>(ctail, ldt, tail, cols, c, ldc, bias, scale, res, ldr);
    }
}

// ct[j][i] = c[i][j] for i < m, j < cols: the seed of an output that is its
// own residual.
inline VIT_AVX512 void direct_seed(const float* c, std::int64_t ldc, std::int64_t m, int cols, float* ct,
                                   std::int64_t ldct) {
    for (std::int64_t i0 = 0; i0 < m; i0 += 16) {
        const int rows = static_cast<int>(std::min<std::int64_t>(16, m - i0));
        for (int j = 0; j < cols; j += 16) {
            prefetch_rows(c + j, ldc, i0 + 16, m);
            const int width = std::min(16, cols - j);
            const __mmask16 mk = lanes(width);
            __m512 r[16];
#pragma GCC unroll 16
            for (int q = 0; q < 16; ++q)
                r[q] = q < rows ? _mm512_maskz_loadu_ps(mk, c + (i0 + q) * ldc + j) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < width; ++q) _mm512_store_ps(ct + (j + q) * ldct + i0, r[q]);
        }
    }
}

// Output columns [j_begin, j_end) for all m rows, from the transposed
// activations `at` (all k-blocks, `panels` panels).
inline VIT_AVX512 void direct_columns(const float* at, std::int64_t m, std::int64_t panels, const float* w,
                                      std::int64_t k, std::int64_t ldw, float* c, std::int64_t ldc,
                                      const epilogue<float>& ep, std::int64_t j_begin, std::int64_t j_end) {
    using P = direct_policy;
    if (j_begin >= j_end) return;
    // The aliasing rules of run_panels, so the association matches: an
    // epilogue that only adds seeds the sums with the residual, any other
    // adds it last (the sums are in ct, so c still holds it).
    const bool res_is_c = ep.residual == c && ep.ld_residual == ldc;
    const bool seed_with_c = res_is_c && ep.adds_only();
    const float* res = seed_with_c ? nullptr : ep.residual;
    const std::int64_t mblocks = (panels + P::mc_panels - 1) / P::mc_panels;
    const std::int64_t ldct = (panels + mblocks - 1) / mblocks * P::mw;  // rows of the largest row block
    float* ct = static_cast<float*>(thread_scratch(scratch::kernel_1, sizeof(float) * P::chunk * ldct));
    // Weight copy [nr][kc], its transpose [kc][16] and the tail rows' sums [max_tail][chunk].
    float* wbuf = static_cast<float*>(
        thread_scratch(scratch::kernel_2, sizeof(float) * (P::nr * P::kc + P::kc * 16 + P::max_tail * P::chunk)));
    float* wt = wbuf + P::nr * P::kc;
    float* ctail = wt + P::kc * 16;
    const std::int64_t kblocks = (k + P::kc - 1) / P::kc;
    // The last panel: full vectors (the second only if the panel is full)
    // and tail rows; the tail goes its own way if short enough.
    const int last_rows = static_cast<int>(m - (panels - 1) * P::mw);
    const int tail = last_rows % 16 <= P::max_tail ? last_rows % 16 : 0;
    const int last_vecs = (last_rows - tail + 15) / 16;

    for (std::int64_t mb = 0; mb < mblocks; ++mb) {
        const std::int64_t p0 = even_split(panels, mblocks, mb), p1 = even_split(panels, mblocks, mb + 1);
        const std::int64_t r0 = p0 * P::mw, rows = std::min(m, p1 * P::mw) - r0;
        const int tail_here = p1 == panels ? tail : 0;
        const std::int64_t rows_main = rows - tail_here;
        for (std::int64_t jc = j_begin; jc < j_end; jc += P::chunk) {
            const int cols = static_cast<int>(std::min<std::int64_t>(P::chunk, j_end - jc));
            // Groups of nearly equal size (112 -> 8 x 14, 100 -> 4 x 13 + 4 x 12):
            // no group runs at a fraction of the register block.
            const int groups = (cols + P::nr - 1) / P::nr;
            if (seed_with_c) {
                direct_seed(c + r0 * ldc + jc, ldc, rows_main, cols, ct, ldct);
                for (int t = 0; t < tail_here; ++t)
                    std::memcpy(ctail + t * P::chunk, c + (r0 + rows_main + t) * ldc + jc, sizeof(float) * cols);
            } else if (kblocks == 0) {
                std::memset(static_cast<void*>(ct), 0, sizeof(float) * cols * ldct);
                std::memset(static_cast<void*>(ctail), 0, sizeof(float) * P::max_tail * P::chunk);
            }
            for (std::int64_t kb = 0; kb < kblocks; ++kb) {
                const std::int64_t k0 = kb * P::kc;
                const int kcb = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0));
                for (int g = 0; g < groups; ++g) {
                    const int g0 = static_cast<int>(even_split(cols, groups, g));
                    const int gn = static_cast<int>(even_split(cols, groups, g + 1)) - g0;
                    // The group's rows of this k-block, copied into a
                    // contiguous buffer (14 KiB, L1) that the sweep over the
                    // activation panels reads again and again. Read in
                    // place, rows 4 or 16 KiB apart fall into the same L1
                    // set, and 14 of them (plus the At stream) exceed its
                    // ways; a fixed row stride also lets every broadcast
                    // address be an immediate offset from one register.
                    const float* wg = w + (jc + g0) * ldw + k0;
                    for (int i = 0; i < gn; ++i)
                        for (int kk = 0; kk < kcb; kk += 16) {
                            const int width = std::min(16, kcb - kk);
                            _mm512_store_ps(wbuf + i * P::kc + kk,
                                            _mm512_maskz_loadu_ps(lanes(width), wg + i * ldw + kk));
                        }
                    if (tail_here) {
                        for (int kk = 0; kk < kcb; kk += 16) {
                            __m512 r[16];
#pragma GCC unroll 16
                            for (int i = 0; i < 16; ++i)
                                r[i] = i < gn ? _mm512_load_ps(wbuf + i * P::kc + kk) : _mm512_setzero_ps();
                            transpose16(r);
#pragma GCC unroll 16
                            for (int q = 0; q < 16; ++q) _mm512_store_ps(wt + (kk + q) * 16, r[q]);
                        }
                    }
                    // The weight rows the loop takes next: the next group,
                    // else the chunk's first group in the next k-block, else
                    // the next chunk's first group (or the first chunk's in
                    // the next row block).
                    const float* wn = nullptr;
                    int rows_n = 0, kcb_n = 0;
                    if (g + 1 < groups) {
                        wn = wg + gn * ldw;
                        rows_n = static_cast<int>(even_split(cols, groups, g + 2)) - g0 - gn;
                        kcb_n = kcb;
                    } else if (kb + 1 < kblocks) {
                        wn = w + jc * ldw + k0 + P::kc;
                        rows_n = static_cast<int>(even_split(cols, groups, 1));
                        kcb_n = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0 - P::kc));
                    } else if (jc + P::chunk < j_end || mb + 1 < mblocks) {
                        const std::int64_t jn = jc + P::chunk < j_end ? jc + P::chunk : j_begin;
                        const int cols_n = static_cast<int>(std::min<std::int64_t>(P::chunk, j_end - jn));
                        wn = w + jn * ldw;
                        rows_n = static_cast<int>(even_split(cols_n, (cols_n + P::nr - 1) / P::nr, 1));
                        kcb_n = static_cast<int>(std::min<std::int64_t>(P::kc, k));
                    }
                    // Spread over the group's tiles (at most mc_panels): with
                    // many more, lines fetched early would be evicted by the
                    // At stream before the copy reads them.
                    const std::int64_t tiles = p1 - p0;
                    const line_stream w_next = wn ? line_stream::of(wn, rows_n, kcb_n, ldw) : line_stream();
                    direct_prefetch pf;
                    for (std::int64_t p = p0; p < p1; ++p) {
                        pf.w = w_next.share(p - p0, tiles);
                        if (kb > 0 || seed_with_c) {
                            pf.ct = ct + (p + 1 < p1 ? g0 * ldct + (p + 1 - p0) * P::mw : (g0 + gn) * ldct);
                            pf.ct_cols = p + 1 < p1 ? gn : g + 1 < groups ? rows_n : 0;
                        }
                        const float* atp = at + direct_at_offset(panels, k, k0, p);
                        float* ctp = ct + g0 * ldct + (p - p0) * P::mw;
                        const bool load_c = kb > 0 || seed_with_c;
                        if (p + 1 < panels || !tail)
                            direct_tile_for(gn, p + 1 == panels ? last_vecs : 2)(kcb, wbuf, atp, ctp, ldct, load_c, pf);
                        else
                            direct_tail_for(last_vecs ? gn : 0, tail)(kcb, wbuf, wt, atp, ctp, ldct, load_c, pf, tail,
                                                                      gn, ctail + g0, P::chunk);
                    }
                }
            }
            const float* bias = ep.bias ? ep.bias + jc : nullptr;
            const float* scale = ep.scale ? ep.scale + jc : nullptr;
            direct_epilogue_any(ep.act, ct, ldct, rows_main, cols, c + r0 * ldc + jc, ldc, bias, scale,
                                res ? res + r0 * ep.ld_residual + jc : nullptr, ep.ld_residual);
            if (tail_here)
                direct_tail_epilogue_any(ep.act, ctail, P::chunk, tail_here, cols, c + (r0 + rows_main) * ldc + jc,
                                         ldc, bias, scale, res ? res + (r0 + rows_main) * ep.ld_residual + jc : nullptr,
                                         ep.ld_residual);
        }
    }
}

// C = act(A W^T + bias) * scale + residual (the epilogue and aliasing rules of
// packed_linear::run), with w[n][k] read where it lies (row stride ldw).
// Bit-identical to packed_linear<float> on the AVX-512 kernel. The caller
// checks direct_available<float>() (cpu/dispatch.hpp).
inline void direct_run(const float* a, std::int64_t m, std::int64_t lda, const float* w, std::int64_t n,
                       std::int64_t k, std::int64_t ldw, float* c, std::int64_t ldc, const epilogue<float>& ep,
                       thread_pool& pool) {
    using P = direct_policy;
    if (m <= 0 || n <= 0) return;
    k = std::max<std::int64_t>(k, 0);
    const std::int64_t panels = (m + P::mw - 1) / P::mw;
    const std::int64_t kblocks = (k + P::kc - 1) / P::kc;
    // The transposed activations, shared by all threads (each needs all of
    // them) and built by all of them: the calling thread's scratch, which
    // outlives the parallel regions.
    float* at = static_cast<float*>(thread_scratch(scratch::kernel_0, sizeof(float) * std::max<std::int64_t>(1, k * panels * P::mw)));
    pool.parallel_for(kblocks * panels, [&](std::int64_t t) {
        direct_pack_at(a, m, lda, k, panels, t / panels * P::kc, t % panels, at);
    });
    // One contiguous column range per thread, in whole 16-column blocks.
    const std::int64_t units = (n + 15) / 16;
    const std::int64_t tasks = std::max<std::int64_t>(1, std::min<std::int64_t>(pool.size(), units));
    pool.parallel_for(tasks, [&](std::int64_t t) {
        direct_columns(at, m, panels, w, k, ldw, c, ldc, ep, std::min(n, 16 * (units * t / tasks)),
                       std::min(n, 16 * (units * (t + 1) / tasks)));
    });
}

}  // namespace vit::detail::avx512

#endif
