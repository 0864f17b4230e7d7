// Image decoders behind vit::decode_image: PNG and the formats stb_image
// reads, JPEG through libjpeg-turbo when the build has it (GIF and PNM have
// readers of their own, gif.hpp and pnm.hpp, to match Pillow), then EXIF
// orientation and Pillow's convert("RGB").
//
// The stb implementation is not compiled here: it comes from Debian's
// libstb, or from one .cpp that defines STB_IMAGE_IMPLEMENTATION and
// STB_IMAGE_WRITE_IMPLEMENTATION (the build does so when libstb is missing).
// stb_image's process-wide switches (stbi_set_flip_vertically_on_load,
// stbi_set_unpremultiply_on_load, stbi_convert_iphone_png_to_rgb) would change
// what is decoded here: leave them at their defaults.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <stb_image.h>

#include "../../error.hpp"
#include "../../image_types.hpp"
#include "checks.hpp"
#include "exif.hpp"
#include "gif.hpp"
#include "jpeg.hpp"
#include "pnm.hpp"
#include "resample.hpp"

namespace vit::detail {

inline std::string stb_reason() {
    const char* r = stbi_failure_reason();
    return r ? r : "unknown error";
}

// Owns a buffer returned by stb_image.
struct stb_free {
    void operator()(void* p) const { stbi_image_free(p); }
};
template <class T>
using stb_buffer = std::unique_ptr<T, stb_free>;

// Channel count n (1..4) to RGB as Pillow's convert("RGB"): gray is copied to
// the three channels, alpha is dropped without blending.
inline image to_rgb(const std::uint8_t* px, int w, int h, int n) {
    image img;
    img.width = w;
    img.height = h;
    const std::size_t count = std::size_t(w) * std::size_t(h);
    img.rgb.resize(count * 3);
    std::uint8_t* out = img.rgb.data();
    for (std::size_t i = 0; i < count; ++i, out += 3) {
        const std::uint8_t* p = px + i * std::size_t(n);
        if (n <= 2) {
            out[0] = out[1] = out[2] = p[0];
        } else {
            out[0] = p[0];
            out[1] = p[1];
            out[2] = p[2];
        }
    }
    return img;
}

// Pillow's "CMYK;I" unpacking (libjpeg returns Adobe-inverted samples) then
// Convert.c's cmyk2rgb: out = clip(nk - nk*c/255) with nk = 255 - k.
inline image inverted_cmyk_to_rgb(const std::uint8_t* px, int w, int h) {
    image img;
    img.width = w;
    img.height = h;
    const std::size_t count = std::size_t(w) * std::size_t(h);
    img.rgb.resize(count * 3);
    const auto muldiv255 = [](int a, int b) {
        const int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    };
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t* p = px + i * 4;
        const int nk = p[3];  // 255 - k, with k = 255 - p[3] after the inversion
        for (int c = 0; c < 3; ++c) {
            const int v = nk - muldiv255(255 - p[c], nk);
            img.rgb[i * 3 + std::size_t(c)] = std::uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    return img;
}

inline void apply_orientation(image& img, long long orientation) {
    const pil_transpose op = transpose_for_orientation(orientation);
    if (op == pil_transpose::none) return;
    int w = 0, h = 0;
    std::vector<std::uint8_t> px = pil_transpose_pixels({img.rgb.data(), img.width, img.height, 3}, op, w, h);
    img.rgb = std::move(px);
    img.width = w;
    img.height = h;
}

inline bool starts_with(const std::uint8_t* data, std::size_t size, const char* magic, std::size_t n) {
    return size >= n && std::memcmp(data, magic, n) == 0;
}

inline int stb_length(const std::string& name, std::size_t size) {
    if (size > std::size_t(0x7fffffff)) throw error(name + ": file too large for stb_image (over 2 GiB)");
    return int(size);
}

// Formats other than JPEG, PNG, GIF and PNM: BMP, TGA, PSD (what stb_image
// reads and Pillow opens too; Softimage PIC, which Pillow cannot open, is refused).
inline image decode_other(const std::uint8_t* data, std::size_t size, const std::string& name, const image_limits& limits) {
    const int len = stb_length(name, size);
    // stb takes 0xFF fill bytes before a JPEG's start marker, Pillow does not;
    // and stb's JPEG decoder writes past its Huffman size table on hostile
    // input (UBSan, found by fuzzing). JPEG goes through decode_jpeg only.
    std::size_t fill = 0;
    while (fill < size && data[fill] == 0xFF) ++fill;
    if (fill > 0 && fill < size && data[fill] == 0xD8)
        throw error(name + ": not an image (JPEG data must start with FF D8 FF)");
    if (stbi_is_hdr_from_memory(data, len))
        throw error(name + ": Radiance HDR images are not supported (Pillow cannot open them)");
    if (starts_with(data, size, "\x53\x80\xF6\x34", 4))
        throw error(name + ": Softimage PIC images are not supported (Pillow cannot open them)");
    int w = 0, h = 0, n = 0;
    if (!stbi_info_from_memory(data, len, &w, &h, &n)) throw error(name + ": not an image (stb_image: " + stb_reason() + ")");
    check_pixel_limit(name, std::uint64_t(w), std::uint64_t(h), limits);
    // Run-length TGA and PSD hold at most 64 pixels per byte; stb pads a short
    // file with zeros, so a 27-byte file could claim 89M pixels and cost
    // seconds (found by fuzz_serve). Pillow refuses truncated files too.
    if (std::uint64_t(w) * std::uint64_t(h) > 128 * std::uint64_t(size))
        throw error(name + ": truncated image (" + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels cannot come from " + std::to_string(size) + " bytes)");
    // Native channels, converted by to_rgb: stb's own channel conversion has
    // had buffer overruns (16-bit PNM, found by fuzzing Debian's libstb 2022-09).
    stb_buffer<stbi_uc> px(stbi_load_from_memory(data, len, &w, &h, &n, 0));
    if (!px) throw error(name + ": corrupt or truncated image (stb_image: " + stb_reason() + ")");
    if (n < 1 || n > 4) throw error(name + ": image has " + std::to_string(n) + " channels");
    return to_rgb(px.get(), w, h, n);
}

inline image decode_png(const std::uint8_t* data, std::size_t size, const std::string& name, const image_limits& limits) {
    if (size < 33 || std::memcmp(data + 12, "IHDR", 4) != 0)
        throw error(name + ": truncated or corrupt PNG (no complete IHDR chunk)");
    const auto be32 = [&](std::size_t o) {
        return (std::uint32_t(data[o]) << 24) | (std::uint32_t(data[o + 1]) << 16) | (std::uint32_t(data[o + 2]) << 8) | data[o + 3];
    };
    // Pillow checks the size from IHDR at open time; so do we, before stb allocates anything.
    check_pixel_limit(name, be32(16), be32(20), limits);
    const int depth = data[24], color_type = data[25];

    const png_scan scan = scan_png(data, size);
    if (scan.truncated) throw error(name + ": truncated PNG (image file is truncated: a chunk runs past the end of the data)");
    // Pillow stops at the end of the image data and does not need IEND; stb does.
    std::vector<std::uint8_t> patched;
    if (!scan.has_iend) {
        static const std::uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
        patched.reserve(size + sizeof iend);
        patched.assign(data, data + size);
        patched.insert(patched.end(), iend, iend + sizeof iend);
        data = patched.data();
        size = patched.size();
    }
    const int len = stb_length(name, size);

    // Native channel counts throughout: the conversions are ours (to_rgb).
    int w = 0, h = 0, n = 0;
    image img;
    if (depth == 16 && color_type == 0) {
        // Pillow opens 16-bit gray as mode "I;16"; convert("RGB") clips each
        // value to 255 (Convert.c I16_RGB), it does not scale it down.
        stb_buffer<stbi_us> px(stbi_load_16_from_memory(data, len, &w, &h, &n, 0));
        if (!px) throw error(name + ": corrupt or truncated PNG (stb_image: " + stb_reason() + ")");
        if (n < 1 || n > 2) throw error(name + ": 16-bit gray PNG decoded to " + std::to_string(n) + " channels");
        std::vector<std::uint8_t> gray(std::size_t(w) * std::size_t(h));
        for (std::size_t i = 0; i < gray.size(); ++i) {
            const stbi_us v = px.get()[i * std::size_t(n)];  // a tRNS chunk adds an alpha channel: skipped
            gray[i] = std::uint8_t(v > 255 ? 255 : v);
        }
        img = to_rgb(gray.data(), w, h, 1);
    } else {
        // Other 16-bit PNGs (RGB, RGBA, gray+alpha) Pillow unpacks by keeping
        // the high byte of each sample, as stb's 16-to-8 conversion does.
        // Palette images are looked up; tRNS and alpha are dropped.
        stb_buffer<stbi_uc> px(stbi_load_from_memory(data, len, &w, &h, &n, 0));
        if (!px) throw error(name + ": corrupt or truncated PNG (stb_image: " + stb_reason() + ")");
        if (n < 1 || n > 4) throw error(name + ": PNG decoded to " + std::to_string(n) + " channels");
        img = to_rgb(px.get(), w, h, n);
    }
    apply_orientation(img, png_orientation(scan));
    return img;
}

inline image decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name, const image_limits& limits) {
    image img;
#ifdef VIT_HAVE_LIBJPEG
    libjpeg_decoder dec(data, size, name);
    check_pixel_limit(name, std::uint64_t(dec.width()), std::uint64_t(dec.height()), limits);
    const std::vector<std::uint8_t> px = dec.decode();
    if (dec.components() == 4) img = inverted_cmyk_to_rgb(px.data(), dec.width(), dec.height());
    else img = to_rgb(px.data(), dec.width(), dec.height(), dec.components());
#else
    const int len = stb_length(name, size);
    // Before stbi_info too: it parses the tables in front of the frame header.
    if (!jpeg_huffman_tables_sane(data, size)) throw error(name + ": corrupt JPEG (a Huffman table defines more than 256 codes)");
    int w = 0, h = 0, n = 0;
    if (!stbi_info_from_memory(data, len, &w, &h, &n)) throw error(name + ": not a readable JPEG (stb_image: " + stb_reason() + ")");
    check_pixel_limit(name, std::uint64_t(w), std::uint64_t(h), limits);
    if (!jpeg_reaches_eoi(data, size)) throw error(name + ": truncated JPEG (image file is truncated: no end-of-image marker)");
    stb_buffer<stbi_uc> px(stbi_load_from_memory(data, len, &w, &h, &n, 0));
    if (!px) throw error(name + ": corrupt JPEG (stb_image: " + stb_reason() + ")");
    if (n < 1 || n > 4) throw error(name + ": JPEG decoded to " + std::to_string(n) + " channels");
    img = to_rgb(px.get(), w, h, n);
#endif
    apply_orientation(img, jpeg_orientation(data, size));
    return img;
}

}  // namespace vit::detail
