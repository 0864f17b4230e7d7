// Images in, pixel_values out: the preprocessing of transformers' ViT image
// processor on its PIL path, reproduced byte for byte.
//
//   Image.open(f) -> ImageOps.exif_transpose -> .convert("RGB")
//   -> .resize((W, H), resample)            (uint8)
//   -> x * rescale_factor -> (x - mean) / std, channels first
//
// Decoding uses stb_image, and libjpeg-turbo for JPEG when the build defines
// VIT_HAVE_LIBJPEG (Pillow decodes JPEG with libjpeg-turbo; stb_image's JPEG
// decoder rounds differently): detail/image/decoders.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include "detail/image/decoders.hpp"
#include "detail/image/resample.hpp"
#include "detail/io/mapped_file.hpp"
#include "error.hpp"
#include "image_types.hpp"
#include "preprocess.hpp"
#include "tensor.hpp"

namespace vit {

// Which library decodes JPEG in this build.
inline const char* jpeg_decoder() {
#ifdef VIT_HAVE_LIBJPEG
    return "libjpeg-turbo";
#else
    return "stb_image";
#endif
}

// Decodes an image held in memory, applies its EXIF orientation and converts
// it to RGB, as transformers' load_image does with Pillow. `name` is only used
// in error messages.
inline image decode_image(const unsigned char* data, std::size_t size, const std::string& name, const image_limits& limits = {}) {
    if (size == 0) throw error(name + ": empty file (0 bytes)");
    if (!data) throw error(name + ": no data");
    if (detail::starts_with(data, size, "\xFF\xD8\xFF", 3)) return detail::decode_jpeg(data, size, name, limits);
    if (detail::starts_with(data, size, "\x89PNG\r\n\x1A\n", 8)) return detail::decode_png(data, size, name, limits);
    if (detail::starts_with(data, size, "GIF87a", 6) || detail::starts_with(data, size, "GIF89a", 6))
        return detail::gif_reader(data, size, name).decode(limits);
    if (size >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6') return detail::pnm_reader(data, size, name).decode(limits);
    return detail::decode_other(data, size, name, limits);
}

inline image load_image(const std::string& path, const image_limits& limits = {}) {
    const detail::mapped_file file(path);
    return decode_image(file.data(), file.size(), path, limits);
}

// Image.resize((width, height), filter) of an RGB image, byte for byte.
inline image resize(const image& src, int width, int height, resample filter) {
    detail::check_image(src, "resize");
    if (width <= 0 || height <= 0)
        throw error("resize: target size " + std::to_string(width) + "x" + std::to_string(height) + " is not positive");
    if (int(filter) < 0 || int(filter) > 5) throw error("resize: unknown resampling filter " + std::to_string(int(filter)));
    image out;
    out.width = width;
    out.height = height;
    out.rgb = detail::pil_resize({src.rgb.data(), src.width, src.height, 3}, width, height, detail::to_pil(filter));
    return out;
}

// The size an image of w x h is resized to (transformers'
// get_resize_output_image_size with default_to_square false): for a shortest
// edge s, the long side is int(s * long / short), truncated.
inline std::array<int, 2> resized_size(int w, int h, const preprocess_config& cfg) {
    if (cfg.size_mode == size_rule::exact) return {cfg.width, cfg.height};
    const long long s = cfg.shortest_edge, lo = std::min(w, h), hi = std::max(w, h);
    const double edge = double(s * hi) / double(lo);  // Python's s * long / short
    if (edge > 1e6) throw error("resize: a shortest edge of " + std::to_string(s) + " makes a " + std::to_string(w) +
                                "x" + std::to_string(h) + " image too long");
    const int other = int(edge);
    return w <= h ? std::array<int, 2>{int(s), other} : std::array<int, 2>{other, int(s)};
}

// transformers' center_crop: the window's offsets are floored; an image
// smaller than the window (in either axis) is zero-padded first, with
// ceil(missing / 2) before it.
inline image center_crop(const image& src, int width, int height) {
    detail::check_image(src, "center_crop");
    if (width <= 0 || height <= 0)
        throw error("center_crop: size " + std::to_string(width) + "x" + std::to_string(height) + " is not positive");
    image out;
    out.width = width;
    out.height = height;
    out.rgb.assign(std::size_t(width) * std::size_t(height) * 3, 0);
    // Source offset (crop) or destination offset (pad) per axis.
    const int sx = src.width >= width ? (src.width - width) / 2 : 0, dx = src.width >= width ? 0 : (width - src.width + 1) / 2;
    const int sy = src.height >= height ? (src.height - height) / 2 : 0,
              dy = src.height >= height ? 0 : (height - src.height + 1) / 2;
    const int cw = std::min(width, src.width), ch = std::min(height, src.height);
    for (int y = 0; y < ch; ++y)
        std::copy_n(src.rgb.data() + (std::size_t(sy + y) * src.width + sx) * 3, std::size_t(cw) * 3,
                    out.rgb.data() + (std::size_t(dy + y) * width + dx) * 3);
    return out;
}

// The resize and crop steps of the preprocessing (a copy when both are off).
inline image prepare_image(const image& img, const preprocess_config& cfg) {
    detail::check_image(img, "prepare_image");
    image out = img;
    if (cfg.do_resize) {
        const std::array<int, 2> wh = resized_size(img.width, img.height, cfg);
        out = resize(img, wh[0], wh[1], cfg.filter);
    }
    if (cfg.do_center_crop) out = center_crop(out, cfg.crop_width, cfg.crop_height);
    return out;
}

// The value each uint8 level of channel c becomes. ViT processors rescale
// and normalise in double and round once to T; the family processors
// (float32_normalize) round the rescaled value to float32 and normalise in
// float32, as their PIL backends do, for T = double too.
template <class T>
std::array<T, 256> normalize_table(const preprocess_config& cfg, std::size_t c) {
    std::array<T, 256> lut{};
    for (int v = 0; v < 256; ++v) {
        double x = double(v);
        if (cfg.do_rescale) x *= cfg.rescale_factor;
        if (cfg.float32_normalize) {
            float f = float(x);
            if (cfg.do_normalize) f = (f - float(cfg.mean[c])) / float(cfg.std[c]);
            lut[std::size_t(v)] = T(f);
            continue;
        }
        if (cfg.do_normalize) x = (x - cfg.mean[c]) / cfg.std[c];
        lut[std::size_t(v)] = T(x);
    }
    return lut;
}

// pixel_values of an already prepared image, planar (C, H, W), through
// normalize_table.
template <class T>
void write_pixel_values(const image& prepared, const preprocess_config& cfg, T* out_chw) {
    detail::check_image(prepared, "write_pixel_values");
    const std::size_t plane = std::size_t(prepared.width) * std::size_t(prepared.height);
    for (std::size_t c = 0; c < 3; ++c) {
        // A 256-entry table: every output value is one of these.
        const std::array<T, 256> lut = normalize_table<T>(cfg, c);
        T* dst = out_chw + c * plane;
        const std::uint8_t* src = prepared.rgb.data() + c;
        for (std::size_t i = 0; i < plane; ++i) dst[i] = lut[src[i * 3]];
    }
}

inline void save_png(const image& img, const std::string& path) {
    detail::check_image(img, path.c_str());
    if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.rgb.data(), img.width * 3))
        throw error(path + ": cannot write PNG");
}

// Prepares each image as the checkpoint's image processor does (resize with
// its filter, center crop) and stacks their pixel_values. Without a fixed
// output size (no crop, and no resize or a shortest-edge one), the images
// must come out at one size.
template <class T>
pixel_values<T> make_pixel_values(const std::vector<image>& images, const preprocess_config& cfg) {
    if (images.empty()) throw error("make_pixel_values: no images");
    std::vector<image> prepared;
    prepared.reserve(images.size());
    for (const image& img : images) prepared.push_back(prepare_image(img, cfg));
    const int w = prepared.front().width, h = prepared.front().height;
    pixel_values<T> px(int(prepared.size()), 3, h, w);
    for (std::size_t i = 0; i < prepared.size(); ++i) {
        if (prepared[i].width != w || prepared[i].height != h)
            throw error("make_pixel_values: image " + std::to_string(i) + " is " + std::to_string(prepared[i].width) +
                        "x" + std::to_string(prepared[i].height) + ", the batch is " + std::to_string(w) + "x" +
                        std::to_string(h) + " (the preprocessing has no fixed output size)");
        write_pixel_values(prepared[i], cfg, px.image(int(i)));
    }
    return px;
}

namespace detail {
// What basic_model::classify(path) runs: one file to its pixel_values.
template <class T>
struct image_input {
    static pixel_values<T> from_file(const std::string& path, const preprocess_config& cfg) {
        return make_pixel_values<T>({load_image(path)}, cfg);
    }
};
}  // namespace detail

}  // namespace vit
