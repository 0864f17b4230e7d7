// Pillow's Image.resize and Image.transpose for 8-bit RGB, reproduced bit for bit.
//
// The arithmetic follows Pillow's libImaging (Resample.c for the convolution
// filters, Geometry.c for NEAREST and the transposes); it is re-derived here,
// not copied. Every detail below changes output bytes somewhere:
//  - separable convolution, horizontal pass first, into a uint8 image;
//  - a pass whose size does not change is skipped;
//  - weights in double, normalised, then fixed point with 22 fraction bits,
//    accumulator starting at 2^21, result `acc >> 22` clamped to [0, 255];
//  - NEAREST does not convolve: it is Pillow's affine "scale" transform, which
//    accumulates the source coordinate in double step by step.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../../image_types.hpp"

namespace vit::detail {

// PIL.Image.Resampling numbering.
enum class pil_filter { nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5 };

inline pil_filter to_pil(resample r) { return pil_filter(int(r)); }

// Interleaved 8-bit pixels, `channels` per pixel, rows without padding.
struct pixels_view {
    const std::uint8_t* data = nullptr;
    int width = 0, height = 0, channels = 3;
};

namespace pil {

constexpr double pi = 3.14159265358979323846;  // M_PI

inline double box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

inline double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

inline double hamming(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * pi;
    // Pillow writes the window constants as float literals (0.54f, 0.46f);
    // their float values, widened to double, are part of the result.
    return std::sin(x) / x * (double(0.54f) + double(0.46f) * std::cos(x));
}

inline double bicubic(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

inline double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * pi;
    return std::sin(x) / x;
}

inline double lanczos(double x) {
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

struct filter_def {
    double (*fn)(double);
    double support;
};

inline filter_def filter_for(pil_filter f) {
    switch (f) {
        case pil_filter::box: return {box, 0.5};
        case pil_filter::bilinear: return {bilinear, 1.0};
        case pil_filter::hamming: return {hamming, 1.0};
        case pil_filter::bicubic: return {bicubic, 2.0};
        case pil_filter::lanczos: return {lanczos, 3.0};
        case pil_filter::nearest: break;
    }
    throw std::invalid_argument("no convolution kernel for this filter");
}

constexpr int precision_bits = 32 - 8 - 2;

// Per output index along one axis: the first source index, how many follow,
// and their fixed-point weights (ksize slots per output, unused ones zero).
struct axis_coeffs {
    int ksize = 0;
    std::vector<int> first, count;
    std::vector<std::int32_t> weights;
};

// `in0`/`in1` are the crop box edges; Pillow keeps them as float, so the
// span is computed in float before it is widened.
inline axis_coeffs precompute(int in_size, float in0, float in1, int out_size, const filter_def& f) {
    double scale = double(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = f.support * filterscale;
    axis_coeffs c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.first.resize(std::size_t(out_size));
    c.count.resize(std::size_t(out_size));
    c.weights.assign(std::size_t(out_size) * std::size_t(c.ksize), 0);
    std::vector<double> k(std::size_t(c.ksize));
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = in0 + (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            const double w = f.fn((x + xmin - center + 0.5) * ss);
            k[std::size_t(x)] = w;
            ww += w;
        }
        std::int32_t* out = &c.weights[std::size_t(xx) * std::size_t(c.ksize)];
        for (int x = 0; x < xmax; ++x) {
            double w = k[std::size_t(x)];
            if (ww != 0.0) w /= ww;
            out[x] = w < 0 ? std::int32_t(-0.5 + w * (1 << precision_bits))
                           : std::int32_t(0.5 + w * (1 << precision_bits));
        }
        c.first[std::size_t(xx)] = xmin;
        c.count[std::size_t(xx)] = xmax;
    }
    return c;
}

inline std::uint8_t clip8(std::int64_t acc) {
    const std::int64_t v = acc >> precision_bits;  // arithmetic shift, as Pillow's lookup table index
    return std::uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace pil

// Pillow's two-pass convolution resize (ImagingResample with box = the whole image).
inline std::vector<std::uint8_t> resample_convolve(const pixels_view& src, int out_w, int out_h, pil_filter filter) {
    const pil::filter_def f = pil::filter_for(filter);
    const int ch = src.channels;
    const bool need_h = out_w != src.width;
    const bool need_v = out_h != src.height;

    pil::axis_coeffs vert = pil::precompute(src.height, 0.0f, float(src.height), out_h, f);
    // Only the source rows the vertical pass reads go through the horizontal pass.
    const int row_first = vert.first[0];
    const int row_last = vert.first[std::size_t(out_h - 1)] + vert.count[std::size_t(out_h - 1)];

    const std::uint8_t* cur = src.data;
    int cur_w = src.width;
    std::vector<std::uint8_t> tmp;
    if (need_h) {
        const pil::axis_coeffs hc = pil::precompute(src.width, 0.0f, float(src.width), out_w, f);
        for (auto& y : vert.first) y -= row_first;
        const int rows = row_last - row_first;
        tmp.resize(std::size_t(out_w) * std::size_t(rows) * std::size_t(ch));
        for (int y = 0; y < rows; ++y) {
            const std::uint8_t* in_row = src.data + std::size_t(y + row_first) * std::size_t(src.width) * std::size_t(ch);
            std::uint8_t* out_row = tmp.data() + std::size_t(y) * std::size_t(out_w) * std::size_t(ch);
            for (int xx = 0; xx < out_w; ++xx) {
                const int xmin = hc.first[std::size_t(xx)], n = hc.count[std::size_t(xx)];
                const std::int32_t* k = &hc.weights[std::size_t(xx) * std::size_t(hc.ksize)];
                for (int c = 0; c < ch; ++c) {
                    std::int64_t acc = std::int64_t(1) << (pil::precision_bits - 1);
                    const std::uint8_t* p = in_row + std::size_t(xmin) * std::size_t(ch) + std::size_t(c);
                    for (int x = 0; x < n; ++x) acc += std::int64_t(p[std::size_t(x) * std::size_t(ch)]) * k[x];
                    out_row[std::size_t(xx) * std::size_t(ch) + std::size_t(c)] = pil::clip8(acc);
                }
            }
        }
        cur = tmp.data();
        cur_w = out_w;
    }

    if (!need_v) {
        if (need_h) return tmp;
        return std::vector<std::uint8_t>(src.data, src.data + std::size_t(src.width) * std::size_t(src.height) * std::size_t(ch));
    }

    std::vector<std::uint8_t> out(std::size_t(cur_w) * std::size_t(out_h) * std::size_t(ch));
    const std::size_t stride = std::size_t(cur_w) * std::size_t(ch);
    for (int yy = 0; yy < out_h; ++yy) {
        const int ymin = vert.first[std::size_t(yy)], n = vert.count[std::size_t(yy)];
        const std::int32_t* k = &vert.weights[std::size_t(yy) * std::size_t(vert.ksize)];
        std::uint8_t* out_row = out.data() + std::size_t(yy) * stride;
        for (std::size_t i = 0; i < stride; ++i) {
            std::int64_t acc = std::int64_t(1) << (pil::precision_bits - 1);
            const std::uint8_t* p = cur + std::size_t(ymin) * stride + i;
            for (int y = 0; y < n; ++y) acc += std::int64_t(p[std::size_t(y) * stride]) * k[y];
            out_row[i] = pil::clip8(acc);
        }
    }
    return out;
}

// Pillow's NEAREST resize: ImagingScaleAffine with a = (in/out, 0, 0, 0, in/out, 0).
// Positions advance by repeated addition in double, exactly as Pillow does;
// a multiplication would round differently on some sizes.
inline std::vector<std::uint8_t> resample_nearest(const pixels_view& src, int out_w, int out_h) {
    const int ch = src.channels;
    const auto coord = [](double v) { return v < 0.0 ? -1 : int(v); };
    const double ax = double(float(src.width)) / out_w;
    const double ay = double(float(src.height)) / out_h;

    std::vector<int> xin(std::size_t(out_w), 0);
    int xmin = out_w, xmax = 0;
    double xo = ax * 0.5;
    for (int x = 0; x < out_w; ++x) {
        const int xi = coord(xo);
        if (xi >= 0 && xi < src.width) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            xin[std::size_t(x)] = xi;
        }
        xo += ax;
    }

    std::vector<std::uint8_t> out(std::size_t(out_w) * std::size_t(out_h) * std::size_t(ch), 0);
    double yo = ay * 0.5;
    for (int y = 0; y < out_h; ++y) {
        const int yi = coord(yo);
        if (yi >= 0 && yi < src.height) {
            const std::uint8_t* in_row = src.data + std::size_t(yi) * std::size_t(src.width) * std::size_t(ch);
            std::uint8_t* out_row = out.data() + std::size_t(y) * std::size_t(out_w) * std::size_t(ch);
            for (int x = xmin; x < xmax; ++x)
                for (int c = 0; c < ch; ++c)
                    out_row[std::size_t(x) * std::size_t(ch) + std::size_t(c)] =
                        in_row[std::size_t(xin[std::size_t(x)]) * std::size_t(ch) + std::size_t(c)];
        }
        yo += ay;
    }
    return out;
}

// Image.resize(size, filter) with box and reducing_gap left at None.
inline std::vector<std::uint8_t> pil_resize(const pixels_view& src, int out_w, int out_h, pil_filter filter) {
    if (out_w == src.width && out_h == src.height)
        return std::vector<std::uint8_t>(src.data, src.data + std::size_t(src.width) * std::size_t(src.height) * std::size_t(src.channels));
    if (filter == pil_filter::nearest) return resample_nearest(src, out_w, out_h);
    return resample_convolve(src, out_w, out_h, filter);
}

// EXIF orientation values 1..8 map to these (ImageOps.exif_transpose).
enum class pil_transpose { none, flip_left_right, rotate_180, flip_top_bottom, transpose, rotate_270, transverse, rotate_90 };

inline pil_transpose transpose_for_orientation(long long orientation) {
    switch (orientation) {
        case 2: return pil_transpose::flip_left_right;
        case 3: return pil_transpose::rotate_180;
        case 4: return pil_transpose::flip_top_bottom;
        case 5: return pil_transpose::transpose;
        case 6: return pil_transpose::rotate_270;
        case 7: return pil_transpose::transverse;
        case 8: return pil_transpose::rotate_90;
        default: return pil_transpose::none;
    }
}

// Image.transpose(method). Returns the pixels; `out_w`/`out_h` receive the new size.
inline std::vector<std::uint8_t> pil_transpose_pixels(const pixels_view& src, pil_transpose op, int& out_w, int& out_h) {
    const int W = src.width, H = src.height, ch = src.channels;
    const bool swaps = op == pil_transpose::transpose || op == pil_transpose::transverse ||
                       op == pil_transpose::rotate_90 || op == pil_transpose::rotate_270;
    out_w = swaps ? H : W;
    out_h = swaps ? W : H;
    std::vector<std::uint8_t> out(std::size_t(W) * std::size_t(H) * std::size_t(ch));
    for (int y = 0; y < H; ++y) {
        for (int x = 0; x < W; ++x) {
            int ox = x, oy = y;  // where source pixel (x, y) lands
            switch (op) {
                case pil_transpose::none: break;
                case pil_transpose::flip_left_right: ox = W - 1 - x; break;
                case pil_transpose::flip_top_bottom: oy = H - 1 - y; break;
                case pil_transpose::rotate_180: ox = W - 1 - x; oy = H - 1 - y; break;
                case pil_transpose::transpose: ox = y; oy = x; break;
                case pil_transpose::transverse: ox = H - 1 - y; oy = W - 1 - x; break;
                case pil_transpose::rotate_90: ox = y; oy = W - 1 - x; break;        // counter-clockwise
                case pil_transpose::rotate_270: ox = H - 1 - y; oy = x; break;       // clockwise
            }
            const std::uint8_t* s = src.data + (std::size_t(y) * std::size_t(W) + std::size_t(x)) * std::size_t(ch);
            std::uint8_t* d = out.data() + (std::size_t(oy) * std::size_t(out_w) + std::size_t(ox)) * std::size_t(ch);
            for (int c = 0; c < ch; ++c) d[c] = s[c];
        }
    }
    return out;
}

}  // namespace vit::detail
