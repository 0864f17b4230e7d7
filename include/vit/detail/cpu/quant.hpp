// Per-row asymmetric uint8 quantization of activations, shared by the int8
// kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace vit::detail {

// Per-row activation quantization: the range [min(row, 0), max(row, 0)]
// (zero stays exact) mapped onto 0..255. Every element is then within
// scale / 2 of its quantized value.
struct row_quant {
    float scale, inv_scale;
    std::int32_t zero;
};

inline row_quant make_row_quant(float lo, float hi) {
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    if (!(hi - lo > 0.f) || !std::isfinite(hi - lo)) return {1.f, 1.f, 0};
    const float scale = (hi - lo) / 255.f;
    const float inv = 1.f / scale;
    const float z = std::nearbyint(-lo * inv);
    return {scale, inv, static_cast<std::int32_t>(std::min(255.f, std::max(0.f, z)))};
}

// The quantized value of x (round to nearest even, like vcvtps2dq).
inline std::uint8_t quantize_u8(float x, const row_quant& q) {
    const float v = std::nearbyint(x * q.inv_scale) + float(q.zero);
    return static_cast<std::uint8_t>(std::min(255.f, std::max(0.f, v)));
}

}  // namespace vit::detail
