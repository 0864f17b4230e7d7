// The Unicode facts the tokenizers need: NFC, letter / number categories,
// lower case, and the two definitions of whitespace they use. utf8proc holds
// the tables; without it (VIT_HAVE_UTF8PROC undefined) nothing here links and
// the tokenizers refuse to load (see has_unicode_tables).
#pragma once

#include <cstdlib>
#include <string>

#include "../../error.hpp"
#include "utf8.hpp"

#ifdef VIT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

namespace vit::detail::text {

#ifdef VIT_HAVE_UTF8PROC
constexpr bool has_unicode_tables = true;
#else
constexpr bool has_unicode_tables = false;
#endif

// Unicode White_Space: what `\s` matches in the Oniguruma / Rust regexes of
// the `tokenizers` crate (U+0085 and NBSP included; U+200B, U+FEFF are not).
inline bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

// Python's str.isspace (what `\s`, strip() and split() use in transformers'
// slow tokenizers): White_Space plus the separators U+001C..U+001F.
inline bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

#ifdef VIT_HAVE_UTF8PROC

inline bool is_letter(char32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    const auto k = utf8proc_category(utf8proc_int32_t(c));
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

inline bool is_number(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    const auto k = utf8proc_category(utf8proc_int32_t(c));
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

// Full lower-case mapping of one character, as Rust's char::to_lowercase and
// Python's str.lower on a single character: the simple mapping, except U+0130
// (the one unconditional multi-character lower case of SpecialCasing.txt).
inline void append_lower(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {
        out.push_back(U'i');
        out.push_back(0x307);
    } else {
        out.push_back(char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
    }
}

// NFC of valid UTF-8 (ASCII is returned as is: it is always NFC).
inline std::string nfc(const std::string& s) {
    if (is_ascii(s)) return s;
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                            utf8proc_ssize_t(s.size()), &out,
                                            utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) throw error(std::string("text: NFC failed: ") + utf8proc_errmsg(n));
    std::string r(reinterpret_cast<const char*>(out), std::size_t(n));
    std::free(out);
    return r;
}

#else

// Never reached: the tokenizers refuse to load without the tables.
inline bool is_letter(char32_t) { return false; }
inline bool is_number(char32_t) { return false; }
inline void append_lower(std::u32string& out, char32_t c) { out.push_back(c); }
inline std::string nfc(const std::string& s) { return s; }

#endif

}  // namespace vit::detail::text
