// Resizing position-embedding grids, as transformers' interpolate_pos_encoding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#include "../index.hpp"

namespace vit::detail {

// Bicubic resize of a [in_h, in_w, C] grid to [out_h, out_w, C] as PyTorch's
// interpolate(mode="bicubic", align_corners=False) does: cubic convolution with
// A = -0.75, source (dst + 0.5) * in/out - 0.5, neighbours clamped to the edge.
inline std::vector<double> bicubic_resize(const std::vector<double>& src, index_t in_h, index_t in_w, index_t c,
                                          index_t out_h, index_t out_w) {
    const double A = -0.75;
    auto near = [A](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };        // |x| <= 1
    auto far = [A](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
    auto taps = [&](index_t dst, index_t in, index_t out, index_t idx[4], double w[4]) {
        const double real = (double(dst) + 0.5) * (double(in) / double(out)) - 0.5;
        const double f = std::floor(real);
        const double t = real - f;
        w[0] = far(t + 1);
        w[1] = near(t);
        w[2] = near(1 - t);
        w[3] = far(2 - t);
        for (int k = 0; k < 4; ++k)
            idx[k] = std::min<index_t>(std::max<index_t>(index_t(f) - 1 + k, 0), in - 1);
    };
    std::vector<double> out(static_cast<std::size_t>(out_h * out_w * c), 0.0);
    for (index_t oy = 0; oy < out_h; ++oy) {
        index_t iy[4];
        double wy[4];
        taps(oy, in_h, out_h, iy, wy);
        for (index_t ox = 0; ox < out_w; ++ox) {
            index_t ix[4];
            double wx[4];
            taps(ox, in_w, out_w, ix, wx);
            double* o = &out[static_cast<std::size_t>((oy * out_w + ox) * c)];
            for (int a = 0; a < 4; ++a)
                for (int b = 0; b < 4; ++b) {
                    const double wgt = wy[a] * wx[b];
                    const double* s = &src[static_cast<std::size_t>((iy[a] * in_w + ix[b]) * c)];
                    for (index_t ch = 0; ch < c; ++ch) o[ch] += wgt * s[ch];
                }
        }
    }
    return out;
}

}  // namespace vit::detail
