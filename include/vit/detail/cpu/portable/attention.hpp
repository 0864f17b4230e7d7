// Portable attention for one image and head, on Eigen products: the only
// kernel for double and the reference the fused ones are tested against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <Eigen/Core>

#include "../attention_args.hpp"
#include "../memory.hpp"

namespace vit::detail {

template <class T>
void attention_head_portable(const attention_args<T>& a, std::int64_t b, std::int64_t h) {
    using stride = Eigen::OuterStride<>;
    using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const std::int64_t H = a.heads * a.d, n = a.tokens;
    const T scale = T(1) / std::sqrt(T(a.d));
    const T* base = a.qkv + b * n * 3 * H + h * a.d;
    const std::int64_t nq = a.queries;
    Eigen::Map<const matrix, 0, stride> q(base, nq, a.d, stride(3 * H));
    Eigen::Map<const matrix, 0, stride> k(base + H, n, a.d, stride(3 * H));
    Eigen::Map<const matrix, 0, stride> v(base + 2 * H, n, a.d, stride(3 * H));
    T* pdata = a.probs ? a.probs + (b * a.heads + h) * n * n : static_cast<T*>(thread_scratch(scratch::attention, sizeof(T) * nq * n));
    Eigen::Map<matrix> p(pdata, nq, n);
    p.noalias() = q * k.transpose();
    for (std::int64_t r = 0; r < nq; ++r) {
        T* pr = p.row(r).data();
        const std::int64_t seen = a.keys_seen(b, r);  // n unless masked
        T mx = -std::numeric_limits<T>::infinity();
        for (std::int64_t c = 0; c < seen; ++c) mx = std::max(mx, pr[c] * scale);
        T sum = 0;
        for (std::int64_t c = 0; c < seen; ++c) sum += (pr[c] = std::exp(pr[c] * scale - mx));
        const T inv = T(1) / sum;
        for (std::int64_t c = 0; c < seen; ++c) pr[c] *= inv;
        std::fill(pr + seen, pr + n, T(0));
    }
    Eigen::Map<matrix, 0, stride> o(a.ctx + b * n * H + h * a.d, nq, a.d, stride(H));
    o.noalias() = p * v;
}

}  // namespace vit::detail
