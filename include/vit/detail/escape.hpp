// Text from a file (names, values, a parser's "last read" bytes), made safe to
// quote in an error message: valid printable UTF-8 is kept as it is, every
// other byte is written as an escape, so a message is valid UTF-8 without
// control characters that a terminal or a log would act on.
#pragma once

#include <cstddef>
#include <string>

namespace vit::detail {

// The length (1 to 4) of the printable UTF-8 character at p[0..n), or 0 when
// p[0] must be escaped: a control character (C0, DEL, C1), a byte that starts
// no valid sequence (overlong, surrogate, beyond U+10FFFF, truncated), or a
// line separator or bidi control (U+2028-U+202E, U+2066-U+2069), which would
// break the message's line or reorder its text.
inline std::size_t printable_utf8_length(const unsigned char* p, std::size_t n) {
    const unsigned c = p[0];
    if (c < 0x80) return c >= 0x20 && c != 0x7f ? 1 : 0;
    std::size_t len = 0;
    unsigned cp = 0, lo = 0x80, hi = 0xbf;  // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
        if (c == 0xe0) lo = 0xa0;  // overlong below
        if (c == 0xed) hi = 0x9f;  // surrogates above
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
        if (c == 0xf0) lo = 0x90;  // overlong below
        if (c == 0xf4) hi = 0x8f;  // beyond U+10FFFF above
    } else {
        return 0;  // a continuation byte, C0/C1 (always overlong), F5-FF
    }
    if (n < len) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const unsigned b = p[k];
        if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xbfu)) return 0;
        cp = (cp << 6) | (b & 0x3fu);
    }
    if (cp < 0xa0 || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) return 0;
    return len;
}

// True when escape_for_message would show `s` unchanged (up to backslashes).
inline bool is_printable_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (std::size_t i = 0, k = 0; i < s.size(); i += k)
        if ((k = printable_utf8_length(p + i, s.size() - i)) == 0) return false;
    return true;
}

// `s` as it can be quoted in a message: printable UTF-8 as is, a backslash as
// \\, newline, carriage return and tab as \n \r \t, any other byte that is not
// printable UTF-8 as \xHH. Over max_len bytes, the middle gives way to "...":
// the start says what the text is, the end is where a parser stopped.
inline std::string escape_for_message(const std::string& s, std::size_t max_len = 120) {
    static constexpr char hex[] = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t head = s.size(), tail = s.size();
    if (s.size() > max_len) {
        head = max_len / 2;
        tail = s.size() - (max_len - head);
        // Cut between characters, not inside one.
        for (int k = 0; k < 3 && head > 0 && (p[head] & 0xc0u) == 0x80u; ++k) --head;
        for (int k = 0; k < 3 && tail < s.size() && (p[tail] & 0xc0u) == 0x80u; ++k) ++tail;
    }
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        if (i == head) {
            out += "...";
            i = tail;
            continue;
        }
        const std::size_t len = printable_utf8_length(p + i, (i < head ? head : s.size()) - i);
        if (p[i] == '\\') {
            out += "\\\\";
        } else if (len) {
            out.append(s, i, len);
            i += len;
            continue;
        } else if (p[i] == '\n') {
            out += "\\n";
        } else if (p[i] == '\r') {
            out += "\\r";
        } else if (p[i] == '\t') {
            out += "\\t";
        } else {
            out += "\\x";
            out += hex[p[i] >> 4];
            out += hex[p[i] & 15u];
        }
        ++i;
    }
    return out;
}

}  // namespace vit::detail
