// The tensors the model takes and gives: row-major Eigen matrices and
// transformers' pixel_values.
#pragma once

#include <cstddef>
#include <vector>

#include <Eigen/Core>

namespace vit {

template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Normalised images, [batch, channels, height, width] row-major: transformers'
// `pixel_values`.
template <class T>
struct pixel_values {
    int batch = 0, channels = 0, height = 0, width = 0;
    std::vector<T> data;

    pixel_values() = default;
    pixel_values(int n, int c, int h, int w)
        : batch(n), channels(c), height(h), width(w), data(std::size_t(n) * c * h * w) {}
    T* image(int i) { return data.data() + std::size_t(i) * channels * height * width; }
    const T* image(int i) const { return data.data() + std::size_t(i) * channels * height * width; }
};

}  // namespace vit
