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

// The same resize as PyTorch computes it on float32 tensors, which DINOv2
// asks for even in a float64 model: coordinates, weights and sums in float.
// For each output, the rows' horizontal sums are weighted vertically (the
// order of PyTorch's generic upsampling kernel).
inline std::vector<float> bicubic_resize_f32(const std::vector<float>& src, index_t in_h, index_t in_w, index_t c,
                                             index_t out_h, index_t out_w) {
    const float A = -0.75f;
    auto near = [A](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
    auto far = [A](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
    auto taps = [&](index_t dst, index_t in, index_t out, index_t idx[4], float w[4]) {
        const float scale = float(in) / float(out);
        const float real = scale * (float(dst) + 0.5f) - 0.5f;
        const float f = std::floor(real);
        const float t = real - f;
        w[0] = far(t + 1);
        w[1] = near(t);
        w[2] = near(1 - t);
        w[3] = far(2 - t);
        for (int k = 0; k < 4; ++k) idx[k] = std::min<index_t>(std::max<index_t>(index_t(f) - 1 + k, 0), in - 1);
    };
    std::vector<float> out(static_cast<std::size_t>(out_h * out_w * c), 0.0f);
    std::vector<float> row(static_cast<std::size_t>(c));
    for (index_t oy = 0; oy < out_h; ++oy) {
        index_t iy[4];
        float wy[4];
        taps(oy, in_h, out_h, iy, wy);
        for (index_t ox = 0; ox < out_w; ++ox) {
            index_t ix[4];
            float wx[4];
            taps(ox, in_w, out_w, ix, wx);
            float* o = &out[static_cast<std::size_t>((oy * out_w + ox) * c)];
            for (int a = 0; a < 4; ++a) {
                const float* s0 = &src[static_cast<std::size_t>(iy[a] * in_w * c)];
                for (index_t ch = 0; ch < c; ++ch) {
                    float t = s0[ix[0] * c + ch] * wx[0];
                    for (int b = 1; b < 4; ++b) t += s0[ix[b] * c + ch] * wx[b];
                    o[ch] = a == 0 ? t * wy[0] : o[ch] + t * wy[a];
                }
            }
        }
    }
    return out;
}

// PyTorch's antialiased bicubic (interpolate(..., antialias=True), as
// DINOv2-with-registers asks for), in float: Keys' cubic with a = -0.5,
// widened by the scale when shrinking, weights normalised per output;
// separable, horizontal pass first.
inline std::vector<float> bicubic_resize_aa_f32(const std::vector<float>& src, index_t in_h, index_t in_w, index_t c,
                                                index_t out_h, index_t out_w) {
    auto cubic = [](float x) {
        const float a = -0.5f;
        x = std::abs(x);
        if (x < 1.0f) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2.0f) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
        return 0.0f;
    };
    struct taps {
        index_t first = 0;
        std::vector<float> w;
    };
    auto weights = [&](index_t in, index_t out) {
        const float scale = float(in) / float(out);
        const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
        const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
        std::vector<taps> t(static_cast<std::size_t>(out));
        for (index_t i = 0; i < out; ++i) {
            const float center = scale * (float(i) + 0.5f);
            const index_t lo = std::max<index_t>(index_t(center - support + 0.5f), 0);
            const index_t n = std::min<index_t>(index_t(center + support + 0.5f), in) - lo;
            taps& k = t[static_cast<std::size_t>(i)];
            k.first = lo;
            float total = 0;
            for (index_t j = 0; j < n; ++j) {
                k.w.push_back(cubic((float(j + lo) - center + 0.5f) * invscale));
                total += k.w.back();
            }
            if (total != 0.0f)
                for (float& v : k.w) v /= total;
        }
        return t;
    };
    const std::vector<taps> tx = weights(in_w, out_w), ty = weights(in_h, out_h);
    // A pass whose size does not change is skipped, as PyTorch does.
    std::vector<float> mid = src;
    if (in_w != out_w) {
        mid.assign(static_cast<std::size_t>(in_h * out_w * c), 0.0f);
        for (index_t y = 0; y < in_h; ++y)
            for (index_t x = 0; x < out_w; ++x) {
                const taps& k = tx[static_cast<std::size_t>(x)];
                for (index_t ch = 0; ch < c; ++ch) {
                    float t = 0;
                    for (std::size_t j = 0; j < k.w.size(); ++j)
                        t = j == 0 ? src[std::size_t(((y * in_w) + k.first) * c + ch)] * k.w[0]
                                   : t + src[std::size_t(((y * in_w) + k.first + index_t(j)) * c + ch)] * k.w[j];
                    mid[std::size_t((y * out_w + x) * c + ch)] = t;
                }
            }
    }
    if (in_h == out_h) return mid;
    std::vector<float> out(static_cast<std::size_t>(out_h * out_w * c), 0.0f);
    for (index_t y = 0; y < out_h; ++y) {
        const taps& k = ty[static_cast<std::size_t>(y)];
        for (index_t x = 0; x < out_w; ++x)
            for (index_t ch = 0; ch < c; ++ch) {
                float t = 0;
                for (std::size_t j = 0; j < k.w.size(); ++j) {
                    const float v = mid[std::size_t(((k.first + index_t(j)) * out_w + x) * c + ch)] * k.w[j];
                    t = j == 0 ? v : t + v;
                }
                out[std::size_t((y * out_w + x) * c + ch)] = t;
            }
    }
    return out;
}

}  // namespace vit::detail
