// UTF-8 to code points and back, strict: the tokenizers refuse what Python
// and the Rust `tokenizers` crate could not hold in a str.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../../error.hpp"

namespace vit::detail::text {

[[noreturn]] inline void utf8_fail(const std::string& what, const unsigned char* p, std::size_t at,
                                   const char* why) {
    static const char hex[] = "0123456789abcdef";
    const std::string b = std::string("0x") + hex[p[at] >> 4] + hex[p[at] & 15];
    throw error(what + ": not valid UTF-8: " + why + " (byte " + b + " at offset " + std::to_string(at) + ")");
}

// Decodes `s`, throwing vit::error "`what`: not valid UTF-8: ..." at the first
// bad sequence (stray continuation byte, truncated sequence, overlong form,
// surrogate, or a value past U+10FFFF).
inline std::u32string decode_utf8(const std::string& s, const std::string& what) {
    std::u32string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    auto fail = [&](std::size_t at, const char* why) { utf8_fail(what, p, at, why); };
    for (std::size_t i = 0; i < n;) {
        const unsigned c = p[i];
        if (c < 0x80) {
            out.push_back(c);
            ++i;
            continue;
        }
        std::size_t len = 0;
        char32_t cp = 0, min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            fail(i, (c & 0xC0) == 0x80 ? "unexpected continuation byte" : "invalid lead byte");
        }
        if (i + len > n) fail(i, "sequence cut short by the end of the text");
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) fail(i + k, "expected a continuation byte");
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min) fail(i, "overlong encoding");
        if (cp >= 0xD800 && cp <= 0xDFFF) fail(i, "UTF-16 surrogate");
        if (cp > 0x10FFFF) fail(i, "code point past U+10FFFF");
        out.push_back(cp);
        i += len;
    }
    return out;
}

inline void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(char(c));
    } else if (c < 0x800) {
        out.push_back(char(0xC0 | (c >> 6)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(char(0xE0 | (c >> 12)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (c >> 18)));
        out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    }
}

inline std::string encode_utf8(const char32_t* b, const char32_t* e) {
    std::string out;
    out.reserve(std::size_t(e - b));
    for (; b != e; ++b) append_utf8(out, *b);
    return out;
}

inline std::string encode_utf8(const std::u32string& s) { return encode_utf8(s.data(), s.data() + s.size()); }

inline bool is_ascii(const std::string& s) {
    for (const char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

}  // namespace vit::detail::text
