// Portable product in plain C++: the path for CPUs without the x86 kernels
// (aarch64 and others), the only one for double, and the reference for the
// SIMD kernels. Built like them (weights in panels of nr columns, k blocks of
// kc, tiles of up to mr rows, fresh accumulators per k block added to c), with
// loops the compiler vectorises over a panel's columns.
//
// Every output element takes the same operations in the same order whatever
// m is and wherever its row falls in a tile: sum over k block by block, each
// block's terms in k order, blocks added in order to c, then the epilogue. So
// a row's bits do not depend on the rows computed with it, and a batch gives
// each image's single-image results. (Eigen's product did not promise that:
// its micro-kernels for a panel's last rows sum in another order, and it
// computes one row as a GEMV.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../epilogue.hpp"
#include "../memory.hpp"

namespace vit::detail::portable {

template <class T>
struct params {
    static constexpr int nr = 64 / int(sizeof(T));  // a panel row: 64 bytes (16 floats, 8 doubles)
    static constexpr int mr = 4;                     // 4 x 64 bytes of accumulators
    static constexpr int kc = 256;                   // B micro-panel 16 KiB
    static constexpr std::int64_t mc = 240;
};

template <class T>
std::int64_t packed_size(std::int64_t n, std::int64_t k) {
    constexpr int nr = params<T>::nr;
    return (n + nr - 1) / nr * nr * k;
}

// Panel p holds columns p*nr .. p*nr + nr - 1 as [k][nr], zero past n.
// row(j) points at the k weights of output j; value(x) is what is stored.
template <class T, class RowFn, class ValueFn>
void pack(RowFn&& row, std::int64_t n, std::int64_t k, T* out, ValueFn&& value) {
    constexpr int nr = params<T>::nr;
    const std::int64_t panels = (n + nr - 1) / nr;
    for (std::int64_t p = 0; p < panels; ++p) {
        T* dst = out + p * k * nr;
        const std::int64_t cols = std::min<std::int64_t>(nr, n - p * nr);
        for (std::int64_t j = 0; j < cols; ++j) {
            const T* src = row(p * nr + j);
            for (std::int64_t kk = 0; kk < k; ++kk) dst[kk * nr + j] = value(src[kk]);
        }
        for (std::int64_t kk = 0; kk < k; ++kk) std::fill(dst + kk * nr + cols, dst + (kk + 1) * nr, T(0));
    }
}

// acc[MR][nr] = a[MR rows, kc] * b[kc][nr], each sum in k order. With GCC's
// vector types (GCC, clang) the accumulators are 16-byte vectors, one
// variable per row so that they stay in registers; the fallback is the same
// arithmetic element by element.
#if defined(__GNUC__)
template <class T>
struct vec16 {
    typedef T type __attribute__((vector_size(16)));
    typedef T unaligned __attribute__((vector_size(16), aligned(alignof(T)), may_alias));
};

template <class T, int NV>
inline void row_step(typename vec16<T>::type (&s)[NV], T ai, const typename vec16<T>::type (&b)[NV]) {
    for (int v = 0; v < NV; ++v) s[v] += ai * b[v];
}

template <class T, int NV>
inline void row_store(const typename vec16<T>::type (&s)[NV], T* out) {
    for (int v = 0; v < NV; ++v) reinterpret_cast<typename vec16<T>::unaligned*>(out)[v] = s[v];
}

template <class T, int MR>
void tile(int kc, const T* a, std::int64_t lda, const T* b, T* acc) {
    static_assert(MR >= 1 && MR <= 4, "rows 0..3 below");
    using vec = typename vec16<T>::type;
    constexpr int nr = params<T>::nr, nv = nr * int(sizeof(T)) / 16;
    vec s0[nv] = {}, s1[nv] = {}, s2[nv] = {}, s3[nv] = {};
    for (int k = 0; k < kc; ++k) {
        vec bk[nv];
        for (int v = 0; v < nv; ++v) bk[v] = reinterpret_cast<const typename vec16<T>::unaligned*>(b + nr * k)[v];
        row_step<T, nv>(s0, a[k], bk);
        if constexpr (MR > 1) row_step<T, nv>(s1, a[lda + k], bk);
        if constexpr (MR > 2) row_step<T, nv>(s2, a[2 * lda + k], bk);
        if constexpr (MR > 3) row_step<T, nv>(s3, a[3 * lda + k], bk);
    }
    row_store<T, nv>(s0, acc);
    if constexpr (MR > 1) row_store<T, nv>(s1, acc + nr);
    if constexpr (MR > 2) row_store<T, nv>(s2, acc + 2 * nr);
    if constexpr (MR > 3) row_store<T, nv>(s3, acc + 3 * nr);
}
#else
template <class T, int MR>
void tile(int kc, const T* a, std::int64_t lda, const T* b, T* acc) {
    constexpr int nr = params<T>::nr;
    T s[MR][nr] = {};
    for (int k = 0; k < kc; ++k)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < nr; ++j) s[i][j] += a[i * lda + k] * b[nr * k + j];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < nr; ++j) acc[i * nr + j] = s[i][j];
}
#endif

template <class T>
using tile_fn = void (*)(int, const T*, std::int64_t, const T*, T*);

template <class T>
tile_fn<T> tile_for(int rows) {
    static_assert(params<T>::mr == 4, "one entry per row count");
    static constexpr tile_fn<T> table[] = {nullptr, tile<T, 1>, tile<T, 2>, tile<T, 3>, tile<T, 4>};
    return table[rows];
}

inline std::int64_t split_at(std::int64_t total, std::int64_t parts, std::int64_t i) {
    return total / parts * i + std::min(i, total % parts);
}

// Output columns of panels [p_begin, p_end) for all m rows; wp from pack().
template <class T>
void run_panels(const T* a, std::int64_t m, std::int64_t lda, const T* wp, std::int64_t n, std::int64_t k, T* c,
                std::int64_t ldc, const epilogue<T>& ep, std::int64_t p_begin, std::int64_t p_end) {
    using P = params<T>;
    constexpr int nr = P::nr;
    if (p_begin >= p_end) return;
    const std::int64_t col0 = p_begin * nr, col1 = std::min(n, p_end * nr), ncols = col1 - col0;
    const basic_residual_view<T> rv = residual_for(ep, c, ldc, m, col0, ncols);
    const std::int64_t mblocks = (m + P::mc - 1) / P::mc;
    T acc[P::mr * nr];
    for (std::int64_t mb = 0; mb < mblocks; ++mb) {
        const std::int64_t r0 = split_at(m, mblocks, mb), rows = split_at(m, mblocks, mb + 1) - r0;
        const std::int64_t tiles = (rows + P::mr - 1) / P::mr;
        // k == 0: one empty block, so the epilogue still runs.
        for (std::int64_t k0 = 0; k0 < std::max<std::int64_t>(k, 1); k0 += P::kc) {
            const int kc = static_cast<int>(std::min<std::int64_t>(P::kc, k - k0));
            const bool load = k0 > 0 || rv.seed_with_c, last = k0 + P::kc >= k;
            for (std::int64_t p = p_begin; p < p_end; ++p) {
                const std::int64_t j0 = p * nr;
                const int width = static_cast<int>(std::min<std::int64_t>(nr, n - j0));
                const T* bp = wp + p * k * nr + k0 * nr;
                for (std::int64_t t = 0; t < tiles; ++t) {
                    const std::int64_t i0 = r0 + split_at(rows, tiles, t);
                    const int tr = static_cast<int>(r0 + split_at(rows, tiles, t + 1) - i0);
                    tile_for<T>(tr)(kc, a + i0 * lda + k0, lda, bp, acc);
                    for (int i = 0; i < tr; ++i) {
                        T* out = c + (i0 + i) * ldc + j0;
                        const T* s = acc + i * nr;
                        const T* r = rv.res ? rv.res + (i0 + i) * rv.ldr + (j0 - col0) : nullptr;
                        for (int j = 0; j < width; ++j) {
                            T v = load ? out[j] + s[j] : s[j];
                            if (last) {
                                v = branch_value(ep, j0 + j, v);
                                if (r) v += r[j];
                            }
                            out[j] = v;
                        }
                    }
                }
            }
        }
    }
}

}  // namespace vit::detail::portable
