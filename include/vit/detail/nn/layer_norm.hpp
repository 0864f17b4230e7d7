// LayerNorm over the hidden dimension, statistics in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../cpu/dispatch.hpp"
#include "../cpu/thread_pool.hpp"
#include "../index.hpp"

namespace vit::detail {

template <class T>
struct layer_norm {
    std::vector<T> weight, bias;  // [H]
    double eps = 1e-12;

    layer_norm() = default;
    layer_norm(std::vector<T> weight_, std::vector<T> bias_, double eps_)
        : weight(std::move(weight_)), bias(std::move(bias_)), eps(eps_) {}

    // y[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias, biased variance.
    // Statistics in double: 24 layers of float rounding stay within 1e-5.
    void run(const T* x, T* y, index_t rows, thread_pool& pool) const {
        const index_t h = static_cast<index_t>(weight.size());
        const index_t block = 16;
        const layer_norm_row_fn<T> fast = fast_ ? layer_norm_row_for<T>() : nullptr;
        pool.parallel_for((rows + block - 1) / block, [&](index_t t) {
            for (index_t r = t * block; r < std::min(rows, (t + 1) * block); ++r) {
                if (fast)
                    fast(x + r * h, y + r * h, weight.data(), bias.data(), h, eps);
                else
                    row(x + r * h, y + r * h, h);
            }
        });
    }

    // The portable row: the reference for the vectorised one.
    void row(const T* in, T* out, index_t h) const {
        double mean = 0;
        for (index_t i = 0; i < h; ++i) mean += double(in[i]);
        mean /= double(h);
        double var = 0;
        for (index_t i = 0; i < h; ++i) var += (double(in[i]) - mean) * (double(in[i]) - mean);
        var /= double(h);
        const double inv = 1.0 / std::sqrt(var + eps);
        for (index_t i = 0; i < h; ++i) out[i] = T((double(in[i]) - mean) * inv) * weight[i] + bias[i];
    }

    bool fast_ = layer_norm_vectorized<T>();  // tests turn it off to compare
};

}  // namespace vit::detail
