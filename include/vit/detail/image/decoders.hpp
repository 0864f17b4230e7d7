// Image decoders behind vit::decode_image: PNG and the formats stb_image
// reads, JPEG through libjpeg-turbo when the build has it, GIF and PNM of
// our own (to match Pillow), then EXIF orientation and Pillow's convert("RGB").
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
#include "../../preprocess.hpp"
#include "../escape.hpp"
#include "exif.hpp"
#include "jpeg.hpp"
#include "resample.hpp"

namespace vit::detail {

inline void check_image(const image& img, const char* what) {
    if (img.width <= 0 || img.height <= 0 ||
        img.rgb.size() != std::size_t(img.width) * std::size_t(img.height) * 3)
        throw error(std::string(what) + ": image is empty or its pixel buffer does not match " +
                    std::to_string(img.width) + "x" + std::to_string(img.height) + "x3");
}

inline void check_pixel_limit(const std::string& name, std::uint64_t w, std::uint64_t h, const image_limits& limits) {
    if (w == 0 || h == 0) throw error(name + ": image has no pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")");
    if (w * h > limits.max_pixels)
        throw error(name + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels exceeds the limit of " +
                    std::to_string(limits.max_pixels));
}

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

// GIF, first frame, as Pillow loads it. stb_image agrees on ordinary GIFs but
// paints transparent and uncovered pixels black, where Pillow keeps the palette
// colour of their index (the transparent index, or 0, fills the canvas outside
// the frame). So GIF gets its own small decoder, which follows Pillow's
// GifImagePlugin.py and GifDecode.c in every behaviour that shows in the pixels.
class gif_reader {
public:
    gif_reader(const std::uint8_t* data, std::size_t size, const std::string& name)
        : d_(data), n_(size), name_(name) {}

    image decode(const image_limits& limits) {
        need(13);
        int canvas_w = le16(6), canvas_h = le16(8);
        const std::uint8_t screen_flags = d_[10];
        pos_ = 13;
        std::vector<std::uint8_t> global;
        if (screen_flags & 0x80) global = read_palette(screen_flags);

        int transparency = -1;
        for (;;) {  // extensions up to the first image descriptor
            if (pos_ >= n_ || d_[pos_] == ';') throw error(name_ + ": corrupt GIF (no image in the file)");
            const std::uint8_t intro = d_[pos_++];
            if (intro == '!') {
                need(1);
                const std::uint8_t label = d_[pos_++];
                const std::size_t first = sub_block();
                if (label == 0xF9 && first > 0) {
                    if (first < 4) throw error(name_ + ": corrupt GIF (short graphic control extension)");
                    if (d_[pos_ - first] & 1) transparency = d_[pos_ - first + 3];
                }
                // Pillow skips the remaining sub-blocks; for a comment it has
                // already read them, and after an empty first block it goes on
                // reading the bytes that follow as sub-blocks all the same.
                if (label != 0xFE || first > 0)
                    while (sub_block() > 0) {}
            } else if (intro == ',') {
                break;
            }  // any other byte is skipped
        }
        need(9);
        const int x0 = le16(pos_), y0 = le16(pos_ + 2), fw = le16(pos_ + 4), fh = le16(pos_ + 6);
        const std::uint8_t flags = d_[pos_ + 8];
        pos_ += 9;
        // A frame larger than the logical screen grows the canvas.
        canvas_w = std::max(canvas_w, x0 + fw);
        canvas_h = std::max(canvas_h, y0 + fh);
        check_pixel_limit(name_, std::uint64_t(canvas_w), std::uint64_t(canvas_h), limits);
        if (fw == 0 || fh == 0) throw error(name_ + ": corrupt GIF (empty frame)");
        const std::vector<std::uint8_t> palette = (flags & 0x80) ? read_palette(flags) : global;
        need(1);
        const int bits = d_[pos_++];
        if (bits > 12) throw error(name_ + ": corrupt GIF (LZW code size " + std::to_string(bits) + ")");

        std::vector<std::uint8_t> frame(std::size_t(fw) * std::size_t(fh));
        decode_lzw(bits, fw, fh, (flags & 0x40) != 0, frame);

        std::vector<std::uint8_t> index(std::size_t(canvas_w) * std::size_t(canvas_h), std::uint8_t(transparency < 0 ? 0 : transparency));
        for (int y = 0; y < fh; ++y)
            std::memcpy(&index[std::size_t(y0 + y) * std::size_t(canvas_w) + std::size_t(x0)], &frame[std::size_t(y) * std::size_t(fw)], std::size_t(fw));

        image img;
        img.width = canvas_w;
        img.height = canvas_h;
        img.rgb.resize(index.size() * 3);
        // A palette equal to the identity gray ramp is dropped by Pillow (mode
        // "L"): the index itself is the gray level, even past the palette's end.
        const bool lookup = !palette.empty() && !identity_ramp(palette);
        for (std::size_t i = 0; i < index.size(); ++i) {
            const std::size_t k = index[i];
            for (std::size_t c = 0; c < 3; ++c)
                img.rgb[i * 3 + c] = !lookup ? std::uint8_t(k) : (k * 3 + 3 <= palette.size() ? palette[k * 3 + c] : 0);
        }
        return img;
    }

private:
    [[noreturn]] void truncated() const { throw error(name_ + ": truncated GIF (image file is truncated)"); }
    void need(std::size_t k) const {
        if (pos_ > n_ || n_ - pos_ < k) truncated();
    }
    int le16(std::size_t at) const { return d_[at] | (d_[at + 1] << 8); }

    std::vector<std::uint8_t> read_palette(std::uint8_t flags) {
        const std::size_t bytes = std::size_t(3) << ((flags & 7) + 1);
        need(bytes);
        std::vector<std::uint8_t> p(d_ + pos_, d_ + pos_ + bytes);
        pos_ += bytes;
        return p;
    }
    static bool identity_ramp(const std::vector<std::uint8_t>& p) {
        for (std::size_t i = 0; i < p.size(); i += 3)
            if (p[i] != i / 3 || p[i + 1] != i / 3 || p[i + 2] != i / 3) return false;
        return true;
    }
    // Skips one data sub-block, returning its length.
    std::size_t sub_block() {
        need(1);
        const std::size_t len = d_[pos_++];
        need(len);
        pos_ += len;
        return len;
    }

    void decode_lzw(int bits, int fw, int fh, bool interlaced, std::vector<std::uint8_t>& out) {
        constexpr int table_size = 4096;
        const int clear = 1 << bits, end = clear + 1;
        int code_size = bits + 1, code_mask = (1 << code_size) - 1, next = clear + 2;
        std::vector<std::uint16_t> link(table_size);
        std::vector<std::uint8_t> suffix(table_size), string;
        string.reserve(table_size);
        bool fresh = true;  // the next code follows a clear code
        int last_code = 0;
        std::uint8_t last_first = 0;  // first index of the previous string
        std::uint32_t bitbuf = 0;
        int nbits = 0;
        std::size_t block_left = 0;

        // Interlaced rows come in passes: every 8th from 0, every 8th from 4,
        // every 4th from 2, every 2nd from 1.
        int x = 0, y = 0, step = interlaced ? 8 : 1, pass = interlaced ? 1 : 0;
        auto put = [&](std::uint8_t v) {  // false once the frame is full
            out[std::size_t(y) * std::size_t(fw) + std::size_t(x)] = v;
            if (++x < fw) return true;
            x = 0;
            y += step;
            while (y >= fh) {
                if (pass == 1) { y = 4; pass = 2; }
                else if (pass == 2) { y = 2; step = 4; pass = 3; }
                else if (pass == 3) { y = 1; step = 2; pass = 0; }
                else return false;
            }
            return true;
        };

        for (;;) {
            while (nbits < code_size) {
                if (block_left > 0) {
                    bitbuf |= std::uint32_t(d_[pos_++]) << nbits;
                    nbits += 8;
                    --block_left;
                } else {
                    // Pillow waits for a whole sub-block; a zero length is just an empty one.
                    need(1);
                    const std::size_t len = d_[pos_];
                    if (n_ - pos_ < len + 1) truncated();
                    block_left = len;
                    ++pos_;
                }
            }
            const int code = int(bitbuf & std::uint32_t(code_mask));
            bitbuf >>= code_size;
            nbits -= code_size;

            if (code == clear) {
                next = clear + 2;
                code_size = bits + 1;
                code_mask = (1 << code_size) - 1;
                fresh = true;
                continue;
            }
            // Pillow stops at a full frame and never reads the end code; reaching
            // it early leaves Pillow wanting data: "image file is truncated".
            if (code == end) throw error(name_ + ": truncated GIF (image file is truncated: the LZW data ends before the frame is full)");

            string.clear();
            if (fresh) {
                if (code > clear) throw error(name_ + ": corrupt GIF (bad LZW code after a clear code)");
                string.push_back(std::uint8_t(code));
                last_first = std::uint8_t(code);
                last_code = code;
                fresh = false;
            } else {
                if (code > next) throw error(name_ + ": corrupt GIF (LZW code beyond the table)");
                int c = code;
                if (code == next) {  // the string being defined: previous string + its first index
                    string.push_back(last_first);
                    c = last_code;
                }
                while (c >= clear) {
                    if (c >= table_size || string.size() >= std::size_t(table_size))
                        throw error(name_ + ": corrupt GIF (bad LZW chain)");
                    string.push_back(suffix[std::size_t(c)]);
                    c = link[std::size_t(c)];
                }
                string.push_back(std::uint8_t(c));
                std::reverse(string.begin(), string.end());
                last_first = std::uint8_t(c);
                if (next < table_size) {
                    suffix[std::size_t(next)] = std::uint8_t(c);
                    link[std::size_t(next)] = std::uint16_t(last_code);
                    if (next == code_mask && code_size < 12) {
                        ++code_size;
                        code_mask = (1 << code_size) - 1;
                    }
                    ++next;
                }
                last_code = code;
            }
            for (const std::uint8_t v : string)
                if (!put(v)) return;  // frame complete: the rest of the data is not read
        }
    }

    const std::uint8_t* d_;
    std::size_t n_;
    const std::string& name_;
    std::size_t pos_ = 0;
};

// Binary PNM (P4 bitmap, P5 gray, P6 RGB), as Pillow's PpmImagePlugin reads it.
// stb_image is not used: it ignores maxval (Pillow rescales to 0..255), hands
// back uninitialised pixels for a short file, overflows its buffer converting
// 16-bit samples, and accumulates header numbers in an int.
class pnm_reader {
public:
    pnm_reader(const std::uint8_t* data, std::size_t size, const std::string& name)
        : d_(data), n_(size), name_(name) {}

    image decode(const image_limits& limits) {
        // The magic runs up to the first whitespace (at most 6 bytes).
        std::string magic;
        while (pos_ < n_ && pos_ < 6 && !space(d_[pos_])) magic += char(d_[pos_++]);
        if (pos_ < n_) ++pos_;  // the whitespace after it
        if (magic == "P1" || magic == "P2" || magic == "P3")
            throw error(name_ + ": plain (ASCII) PNM " + magic + " is not supported; convert it to binary (P4, P5, P6)");
        if (magic != "P4" && magic != "P5" && magic != "P6")
            throw error(name_ + ": not an image (unknown PNM type '" + escape_for_message(magic) + "')");
        const std::uint64_t w = number("width"), h = number("height");
        check_pixel_limit(name_, w, h, limits);
        const std::size_t count = std::size_t(w) * std::size_t(h);
        image img;
        img.width = int(w);
        img.height = int(h);
        img.rgb.resize(count * 3);

        if (magic == "P4") {  // 1 = black, rows padded to whole bytes (Pillow's "1;I")
            const std::size_t row = (std::size_t(w) + 7) / 8;
            const std::uint8_t* px = pixels(row * std::size_t(h));
            for (std::size_t y = 0; y < std::size_t(h); ++y)
                for (std::size_t x = 0; x < std::size_t(w); ++x) {
                    const bool black = (px[y * row + x / 8] >> (7 - x % 8)) & 1;
                    std::memset(&img.rgb[(y * std::size_t(w) + x) * 3], black ? 0 : 255, 3);
                }
            return img;
        }
        const std::uint64_t maxval = number("maximum value");
        if (maxval == 0 || maxval > 65535)
            throw error(name_ + ": PNM maximum value " + std::to_string(maxval) + " is outside 1..65535");
        const bool rgb = magic == "P6";
        const std::size_t bands = rgb ? 3 : 1, sample_bytes = maxval < 256 ? 1 : 2;
        const std::uint8_t* px = pixels(count * bands * sample_bytes);

        // Per sample: P6 and P5 up to 255 are scaled to 0..255; P5 above 255
        // is Pillow mode "I", scaled to 0..65535 (65535 read as is) and then
        // clipped to 255 by convert("RGB"). Python's round() is half-to-even.
        const bool mode_i = !rgb && maxval > 255;
        const double out_max = mode_i ? 65535.0 : 255.0;
        const auto convert = [&](unsigned v) -> std::uint8_t {
            double r = double(v);
            if (maxval != 255 && !(mode_i && maxval == 65535)) r = std::min(out_max, round_half_even(double(v) / double(maxval) * out_max));
            return std::uint8_t(std::min(r, 255.0));
        };
        std::array<std::uint8_t, 256> lut{};  // 8-bit samples: one table lookup each
        if (sample_bytes == 1)
            for (unsigned v = 0; v < 256; ++v) lut[v] = convert(v);
        for (std::size_t i = 0; i < count; ++i)
            for (std::size_t c = 0; c < 3; ++c) {
                const std::size_t s = i * bands + (rgb ? c : 0);
                img.rgb[i * 3 + c] = sample_bytes == 1 ? lut[px[s]] : convert(unsigned(px[2 * s] << 8 | px[2 * s + 1]));
            }
        return img;
    }

private:
    static bool space(std::uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
    static double round_half_even(double x) {
        const double f = std::floor(x), frac = x - f;
        if (frac > 0.5 || (frac == 0.5 && std::fmod(f, 2.0) != 0.0)) return f + 1.0;
        return f;
    }

    // A header token: leading whitespace skipped, '#' comments dropped up to
    // the end of their line (even inside a token), ended by one whitespace byte.
    std::uint64_t number(const char* what) {
        std::string token;
        while (pos_ < n_) {
            const std::uint8_t c = d_[pos_++];
            if (space(c)) {
                if (token.empty()) continue;
                break;
            }
            if (c == '#') {
                while (pos_ < n_ && d_[pos_] != '\n' && d_[pos_] != '\r') ++pos_;
                continue;
            }
            token += char(c);
        }
        if (token.empty()) throw error(name_ + ": truncated PNM (the header ends before the " + what + ")");
        for (char c : token)
            if (c < '0' || c > '9')
                throw error(name_ + ": PNM " + what + " '" + escape_for_message(token.substr(0, 20)) + "' is not a number");
        // Pillow reads at most 10 characters per token; 10 digits are already
        // beyond every limit below, and larger would overflow.
        if (token.size() >= 10) throw error(name_ + ": PNM " + what + " has " + std::to_string(token.size()) + " digits");
        return std::stoull(token);
    }

    const std::uint8_t* pixels(std::size_t bytes) {
        if (n_ - pos_ < bytes)
            throw error(name_ + ": truncated PNM (image file is truncated: " + std::to_string(n_ - pos_) + " of " +
                        std::to_string(bytes) + " pixel bytes)");
        return d_ + pos_;
    }

    const std::uint8_t* d_;
    std::size_t n_;
    const std::string& name_;
    std::size_t pos_ = 0;
};

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

inline pil_filter to_pil(resample r) { return pil_filter(int(r)); }

}  // namespace vit::detail
