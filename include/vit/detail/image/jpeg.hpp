// JPEG decoding as Pillow does it: libjpeg(-turbo) with its default settings
// (JDCT_ISLOW integer IDCT, fancy chroma upsampling), when VIT_HAVE_LIBJPEG is
// defined; plus a structural check that tells a truncated JPEG from a whole one,
// used when stb_image decodes (stb pads missing data silently).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#ifdef VIT_HAVE_LIBJPEG
#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers
#include <memory>
#include <jpeglib.h>
#endif

#include "../../error.hpp"
#include "../escape.hpp"

namespace vit::detail {

// True when the marker structure runs to an EOI: segments by their lengths,
// entropy-coded data up to the next marker (0xFF followed by neither 0x00
// stuffing nor a restart marker). Bytes after EOI are ignored.
inline bool jpeg_reaches_eoi(const std::uint8_t* data, std::size_t size) {
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
    std::size_t pos = 2;
    bool in_scan = false;
    while (pos < size) {
        if (in_scan) {
            if (data[pos] != 0xFF) { ++pos; continue; }
            if (pos + 1 >= size) return false;
            const std::uint8_t b = data[pos + 1];
            if (b == 0x00 || (b >= 0xD0 && b <= 0xD7) || b == 0xFF) { pos += (b == 0xFF ? 1 : 2); continue; }
            in_scan = false;
            continue;  // a marker: handled below
        }
        if (data[pos] != 0xFF) { ++pos; continue; }
        while (pos < size && data[pos] == 0xFF) ++pos;
        if (pos >= size) return false;
        const std::uint8_t m = data[pos++];
        if (m == 0xD9) return true;
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;
        if (pos + 2 > size) return false;
        const std::size_t len = (std::size_t(data[pos]) << 8) | data[pos + 1];
        if (len < 2 || len > size - pos) return false;
        pos += len;
        if (m == 0xDA) in_scan = true;
    }
    return false;
}

// stb_image 2.27 builds its Huffman tables without checking that the 16 code
// counts of a DHT table add up to at most 256, and then writes past its
// arrays. Checked here, before stb sees the data, over every DHT segment
// (they may also sit between the scans of a progressive file). Like stb, a
// segment's tables are read while its declared length is not used up, even
// past the segment's end; bytes past the data read as 0, as in stb.
// libjpeg-turbo performs this check itself.
inline bool jpeg_huffman_tables_sane(const std::uint8_t* data, std::size_t size) {
    const auto at = [&](std::size_t i) -> unsigned { return i < size ? data[i] : 0u; };
    // Segments are skipped by their length; entropy-coded data byte by byte
    // (0xFF 0x00 stuffing and restart markers carry no length).
    std::size_t pos = 2;
    while (pos + 1 < size) {
        if (data[pos] != 0xFF) { ++pos; continue; }
        const std::uint8_t m = data[pos + 1];
        if (m == 0xFF) { ++pos; continue; }
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) { pos += 2; continue; }
        if (m == 0xD9) return true;
        const std::size_t len = (std::size_t(at(pos + 2)) << 8) | at(pos + 3);
        if (m == 0xC4) {
            long remaining = long(len) - 2;
            std::size_t t = pos + 4;
            while (remaining > 0) {
                std::size_t codes = 0;
                for (std::size_t i = 1; i <= 16; ++i) codes += at(t + i);
                if (codes > 256) return false;
                remaining -= long(17 + codes);
                t += 17 + codes;
            }
        }
        pos += 2 + len;
    }
    return true;
}

#ifdef VIT_HAVE_LIBJPEG

// Everything libjpeg touches lives in this one trivially destructible block,
// so that a longjmp out of libjpeg never skips a C++ destructor.
struct jpeg_session {
    struct error_mgr {
        jpeg_error_mgr pub;  // first: libjpeg sees a jpeg_error_mgr*
        std::jmp_buf jump;
        char message[JMSG_LENGTH_MAX];
    };
    struct source_mgr {
        jpeg_source_mgr pub;  // first: libjpeg sees a jpeg_source_mgr*
        const JOCTET* end;
        bool exhausted;  // libjpeg asked for bytes past the end of the data
    };
    jpeg_decompress_struct cinfo;
    error_mgr err;
    source_mgr src;
    bool created;
};

namespace jpeg_cb {

inline void error_exit(j_common_ptr cinfo) {
    auto* e = reinterpret_cast<jpeg_session::error_mgr*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->message);
    std::longjmp(e->jump, 1);
}
// Warnings (corrupt but decodable data) are ignored, as Pillow ignores them.
inline void output_message(j_common_ptr) {}
inline void init_source(j_decompress_ptr) {}
inline void term_source(j_decompress_ptr) {}

// Past the end, hand libjpeg an EOI so it can finish, and remember that it
// had to: before the last scanline that means the file is truncated (Pillow
// then raises "image file is truncated").
inline boolean fill_input_buffer(j_decompress_ptr cinfo) {
    static const JOCTET eoi[2] = {0xFF, JPEG_EOI};
    auto* s = reinterpret_cast<jpeg_session::source_mgr*>(cinfo->src);
    s->exhausted = true;
    s->pub.next_input_byte = eoi;
    s->pub.bytes_in_buffer = 2;
    return TRUE;
}

inline void skip_input_data(j_decompress_ptr cinfo, long n) {
    auto* s = reinterpret_cast<jpeg_session::source_mgr*>(cinfo->src);
    if (n <= 0) return;
    if (std::size_t(n) > s->pub.bytes_in_buffer) {
        s->pub.next_input_byte = s->end;
        s->pub.bytes_in_buffer = 0;
    } else {
        s->pub.next_input_byte += n;
        s->pub.bytes_in_buffer -= std::size_t(n);
    }
}

// The two functions below contain setjmp; they hold no objects with
// destructors and change no local variable after it.
inline bool read_header(jpeg_session* s, const std::uint8_t* data, std::size_t size) {
    s->cinfo.err = jpeg_std_error(&s->err.pub);
    s->err.pub.error_exit = error_exit;
    s->err.pub.output_message = output_message;
    if (setjmp(s->err.jump)) return false;
    jpeg_create_decompress(&s->cinfo);
    s->created = true;
    s->src.pub.init_source = init_source;
    s->src.pub.fill_input_buffer = fill_input_buffer;
    s->src.pub.skip_input_data = skip_input_data;
    s->src.pub.resync_to_restart = jpeg_resync_to_restart;
    s->src.pub.term_source = term_source;
    s->src.pub.next_input_byte = data;
    s->src.pub.bytes_in_buffer = size;
    s->src.end = data + size;
    s->src.exhausted = false;
    s->cinfo.src = &s->src.pub;
    jpeg_read_header(&s->cinfo, TRUE);
    return true;
}

// Returns 0 on success, 1 on a libjpeg error, 2 when the data ran out before the last row.
inline int decompress(jpeg_session* s, J_COLOR_SPACE out_space, JSAMPLE* out, std::size_t row_bytes) {
    if (setjmp(s->err.jump)) return 1;
    s->cinfo.out_color_space = out_space;
    s->cinfo.dct_method = JDCT_ISLOW;
    s->cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&s->cinfo);
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        JSAMPROW row = out + std::size_t(s->cinfo.output_scanline) * row_bytes;
        if (jpeg_read_scanlines(&s->cinfo, &row, 1) != 1) return 2;
        if (s->src.exhausted) return 2;
    }
    jpeg_finish_decompress(&s->cinfo);  // a missing EOI after the last row is fine, as in Pillow
    return 0;
}

}  // namespace jpeg_cb

class libjpeg_decoder {
public:
    libjpeg_decoder(const std::uint8_t* data, std::size_t size, std::string name)
        : s_(new jpeg_session()), name_(std::move(name)) {
        const bool ok = jpeg_cb::read_header(s_.get(), data, size);
        if (s_->src.exhausted)
            throw error(name_ + ": truncated JPEG (image file is truncated: the data ends inside the header)");
        if (!ok) fail("not a readable JPEG");
        const int n = s_->cinfo.num_components;
        if (n != 1 && n != 3 && n != 4)
            throw error(name_ + ": JPEG with " + std::to_string(n) + " components is not supported (Pillow handles 1, 3 or 4)");
    }
    libjpeg_decoder(const libjpeg_decoder&) = delete;
    libjpeg_decoder& operator=(const libjpeg_decoder&) = delete;

    int width() const { return int(s_->cinfo.image_width); }
    int height() const { return int(s_->cinfo.image_height); }
    int components() const { return s_->cinfo.num_components; }

    // Gray for 1 component, RGB for 3, and for 4 the CMYK samples as libjpeg
    // returns them (Adobe-inverted, Pillow's "CMYK;I").
    std::vector<std::uint8_t> decode() {
        const int n = components();
        const J_COLOR_SPACE space = n == 1 ? JCS_GRAYSCALE : n == 3 ? JCS_RGB : JCS_CMYK;
        const std::size_t row = std::size_t(width()) * std::size_t(n);
        std::vector<std::uint8_t> out(row * std::size_t(height()));
        const int rc = jpeg_cb::decompress(s_.get(), space, out.data(), row);
        if (rc == 1) fail("corrupt JPEG");
        if (rc == 2)
            throw error(name_ + ": truncated JPEG (image file is truncated: the data ends before row " +
                        std::to_string(s_->cinfo.output_scanline) + " of " + std::to_string(height()) + ")");
        return out;
    }

private:
    [[noreturn]] void fail(const char* what) {
        throw error(name_ + ": " + what + " (libjpeg: " + escape_for_message(s_->err.message) + ")");
    }
    // A member, not the destructor, releases libjpeg: it must also happen
    // when the constructor throws.
    struct session_free {
        void operator()(jpeg_session* s) const {
            if (s->created) jpeg_destroy_decompress(&s->cinfo);
            delete s;
        }
    };
    std::unique_ptr<jpeg_session, session_free> s_;
    std::string name_;
};

#endif  // VIT_HAVE_LIBJPEG

}  // namespace vit::detail
