// Linear layers: C = act(A * W^T + bias) + residual, with W prepared once at load.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "thread_pool.hpp"

namespace vit::detail {

enum class activation { none, gelu_erf, gelu_tanh, relu };

template <class T>
inline T activate(activation act, T x) {
    switch (act) {
        case activation::none: return x;
        case activation::gelu_erf: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
        case activation::gelu_tanh: {
            const T c = T(0.79788456080286535588);  // sqrt(2/pi)
            return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
        }
        case activation::relu: return x > T(0) ? x : T(0);
    }
    return x;
}

// What happens to each output element after the product, fused so the output
// is written once: c = act(acc + bias[j]) + residual[i, j].
template <class T>
struct epilogue {
    const T* bias = nullptr;          // [n] or null
    activation act = activation::none;
    const T* residual = nullptr;      // [m, ld_residual] or null; may alias c
    std::int64_t ld_residual = 0;
};

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A Linear layer's weight [n, k] (PyTorch's [out, in]) laid out for the product.
template <class T>
class packed_linear {
public:
    packed_linear() = default;
    packed_linear(const T* w_nk, std::int64_t n, std::int64_t k)
        : w_(Eigen::Map<const row_matrix<T>>(w_nk, n, k)) {}

    std::int64_t n() const { return w_.rows(); }
    std::int64_t k() const { return w_.cols(); }

    // a: [m, k] with row stride lda; c: [m, n] with row stride ldc.
    void run(const T* a, std::int64_t m, std::int64_t lda, T* c, std::int64_t ldc,
             const epilogue<T>& ep, thread_pool& pool) const {
        using stride = Eigen::OuterStride<>;
        const std::int64_t rows_per_task = 16;
        const std::int64_t tasks = (m + rows_per_task - 1) / rows_per_task;
        pool.parallel_for(tasks, [&](std::int64_t t) {
            const std::int64_t r0 = t * rows_per_task, rows = std::min(rows_per_task, m - r0);
            Eigen::Map<const row_matrix<T>, 0, stride> A(a + r0 * lda, rows, k(), stride(lda));
            row_matrix<T> acc = A * w_.transpose();
            for (std::int64_t i = 0; i < rows; ++i) {
                T* out = c + (r0 + i) * ldc;
                const T* res = ep.residual ? ep.residual + (r0 + i) * ep.ld_residual : nullptr;
                for (std::int64_t j = 0; j < n(); ++j) {
                    T v = acc(i, j) + (ep.bias ? ep.bias[j] : T(0));
                    v = activate(ep.act, v);
                    out[j] = res ? v + res[j] : v;
                }
            }
        });
    }

private:
    row_matrix<T> w_;
};

}  // namespace vit::detail
