// escape_for_message: the one way file content enters an error message.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include <vit/detail/escape.hpp>

#include "helpers.hpp"

namespace {

using namespace std::string_literals;
using vit::detail::escape_for_message;

// Undoes escape_for_message on text it did not truncate.
std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        const char c = s.at(++i);
        if (c == 'n') out += '\n';
        else if (c == 'r') out += '\r';
        else if (c == 't') out += '\t';
        else if (c == '\\') out += '\\';
        else if (c == 'x') {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            FAIL("unknown escape \\" << c);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("escape_for_message: printable UTF-8 is kept as it is", "[escape]") {
    CHECK(escape_for_message("vit.embeddings.cls_token") == "vit.embeddings.cls_token");
    CHECK(escape_for_message("Ägyptische Katze") == "Ägyptische Katze");
    CHECK(escape_for_message("猫 🐈 ÿ") == "猫 🐈 ÿ");
    CHECK(escape_for_message("\xc2\xa0\xef\xbf\xbd") == "\xc2\xa0\xef\xbf\xbd");  // no-break space, U+FFFD
    CHECK(escape_for_message("") == "");
    CHECK(vit::detail::is_printable_utf8("Ägyptische Katze"));
}

TEST_CASE("escape_for_message: control characters and backslashes", "[escape]") {
    CHECK(escape_for_message("\n") == "\\n");
    CHECK(escape_for_message("a\r\tb") == "a\\r\\tb");
    CHECK(escape_for_message("a\0b"s) == "a\\x00b");
    CHECK(escape_for_message("\x1b[2J") == "\\x1b[2J");
    CHECK(escape_for_message("\x7f") == "\\x7f");
    CHECK(escape_for_message("C:\\x") == "C:\\\\x");  // so that a literal "\x41" cannot pass for an escape
    // C1 controls, line separators and bidi overrides are valid UTF-8 but not printable.
    CHECK(escape_for_message("a\xc2\x85z") == "a\\xc2\\x85z");
    CHECK(escape_for_message("\xc2\x9b" "31m") == "\\xc2\\x9b31m");
    CHECK(escape_for_message("\xe2\x80\xa8") == "\\xe2\\x80\\xa8");
    CHECK(escape_for_message("abc\xe2\x80\xae" "fed") == "abc\\xe2\\x80\\xaefed");
    CHECK(escape_for_message("\xe2\x81\xa6") == "\\xe2\\x81\\xa6");
    CHECK_FALSE(vit::detail::is_printable_utf8("a\nb"));
}

TEST_CASE("escape_for_message: bytes that are not UTF-8", "[escape]") {
    CHECK(escape_for_message("\xff") == "\\xff");
    CHECK(escape_for_message("\xff\xfe{}") == "\\xff\\xfe{}");
    CHECK(escape_for_message("a\x80z") == "a\\x80z");  // a lone continuation byte
    // Overlong forms of '/' and of U+0000.
    CHECK(escape_for_message("\xc0\xaf") == "\\xc0\\xaf");
    CHECK(escape_for_message("\xc1\xbf") == "\\xc1\\xbf");
    CHECK(escape_for_message("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");
    CHECK(escape_for_message("\xf0\x80\x80\xaf") == "\\xf0\\x80\\x80\\xaf");
    CHECK(escape_for_message("\xc0\x80") == "\\xc0\\x80");
    // Truncated sequences, at the end and before an ASCII byte.
    CHECK(escape_for_message("\xc3") == "\\xc3");
    CHECK(escape_for_message("\xe4\xb8" "a") == "\\xe4\\xb8a");
    CHECK(escape_for_message("x\xf0\x9f\x90") == "x\\xf0\\x9f\\x90");
    // A truncated sequence before a valid one keeps the valid one.
    CHECK(escape_for_message("\xe4\xb8\xc3\x84") == "\\xe4\\xb8\xc3\x84");
    // Surrogates, beyond U+10FFFF, bytes no sequence starts with.
    CHECK(escape_for_message("\xed\xa0\x80") == "\\xed\\xa0\\x80");
    CHECK(escape_for_message("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");
    CHECK(escape_for_message("\xf5\x80\x80\x80") == "\\xf5\\x80\\x80\\x80");
    CHECK(escape_for_message("\xf8\x88\x80\x80\x80") == "\\xf8\\x88\\x80\\x80\\x80");
    CHECK_FALSE(vit::detail::is_printable_utf8("\xc3"));
}

TEST_CASE("escape_for_message: long text keeps its start and its end", "[escape]") {
    const std::string exact(120, 'a');
    CHECK(escape_for_message(exact) == exact);
    const std::string s = std::string(1000, 'a') + "\xff";
    const std::string e = escape_for_message(s);
    CHECK(e == std::string(60, 'a') + "..." + std::string(59, 'a') + "\\xff");
    CHECK(escape_for_message(s, 400).size() == 400 - 1 + 3 + 4);
    // Cuts fall between characters: 2-byte "Ä" and 4-byte "🐈" stay whole.
    std::string umlauts;
    for (int i = 0; i < 300; ++i) umlauts += "Ä";
    const std::string u = escape_for_message(umlauts);
    CHECK(u.find('\\') == std::string::npos);
    CHECK(u.find("...") != std::string::npos);
    CHECK(test::first_bad_byte(u) == std::string::npos);
    std::string cats = "x";
    for (int i = 0; i < 100; ++i) cats += "🐈";
    const std::string c = escape_for_message(cats);
    CHECK(c.find('\\') == std::string::npos);
    CHECK(test::first_bad_byte(c) == std::string::npos);
    // Garbage that is all continuation bytes is escaped, truncated or not.
    const std::string g = escape_for_message(std::string(500, '\x80'));
    CHECK(g.find("...") != std::string::npos);
    CHECK(test::first_bad_byte(g) == std::string::npos);
}

TEST_CASE("escape_for_message: every short byte string comes out clean and reversible", "[escape]") {
    // All 1- and 2-byte strings, then random ones with many high bytes.
    for (unsigned a = 0; a < 256; ++a) {
        for (unsigned b = 0; b < 257; ++b) {
            std::string s(1, static_cast<char>(a));
            if (b < 256) s += static_cast<char>(b);
            const std::string e = escape_for_message(s);
            if (test::first_bad_byte(e) != std::string::npos || unescape(e) != s) {
                CAPTURE(a, b, e);
                FAIL("not clean or not reversible");
            }
        }
    }
    std::mt19937 rng(7);
    for (int n = 0; n < 20000; ++n) {
        std::string s(rng() % 12, '\0');
        for (auto& ch : s) ch = static_cast<char>(rng() % 3 ? 0x80 + rng() % 128 : rng() % 128);
        const std::string e = escape_for_message(s);
        if (test::first_bad_byte(e) != std::string::npos || unescape(e) != s) {
            CAPTURE(e);
            FAIL("not clean or not reversible");
        }
    }
}
