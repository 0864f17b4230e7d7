// GIF's first frame, decoded as Pillow decodes it (behind vit::decode_image).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../../error.hpp"
#include "../../image_types.hpp"
#include "checks.hpp"

namespace vit::detail {

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

}  // namespace vit::detail
