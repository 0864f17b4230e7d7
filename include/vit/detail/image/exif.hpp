// The EXIF orientation that Pillow's ImageOps.exif_transpose acts on.
//
// exif_transpose reads `Image.getexif().get(0x0112, 1)`. What getexif sees
// depends on the container:
//  - JPEG: APP1 segments starting "Exif\0\0" (the first one, with the payload
//    of later ones appended), else the `tiff:Orientation` of the last XMP APP1;
//  - PNG: the last eXIf chunk, else a "Raw profile type exif" text chunk, and
//    if the orientation tag is still absent the "XML:com.adobe.xmp" text chunk.
// Other formats carry no orientation for Pillow. All parsing is bounds-checked:
// a malformed block yields "no orientation", never a read past the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <stb_image.h>

namespace vit::detail {

class byte_reader {
public:
    byte_reader(const std::uint8_t* data, std::size_t size, bool big_endian)
        : data_(data), size_(size), big_(big_endian) {}
    bool has(std::size_t off, std::size_t n) const { return off <= size_ && n <= size_ - off; }
    std::uint64_t uint(std::size_t off, std::size_t n) const {  // caller checked has(off, n)
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint64_t b = data_[off + (big_ ? i : n - 1 - i)];
            v = (v << 8) | b;
        }
        return v;
    }
    std::size_t size() const { return size_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    bool big_;
};

// The orientation tag as Pillow's TIFF directory reader would hand it to
// exif_transpose: absent, or present with a value that may or may not be one
// of the integers 1..8 (Python compares 6.0 or Fraction(12, 2) equal to 6).
struct orientation_tag {
    bool present = false;
    std::optional<long long> value;  // empty: present but not an integer (text, bytes, 6.5, x/0)
};

// Reads tag 0x0112 from IFD0 of a TIFF structure ("II*\0" or "MM\0*" header).
inline orientation_tag tiff_orientation(const std::uint8_t* data, std::size_t size) {
    orientation_tag result;
    if (size < 8) return result;
    bool big;
    if (data[0] == 'I' && data[1] == 'I') big = false;
    else if (data[0] == 'M' && data[1] == 'M') big = true;
    else return result;
    const byte_reader r(data, size, big);
    const std::uint64_t magic = r.uint(2, 2);
    if (magic != 42 && magic != 0x2A00) return result;  // 0x2B is BigTIFF, which Pillow's Exif cannot read either
    const std::uint64_t ifd = r.uint(4, 4);
    if (!r.has(std::size_t(ifd), 2)) return result;
    const std::size_t count = std::size_t(r.uint(std::size_t(ifd), 2));
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t e = std::size_t(ifd) + 2 + 12 * i;
        if (!r.has(e, 12)) break;  // Pillow keeps the entries read before a truncation
        if (r.uint(e, 2) != 0x0112) continue;
        const unsigned type = unsigned(r.uint(e + 2, 2));
        const std::uint64_t n = r.uint(e + 4, 4);
        std::size_t unit = 0;
        switch (type) {
            case 1: case 2: case 6: case 7: unit = 1; break;
            case 3: case 8: unit = 2; break;
            case 4: case 9: case 11: case 13: unit = 4; break;
            case 5: case 10: case 12: case 16: case 17: case 18: unit = 8; break;
            default: continue;  // unknown type: Pillow skips the entry
        }
        if (n == 0) continue;  // no data: skipped
        if (n > std::numeric_limits<std::uint32_t>::max() / unit) continue;
        const std::size_t bytes = std::size_t(n) * unit;
        std::size_t at = e + 8;
        if (bytes > 4) {
            at = std::size_t(r.uint(e + 8, 4));
            if (!r.has(at, bytes)) continue;  // data past the end: skipped with a warning
        }
        // A later duplicate replaces an earlier one, as in Pillow's dict.
        result.present = true;
        result.value.reset();
        // Only the first value counts: the tag is specified with length 1.
        switch (type) {
            case 3: result.value = (long long)r.uint(at, 2); break;
            case 4: result.value = (long long)r.uint(at, 4); break;
            case 16: {
                const std::uint64_t v = r.uint(at, 8);
                if (v <= std::uint64_t(std::numeric_limits<long long>::max())) result.value = (long long)v;
                break;
            }
            case 6: result.value = (long long)std::int8_t(r.uint(at, 1)); break;
            case 8: result.value = (long long)std::int16_t(r.uint(at, 2)); break;
            case 9: result.value = (long long)std::int32_t(r.uint(at, 4)); break;
            case 17: result.value = (long long)std::int64_t(r.uint(at, 8)); break;
            case 5: case 10: {
                long long num = (long long)r.uint(at, 4), den = (long long)r.uint(at + 4, 4);
                if (type == 10) { num = std::int32_t(num); den = std::int32_t(den); }
                if (den != 0 && num % den == 0) result.value = num / den;
                break;
            }
            case 11: case 12: {
                double v;
                if (type == 11) {
                    const std::uint32_t bits = std::uint32_t(r.uint(at, 4));
                    float f;
                    std::memcpy(&f, &bits, 4);
                    v = f;
                } else {
                    const std::uint64_t bits = r.uint(at, 8);
                    std::memcpy(&v, &bits, 8);
                }
                if (v >= -1e18 && v <= 1e18 && v == double((long long)v)) result.value = (long long)v;
                break;
            }
            default: break;  // BYTE, ASCII and UNDEFINED come back as bytes/str; IFDs as offsets
        }
    }
    return result;
}

// An EXIF block as Pillow's Exif.load takes it: any "Exif\0\0" prefixes, then TIFF.
inline orientation_tag exif_block_orientation(const std::uint8_t* data, std::size_t size) {
    while (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
        data += 6;
        size -= 6;
    }
    return tiff_orientation(data, size);
}

// re.search(r'tiff:Orientation(="|>)([0-9])', xmp)
inline std::optional<long long> xmp_orientation(const std::string& xmp) {
    static constexpr char key[] = "tiff:Orientation";
    const std::size_t klen = sizeof(key) - 1;
    for (std::size_t at = xmp.find(key); at != std::string::npos; at = xmp.find(key, at + 1)) {
        const std::size_t p = at + klen;
        auto digit = [&](std::size_t i) { return i < xmp.size() && xmp[i] >= '0' && xmp[i] <= '9'; };
        if (p + 1 < xmp.size() && xmp[p] == '=' && xmp[p + 1] == '"' && digit(p + 2)) return xmp[p + 2] - '0';
        if (p < xmp.size() && xmp[p] == '>' && digit(p + 1)) return xmp[p + 1] - '0';
    }
    return std::nullopt;
}

// The orientation value exif_transpose sees, from the pieces of metadata found.
inline long long resolve_orientation(const std::optional<std::vector<std::uint8_t>>& exif, const std::optional<std::string>& xmp) {
    orientation_tag tag;
    if (exif) tag = exif_block_orientation(exif->data(), exif->size());
    if (tag.present) return tag.value.value_or(0);
    if (xmp) return xmp_orientation(*xmp).value_or(1);
    return 1;
}

// JPEG: walks the marker segments before the first SOS, as Pillow's parser does.
inline long long jpeg_orientation(const std::uint8_t* data, std::size_t size) {
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) return 1;
    std::optional<std::vector<std::uint8_t>> exif;
    std::optional<std::string> xmp;
    static constexpr char xmp_id[] = "http://ns.adobe.com/xap/1.0/";  // followed by a NUL
    std::size_t pos = 2;
    while (pos < size) {
        if (data[pos] != 0xFF) { ++pos; continue; }  // junk between segments
        while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
        if (pos >= size) break;
        const std::uint8_t m = data[pos++];
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length field
        if (m == 0xD9 || m == 0xDA) break;  // end of image, or the entropy-coded data begins
        if (pos + 2 > size) break;
        const std::size_t len = (std::size_t(data[pos]) << 8) | data[pos + 1];
        if (len < 2 || pos + len > size) break;
        const std::uint8_t* seg = data + pos + 2;
        const std::size_t n = len - 2;
        if (m == 0xE1) {
            if (n >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
                if (!exif) exif.emplace(seg, seg + n);
                else exif->insert(exif->end(), seg + 6, seg + n);
            } else if (n >= sizeof(xmp_id) && std::memcmp(seg, xmp_id, sizeof(xmp_id)) == 0) {
                xmp = std::string(reinterpret_cast<const char*>(seg) + sizeof(xmp_id), n - sizeof(xmp_id));
            }
        }
        pos += len;
    }
    return resolve_orientation(exif, xmp);
}

struct png_scan {
    bool truncated = false;  // a chunk runs past the end of the data
    bool has_iend = false;
    std::optional<std::vector<std::uint8_t>> exif;
    std::optional<std::string> xmp;
    std::optional<std::string> raw_exif_profile;  // "Raw profile type exif" text
};

// zlib stream to bytes, refusing what Pillow refuses (over 1 MiB of text).
inline std::optional<std::string> inflate_text(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t(std::numeric_limits<int>::max())) return std::nullopt;
    int out_len = 0;
    char* out = stbi_zlib_decode_malloc(reinterpret_cast<const char*>(data), int(size), &out_len);
    if (!out) return std::nullopt;
    std::optional<std::string> text;
    if (out_len >= 0 && out_len <= (1 << 20)) text.emplace(out, std::size_t(out_len));
    stbi_image_free(out);
    return text;
}

inline png_scan scan_png(const std::uint8_t* data, std::size_t size) {
    png_scan s;
    std::size_t pos = 8;
    while (pos < size) {
        if (size - pos < 12) { s.truncated = true; break; }
        const std::size_t len = (std::size_t(data[pos]) << 24) | (std::size_t(data[pos + 1]) << 16) |
                                (std::size_t(data[pos + 2]) << 8) | data[pos + 3];
        const std::uint8_t* type = data + pos + 4;
        if (len > size - pos - 12) { s.truncated = true; break; }
        const std::uint8_t* body = data + pos + 8;
        const auto is = [&](const char* t) { return std::memcmp(type, t, 4) == 0; };
        if (is("IEND")) { s.has_iend = true; break; }
        if (is("eXIf")) {
            s.exif.emplace();
            s.exif->assign({'E', 'x', 'i', 'f', 0, 0});
            s.exif->insert(s.exif->end(), body, body + len);
        } else if (is("tEXt") || is("zTXt") || is("iTXt")) {
            const std::uint8_t* nul = static_cast<const std::uint8_t*>(std::memchr(body, 0, len));
            if (nul) {
                const std::string key(reinterpret_cast<const char*>(body), std::size_t(nul - body));
                const std::uint8_t* rest = nul + 1;
                const std::size_t rest_n = len - std::size_t(rest - body);
                std::optional<std::string> text;
                if (is("tEXt")) {
                    text.emplace(reinterpret_cast<const char*>(rest), rest_n);
                } else if (is("zTXt")) {
                    if (rest_n >= 1 && rest[0] == 0) text = inflate_text(rest + 1, rest_n - 1);
                } else if (rest_n >= 2) {  // iTXt: flag, method, language\0, translated key\0, text
                    const std::uint8_t flag = rest[0], method = rest[1];
                    const std::uint8_t* p = rest + 2;
                    const std::uint8_t* end = rest + rest_n;
                    const std::uint8_t* lang_end = static_cast<const std::uint8_t*>(std::memchr(p, 0, std::size_t(end - p)));
                    const std::uint8_t* tk_end =
                        lang_end ? static_cast<const std::uint8_t*>(std::memchr(lang_end + 1, 0, std::size_t(end - lang_end - 1))) : nullptr;
                    if (tk_end) {
                        const std::uint8_t* v = tk_end + 1;
                        if (flag == 0) text.emplace(reinterpret_cast<const char*>(v), std::size_t(end - v));
                        else if (method == 0) text = inflate_text(v, std::size_t(end - v));
                    }
                }
                if (text) {
                    if (key == "XML:com.adobe.xmp") s.xmp = std::move(text);
                    else if (key == "Raw profile type exif") s.raw_exif_profile = std::move(text);
                }
            }
        }
        pos += 12 + len;
    }
    return s;
}

// bytes.fromhex("".join(text.split("\n")[3:])): ImageMagick's hex dump of an EXIF block.
inline std::optional<std::vector<std::uint8_t>> raw_profile_bytes(const std::string& text) {
    std::size_t pos = 0;
    for (int line = 0; line < 3; ++line) {
        pos = text.find('\n', pos);
        if (pos == std::string::npos) return std::vector<std::uint8_t>{};
        ++pos;
    }
    std::vector<std::uint8_t> out;
    int hi = -1;
    for (std::size_t i = pos; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') continue;
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            if (hi >= 0) return std::nullopt;  // fromhex allows spaces only between byte pairs
            continue;
        } else return std::nullopt;
        if (hi < 0) hi = v;
        else { out.push_back(std::uint8_t(hi * 16 + v)); hi = -1; }
    }
    if (hi >= 0) return std::nullopt;
    return out;
}

inline long long png_orientation(const png_scan& s) {
    std::optional<std::vector<std::uint8_t>> exif = s.exif;
    if (!exif && s.raw_exif_profile) exif = raw_profile_bytes(*s.raw_exif_profile);
    return resolve_orientation(exif, s.xmp);
}

}  // namespace vit::detail
