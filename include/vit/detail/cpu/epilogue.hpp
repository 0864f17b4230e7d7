// What a product does to each output element before it is written, the
// contract every linear-layer kernel implements:
// c = act(acc + bias) * scale + residual.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "memory.hpp"

namespace vit::detail {

enum class activation { none, gelu_erf, gelu_tanh, relu, quick_gelu };

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
        case activation::quick_gelu: return x / (T(1) + std::exp(T(-1.702) * x));  // x sigmoid(1.702 x), CLIP's
    }
    return x;
}

// Fused into the product so the output is written once:
// c = act(acc + bias[j]) * scale[j] + residual[i, j], rounded step by step in
// that order (as the unfused layers were).
template <class T>
struct epilogue {
    const T* bias = nullptr;          // [n] or null
    activation act = activation::none;
    const T* scale = nullptr;         // [n] or null: DINOv2's layer scale, on the branch before the residual
    const T* residual = nullptr;      // [m, ld_residual] or null; may be exactly c (same ld)
    std::int64_t ld_residual = 0;

    // Whether c = acc + bias + residual, so a residual in c can seed the sums.
    bool adds_only() const { return act == activation::none && !scale; }
};

// Element j of a row before its residual: act(v + bias[j]) * scale[j].
template <class T>
inline T branch_value(const epilogue<T>& ep, std::int64_t j, T v) {
    v = activate(ep.act, v + (ep.bias ? ep.bias[j] : T(0)));
    return ep.scale ? v * ep.scale[j] : v;
}

// The residual that output columns [col0, col0 + ncols) of c add, by the one
// rule every kernel follows (so their sums associate alike): when the
// residual is c itself and the epilogue only adds, it seeds the sums
// (seed_with_c, res null); when it is c but an activation or a scale comes
// first, the columns are saved to scratch before the product overwrites them.
template <class T>
struct basic_residual_view {
    bool seed_with_c = false;
    const T* res = nullptr;  // element (0, col0), or null
    std::int64_t ldr = 0;
};
using residual_view = basic_residual_view<float>;

template <class T>
basic_residual_view<T> residual_for(const epilogue<T>& ep, const T* c, std::int64_t ldc, std::int64_t m,
                                    std::int64_t col0, std::int64_t ncols) {
    basic_residual_view<T> r;
    const bool res_is_c = ep.residual == c && ep.ld_residual == ldc;
    r.seed_with_c = res_is_c && ep.adds_only();
    if (!ep.residual || r.seed_with_c) return r;
    if (!res_is_c) {
        r.res = ep.residual + col0;
        r.ldr = ep.ld_residual;
        return r;
    }
    T* saved = static_cast<T*>(thread_scratch(scratch::saved_residual, sizeof(T) * m * ncols));
    for (std::int64_t i = 0; i < m; ++i) std::memcpy(saved + i * ncols, c + i * ldc + col0, sizeof(T) * ncols);
    r.res = saved;
    r.ldr = ncols;
    return r;
}

}  // namespace vit::detail
