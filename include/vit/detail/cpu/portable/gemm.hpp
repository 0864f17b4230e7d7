// Portable product on Eigen: the reference for the SIMD kernels and the only
// path for double.
#pragma once

#include <algorithm>
#include <cstdint>

#include <Eigen/Core>

#include "../epilogue.hpp"
#include "../thread_pool.hpp"

namespace vit::detail {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
void eigen_linear(const row_matrix<T>& w, const T* a, std::int64_t m, std::int64_t lda, T* c, std::int64_t ldc,
                  const epilogue<T>& ep, thread_pool& pool) {
    using stride = Eigen::OuterStride<>;
    const std::int64_t n = w.rows(), k = w.cols();
    const std::int64_t rows_per_task = 16;
    const std::int64_t tasks = (m + rows_per_task - 1) / rows_per_task;
    pool.parallel_for(tasks, [&](std::int64_t t) {
        const std::int64_t r0 = t * rows_per_task, rows = std::min(rows_per_task, m - r0);
        Eigen::Map<const row_matrix<T>, 0, stride> A(a + r0 * lda, rows, k, stride(lda));
        row_matrix<T> acc = A * w.transpose();
        for (std::int64_t i = 0; i < rows; ++i) {
            T* out = c + (r0 + i) * ldc;
            const T* res = ep.residual ? ep.residual + (r0 + i) * ep.ld_residual : nullptr;
            for (std::int64_t j = 0; j < n; ++j) {
                T v = acc(i, j) + (ep.bias ? ep.bias[j] : T(0));
                v = activate(ep.act, v);
                out[j] = res ? v + res[j] : v;
            }
        }
    });
}

}  // namespace vit::detail
