// Binary PNM (P4, P5, P6), read as Pillow reads it (behind vit::decode_image).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../../error.hpp"
#include "../../image_types.hpp"
#include "../escape.hpp"
#include "checks.hpp"

namespace vit::detail {

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

}  // namespace vit::detail
