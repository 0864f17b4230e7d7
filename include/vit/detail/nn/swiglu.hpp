// SwiGLU's gate (DINOv2-giant's MLP, transformers' Dinov2SwiGLUFFN): the
// product's [rows, 2I] output x1 | x2 becomes silu(x1) * x2 [rows, I], in place.
#pragma once

#include <algorithm>
#include <cmath>

#include "../cpu/dispatch.hpp"
#include "../cpu/thread_pool.hpp"
#include "../index.hpp"

namespace vit::detail {

// out[j] = silu(x1[j]) * x2[j] for j < n; out may be x1. fast: the kernel
// table's row, or null.
template <class T>
void silu_gate_row(const T* x1, const T* x2, T* out, index_t n, silu_gate_row_fn<T> fast) {
    if (fast) return fast(x1, x2, out, n);
    for (index_t j = 0; j < n; ++j) out[j] = x1[j] / (T(1) + std::exp(-x1[j])) * x2[j];
}

// h [rows, 2 * width] -> [rows, width], row r to h + r * width. A row r >= 1
// writes below 2r widths, where row 2r's input starts; so once the rows below
// lo are done, rows [lo, 2 lo) can run together: waves of doubling size, row
// 0 (in place over its own x1) alone first.
template <class T>
void swiglu_gate(T* h, index_t rows, index_t width, thread_pool& pool, bool vectorized = swiglu_vectorized<T>()) {
    const silu_gate_row_fn<T> fast = vectorized ? silu_gate_row_for<T>() : nullptr;
    for (index_t lo = 0, hi = 1; lo < rows; lo = hi, hi = std::min(rows, 2 * hi)) {
        auto row = [&](index_t t) {
            const index_t r = lo + t;
            silu_gate_row(h + r * 2 * width, h + r * 2 * width + width, h + r * width, width, fast);
        };
        // Small waves on this thread: a round on the pool costs more than their rows.
        if (hi - lo < 32) {
            for (index_t t = 0; t < hi - lo; ++t) row(t);
        } else {
            pool.parallel_for(hi - lo, row);
        }
    }
}

}  // namespace vit::detail
