// Hostile image files: headers whose dimensions or chunk lengths are out of
// proportion to the file, and formats we refuse. Each must fail with a
// vit::error naming the file, before any pixel memory is allocated.
// test_image.cpp covers truncation and ordinary damage.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <vit/detail/io/zip.hpp>  // zip_crc32: PNG uses the same CRC-32
#include <vit/image.hpp>

#include "helpers.hpp"

namespace {

using Catch::Contains;
using namespace std::string_literals;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void put_le(std::string& o, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_be(std::string& o, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) o += static_cast<char>((v >> (8 * i)) & 0xff);
}

vit::image decode(const std::string& bytes, const std::string& name) {
    return vit::decode_image(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), name);
}

std::string png_chunk(const std::string& type, const std::string& data) {
    std::string c;
    put_be(c, data.size(), 4);
    const std::string td = type + data;
    c += td;
    put_be(c, vit::detail::zip_crc32(reinterpret_cast<const unsigned char*>(td.data()), td.size()), 4);
    return c;
}

// A PNG signature and IHDR (8-bit RGB), then `rest` as is.
std::string png_header(std::uint32_t w, std::uint32_t h, const std::string& rest = "") {
    std::string ihdr;
    put_be(ihdr, w, 4);
    put_be(ihdr, h, 4);
    ihdr += std::string("\x08\x02\x00\x00\x00", 5);
    return "\x89PNG\r\n\x1a\n" + png_chunk("IHDR", ihdr) + rest;
}

}  // namespace

// =================================================================== images

TEST_CASE("hostile images: dimensions from headers", "[hostile][image]") {
    SECTION("PNG of zero width") {
        CHECK_THROWS_WITH(decode(png_header(0, 5, png_chunk("IEND", "")), "z.png"), "z.png: image has no pixels (0x5)");
    }
    SECTION("PNG of 2^32-1 squared: the product must not overflow the limit check") {
        CHECK_THROWS_WITH(decode(png_header(0xffffffffu, 0xffffffffu), "big.png"),
                          "big.png: 4294967295x4294967295 pixels exceeds the limit of 89478485");
        CHECK_THROWS_WITH(decode(png_header(0x80000000u, 1), "wide.png"),
                          "wide.png: 2147483648x1 pixels exceeds the limit of 89478485");
    }
    SECTION("GIF whose screen is 65535 squared") {
        std::string gif = "GIF89a";
        put_le(gif, 65535, 2);
        put_le(gif, 65535, 2);
        gif += std::string("\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;", 19);
        CHECK_THROWS_WITH(decode(gif, "big.gif"), "big.gif: 65535x65535 pixels exceeds the limit of 89478485");
    }
    SECTION("PNM claiming 100000 squared in a 20-byte file") {
        CHECK_THROWS_WITH(decode("P6\n100000 100000\n255\n", "big.ppm"),
                          "big.ppm: 100000x100000 pixels exceeds the limit of 89478485");
    }
    SECTION("TGA of 65535 squared") {
        std::string tga("\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00", 12);
        put_le(tga, 65535, 2);
        put_le(tga, 65535, 2);
        tga += std::string("\x18\x00", 2);
        CHECK_THROWS_WITH(decode(tga, "big.tga"), "big.tga: 65535x65535 pixels exceeds the limit of 89478485");
    }
    SECTION("BMP with a height of -2^31 (top-down)") {
        std::string bmp = "BM";
        put_le(bmp, 70, 4);
        put_le(bmp, 0, 4);
        put_le(bmp, 54, 4);
        put_le(bmp, 40, 4);
        put_le(bmp, 2, 4);
        put_le(bmp, 0x80000000u, 4);
        put_le(bmp, 1, 2);
        put_le(bmp, 24, 2);
        bmp += std::string(24, '\0') + std::string(16, '\x7f');
        CHECK_THROWS_WITH(decode(bmp, "neg.bmp"), Contains("neg.bmp: "));
    }
    SECTION("JPEG whose frame header says 0 lines") {
        std::string jpeg = slurp(test::data("images/coffee.jpg"));
        const std::size_t sof = jpeg.find("\xff\xc0");
        REQUIRE(sof != std::string::npos);
        jpeg[sof + 5] = jpeg[sof + 6] = '\0';
        CHECK_THROWS_WITH(decode(jpeg, "zero.jpg"), Contains("zero.jpg: "));
    }
}

TEST_CASE("hostile images: chunk lengths and formats we refuse", "[hostile][image]") {
    // An IDAT chunk claiming 4 GB.
    std::string huge_chunk;
    put_be(huge_chunk, 0xfffffff0u, 4);
    huge_chunk += "IDAT";
    huge_chunk += std::string(16, 'x');
    CHECK_THROWS_WITH(decode(png_header(2, 2, huge_chunk), "chunk.png"), Contains("chunk.png: truncated PNG"));
    // A PNG too short for IHDR.
    CHECK_THROWS_WITH(decode(std::string("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", 16), "short.png"),
                      "short.png: truncated or corrupt PNG (no complete IHDR chunk)");
    CHECK_THROWS_WITH(decode("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x01\x01\x01\x80", "x.hdr"),
                      "x.hdr: Radiance HDR images are not supported (Pillow cannot open them)");
    CHECK_THROWS_WITH(decode(std::string(100, '\0'), "zeros.bin"), Contains("zeros.bin: not an image"));
}

TEST_CASE("hostile images: 16-bit PNM converted to RGB stays inside its buffer", "[hostile][image]") {
    // Found by fuzz_image: stb_image's 8-bit channel conversion ran over the
    // 16-bit samples of a gray PGM with maxval 272 (ASan: heap-buffer-overflow
    // in stbi__convert_16_to_8). The decoder now asks stb for native channels.
    const std::string pgm = "P5\n3 2\n272\n" + std::string(12, '\x8d');
    const vit::image img = decode(pgm, "deep.pgm");
    CHECK(img.width == 3);
    CHECK(img.height == 2);
    CHECK(img.rgb.size() == 18);
    // 16-bit RGB, and 8-bit gray, through the same path.
    CHECK(decode("P6\n1 1\n65535\n" + std::string(6, '\xff'), "deep.ppm").rgb == std::vector<std::uint8_t>(3, 255));
    CHECK(decode("P5\n2 1\n255\n\x10\x20"s, "gray.pgm").rgb == std::vector<std::uint8_t>{16, 16, 16, 32, 32, 32});
}

TEST_CASE("hostile images: PNM header numbers beyond int", "[hostile][image]") {
    // Found by fuzz_image: stb_image accumulates them in an int (signed
    // overflow, undefined behaviour); refused before stb parses them.
    CHECK_THROWS_WITH(decode("P5\n2\n\n26666666666666666666666666666666666666666665255\n", "long.pgm"),
                      "long.pgm: PNM height has 47 digits");
    CHECK_THROWS_WITH(decode("P6 # comment\n9999999999 1 255\n", "wide.ppm"), "wide.ppm: PNM width has 10 digits");
    CHECK_THROWS_WITH(decode("P5 1 1 4294967296\n", "deep.pgm"), "deep.pgm: PNM maximum value has 10 digits");
    // Nine digits pass to stb, whose own checks (and the pixel limit) apply.
    CHECK_THROWS_WITH(decode("P6 999999999 1 255\n", "nine.ppm"), Contains("nine.ppm: "));
}

TEST_CASE("hostile images: a few bytes claiming millions of pixels are refused", "[hostile][image]") {
    // Found by fuzz_serve: a 27-byte run-length TGA of 55512x8272 pixels,
    // which stb fills from nothing, one pixel at a time.
    const std::string tga("\x50\x00\x0a\x61\x6b\x02\x50\x36\x0a\x32\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\xd8\xd8\xd8\xd8\x20\x03", 27);
    CHECK_THROWS_WITH(decode(tga, "short.tga"), Contains("short.tga: truncated image (") && Contains("27 bytes"));
    // A whole small TGA still decodes: 2x1, uncompressed, 24-bit.
    const std::string ok("\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x00\x18\x20"
                         "\x01\x02\x03\x04\x05\x06", 24);
    const vit::image img = decode(ok, "ok.tga");
    CHECK(img.width == 2);
    CHECK(img.height == 1);
    CHECK(img.rgb == std::vector<std::uint8_t>{3, 2, 1, 6, 5, 4});
}

TEST_CASE("hostile images: JPEG data behind fill bytes is not handed to stb's JPEG decoder", "[hostile][image]") {
    // Found by fuzz_image: FF FF FF FF FF D8 ... is not a JPEG to Pillow, but
    // stb_image decoded it, and its Huffman table builder wrote past
    // stbi__huffman::size[257] on a DHT whose counts add up to more than 256.
    std::string jpeg = slurp(test::data("images/coffee.jpg"));
    CHECK_THROWS_WITH(decode("\xff\xff\xff"s + jpeg, "fill.jpg"),
                      "fill.jpg: not an image (JPEG data must start with FF D8 FF)");
    CHECK_THROWS_WITH(decode("\xff\xd8\x00"s + jpeg.substr(3), "soi.jpg"),
                      "soi.jpg: not an image (JPEG data must start with FF D8 FF)");
}

TEST_CASE("hostile images: header bytes quoted in messages are escaped", "[hostile][image][escape]") {
    CHECK_THROWS_WITH(decode("P5\xff\x1b\n1 1 255\n\x00"s, "magic.pgm"), "magic.pgm: not an image (unknown PNM type 'P5\\xff\\x1b')");
    CHECK_THROWS_WITH(decode("P5\n1\xff 1 255\n\x00"s, "width.pgm"), "width.pgm: PNM width '1\\xff' is not a number");
    CHECK_THROWS_WITH(decode("P6\n1 1\x7f\xc3\xa4 255\n"s, "height.ppm"), "height.ppm: PNM height '1\\x7fä' is not a number");
}
