// Image decoding, EXIF orientation, Pillow-exact resizing and pixel_values,
// checked against transformers' / Pillow's outputs stored in tests/data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_write.h>

#include <vit/detail/io/safetensors.hpp>
#include <vit/image.hpp>

#include "tmp_dir.hpp"

namespace {

using bytes = std::vector<std::uint8_t>;

std::string data_path(const std::string& rel) { return std::string(VIT_TEST_DATA) + "/" + rel; }

std::string tmp_path(const std::string& name) { return test::tmp_dir() + "/" + name; }

bytes read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const bytes& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    REQUIRE(out);
}

void write_text(const std::string& path, const std::string& s) { write_file(path, bytes(s.begin(), s.end())); }

// The reference file is read once: every test below compares against it.
const vit::detail::tensor_store& reference() {
    static const vit::detail::tensor_store store =
        vit::detail::read_safetensors(data_path("vit-tiny-random/reference.safetensors"));
    return store;
}

vit::image reference_image(const std::string& key) {
    const auto* e = reference().find(key);
    REQUIRE(e != nullptr);
    REQUIRE(e->tensor.type == vit::detail::dtype::u8);
    REQUIRE(e->tensor.shape.size() == 3);
    REQUIRE(e->tensor.shape[2] == 3);
    vit::image img;
    img.height = int(e->tensor.shape[0]);
    img.width = int(e->tensor.shape[1]);
    img.rgb.assign(e->tensor.data, e->tensor.data + e->tensor.nbytes);
    return img;
}

// A lossless PNG decoded with stb alone (no orientation, no conversion rules of ours).
vit::image stb_png(const std::string& path) {
    int w = 0, h = 0, n = 0;
    stbi_uc* p = stbi_load(path.c_str(), &w, &h, &n, 3);
    REQUIRE(p != nullptr);
    vit::image img;
    img.width = w;
    img.height = h;
    img.rgb.assign(p, p + std::size_t(w) * std::size_t(h) * 3);
    stbi_image_free(p);
    return img;
}

struct diff_stats {
    std::size_t bytes_differing = 0;
    int max_abs = 0;
};

diff_stats compare(const vit::image& a, const vit::image& b) {
    REQUIRE(a.width == b.width);
    REQUIRE(a.height == b.height);
    REQUIRE(a.rgb.size() == b.rgb.size());
    diff_stats d;
    for (std::size_t i = 0; i < a.rgb.size(); ++i) {
        const int v = std::abs(int(a.rgb[i]) - int(b.rgb[i]));
        if (v) ++d.bytes_differing;
        d.max_abs = std::max(d.max_abs, v);
    }
    return d;
}

vit::image make_image(int w, int h, const std::vector<std::uint8_t>& rgb) {
    vit::image img;
    img.width = w;
    img.height = h;
    img.rgb = rgb;
    return img;
}

bool libjpeg_build() { return std::string(vit::jpeg_decoder()) == "libjpeg-turbo"; }

// ---- Hand-made PNG files (stored deflate blocks, real CRCs) ----

std::uint32_t crc32(const std::uint8_t* p, std::size_t n, std::uint32_t crc = 0) {
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void put_be32(bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(v >> s));
}

bytes zlib_stored(const bytes& raw) {
    bytes z = {0x78, 0x01};
    std::size_t pos = 0;
    do {
        const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
        const bool last = pos + n == raw.size();
        z.push_back(last ? 1 : 0);
        z.push_back(std::uint8_t(n));
        z.push_back(std::uint8_t(n >> 8));
        z.push_back(std::uint8_t(~n));
        z.push_back(std::uint8_t(~n >> 8));
        z.insert(z.end(), raw.begin() + std::ptrdiff_t(pos), raw.begin() + std::ptrdiff_t(pos + n));
        pos += n;
    } while (pos < raw.size());
    std::uint32_t a = 1, b = 0;
    for (auto c : raw) {
        a = (a + c) % 65521;
        b = (b + a) % 65521;
    }
    put_be32(z, (b << 16) | a);
    return z;
}

void png_chunk(bytes& png, const char* type, const bytes& body) {
    put_be32(png, std::uint32_t(body.size()));
    const std::size_t start = png.size();
    png.insert(png.end(), type, type + 4);
    png.insert(png.end(), body.begin(), body.end());
    put_be32(png, crc32(png.data() + start, png.size() - start));
}

struct png_spec {
    std::uint32_t width = 1, height = 1;
    int depth = 8, color_type = 2;
    bytes scanlines;             // raw rows, each starting with filter byte 0
    std::vector<std::pair<std::string, bytes>> before_idat, after_idat;
};

bytes make_png(const png_spec& s) {
    bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    bytes ihdr;
    put_be32(ihdr, s.width);
    put_be32(ihdr, s.height);
    ihdr.insert(ihdr.end(), {std::uint8_t(s.depth), std::uint8_t(s.color_type), 0, 0, 0});
    png_chunk(png, "IHDR", ihdr);
    for (const auto& c : s.before_idat) png_chunk(png, c.first.c_str(), c.second);
    if (!s.scanlines.empty()) png_chunk(png, "IDAT", zlib_stored(s.scanlines));
    for (const auto& c : s.after_idat) png_chunk(png, c.first.c_str(), c.second);
    png_chunk(png, "IEND", {});
    return png;
}

vit::image decode(const bytes& b, const std::string& name = "test") { return vit::decode_image(b.data(), b.size(), name); }

std::string error_of(const bytes& b, const std::string& name, const vit::image_limits& lim = {}) {
    try {
        vit::decode_image(b.data(), b.size(), name, lim);
    } catch (const vit::error& e) {
        return e.what();
    }
    return "(no error)";
}

std::string load_error(const std::string& path) {
    try {
        vit::load_image(path);
    } catch (const vit::error& e) {
        return e.what();
    }
    return "(no error)";
}

// ---- Hand-made EXIF blocks ----

// A TIFF structure whose IFD0 holds `entries` (tag, type, count, 4-byte field),
// followed by `extra` (data that fields can point at, from offset 8 + 2 + 12n + 4).
struct ifd_entry {
    std::uint16_t tag, type;
    std::uint32_t count;
    bytes field;  // 4 bytes, already in the file's byte order
};

bytes tiff(bool big, const std::vector<ifd_entry>& entries, const bytes& extra = {}) {
    bytes t;
    auto u16 = [&](std::uint16_t v) {
        if (big) t.insert(t.end(), {std::uint8_t(v >> 8), std::uint8_t(v)});
        else t.insert(t.end(), {std::uint8_t(v), std::uint8_t(v >> 8)});
    };
    auto u32 = [&](std::uint32_t v) {
        if (big) t.insert(t.end(), {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)});
        else t.insert(t.end(), {std::uint8_t(v), std::uint8_t(v >> 8), std::uint8_t(v >> 16), std::uint8_t(v >> 24)});
    };
    t.insert(t.end(), big ? std::initializer_list<std::uint8_t>{'M', 'M'} : std::initializer_list<std::uint8_t>{'I', 'I'});
    u16(42);
    u32(8);
    u16(std::uint16_t(entries.size()));
    for (const auto& e : entries) {
        u16(e.tag);
        u16(e.type);
        u32(e.count);
        t.insert(t.end(), e.field.begin(), e.field.end());
    }
    u32(0);  // no next IFD
    t.insert(t.end(), extra.begin(), extra.end());
    return t;
}

bytes short_field(bool big, std::uint16_t v) {
    return big ? bytes{std::uint8_t(v >> 8), std::uint8_t(v), 0, 0} : bytes{std::uint8_t(v), std::uint8_t(v >> 8), 0, 0};
}

// "Exif\0\0" + TIFF, as in a JPEG APP1 segment. (Built by copying into a sized
// buffer: GCC 12 -O3 warns falsely on inserting after a 6-byte initializer.)
bytes exif_block(const bytes& tiff_bytes) {
    bytes b(6 + tiff_bytes.size());
    std::memcpy(b.data(), "Exif\0\0", 6);
    std::copy(tiff_bytes.begin(), tiff_bytes.end(), b.begin() + 6);
    return b;
}

bytes orientation_exif(bool big, std::uint16_t orientation) {
    // A realistic IFD0: another tag first, then Orientation as a SHORT.
    return exif_block(tiff(big, {{0x010F, 2, 4, {'A', 'c', 'm', 0}}, {0x0112, 3, 1, short_field(big, orientation)}}));
}

// JPEG bytes with an extra APPn segment right after SOI.
bytes with_segment(const bytes& jpeg, std::uint8_t marker, const bytes& payload) {
    bytes out(jpeg.begin(), jpeg.begin() + 2);
    const std::size_t len = payload.size() + 2;
    out.insert(out.end(), {0xFF, marker, std::uint8_t(len >> 8), std::uint8_t(len)});
    out.insert(out.end(), payload.begin(), payload.end());
    out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
    return out;
}

long long jpeg_orientation_of(const std::vector<bytes>& app1_payloads) {
    bytes j = {0xFF, 0xD8};
    for (const auto& p : app1_payloads) {
        const std::size_t len = p.size() + 2;
        j.insert(j.end(), {0xFF, 0xE1, std::uint8_t(len >> 8), std::uint8_t(len)});
        j.insert(j.end(), p.begin(), p.end());
    }
    j.insert(j.end(), {0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9});
    return vit::detail::jpeg_orientation(j.data(), j.size());
}

bytes str_bytes(const std::string& s) { return bytes(s.begin(), s.end()); }

bytes cat(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// The 3x2 image  a b c / d e f,  one distinct gray level per pixel.
vit::image abc_def() {
    vit::image img;
    img.width = 3;
    img.height = 2;
    for (std::uint8_t v : {'a', 'b', 'c', 'd', 'e', 'f'}) img.rgb.insert(img.rgb.end(), {v, v, v});
    return img;
}

std::string letters(const vit::image& img) {
    std::string s;
    for (int y = 0; y < img.height; ++y) {
        if (y) s += '/';
        for (int x = 0; x < img.width; ++x) s += char(img.rgb[(std::size_t(y) * std::size_t(img.width) + std::size_t(x)) * 3]);
    }
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("image: the five fixture images resize to transformers' resized_u8 exactly", "[image]") {
    const vit::preprocess_config cfg;  // 384x384 bilinear
    for (const std::string stem : {"coco_cats", "chelsea", "camera_gray", "coffee", "tiny_7x5"}) {
        CAPTURE(stem, vit::jpeg_decoder());
        const std::string file = data_path("images/" + stem + (stem == "coffee" ? ".jpg" : ".png"));
        const vit::image prepared = vit::prepare_image(vit::load_image(file), cfg);
        const diff_stats d = compare(prepared, reference_image(stem + ".resized_u8"));
        CAPTURE(d.bytes_differing, d.max_abs);
        if (stem != "coffee" || libjpeg_build()) {
            CHECK(d.bytes_differing == 0);
        } else {
            // stb_image's JPEG decoder (measured with stb_image 2.27): 27589 of
            // 442368 bytes differ after the resize, by at most 2 levels.
            WARN("coffee.jpg decoded with stb_image: " << d.bytes_differing << " bytes differ, max " << d.max_abs);
            CHECK(d.max_abs <= 2);
            CHECK(d.bytes_differing < 442368 / 10);
        }
    }
}

TEST_CASE("image: 448 wide by 320 high matches coco_cats.resized_u8_448x320", "[image]") {
    const vit::image out = vit::resize(vit::load_image(data_path("images/coco_cats.png")), 448, 320, vit::resample::bilinear);
    CHECK(out.width == 448);
    CHECK(out.height == 320);
    CHECK(compare(out, reference_image("coco_cats.resized_u8_448x320")).bytes_differing == 0);
}

TEST_CASE("image: all six Pillow filters match Pillow's output byte for byte", "[image]") {
    const vit::image coco = vit::load_image(data_path("images/coco_cats.png"));
    const vit::image chelsea = vit::load_image(data_path("images/chelsea.png"));
    REQUIRE(chelsea.width == 451);
    REQUIRE(chelsea.height == 300);
    for (int f = 0; f < 6; ++f) {
        const auto filter = vit::resample(f);
        const std::string name = vit::resample_name(filter);
        CAPTURE(name);
        const diff_stats a = compare(vit::resize(coco, 384, 384, filter), stb_png(data_path("preprocess/coco_cats.384x384." + name + ".png")));
        CHECK(a.bytes_differing == 0);
        const diff_stats b = compare(vit::resize(chelsea, 300, 200, filter), stb_png(data_path("preprocess/chelsea.300x200." + name + ".png")));
        CHECK(b.bytes_differing == 0);
    }
}

TEST_CASE("image: a JPEG with EXIF orientation 6 is rotated before resizing, as transformers does", "[image][exif]") {
    const std::string file = data_path("preprocess/chelsea_exif6.jpg");
    int w = 0, h = 0, n = 0;
    REQUIRE(stbi_info(file.c_str(), &w, &h, &n));
    REQUIRE(w == 300);  // stored on its side
    REQUIRE(h == 451);
    const vit::image img = vit::load_image(file);
    CHECK(img.width == 451);
    CHECK(img.height == 300);
    const diff_stats d = compare(vit::prepare_image(img, {}), stb_png(data_path("preprocess/chelsea_exif6.384x384.bilinear.png")));
    CAPTURE(d.bytes_differing, d.max_abs);
    if (libjpeg_build()) {
        CHECK(d.bytes_differing == 0);
    } else {
        WARN("chelsea_exif6.jpg decoded with stb_image: " << d.bytes_differing << " bytes differ, max " << d.max_abs);
        CHECK(d.max_abs <= 3);
        CHECK(d.bytes_differing < 442368 / 10);
    }
}

TEST_CASE("image: stb_image's and libjpeg-turbo's decodes of coffee.jpg differ slightly", "[image][jpeg]") {
    // Documents why the library prefers libjpeg-turbo: measured here, stb_image
    // 2.27 differs from libjpeg-turbo (ISLOW, fancy upsampling) on about 5% of
    // the bytes of coffee.jpg, by at most 3 levels.
    const std::string file = data_path("images/coffee.jpg");
    const vit::image ours = vit::load_image(file);
    const vit::image stb = stb_png(file);  // stbi_load reads JPEG too
    const diff_stats d = compare(ours, stb);
    if (libjpeg_build()) {
        WARN("coffee.jpg, stb_image vs libjpeg-turbo: " << d.bytes_differing << " of " << ours.rgb.size()
                                                         << " bytes differ, max " << d.max_abs);
        CHECK(d.bytes_differing > 0);
        CHECK(d.max_abs <= 4);
    } else {
        CHECK(d.bytes_differing == 0);
    }
}

TEST_CASE("image: upscaling and same-size resizes", "[image]") {
    const vit::image tiny = vit::load_image(data_path("images/tiny_7x5.png"));
    REQUIRE(tiny.width == 7);
    REQUIRE(tiny.height == 5);
    // Same size: Pillow returns a copy.
    CHECK(vit::resize(tiny, 7, 5, vit::resample::lanczos).rgb == tiny.rgb);
    // One axis unchanged: only the other pass runs, so columns stay untouched.
    const vit::image wide = vit::resize(tiny, 20, 5, vit::resample::bilinear);
    CHECK(wide.width == 20);
    CHECK(wide.height == 5);
    // Nearest upscaling by an integer factor repeats pixels.
    const vit::image big = vit::resize(tiny, 14, 10, vit::resample::nearest);
    for (int y = 0; y < 10; ++y)
        for (int x = 0; x < 14; ++x)
            for (int c = 0; c < 3; ++c)
                REQUIRE(big.rgb[(std::size_t(y) * 14 + std::size_t(x)) * 3 + std::size_t(c)] ==
                        tiny.rgb[(std::size_t(y / 2) * 7 + std::size_t(x / 2)) * 3 + std::size_t(c)]);
    // A flat image stays flat under every filter, including the ones with negative lobes.
    const vit::image flat = make_image(5, 3, std::vector<std::uint8_t>(45, 200));
    for (int f = 0; f < 6; ++f) {
        const vit::image r = vit::resize(flat, 11, 7, vit::resample(f));
        CHECK(std::all_of(r.rgb.begin(), r.rgb.end(), [](std::uint8_t v) { return v == 200; }));
    }
    CHECK_THROWS_AS(vit::resize(tiny, 0, 5, vit::resample::bilinear), vit::error);
    CHECK_THROWS_AS(vit::resize(vit::image{}, 5, 5, vit::resample::bilinear), vit::error);
}

TEST_CASE("image: the eight EXIF orientations transpose as ImageOps.exif_transpose", "[image][exif]") {
    // a b c      orientation: the stored image is shown after this transform
    // d e f
    const std::map<int, std::string> expected = {
        {1, "abc/def"},       {2, "cba/fed"},       {3, "fed/cba"},       {4, "def/abc"},
        {5, "ad/be/cf"},      // transpose
        {6, "da/eb/fc"},      // rotate 90 clockwise (Pillow ROTATE_270)
        {7, "fc/eb/da"},      // transverse
        {8, "cf/be/ad"},      // rotate 90 counter-clockwise (Pillow ROTATE_90)
    };
    for (const auto& [orientation, want] : expected) {
        CAPTURE(orientation);
        vit::image img = abc_def();
        vit::detail::apply_orientation(img, orientation);
        CHECK(letters(img) == want);
    }
    vit::image img = abc_def();
    vit::detail::apply_orientation(img, 9);  // out of range: left alone, as Pillow does
    CHECK(letters(img) == "abc/def");
    vit::detail::apply_orientation(img, 0);
    CHECK(letters(img) == "abc/def");
}

TEST_CASE("image: EXIF parser reads orientation in both byte orders and rejects malformed blocks", "[image][exif]") {
    using vit::detail::jpeg_orientation;
    for (bool big : {false, true}) {
        CAPTURE(big);
        for (std::uint16_t o = 1; o <= 8; ++o) CHECK(jpeg_orientation_of({orientation_exif(big, o)}) == o);
        const auto block = exif_block;
        // LONG instead of SHORT: still an integer for Pillow.
        const bytes long6 = big ? bytes{0, 0, 0, 6} : bytes{6, 0, 0, 0};
        CHECK(jpeg_orientation_of({block(tiff(big, {{0x0112, 4, 1, long6}}))}) == 6);
        // RATIONAL 16/2 == 8, stored after the IFD (offset 8 + 2 + 12 + 4 = 26).
        const bytes off26 = big ? bytes{0, 0, 0, 26} : bytes{26, 0, 0, 0};
        const bytes sixteen_halves = big ? bytes{0, 0, 0, 16, 0, 0, 0, 2} : bytes{16, 0, 0, 0, 2, 0, 0, 0};
        CHECK(jpeg_orientation_of({block(tiff(big, {{0x0112, 5, 1, off26}}, sixteen_halves))}) == 8);
        // ASCII "6": present but not a number, so no transpose (and no XMP fallback).
        CHECK(jpeg_orientation_of({block(tiff(big, {{0x0112, 2, 2, {'6', 0, 0, 0}}}))}) == 0);
        // Value offset past the end: the entry is skipped.
        const bytes far = big ? bytes{0, 0, 0x10, 0} : bytes{0, 0x10, 0, 0};
        CHECK(jpeg_orientation_of({block(tiff(big, {{0x0112, 5, 1, far}}))}) == 1);
        // Entry count larger than the data: entries read so far count, nothing is read past the end.
        bytes truncated = block(tiff(big, {{0x0112, 3, 1, short_field(big, 3)}}));
        truncated[6 + 8 + (big ? 1 : 0)] = 40;  // claim 40 entries
        truncated.resize(truncated.size() - 4);
        CHECK(jpeg_orientation_of({truncated}) == 3);
        // IFD offset past the end.
        bytes bad_ifd = block(tiff(big, {{0x0112, 3, 1, short_field(big, 3)}}));
        bad_ifd[6 + 4 + (big ? 0 : 3)] = 0x7F;
        CHECK(jpeg_orientation_of({bad_ifd}) == 1);
    }
    // Not TIFF after the prefix, an empty block, a bare prefix.
    CHECK(jpeg_orientation_of({str_bytes(std::string("Exif\0\0XXXXXXXXXXXX", 18))}) == 1);
    CHECK(jpeg_orientation_of({str_bytes(std::string("Exif\0\0", 6))}) == 1);
    // Only the first Exif APP1 is parsed as a block (later ones are appended to it).
    CHECK(jpeg_orientation_of({orientation_exif(false, 3), orientation_exif(true, 6)}) == 3);
    // XMP is a fallback when EXIF has no orientation tag, in either of its two spellings.
    const std::string xmp_head = std::string("http://ns.adobe.com/xap/1.0/") + '\0';
    CHECK(jpeg_orientation_of({str_bytes(xmp_head + "<x tiff:Orientation=\"6\"/>")}) == 6);
    CHECK(jpeg_orientation_of({str_bytes(xmp_head + "<tiff:Orientation>8</tiff:Orientation>")}) == 8);
    CHECK(jpeg_orientation_of({orientation_exif(false, 3), str_bytes(xmp_head + "tiff:Orientation=\"6\"")}) == 3);
    // Every truncation of a valid block parses without reading out of bounds.
    const bytes full = orientation_exif(true, 7);
    for (std::size_t n = 0; n <= full.size(); ++n) {
        const vit::detail::orientation_tag t = vit::detail::exif_block_orientation(full.data(), n);
        CHECK((!t.present || t.value == 7));
    }
}

TEST_CASE("image: EXIF orientation is applied to decoded JPEG and PNG files", "[image][exif]") {
    const bytes jpeg = read_file(data_path("images/coffee.jpg"));
    const vit::image upright = decode(jpeg);
    // A small PNG, with the orientation in an eXIf chunk.
    png_spec spec;
    spec.width = 5;
    spec.height = 3;
    for (std::uint32_t y = 0; y < spec.height; ++y) {
        spec.scanlines.push_back(0);
        for (std::uint32_t x = 0; x < spec.width; ++x) spec.scanlines.insert(spec.scanlines.end(), {std::uint8_t(x * 40), std::uint8_t(y * 90), 7});
    }
    const vit::image png_upright = decode(make_png(spec));
    for (int o = 1; o <= 8; ++o) {
        CAPTURE(o);
        const bool big = o % 2 == 0;
        vit::image want = upright;
        vit::detail::apply_orientation(want, o);
        const vit::image got = decode(with_segment(jpeg, 0xE1, orientation_exif(big, std::uint16_t(o))));
        CHECK(got.width == want.width);
        CHECK(got.height == want.height);
        CHECK((got.rgb == want.rgb));  // not decomposed: Catch would print 720000 values

        png_spec s = spec;
        const bytes exif = orientation_exif(!big, std::uint16_t(o));
        s.after_idat.push_back({"eXIf", bytes(exif.begin() + 6, exif.end())});  // PNG stores it without the prefix
        vit::image png_want = png_upright;
        vit::detail::apply_orientation(png_want, o);
        const vit::image png_got = decode(make_png(s));
        CHECK(png_got.width == png_want.width);
        CHECK(png_got.rgb == png_want.rgb);
    }
    // PNG XMP in an iTXt chunk is the fallback.
    png_spec s = spec;
    s.before_idat.push_back({"iTXt", str_bytes(std::string("XML:com.adobe.xmp\0\0\0\0\0<r tiff:Orientation=\"8\"/>", 45))});
    const vit::image rotated = decode(make_png(s));
    CHECK(rotated.width == 3);
    CHECK(rotated.height == 5);
}

TEST_CASE("image: bad inputs raise vit::error naming the file and the problem", "[image][errors]") {
    const bytes png = read_file(data_path("images/coco_cats.png"));
    const bytes jpeg = read_file(data_path("images/coffee.jpg"));

    SECTION("truncated PNG") {
        const std::string p = tmp_path("cut.png");
        write_file(p, bytes(png.begin(), png.begin() + std::ptrdiff_t(png.size() / 2)));
        const std::string msg = load_error(p);
        CHECK_THAT(msg, Catch::Contains(p) && Catch::Contains("truncated PNG"));
    }
    SECTION("truncated JPEG, at any length") {
        const std::string p = tmp_path("cut.jpg");
        write_file(p, bytes(jpeg.begin(), jpeg.begin() + std::ptrdiff_t(jpeg.size() * 6 / 10)));
        CHECK_THAT(load_error(p), Catch::Contains(p) && Catch::Contains("truncated JPEG"));
        // Pillow raises "image file is truncated" whenever the data runs out
        // before the last row; only the EOI marker missing is enough.
        for (std::size_t keep : {std::size_t(3), std::size_t(100), jpeg.size() / 3, jpeg.size() - 50, jpeg.size() - 2}) {
            CAPTURE(keep);
            const std::string msg = error_of(bytes(jpeg.begin(), jpeg.begin() + std::ptrdiff_t(keep)), "x.jpg");
            CHECK_THAT(msg, Catch::StartsWith("x.jpg: ") && (Catch::Contains("truncated") || Catch::Contains("corrupt") || Catch::Contains("not")));
        }
        // Trailing bytes after EOI are fine.
        bytes padded = jpeg;
        padded.insert(padded.end(), 100, 0);
        CHECK((decode(padded).rgb == decode(jpeg).rgb));
    }
    SECTION("text file named .jpg") {
        const std::string p = tmp_path("notes.jpg");
        write_text(p, "this is not an image, just some text\n");
        CHECK_THAT(load_error(p), Catch::Contains(p) && Catch::Contains("not an image"));
    }
    SECTION("JPEG magic followed by garbage") {
        bytes junk = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 'a', 'b', 0xFF, 0xC0, 0x00, 0x03, 1, 0xFF, 0xD9};
        CHECK_THAT(error_of(junk, "j.jpg"), Catch::StartsWith("j.jpg: "));
    }
    SECTION("zero-byte file") {
        const std::string p = tmp_path("empty.png");
        write_file(p, {});
        CHECK_THAT(load_error(p), Catch::Contains(p) && Catch::Contains("empty file"));
    }
    SECTION("missing file") {
        const std::string p = tmp_path("does-not-exist.png");
        CHECK_THAT(load_error(p), Catch::Contains(p) && Catch::Contains("No such file"));
    }
    SECTION("a directory") {
        CHECK_THAT(load_error(VIT_TEST_DATA), Catch::Contains("not a regular file"));
    }
    SECTION("corrupt PNG data") {
        bytes broken = png;
        for (std::size_t i = 100; i < 400; ++i) broken[i] ^= 0x5A;
        CHECK_THAT(error_of(broken, "broken.png"), Catch::StartsWith("broken.png: "));
    }
}

TEST_CASE("image: headers claiming 100000x100000 pixels are refused before decoding", "[image][errors]") {
    // PNG: IHDR only, no pixel data at all. The limit must trip first.
    png_spec s;
    s.width = s.height = 100000;
    const bytes big_png = make_png(s);
    const std::string p = tmp_path("big.png");
    write_file(p, big_png);
    CHECK_THAT(load_error(p), Catch::Contains(p + ": 100000x100000 pixels exceeds the limit of 89478485"));

    // BMP: a 54-byte header and nothing else.
    bytes bmp = {'B', 'M'};
    auto le32 = [&](std::uint32_t v) {
        for (int i = 0; i < 4; ++i) bmp.push_back(std::uint8_t(v >> (8 * i)));
    };
    le32(54 + 100);  // file size (a lie)
    le32(0);
    le32(54);        // pixel data offset
    le32(40);        // BITMAPINFOHEADER
    le32(100000);
    le32(100000);
    bmp.insert(bmp.end(), {1, 0, 24, 0});  // planes, bits per pixel
    for (int i = 0; i < 6; ++i) le32(0);
    CHECK(error_of(bmp, "big.bmp") == "big.bmp: 100000x100000 pixels exceeds the limit of 89478485");

    // JPEG: a SOF claiming 60000x60000 (JPEG's maximum is 65535).
    const bytes jpeg = read_file(data_path("images/coffee.jpg"));
    bytes huge = jpeg;
    for (std::size_t i = 2; i + 8 < huge.size(); ++i) {
        if (huge[i] == 0xFF && huge[i + 1] == 0xC0) {
            huge[i + 5] = 0xEA; huge[i + 6] = 0x60;  // height 60000
            huge[i + 7] = 0xEA; huge[i + 8] = 0x60;  // width 60000
            break;
        }
    }
    CHECK(error_of(huge, "huge.jpg") == "huge.jpg: 60000x60000 pixels exceeds the limit of 89478485");

    // The limit is configurable; the real images pass under the default.
    vit::image_limits tight;
    tight.max_pixels = 640 * 480 - 1;
    CHECK_THAT(error_of(read_file(data_path("images/coco_cats.png")), "coco.png", tight), Catch::Contains("640x480 pixels exceeds the limit of 307199"));
    tight.max_pixels = 640 * 480;
    const bytes coco = read_file(data_path("images/coco_cats.png"));
    CHECK(vit::decode_image(coco.data(), coco.size(), "coco.png", tight).width == 640);
}

TEST_CASE("image: write_pixel_values rescales and normalises from first principles", "[image][pixels]") {
    // Two pixels: (0, 128, 255) and (10, 20, 30).
    const vit::image img = make_image(2, 1, {0, 128, 255, 10, 20, 30});
    const std::uint8_t planes[3][2] = {{0, 10}, {128, 20}, {255, 30}};

    vit::preprocess_config cfg;  // 1/255, mean = std = 0.5
    std::vector<float> f(6);
    std::vector<double> d(6);
    vit::write_pixel_values(img, cfg, f.data());
    vit::write_pixel_values(img, cfg, d.data());
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 2; ++i) {
            const double want = (planes[c][i] * (1.0 / 255) - 0.5) / 0.5;
            CHECK(d[std::size_t(c * 2 + i)] == want);
            CHECK(f[std::size_t(c * 2 + i)] == float(want));
        }
    CHECK(d[0] == -1.0);  // black
    CHECK(d[4] == 1.0);   // white

    cfg.mean = {0.485, 0.456, 0.406};
    cfg.std = {0.229, 0.224, 0.225};
    vit::write_pixel_values(img, cfg, d.data());
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 2; ++i)
            CHECK(d[std::size_t(c * 2 + i)] == (planes[c][i] * (1.0 / 255) - cfg.mean[std::size_t(c)]) / cfg.std[std::size_t(c)]);

    cfg.do_normalize = false;
    vit::write_pixel_values(img, cfg, d.data());
    CHECK(d[2] == 128 * (1.0 / 255));
    cfg.do_rescale = false;
    vit::write_pixel_values(img, cfg, d.data());
    CHECK(d == std::vector<double>{0, 10, 128, 20, 255, 30});
    cfg.do_normalize = true;  // normalising raw bytes, as transformers would with do_rescale off
    vit::write_pixel_values(img, cfg, d.data());
    CHECK(d[5] == (30 - 0.406) / 0.225);

    CHECK_THROWS_AS(vit::write_pixel_values(vit::image{}, cfg, d.data()), vit::error);
}

TEST_CASE("image: preprocessor_config.json parsing", "[image][config]") {
    auto dir_with = [](const std::string& name, const std::string& json) {
        const std::string dir = tmp_path("cfg_" + name);
        std::filesystem::create_directories(dir);
        write_text(dir + "/preprocessor_config.json", json);
        return dir;
    };
    SECTION("the fixture checkpoint") {
        const vit::preprocess_config c = vit::load_preprocess_config(data_path("vit-tiny-random/model"));
        CHECK(c.width == 384);
        CHECK(c.height == 384);
        CHECK(c.filter == vit::resample::bilinear);
        CHECK(c.rescale_factor == 1.0 / 255);
        CHECK(c.mean == std::array<double, 3>{0.5, 0.5, 0.5});
    }
    SECTION("absent file gives google/vit-large-patch32-384's settings") {
        const std::string dir = tmp_path("cfg_absent");
        std::filesystem::create_directories(dir);
        std::filesystem::remove(dir + "/preprocessor_config.json");
        const vit::preprocess_config c = vit::load_preprocess_config(dir);
        CHECK(c.do_resize);
        CHECK(c.width == 384);
        CHECK(c.height == 384);
        CHECK(c.filter == vit::resample::bilinear);
        CHECK(c.do_rescale);
        CHECK(c.rescale_factor == 1.0 / 255);
        CHECK(c.do_normalize);
        CHECK(c.std == std::array<double, 3>{0.5, 0.5, 0.5});
    }
    SECTION("int size, ImageNet statistics, other filter") {
        const vit::preprocess_config c = vit::load_preprocess_config(dir_with("int",
            R"({"size": 224, "resample": 3, "do_normalize": true, "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225], "rescale_factor": 0.5, "do_rescale": false,
                "feature_extractor_type": "ViTFeatureExtractor"})"));
        CHECK(c.width == 224);
        CHECK(c.height == 224);
        CHECK(c.filter == vit::resample::bicubic);
        CHECK(c.mean == std::array<double, 3>{0.485, 0.456, 0.406});
        CHECK(c.std == std::array<double, 3>{0.229, 0.224, 0.225});
        CHECK(c.rescale_factor == 0.5);
        CHECK_FALSE(c.do_rescale);
    }
    SECTION("dict sizes") {
        const vit::preprocess_config c = vit::load_preprocess_config(dir_with("dict", R"({"size": {"height": 320, "width": 448}})"));
        CHECK(c.width == 448);
        CHECK(c.height == 320);
        const vit::preprocess_config e = vit::load_preprocess_config(dir_with("edge", R"({"size": {"shortest_edge": 256}, "do_resize": false})"));
        CHECK(e.width == 256);
        CHECK(e.height == 256);
        CHECK_FALSE(e.do_resize);
        const vit::image img = make_image(2, 1, {1, 2, 3, 4, 5, 6});
        CHECK(vit::prepare_image(img, e).rgb == img.rgb);  // do_resize false: untouched
    }
    SECTION("wrong types and values name the file and the key") {
        const std::vector<std::pair<std::string, std::string>> bad = {
            {R"({"size": "big"})", "'size'"},
            {R"({"size": {"height": 0, "width": 10}})", "'size.height'"},
            {R"({"size": {"width": 10}})", "'size'"},
            {R"({"size": 384.5})", "'size'"},
            {R"({"resample": 7})", "'resample'"},
            {R"({"resample": "bilinear"})", "'resample'"},
            {R"({"do_resize": "yes"})", "'do_resize'"},
            {R"({"do_normalize": null})", "'do_normalize'"},
            {R"({"rescale_factor": "1/255"})", "'rescale_factor'"},
            {R"({"image_mean": [0.5, 0.5]})", "'image_mean'"},
            {R"({"image_std": [0.5, "x", 0.5]})", "'image_std[1]'"},
            {R"({"image_std": [0.5, 0, 0.5]})", "'image_std'"},
            {R"({"size": 224,})", "not valid JSON"},
            {R"([1, 2])", "expected a JSON object"},
        };
        int i = 0;
        for (const auto& [json, needle] : bad) {
            CAPTURE(json);
            const std::string dir = dir_with("bad" + std::to_string(i++), json);
            try {
                vit::load_preprocess_config(dir);
                FAIL("no error");
            } catch (const vit::error& e) {
                CHECK_THAT(e.what(), Catch::Contains(dir + "/preprocessor_config.json") && Catch::Contains(needle));
            }
        }
    }
}

TEST_CASE("image: formats and Pillow's convert(\"RGB\") rules", "[image][formats]") {
    // 4x3 pattern with every channel distinct.
    const int w = 4, h = 3;
    auto value = [](int x, int y, int c) { return std::uint8_t(17 * x + 61 * y + 89 * c + 3); };

    SECTION("stb_image_write PNG with 1, 2, 3 and 4 channels") {
        for (int comp : {1, 2, 3, 4}) {
            CAPTURE(comp);
            bytes px;
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x)
                    for (int c = 0; c < comp; ++c) px.push_back(value(x, y, c));
            const std::string p = tmp_path("fmt" + std::to_string(comp) + ".png");
            REQUIRE(stbi_write_png(p.c_str(), w, h, comp, px.data(), w * comp));
            const vit::image img = vit::load_image(p);
            REQUIRE(img.width == w);
            REQUIRE(img.height == h);
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x)
                    for (int c = 0; c < 3; ++c) {
                        // Gray (and gray+alpha) copied to all channels; alpha dropped, never blended.
                        const std::uint8_t want = comp <= 2 ? value(x, y, 0) : value(x, y, c);
                        REQUIRE(img.rgb[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)] == want);
                    }
        }
    }
    SECTION("BMP and TGA from stb_image_write; PNM by hand") {
        bytes rgba;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int c = 0; c < 4; ++c) rgba.push_back(c == 3 ? std::uint8_t(x * 60) : value(x, y, c));
        const std::string bmp = tmp_path("fmt.bmp"), tga = tmp_path("fmt.tga");
        REQUIRE(stbi_write_bmp(bmp.c_str(), w, h, 4, rgba.data()));
        REQUIRE(stbi_write_tga(tga.c_str(), w, h, 4, rgba.data()));
        bytes ppm = str_bytes("P6\n4 3\n255\n"), pgm = str_bytes("P5 4 3 255\n");
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                for (int c = 0; c < 3; ++c) ppm.push_back(value(x, y, c));
                pgm.push_back(value(x, y, 0));
            }
        for (const std::string& p : {bmp, tga}) {
            CAPTURE(p);
            const vit::image img = vit::load_image(p);
            REQUIRE(img.width == w);
            REQUIRE(img.height == h);
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x)
                    for (int c = 0; c < 3; ++c)
                        REQUIRE(img.rgb[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)] == value(x, y, c));
        }
        const vit::image a = decode(ppm, "x.ppm"), b = decode(pgm, "x.pgm");
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int c = 0; c < 3; ++c) {
                    REQUIRE(a.rgb[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)] == value(x, y, c));
                    REQUIRE(b.rgb[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)] == value(x, y, 0));
                }
    }
    SECTION("palette PNG: indices looked up, tRNS ignored") {
        png_spec s;
        s.width = 4;
        s.color_type = 3;
        s.before_idat = {{"PLTE", {10, 20, 30, 200, 100, 0, 1, 2, 3}}, {"tRNS", {0, 128}}};
        s.scanlines = {0, 2, 0, 1, 1};
        CHECK(decode(make_png(s)).rgb == bytes{1, 2, 3, 10, 20, 30, 200, 100, 0, 200, 100, 0});
        // 2-bit packed indices.
        s.depth = 2;
        s.scanlines = {0, 0b10000110};  // indices 2, 0, 1, 2
        CHECK(decode(make_png(s)).rgb == bytes{1, 2, 3, 10, 20, 30, 200, 100, 0, 1, 2, 3});
    }
    SECTION("16-bit PNG, as Pillow converts it") {
        // Gray 16 is Pillow mode I;16: convert("RGB") clips to 255, it does not scale.
        png_spec g;
        g.width = 6;
        g.depth = 16;
        g.color_type = 0;
        g.scanlines = {0, 0, 0, 0, 100, 0, 255, 1, 0, 3, 232, 255, 255};
        CHECK(decode(make_png(g)).rgb == bytes{0, 0, 0, 100, 100, 100, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255});
        // RGB 16 / RGBA 16 / gray+alpha 16: the high byte of each sample.
        png_spec rgb;
        rgb.width = 1;
        rgb.depth = 16;
        rgb.color_type = 2;
        rgb.scanlines = {0, 0x12, 0x34, 0xAB, 0xCD, 0x00, 0xFF};
        CHECK(decode(make_png(rgb)).rgb == bytes{0x12, 0xAB, 0x00});
        png_spec rgba = rgb;
        rgba.color_type = 6;
        rgba.scanlines = {0, 0x12, 0x34, 0xAB, 0xCD, 0x00, 0xFF, 0x00, 0x01};
        CHECK(decode(make_png(rgba)).rgb == bytes{0x12, 0xAB, 0x00});
        png_spec la = rgb;
        la.color_type = 4;
        la.scanlines = {0, 0x80, 0x81, 0x00, 0x00};
        CHECK(decode(make_png(la)).rgb == bytes{0x80, 0x80, 0x80});
    }
    SECTION("low bit depths and tRNS on gray and RGB") {
        png_spec one;
        one.width = 3;
        one.depth = 1;
        one.color_type = 0;
        one.scanlines = {0, 0b10100000};
        CHECK(decode(make_png(one)).rgb == bytes{255, 255, 255, 0, 0, 0, 255, 255, 255});
        png_spec gray;
        gray.width = 2;
        gray.color_type = 0;
        gray.before_idat = {{"tRNS", {0, 7}}};
        gray.scanlines = {0, 7, 9};
        CHECK(decode(make_png(gray)).rgb == bytes{7, 7, 7, 9, 9, 9});
        png_spec rgb;
        rgb.width = 2;
        rgb.before_idat = {{"tRNS", {0, 1, 0, 2, 0, 3}}};
        rgb.scanlines = {0, 1, 2, 3, 4, 5, 6};
        CHECK(decode(make_png(rgb)).rgb == bytes{1, 2, 3, 4, 5, 6});
    }
    SECTION("a PNG without IEND decodes, as in Pillow") {
        png_spec s;
        s.width = 2;
        s.scanlines = {0, 1, 2, 3, 4, 5, 6};
        bytes png = make_png(s);
        png.resize(png.size() - 12);
        CHECK(decode(png).rgb == bytes{1, 2, 3, 4, 5, 6});
    }
    SECTION("save_png round trip") {
        const vit::image img = make_image(3, 2, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18});
        const std::string p = tmp_path("roundtrip.png");
        vit::save_png(img, p);
        const vit::image back = vit::load_image(p);
        CHECK(back.width == 3);
        CHECK(back.rgb == img.rgb);
        CHECK_THROWS_AS(vit::save_png(img, tmp_path("no/such/dir/x.png")), vit::error);
    }
}

namespace {

// A GIF LZW encoder that mirrors the decoder's code-size rule, so that any
// index stream round-trips; the table fills up and stays full (no clears)
// when the image is large enough.
bytes lzw_encode(const bytes& indices, int bits) {
    const int clear = 1 << bits;
    int size = bits + 1, decoder_next = clear + 2, next = clear + 2;
    bool first = true;
    bytes out;
    std::uint32_t buf = 0;
    int nbuf = 0;
    auto emit = [&](int code) {
        buf |= std::uint32_t(code) << nbuf;
        nbuf += size;
        while (nbuf >= 8) {
            out.push_back(std::uint8_t(buf));
            buf >>= 8;
            nbuf -= 8;
        }
        if (!first && decoder_next < 4096) {  // the decoder adds an entry after every code but the first
            if (decoder_next == (1 << size) - 1 && size < 12) ++size;
            ++decoder_next;
        }
        first = false;
    };
    std::map<std::pair<int, std::uint8_t>, int> table;
    emit(clear);
    first = true;
    int cur = -1;
    for (std::uint8_t v : indices) {
        if (cur < 0) { cur = v; continue; }
        const auto it = table.find({cur, v});
        if (it != table.end()) { cur = it->second; continue; }
        emit(cur);
        if (next < 4096) table[{cur, v}] = next++;
        cur = v;
    }
    emit(cur);
    emit(clear + 1);
    if (nbuf > 0) out.push_back(std::uint8_t(buf));
    return out;
}

struct gif_spec {
    int screen_w = 0, screen_h = 0;
    bytes global_palette, local_palette;  // 3 * 2^k bytes, or empty
    int transparency = -1;
    int x0 = 0, y0 = 0, w = 0, h = 0;
    bool interlaced = false;
    int bits = 8;
    bytes indices;  // w * h, rows top to bottom
};

std::uint8_t palette_flag_bits(const bytes& p) {
    int k = 0;
    while ((std::size_t(3) << (k + 1)) < p.size()) ++k;
    return std::uint8_t(k);
}

bytes make_gif(const gif_spec& s) {
    bytes g = str_bytes("GIF89a");
    auto le16 = [&](int v) { g.insert(g.end(), {std::uint8_t(v), std::uint8_t(v >> 8)}); };
    le16(s.screen_w);
    le16(s.screen_h);
    g.push_back(s.global_palette.empty() ? 0 : std::uint8_t(0x80 | palette_flag_bits(s.global_palette)));
    g.insert(g.end(), {0, 0});
    g.insert(g.end(), s.global_palette.begin(), s.global_palette.end());
    g.insert(g.end(), {0x21, 0xFE, 3, 'h', 'i', '!', 0});  // a comment extension, to be skipped
    if (s.transparency >= 0) g.insert(g.end(), {0x21, 0xF9, 4, 1, 0, 0, std::uint8_t(s.transparency), 0});
    g.push_back(',');
    le16(s.x0);
    le16(s.y0);
    le16(s.w);
    le16(s.h);
    std::uint8_t flags = s.interlaced ? 0x40 : 0;
    if (!s.local_palette.empty()) flags |= std::uint8_t(0x80 | palette_flag_bits(s.local_palette));
    g.push_back(flags);
    g.insert(g.end(), s.local_palette.begin(), s.local_palette.end());
    g.push_back(std::uint8_t(s.bits));
    bytes order;  // rows in file order
    if (s.interlaced) {
        for (auto [start, step] : {std::pair{0, 8}, {4, 8}, {2, 4}, {1, 2}})
            for (int y = start; y < s.h; y += step)
                order.insert(order.end(), s.indices.begin() + std::ptrdiff_t(y * s.w), s.indices.begin() + std::ptrdiff_t((y + 1) * s.w));
    } else {
        order = s.indices;
    }
    const bytes lzw = lzw_encode(order, s.bits);
    for (std::size_t i = 0; i < lzw.size(); i += 255) {
        const std::size_t n = std::min<std::size_t>(255, lzw.size() - i);
        g.push_back(std::uint8_t(n));
        g.insert(g.end(), lzw.begin() + std::ptrdiff_t(i), lzw.begin() + std::ptrdiff_t(i + n));
    }
    g.push_back(0);
    g.push_back(';');
    return g;
}

bytes random_bytes(std::size_t n, unsigned mod, std::uint32_t seed) {
    bytes b(n);
    for (auto& v : b) {
        seed = seed * 1664525u + 1013904223u;
        v = std::uint8_t((seed >> 24) % mod);
    }
    return b;
}

// Palette lookup of a full canvas, the way Pillow's convert("RGB") of mode P does it.
bytes lookup(const bytes& indices, const bytes& palette) {
    bytes out;
    for (std::uint8_t i : indices)
        for (int c = 0; c < 3; ++c) out.push_back(std::size_t(i) * 3 + 3 <= palette.size() ? palette[std::size_t(i) * 3 + std::size_t(c)] : 0);
    return out;
}

}  // namespace

TEST_CASE("image: GIF first frame, decoded as Pillow does", "[image][formats][gif]") {
    const bytes pal16 = random_bytes(48, 256, 7);
    gif_spec s;
    s.screen_w = s.w = 64;
    s.screen_h = s.h = 48;
    s.global_palette = pal16;
    s.bits = 4;
    s.indices = random_bytes(64 * 48, 16, 11);

    SECTION("an ordinary GIF: palette lookup, same as stb_image") {
        const bytes gif = make_gif(s);
        const vit::image img = decode(gif, "a.gif");
        REQUIRE(img.width == 64);
        REQUIRE(img.height == 48);
        CHECK((img.rgb == lookup(s.indices, pal16)));
        int w = 0, h = 0, n = 0;
        stbi_uc* p = stbi_load_from_memory(gif.data(), int(gif.size()), &w, &h, &n, 3);
        REQUIRE(p != nullptr);
        CHECK(std::equal(img.rgb.begin(), img.rgb.end(), p));
        stbi_image_free(p);
    }
    SECTION("interlaced, local palette, a table that fills up") {
        s.interlaced = true;
        s.local_palette = random_bytes(48, 256, 99);
        s.global_palette = bytes(12, 0);
        CHECK((decode(make_gif(s)).rgb == lookup(s.indices, s.local_palette)));
        gif_spec big = s;
        big.interlaced = false;
        big.screen_w = big.w = 150;
        big.screen_h = big.h = 120;
        big.indices = random_bytes(150 * 120, 16, 5);  // more strings than 4096 codes
        CHECK((decode(make_gif(big)).rgb == lookup(big.indices, big.local_palette)));
        for (int height : {1, 2, 3, 5, 9}) {  // interlace passes on small heights
            gif_spec t = s;
            t.screen_h = t.h = height;
            t.indices = random_bytes(std::size_t(64 * height), 16, unsigned(height));
            CHECK((decode(make_gif(t)).rgb == lookup(t.indices, t.local_palette)));
        }
    }
    SECTION("transparency and a frame smaller than the screen") {
        // Pillow keeps the palette colour of the transparent index, and fills
        // the canvas outside the frame with that index (stb_image paints black).
        gif_spec t;
        t.screen_w = 8;
        t.screen_h = 5;
        t.global_palette = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
        t.bits = 2;
        t.x0 = 2;
        t.y0 = 1;
        t.w = 4;
        t.h = 3;
        t.indices = {0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 3, 3};
        bytes canvas(40, 3);
        for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 4; ++x) canvas[std::size_t((y + 1) * 8 + x + 2)] = t.indices[std::size_t(y * 4 + x)];
        t.transparency = 3;
        CHECK(decode(make_gif(t)).rgb == lookup(canvas, t.global_palette));
        t.transparency = -1;  // no transparency: the canvas is index 0
        for (int y = 0; y < 5; ++y)
            for (int x = 0; x < 8; ++x)
                if (y < 1 || y > 3 || x < 2 || x > 5) canvas[std::size_t(y * 8 + x)] = 0;
        CHECK(decode(make_gif(t)).rgb == lookup(canvas, t.global_palette));
        // A frame reaching past the logical screen grows the canvas.
        t.screen_w = 3;
        t.screen_h = 2;
        const vit::image grown = decode(make_gif(t));
        CHECK(grown.width == 6);
        CHECK(grown.height == 4);
    }
    SECTION("gray ramps and missing palettes give the index as gray level") {
        gif_spec g;
        g.screen_w = g.w = 4;
        g.screen_h = g.h = 1;
        g.bits = 8;
        g.indices = {0, 1, 3, 200};
        g.global_palette = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3};  // identity: Pillow drops it (mode L)
        CHECK(decode(make_gif(g)).rgb == bytes{0, 0, 0, 1, 1, 1, 3, 3, 3, 200, 200, 200});
        g.global_palette.clear();
        CHECK(decode(make_gif(g)).rgb == bytes{0, 0, 0, 1, 1, 1, 3, 3, 3, 200, 200, 200});
        g.global_palette = {9, 9, 9, 1, 1, 1, 2, 2, 2, 3, 3, 3};  // a real palette: indices past its end are black
        CHECK(decode(make_gif(g)).rgb == bytes{9, 9, 9, 1, 1, 1, 3, 3, 3, 0, 0, 0});
    }
    SECTION("truncated and corrupt GIFs") {
        const bytes gif = make_gif(s);
        for (std::size_t keep : {std::size_t(6), std::size_t(13), std::size_t(40), gif.size() / 2, gif.size() - 3}) {
            CAPTURE(keep);
            CHECK_THAT(error_of(bytes(gif.begin(), gif.begin() + std::ptrdiff_t(keep)), "t.gif"), Catch::StartsWith("t.gif: truncated GIF"));
        }
        gif_spec few = s;
        few.indices.resize(100);  // LZW data ends early with an end code
        few.h = few.screen_h;
        CHECK_THAT(error_of(make_gif(few), "few.gif"), Catch::Contains("truncated GIF"));
        bytes bad = gif;
        bad[bad.size() / 2] ^= 0xFF;  // flips codes: either a bad code or a still-complete but different frame
        const std::string msg = error_of(bad, "bad.gif");
        CHECK((msg == "(no error)" || msg.rfind("bad.gif: ", 0) == 0));
        gif_spec huge = s;
        huge.screen_w = huge.screen_h = 60000;
        CHECK(error_of(make_gif(huge), "huge.gif") == "huge.gif: 60000x60000 pixels exceeds the limit of 89478485");
    }
}

namespace {

bytes stb_jpeg(int w, int h, const bytes& rgb, int quality) {
    bytes out;
    const auto sink = [](void* ctx, void* data, int size) {
        auto* o = static_cast<bytes*>(ctx);
        o->insert(o->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + size);
    };
    REQUIRE(stbi_write_jpg_to_func(sink, &out, w, h, 3, rgb.data(), quality));
    return out;
}

}  // namespace

TEST_CASE("image: mutated files raise vit::error or decode, never crash", "[image][errors]") {
    bytes rgb;
    for (int i = 0; i < 24 * 16; ++i) rgb.insert(rgb.end(), {std::uint8_t(i * 7), std::uint8_t(i * 3), std::uint8_t(255 - i)});
    gif_spec g;
    g.screen_w = g.w = 24;
    g.screen_h = g.h = 16;
    g.global_palette = random_bytes(48, 256, 3);
    g.bits = 4;
    g.indices = random_bytes(24 * 16, 16, 4);
    png_spec p;
    p.width = 24;
    p.height = 16;
    for (int y = 0; y < 16; ++y) {
        p.scanlines.push_back(0);
        p.scanlines.insert(p.scanlines.end(), rgb.begin() + y * 72, rgb.begin() + (y + 1) * 72);
    }
    const bytes exif6 = orientation_exif(true, 6);
    p.after_idat.push_back({"eXIf", bytes(exif6.begin() + 6, exif6.end())});
    const std::vector<std::pair<std::string, bytes>> seeds = {
        {"m.jpg", with_segment(stb_jpeg(24, 16, rgb, 80), 0xE1, orientation_exif(false, 5))},
        {"m.png", make_png(p)},
        {"m.gif", make_gif(g)},
    };
    std::uint32_t state = 12345;
    const auto rnd = [&](std::uint32_t n) {
        state = state * 1664525u + 1013904223u;
        return (state >> 8) % n;
    };
    int decoded = 0, refused = 0;
    for (const auto& [name, seed] : seeds) {
        CAPTURE(name);
        REQUIRE(decode(seed, name).rgb.size() == 24 * 16 * 3);
        for (int i = 0; i < 300; ++i) {
            bytes b = seed;
            const int edits = 1 + int(rnd(4));
            for (int e = 0; e < edits; ++e) {
                const std::uint32_t at = rnd(std::uint32_t(b.size()));
                switch (rnd(4)) {
                    case 0: b[at] = std::uint8_t(rnd(256)); break;
                    case 1: b[at] ^= std::uint8_t(1u << rnd(8)); break;
                    case 2: b.resize(std::max<std::size_t>(at, 1)); break;
                    default: b.insert(b.begin() + std::ptrdiff_t(at), std::uint8_t(rnd(256))); break;
                }
            }
            try {
                const vit::image img = decode(b, name);
                CHECK(img.rgb.size() == std::size_t(img.width) * std::size_t(img.height) * 3);
                ++decoded;
            } catch (const vit::error& e) {
                CHECK_THAT(e.what(), Catch::StartsWith(name + ": "));
                ++refused;
            }
        }
    }
    CHECK(decoded > 0);
    CHECK(refused > 0);
}

#ifdef VIT_HAVE_LIBJPEG
namespace {

// Encodes with libjpeg itself, to make the JPEG flavours stb_image_write cannot.
bytes libjpeg_encode(int w, int h, int comps, J_COLOR_SPACE space, const bytes& px, bool progressive, int quality) {
    jpeg_compress_struct c{};
    jpeg_error_mgr err{};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = JDIMENSION(w);
    c.image_height = JDIMENSION(h);
    c.input_components = comps;
    c.in_color_space = space;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = const_cast<JSAMPLE*>(&px[std::size_t(c.next_scanline) * std::size_t(w * comps)]);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    bytes out(buf, buf + size);
    jpeg_destroy_compress(&c);
    std::free(buf);
    return out;
}

}  // namespace

TEST_CASE("image: JPEG flavours through libjpeg-turbo", "[image][jpeg]") {
    const vit::image coffee = vit::load_image(data_path("images/coffee.jpg"));
    SECTION("progressive decodes to the same pixels as baseline with the same tables") {
        const bytes base = libjpeg_encode(coffee.width, coffee.height, 3, JCS_RGB, coffee.rgb, false, 90);
        const bytes prog = libjpeg_encode(coffee.width, coffee.height, 3, JCS_RGB, coffee.rgb, true, 90);
        REQUIRE(base != prog);
        const vit::image a = decode(base), b = decode(prog);
        CHECK((a.rgb == b.rgb));
        double total = 0;  // a re-encode at quality 90 with 4:2:0 chroma: close on average
        for (std::size_t i = 0; i < a.rgb.size(); ++i) total += std::abs(int(a.rgb[i]) - int(coffee.rgb[i]));
        CHECK(total / double(a.rgb.size()) < 2.0);
        CHECK_THAT(error_of(bytes(prog.begin(), prog.begin() + std::ptrdiff_t(prog.size() * 3 / 4)), "p.jpg"),
                   Catch::StartsWith("p.jpg: truncated JPEG"));
    }
    SECTION("grayscale JPEG: the gray level copied to R, G and B") {
        bytes gray(32 * 16);
        for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = std::uint8_t(i % 32 * 8);
        const vit::image img = decode(libjpeg_encode(32, 16, 1, JCS_GRAYSCALE, gray, false, 95));
        REQUIRE(img.width == 32);
        for (std::size_t i = 0; i < gray.size(); ++i) {
            REQUIRE(img.rgb[i * 3] == img.rgb[i * 3 + 1]);
            REQUIRE(img.rgb[i * 3] == img.rgb[i * 3 + 2]);
            REQUIRE(std::abs(int(img.rgb[i * 3]) - int(gray[i])) <= 8);
        }
    }
    SECTION("CMYK JPEG: Adobe-inverted samples, Pillow's cmyk2rgb") {
        // Four flat 8x8 blocks: at quality 100 they come back exactly.
        const std::uint8_t colors[4][4] = {{255, 255, 255, 255}, {0, 255, 255, 255}, {200, 100, 50, 180}, {37, 0, 255, 0}};
        bytes px(16 * 16 * 4);
        for (int y = 0; y < 16; ++y)
            for (int x = 0; x < 16; ++x)
                for (int c = 0; c < 4; ++c) px[std::size_t((y * 16 + x) * 4 + c)] = colors[(y / 8) * 2 + x / 8][c];
        const vit::image img = decode(libjpeg_encode(16, 16, 4, JCS_CMYK, px, false, 100));
        for (int q = 0; q < 4; ++q) {
            CAPTURE(q);
            const std::uint8_t* s = colors[q];
            const int nk = s[3];  // Pillow inverts "CMYK;I": k = 255 - s[3], and nk = 255 - k
            for (int c = 0; c < 3; ++c) {
                const int t = (255 - s[c]) * nk + 128;
                const int want = nk - (((t >> 8) + t) >> 8);
                const std::size_t at = std::size_t(((q / 2) * 8 + 3) * 16 + (q % 2) * 8 + 3) * 3 + std::size_t(c);
                CHECK(int(img.rgb[at]) == want);
            }
        }
        // White and cyan, as a sanity check of the polarity.
        CHECK(img.rgb[0] == 255);
        CHECK(img.rgb[(8 + 3) * 3] == 0);
        CHECK(img.rgb[(8 + 3) * 3 + 1] == 255);
    }
}
#endif

TEST_CASE("image: binary PNM as Pillow reads it (maxval scaling, 16-bit, P4)", "[image][formats]") {
    auto gray_of = [](const vit::image& img) {
        bytes g;
        for (std::size_t i = 0; i < img.rgb.size(); i += 3) {
            REQUIRE(img.rgb[i] == img.rgb[i + 1]);
            REQUIRE(img.rgb[i] == img.rgb[i + 2]);
            g.push_back(img.rgb[i]);
        }
        return g;
    };
    // maxval 6: v/6*255 rounded half to even (Python's round): 42.5 -> 42, 127.5 -> 128.
    CHECK(gray_of(decode(cat(str_bytes("P5\n7 1\n6\n"), bytes{0, 1, 2, 3, 4, 5, 6}), "a.pgm")) == bytes{0, 42, 85, 128, 170, 212, 255});
    // Gray above 255 is Pillow mode "I" (scaled to 0..65535), clipped to 255 by convert("RGB").
    CHECK(gray_of(decode(cat(str_bytes("P5 6 1 300\n"), bytes{0, 0, 0, 1, 0, 2, 0, 100, 1, 44, 1, 144}), "b.pgm")) ==
          bytes{0, 218, 255, 255, 255, 255});
    // maxval 65535 is read as is (I;16B), then clipped.
    CHECK(gray_of(decode(cat(str_bytes("P5 5 1 65535\n"), bytes{0, 0, 0, 200, 0, 255, 1, 0, 255, 255}), "c.pgm")) ==
          bytes{0, 200, 255, 255, 255});
    // RGB with 2-byte samples is scaled to 0..255.
    CHECK(decode(cat(str_bytes("P6 2 1 1000\n"), bytes{0, 0, 0, 1, 0, 2, 1, 244, 3, 232, 4, 176}), "d.ppm").rgb ==
          bytes{0, 0, 1, 128, 255, 255});
    // Comments anywhere in the header, even right after a number: the line end closes both.
    CHECK(decode(cat(str_bytes("P6 # a comment\n2 # another\n1\n255#right after\n"), bytes{1, 2, 3, 4, 5, 6}), "e.ppm").rgb ==
          bytes{1, 2, 3, 4, 5, 6});
    // P4: 1 is black, rows padded to whole bytes.
    CHECK(gray_of(decode(cat(str_bytes("P4\n10 2\n"), bytes{0b10100000, 0b01000000, 0xFF, 0xC0}), "f.pbm")) ==
          bytes{0, 255, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    // Trailing bytes are ignored; missing ones are an error.
    CHECK(decode(cat(str_bytes("P5 2 1 255\n"), bytes{9, 8, 7}), "g.pgm").rgb == bytes{9, 9, 9, 8, 8, 8});
    CHECK_THAT(error_of(cat(str_bytes("P6 2 2 255\n"), bytes(11, 0)), "short.ppm"),
               Catch::StartsWith("short.ppm: truncated PNM (image file is truncated: 11 of 12 pixel bytes)"));
    CHECK_THAT(error_of(str_bytes("P6 2 2"), "head.ppm"), Catch::StartsWith("head.ppm: truncated PNM"));
    CHECK_THAT(error_of(str_bytes("P5 2 1 0\n\x01\x02"), "zero.pgm"), Catch::Contains("maximum value 0 is outside 1..65535"));
    CHECK_THAT(error_of(str_bytes("P5 2 1 65536\n\x01\x02"), "big.pgm"), Catch::Contains("maximum value 65536 is outside"));
    CHECK_THAT(error_of(str_bytes("P5 2 x1 255\n\x01\x02"), "nan.pgm"), Catch::Contains("nan.pgm: PNM height 'x1' is not a number"));
    CHECK_THAT(error_of(str_bytes("P5 0 4 255\n"), "empty.pgm"), Catch::Contains("empty.pgm: image has no pixels (0x4)"));
    CHECK_THAT(error_of(str_bytes("P2 1 1 255\n7\n"), "plain.pgm"), Catch::Contains("plain (ASCII) PNM P2 is not supported"));
    CHECK_THAT(error_of(str_bytes("P52 1 1 255\n7"), "odd.pgm"), Catch::Contains("odd.pgm: not an image"));
}

TEST_CASE("image: data stb_image would misread is refused before it gets there", "[image][errors]") {
    const bytes jpeg = read_file(data_path("images/coffee.jpg"));
    // Pillow wants FF D8 FF; stb skips fill bytes and takes FF D8 alone.
    bytes filled = {0xFF, 0xFF};
    filled.insert(filled.end(), jpeg.begin(), jpeg.end());
    CHECK(error_of(filled, "fill.jpg") == "fill.jpg: not an image (JPEG data must start with FF D8 FF)");
    // A DHT whose code counts add up to more than 256 (stb 2.27 writes past its tables).
    bytes dht = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 19, 0x00};
    for (int i = 0; i < 16; ++i) dht.push_back(i < 2 ? 200 : 0);
    dht.insert(dht.end(), {0xFF, 0xD9});
    CHECK_FALSE(vit::detail::jpeg_huffman_tables_sane(dht.data(), dht.size()));
    CHECK(vit::detail::jpeg_huffman_tables_sane(jpeg.data(), jpeg.size()));
    CHECK_THAT(error_of(dht, "dht.jpg"), Catch::StartsWith("dht.jpg: "));
    // Formats Pillow cannot open.
    CHECK_THAT(error_of(bytes{0x53, 0x80, 0xF6, 0x34, 0, 0, 0, 0, 0, 0, 0, 0}, "x.pic"), Catch::Contains("Softimage PIC images are not supported"));
}
