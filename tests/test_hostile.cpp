// Hostile inputs, hand-made: every file a model folder can hold (safetensors,
// config.json, the shard index, preprocessor_config.json, pytorch_model.bin,
// images), broken in the ways an attacker or a bad download breaks them. Each
// must fail with a vit::error that names the file and says what is wrong,
// before allocating anything that the file's own size does not justify.
//
// test_pytorch.cpp and test_image.cpp cover their formats' damage in depth;
// the cases here are the ones they do not: whole checkpoint folders, and
// headers whose numbers are out of proportion to the file. Images are in
// test_hostile_image.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <vit/config.hpp>
#include <vit/detail/io/checkpoint.hpp>
#include <vit/detail/io/pytorch.hpp>
#include <vit/detail/io/safetensors.hpp>
#include <vit/detail/io/zip.hpp>
#include <vit/image.hpp>
#include <vit/model.hpp>

#include "helpers.hpp"

// The largest single operator new while `tracking` is set: a loader that
// sizes a buffer from a config number before checking the tensors shows up
// here as one huge request (which might even succeed, thanks to overcommit).
namespace hostile_alloc {
std::atomic<bool> tracking{false};
std::atomic<std::size_t> largest{0};
}  // namespace hostile_alloc

// Every non-aligned form is replaced, so that no allocation pairs a
// sanitizer's operator new with this free (ASan reports the mismatch).
// Out of line: inlined into callers, GCC would pair this malloc with the
// caller's delete and warn about a mismatch that is not there.
__attribute__((noinline)) static void* tracked_malloc(std::size_t n) noexcept {
    if (hostile_alloc::tracking.load(std::memory_order_relaxed)) {
        std::size_t cur = hostile_alloc::largest.load(std::memory_order_relaxed);
        while (n > cur && !hostile_alloc::largest.compare_exchange_weak(cur, n)) {
        }
    }
    return std::malloc(n ? n : 1);
}
__attribute__((noinline)) void* operator new(std::size_t n) {
    if (void* p = tracked_malloc(n)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new[](std::size_t n) {
    if (void* p = tracked_malloc(n)) return p;
    throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return tracked_malloc(n); }
__attribute__((noinline)) void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return tracked_malloc(n); }
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

using Catch::Contains;
using namespace std::string_literals;
namespace fs = std::filesystem;

// ---- files

std::string fresh_dir(const std::string& name) {
    const std::string d = test::tmp_dir() + "/hostile-" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

void write(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void put_le(std::string& o, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff);
}

// ---- safetensors

std::string st_file(const std::string& header, const std::string& body = "") {
    std::string f;
    put_le(f, header.size(), 8);
    return f + header + body;
}

vit::detail::tensor_store parse_st(const std::string& bytes, const vit::detail::safetensors_limits& limits = {}) {
    return vit::detail::parse_safetensors(nullptr, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                                          "h.safetensors", limits);
}

// One U8 tensor entry.
std::string u8(const std::string& name, const std::string& shape, std::uint64_t b, std::uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"U8\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(b) + "," +
           std::to_string(e) + "]}";
}

// ---- config

vit::config cfg(const std::string& text) { return vit::parse_config(nlohmann::json::parse(text), "config.json"); }

// The tiny fixture's config.json with some fields replaced (null removes).
nlohmann::json tiny_config(const nlohmann::json& changes) {
    nlohmann::json j = nlohmann::json::parse(slurp(test::data("vit-tiny-random/model/config.json")));
    for (auto it = changes.begin(); it != changes.end(); ++it) {
        if (it.value().is_null()) j.erase(it.key());
        else j[it.key()] = it.value();
    }
    return j;
}

// A checkpoint folder: the tiny fixture's weights (linked, not copied)
// under the given config.
std::string tiny_folder(const std::string& name, const nlohmann::json& config) {
    const std::string d = fresh_dir(name);
    write(d + "/config.json", config.dump());
    fs::create_symlink(test::data("vit-tiny-random/model/model.safetensors"), d + "/model.safetensors");
    return d;
}

// The error message of load_model(dir), and the largest allocation made
// while it ran.
std::string load_error(const std::string& dir, std::size_t& largest) {
    hostile_alloc::largest = 0;
    hostile_alloc::tracking = true;
    std::string msg = "(loaded)";
    try {
        vit::load_model(dir);
    } catch (const vit::error& e) {
        msg = e.what();
    }
    hostile_alloc::tracking = false;
    largest = hostile_alloc::largest;
    return msg;
}

// ---- zip

// Stored entries, no data descriptors.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files) {
    std::string out, dir;
    for (const auto& f : files) {
        const std::uint32_t crc =
            vit::detail::zip_crc32(reinterpret_cast<const unsigned char*>(f.second.data()), f.second.size());
        const std::uint64_t offset = out.size();
        out += "PK\x03\x04";
        put_le(out, 20, 2); put_le(out, 0, 2); put_le(out, 0, 2); put_le(out, 0, 4);
        put_le(out, crc, 4); put_le(out, f.second.size(), 4); put_le(out, f.second.size(), 4);
        put_le(out, f.first.size(), 2); put_le(out, 0, 2);
        out += f.first + f.second;
        dir += "PK\x01\x02";
        put_le(dir, 20, 2); put_le(dir, 20, 2); put_le(dir, 0, 2); put_le(dir, 0, 2); put_le(dir, 0, 4);
        put_le(dir, crc, 4); put_le(dir, f.second.size(), 4); put_le(dir, f.second.size(), 4);
        put_le(dir, f.first.size(), 2); put_le(dir, 0, 2); put_le(dir, 0, 2); put_le(dir, 0, 2); put_le(dir, 0, 2);
        put_le(dir, 0, 4); put_le(dir, offset, 4);
        dir += f.first;
    }
    const std::uint64_t cd_offset = out.size();
    out += dir + "PK\x05\x06";
    put_le(out, 0, 4); put_le(out, files.size(), 2); put_le(out, files.size(), 2);
    put_le(out, dir.size(), 4); put_le(out, cd_offset, 4); put_le(out, 0, 2);
    return out;
}

vit::detail::tensor_store read_pt(const std::string& bytes, const std::string& name = "h.bin") {
    return vit::detail::read_pytorch_checkpoint(nullptr, reinterpret_cast<const unsigned char*>(bytes.data()),
                                                bytes.size(), name);
}

}  // namespace

// ============================================================== safetensors

TEST_CASE("hostile safetensors: files too short to hold the length prefix", "[hostile][safetensors]") {
    for (std::size_t n = 0; n < 8; ++n) {
        CAPTURE(n);
        CHECK_THROWS_WITH(parse_st(std::string(n, '\0')),
                          "h.safetensors: file too short for a safetensors header (" + std::to_string(n) + " bytes)");
    }
}

TEST_CASE("hostile safetensors: header length", "[hostile][safetensors]") {
    SECTION("beyond the file") {
        std::string f;
        put_le(f, 1000, 8);
        f += "{}";
        CHECK_THROWS_WITH(parse_st(f), "h.safetensors: header length 1000 exceeds the file size 10");
    }
    SECTION("2^64 - 1: no wrap-around in the bounds check") {
        std::string f(8, '\xff');
        f += "{}";
        CHECK_THROWS_WITH(parse_st(f), Contains("header length 18446744073709551615 exceeds the file size 10"));
    }
    SECTION("within the file but over the configured limit") {
        vit::detail::safetensors_limits limits;
        limits.max_header_bytes = 16;
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[1]", 0, 1) + "}", "x"), limits),
                          Contains("exceeds the limit of 16"));
    }
}

TEST_CASE("hostile safetensors: the header is not a JSON object of tensor entries", "[hostile][safetensors]") {
    CHECK_THROWS_WITH(parse_st(st_file("{\"a\": ")), Contains("h.safetensors: header is not valid JSON"));
    CHECK_THROWS_WITH(parse_st(st_file("\xff\xfe{}")), Contains("header is not valid JSON"));
    CHECK_THROWS_WITH(parse_st(st_file("[1, 2]")), "h.safetensors: header is not a JSON object");
    CHECK_THROWS_WITH(parse_st(st_file("\"str\"")), "h.safetensors: header is not a JSON object");
    // A million levels of nesting would cost ~80 MB of JSON tree: a header
    // has no use for more than 3.
    CHECK_THROWS_WITH(parse_st(st_file(std::string(1000000, '[') + std::string(1000000, ']'))),
                      "h.safetensors: header nests deeper than 8 levels");
    CHECK_THROWS_WITH(parse_st(st_file(R"({"__metadata__": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}})")),
                      "h.safetensors: header nests deeper than 8 levels");
    CHECK_THROWS_WITH(parse_st(st_file("{\"a\": 5}")), "h.safetensors: tensor 'a': entry is not an object");
    CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"shape": [1], "data_offsets": [0, 1]}})", "x")),
                      "h.safetensors: tensor 'a': no dtype string");
    CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"dtype": "U8", "data_offsets": [0, 1]}})", "x")),
                      "h.safetensors: tensor 'a': no shape array");
    CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}})", "x")),
                      "h.safetensors: tensor 'a': data_offsets is not a pair");
}

TEST_CASE("hostile safetensors: dtypes and shapes", "[hostile][safetensors]") {
    SECTION("unknown dtypes, including safetensors' float8 ones we do not read") {
        for (const char* dt : {"F8_E4M3", "f32", "FLOAT", ""}) {
            CAPTURE(dt);
            const std::string h = std::string(R"({"a": {"dtype": ")") + dt + R"(", "shape": [1], "data_offsets": [0, 1]}})";
            CHECK_THROWS_WITH(parse_st(st_file(h, "x")), "h.safetensors: tensor 'a': unknown dtype '" + std::string(dt) + "'");
        }
    }
    SECTION("negative, fractional and non-numeric dimensions") {
        for (const char* shape : {"[-1]", "[1, -3]", "[1.5]", "[\"4\"]", "[null]", "[1e30]", "[18446744073709551616]"}) {
            CAPTURE(shape);
            CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", shape, 0, 1) + "}", "x")),
                              "h.safetensors: tensor 'a': shape has a dimension that is not a non-negative integer");
        }
    }
    SECTION("a shape whose element count overflows uint64 is caught before multiplying") {
        // 2^32 * 2^32 * 16 wraps to 0 in 64 bits, which would match an empty span.
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[4294967296, 4294967296, 16]", 0, 0) + "}")),
                          Contains("tensor 'a': shape [4294967296,4294967296,16] is larger than the file"));
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[18446744073709551615, 2]", 0, 8) + "}", std::string(8, 'x'))),
                          Contains("is larger than the file"));
    }
    SECTION("rank above the limit") {
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[1,1,1,1,1,1,1,1,1]", 0, 1) + "}", "x")),
                          "h.safetensors: tensor 'a': rank 9 is too large");
    }
    SECTION("a span that does not match the shape") {
        const std::string h = R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})";
        CHECK_THROWS_WITH(parse_st(st_file(h, std::string(8, 'x'))),
                          "h.safetensors: tensor 'a': data_offsets span 8 bytes, shape [3] of F32 needs 12");
    }
}

TEST_CASE("hostile safetensors: data offsets", "[hostile][safetensors]") {
    const std::string body(16, 'x');
    SECTION("negative or fractional offsets") {
        CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [-1, 0]}})", body)),
                          "h.safetensors: tensor 'a': data_offsets are not non-negative integers");
        CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0.0, 1.0]}})", body)),
                          "h.safetensors: tensor 'a': data_offsets are not non-negative integers");
    }
    SECTION("reversed") {
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[0]", 9, 8) + "}", body)),
                          "h.safetensors: tensor 'a': data_offsets [9,8] are reversed");
    }
    SECTION("past the end, including offsets near 2^64") {
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[8]", 12, 20) + "}", body)),
                          "h.safetensors: tensor 'a': data_offsets end 20 is past the end of the data (16 bytes)");
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[0]", 18446744073709551615ull, 18446744073709551615ull) + "}", body)),
                          Contains("data_offsets end 18446744073709551615 is past the end of the data (16 bytes)"));
    }
    SECTION("overlapping") {
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[10]", 0, 10) + "," + u8("b", "[10]", 6, 16) + "}", body)),
                          "h.safetensors: tensors 'a' and 'b' overlap");
        // The reference implementation's "JSON attack": many names, one span.
        std::string h = "{";
        for (int i = 0; i < 10; ++i) h += (i ? "," : "") + u8("w" + std::to_string(i), "[16]", 0, 16);
        CHECK_THROWS_WITH(parse_st(st_file(h + "}", body)), Contains("overlap"));
        // An empty tensor inside another one overlaps it too.
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[16]", 0, 16) + "," + u8("e", "[0]", 4, 4) + "}", body)),
                          "h.safetensors: tensors 'a' and 'e' overlap");
    }
    SECTION("out of order in the header is legal: JSON objects are unordered") {
        // The spec (and the reference reader) sorts entries by offset; only
        // the byte layout matters. Both tensors must point at their own bytes.
        // The store points into the bytes: they must outlive it.
        const std::string file = st_file("{" + u8("z", "[4]", 0, 4) + "," + u8("a", "[12]", 4, 16) + "}", "0123456789abcdef");
        const auto store = parse_st(file);
        CHECK(std::string(reinterpret_cast<const char*>(store.find("z")->tensor.data), 4) == "0123");
        CHECK(std::string(reinterpret_cast<const char*>(store.find("a")->tensor.data), 12) == "456789abcdef");
    }
    SECTION("holes and trailing bytes are refused, as the reference reader does") {
        // Bytes no tensor owns could hold another file (a polyglot); the
        // reference rejects them (InvalidOffset, MetadataIncompleteBuffer).
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[4]", 0, 4) + "," + u8("b", "[8]", 8, 16) + "}", body)),
                          "h.safetensors: tensor 'b' starts at byte 8 of the data, leaving a hole after byte 4");
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[4]", 4, 8) + "}", std::string(8, 'x'))),
                          Contains("tensor 'a' starts at byte 4 of the data, leaving a hole after byte 0"));
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[8]", 0, 8) + "}", body)),
                          "h.safetensors: the tensors cover 8 bytes but the data after the header is 16 bytes");
        CHECK_THROWS_WITH(parse_st(st_file("{}", "junk")),
                          "h.safetensors: the tensors cover 0 bytes but the data after the header is 4 bytes");
    }
}

TEST_CASE("hostile safetensors: duplicated names", "[hostile][safetensors]") {
    // nlohmann::json would keep the last silently; another reader may keep the first.
    CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a", "[1]", 0, 1) + "," + u8("a", "[1]", 1, 2) + "}", "xy")),
                      "h.safetensors: tensor 'a' appears twice in the header");
    CHECK_THROWS_WITH(
        parse_st(st_file(R"({"a": {"dtype": "F32", "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})", "x")),
        "h.safetensors: key 'dtype' appears twice in the header");
    // Two shards that both hold a tensor.
    const std::string d = fresh_dir("dup-shards");
    write(d + "/a.safetensors", st_file("{" + u8("vit.x", "[1]", 0, 1) + "}", "x"));
    write(d + "/b.safetensors", st_file("{" + u8("vit.x", "[1]", 0, 1) + "," + u8("vit.y", "[1]", 1, 2) + "}", "yz"));
    write(d + "/model.safetensors.index.json", R"({"weight_map": {"vit.x": "a.safetensors", "vit.y": "b.safetensors"}})");
    CHECK_THROWS_WITH(vit::detail::read_checkpoint(d), Contains("b.safetensors: tensor 'vit.x' appears twice (also in"));
}

TEST_CASE("hostile safetensors: read_safetensors on things that are not files", "[hostile][safetensors]") {
    const std::string d = fresh_dir("not-files");
    CHECK_THROWS_WITH(vit::detail::read_safetensors(d + "/missing.safetensors"),
                      Contains(d + "/missing.safetensors: cannot open: No such file"));
    CHECK_THROWS_WITH(vit::detail::read_safetensors(d), d + ": not a regular file");
    write(d + "/empty.safetensors", "");
    CHECK_THROWS_WITH(vit::detail::read_safetensors(d + "/empty.safetensors"),
                      d + "/empty.safetensors: file too short for a safetensors header (0 bytes)");
}

// ================================================================== config

TEST_CASE("hostile config.json: not JSON, not an object", "[hostile][config]") {
    const std::string d = fresh_dir("config-json");
    write(d + "/config.json", "{\"hidden_size\": 64,");
    CHECK_THROWS_WITH(vit::load_config(d + "/config.json"), Contains(d + "/config.json: not valid JSON"));
    write(d + "/config.json", "");
    CHECK_THROWS_WITH(vit::load_config(d + "/config.json"), Contains(d + "/config.json: not valid JSON"));
    write(d + "/config.json", "[[[]]]");
    CHECK_THROWS_WITH(vit::load_config(d + "/config.json"), d + "/config.json: not a JSON object");
    CHECK_THROWS_WITH(vit::load_config(d + "/absent.json"), Contains(d + "/absent.json: cannot open"));
    CHECK_THROWS_WITH(cfg("null"), "config.json: not a JSON object");
}

TEST_CASE("hostile config.json: size, depth, and files that never end", "[hostile][config]") {
    const std::string d = fresh_dir("config-limits");
    const std::string path = d + "/config.json";
    // Nesting costs ~80 bytes of JSON tree per byte of file.
    write(path, std::string(200000, '[') + std::string(200000, ']'));
    CHECK_THROWS_WITH(vit::load_config(path), path + ": JSON nests deeper than 64 levels");
    // Big enough to hold 21k labels many times over, and no more.
    write(path, "{\"x\": \"" + std::string(std::size_t(16) << 20, 'a') + "\"}");
    CHECK_THROWS_WITH(vit::load_config(path), path + ": 16777225 bytes, over the limit of 16777216 for a JSON file");
    // A FIFO (or a link to /dev/zero) would be read forever.
    fs::remove(path);
    fs::create_symlink("/dev/zero", path);
    CHECK_THROWS_WITH(vit::load_config(path), path + ": not a regular file");
    // A folder whose config.json is a directory.
    fs::remove(path);
    fs::create_directory(path);
    CHECK_THROWS_WITH(vit::load_model(d), path + ": not a regular file");
}

TEST_CASE("hostile config.json: wrong types", "[hostile][config]") {
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": "64"})"), "config.json: 'hidden_size' must be an integer, got \"64\"");
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 64.0})"), "config.json: 'hidden_size' must be an integer, got 64.0");
    CHECK_THROWS_WITH(cfg(R"({"num_hidden_layers": [2]})"), "config.json: 'num_hidden_layers' must be an integer, got [2]");
    CHECK_THROWS_WITH(cfg(R"({"patch_size": true})"), "config.json: 'patch_size' must be an integer, got true");
    CHECK_THROWS_WITH(cfg(R"({"architectures": "ViTModel"})"), "config.json: 'architectures' must be a list of names");
    CHECK_THROWS_WITH(cfg(R"({"architectures": []})"), "config.json: 'architectures' must be a list of names");
    CHECK_THROWS_WITH(cfg(R"({"architectures": ["ViTMAEForPreTraining"]})"),
                      Contains("architecture 'ViTMAEForPreTraining' is not supported"));
    CHECK_THROWS_WITH(cfg(R"({"hidden_act": 1})"), "config.json: 'hidden_act' must be a string");
    CHECK_THROWS_WITH(cfg(R"({"hidden_act": "swish"})"), Contains("hidden_act 'swish' is not supported"));
    CHECK_THROWS_WITH(cfg(R"({"layer_norm_eps": "1e-12"})"), Contains("'layer_norm_eps' must be a number in [0, 1]"));
    CHECK_THROWS_WITH(cfg(R"({"layer_norm_eps": -1e-12})"), Contains("'layer_norm_eps' must be a number in [0, 1]"));
    CHECK_THROWS_WITH(cfg(R"({"qkv_bias": "true"})"), "config.json: 'qkv_bias' must be true or false");
    CHECK_THROWS_WITH(cfg(R"({"image_size": [384]})"), "config.json: 'image_size' must be an integer or [height, width]");
    CHECK_THROWS_WITH(cfg(R"({"image_size": ["384", 384]})"), Contains("'image_size[0]' must be an integer"));
}

TEST_CASE("hostile config.json: sizes out of range", "[hostile][config]") {
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 0})"), "config.json: 'hidden_size' is 0, expected 1 to 65536");
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 2147483648})"), "config.json: 'hidden_size' is 2147483648, expected 1 to 65536");
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": -9223372036854775808})"),
                      "config.json: 'hidden_size' is -9223372036854775808, expected 1 to 65536");
    // Beyond int64: reported as written, not wrapped to -1.
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 18446744073709551615})"),
                      "config.json: 'hidden_size' is 18446744073709551615, expected 1 to 65536");
    CHECK_THROWS_WITH(cfg(R"({"num_hidden_layers": 1000000})"), "config.json: 'num_hidden_layers' is 1000000, expected 0 to 1024");
    CHECK_THROWS_WITH(cfg(R"({"intermediate_size": 4294967296})"), Contains("'intermediate_size' is 4294967296"));
    CHECK_THROWS_WITH(cfg(R"({"num_attention_heads": 0})"), Contains("'num_attention_heads' is 0"));
    CHECK_THROWS_WITH(cfg(R"({"patch_size": 0})"), "config.json: 'patch_size' is 0, expected 1 to 1024");
    CHECK_THROWS_WITH(cfg(R"({"num_channels": 100000})"), Contains("'num_channels' is 100000, expected 1 to 64"));
    CHECK_THROWS_WITH(cfg(R"({"num_labels": 0})"), "config.json: 'num_labels' is 0, expected 1 to 1000000");
    CHECK_THROWS_WITH(cfg(R"({"image_size": [0, 384]})"), "config.json: 'image_size[0]' is 0, expected 1 to 16384");
    CHECK_THROWS_WITH(cfg(R"({"image_size": [384, 65536]})"), "config.json: 'image_size[1]' is 65536, expected 1 to 16384");
}

TEST_CASE("hostile config.json: inconsistent geometry", "[hostile][config]") {
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 64, "num_attention_heads": 5})"),
                      "config.json: hidden_size 64 is not a multiple of num_attention_heads 5");
    CHECK_THROWS_WITH(cfg(R"({"hidden_size": 64, "num_attention_heads": 128})"),
                      "config.json: hidden_size 64 is not a multiple of num_attention_heads 128");
    CHECK_THROWS_WITH(cfg(R"({"image_size": 8, "patch_size": 16})"), "config.json: image_size is smaller than patch_size 16");
    CHECK_THROWS_WITH(cfg(R"({"image_size": [384, 8], "patch_size": 16})"),
                      "config.json: image_size is smaller than patch_size 16");
}

TEST_CASE("hostile config.json: id2label", "[hostile][config]") {
    CHECK_THROWS_WITH(cfg(R"({"id2label": ["cat", "dog"]})"), "config.json: 'id2label' must be an object");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"cat": "0"}})"), "config.json: id2label key 'cat' is not an index from 0 to 0");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "2": "b"}})"), "config.json: id2label key '2' is not an index from 0 to 1");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "-1": "b"}})"), "config.json: id2label key '-1' is not an index from 0 to 1");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "1x": "b"}})"), "config.json: id2label key '1x' is not an index from 0 to 1");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "": "b"}})"), "config.json: id2label key '' is not an index from 0 to 1");
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "99999999999999999999999": "b"}})"),
                      Contains("id2label key '99999999999999999999999' is not an index from 0 to 1"));
    // "01" and "1" name the same index: one of them is a duplicate.
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "1": "b", "01": "c"}})"), Contains("is not an index from 0 to 2"));
    CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": 7}})"), "config.json: id2label '0' is not a string");
    // The label count comes from the entries the file really holds.
    CHECK(cfg(R"({"id2label": {"1": "b", "0": "a"}, "num_labels": 1000})").labels == std::vector<std::string>{"a", "b"});
}

// =================================================== config against weights

TEST_CASE("hostile checkpoint: config sizes that the weights do not have fail on shapes, allocating nothing large",
          "[hostile][config][checkpoint]") {
    // The fixture's weights are hidden 64, MLP 256, 2 layers, 10 labels. A
    // config claiming more must be caught by the first tensor shape check,
    // not by a failed (or, with overcommit, a successful) giant allocation.
    // 4 MB: the layer array (1024 small structs at most) may be sized from
    // the config; any weight buffer sized from it would be gigabytes.
    const std::size_t small = std::size_t(4) << 20;
    std::size_t largest = 0;
    SECTION("hidden_size 2^16") {
        const std::string d = tiny_folder("hidden", tiny_config({{"hidden_size", 65536}}));
        CHECK(load_error(d, largest) ==
              d + "/model.safetensors: tensor 'vit.embeddings.cls_token': shape [1,1,64], expected [1,1,65536]");
        CHECK(largest < small);
    }
    SECTION("intermediate_size 262144") {
        const std::string d = tiny_folder("intermediate", tiny_config({{"intermediate_size", 262144}}));
        // The weight or the bias, whichever the loader reads first.
        CHECK_THAT(load_error(d, largest), Contains(d + "/model.safetensors: tensor 'vit.encoder.layer.0.intermediate.dense.") &&
                                               Contains("expected [262144"));
        CHECK(largest < small);
    }
    SECTION("1024 layers") {
        const std::string d = tiny_folder("layers", tiny_config({{"num_hidden_layers", 1024}}));
        CHECK(load_error(d, largest) == d + ": tensor 'vit.encoder.layer.2.layernorm_before.weight' is missing");
        CHECK(largest < small);
    }
    SECTION("image_size 16384 with patch 1: 2^28 position embeddings") {
        const std::string d = tiny_folder("positions", tiny_config({{"image_size", 16384}, {"patch_size", 1}}));
        CHECK(load_error(d, largest) == d +
                                            "/model.safetensors: tensor 'vit.embeddings.position_embeddings': "
                                            "shape [1,145,64], expected [1,268435457,64]");
        CHECK(largest < small);
    }
    SECTION("64 channels, patch 1024: a 2^26-wide patch projection") {
        // 12x12 patches keep the position embeddings' shape, so the
        // projection's is the one that must fail.
        const std::string d = tiny_folder(
            "patches", tiny_config({{"num_channels", 64}, {"patch_size", 1024}, {"image_size", 12 * 1024}}));
        CHECK(load_error(d, largest) == d +
                                            "/model.safetensors: tensor 'vit.embeddings.patch_embeddings.projection.weight': "
                                            "shape [64,3,32,32], expected [64,64,1024,1024]");
        CHECK(largest < small);
    }
    SECTION("a million labels: the classifier's shape says otherwise") {
        // num_labels makes the generic label names (LABEL_0, ...), bounded by
        // the 10^6 limit; the weights are never sized from it.
        const std::string d = tiny_folder("labels", tiny_config({{"id2label", nullptr}, {"label2id", nullptr},
                                                                  {"num_labels", 1000000}}));
        CHECK_THAT(load_error(d, largest),
                   Contains(d + "/model.safetensors: tensor 'classifier.") && Contains("expected [1000000"));
    }
    SECTION("an unrelated config that parses: weights must still match") {
        const std::string d = tiny_folder("heads", tiny_config({{"num_attention_heads", 64}, {"qkv_bias", false}}));
        // Heads do not change any shape: the fixture loads; qkv_bias false
        // leaves the bias tensors unused.
        CHECK(load_error(d, largest) == "(loaded)");
    }
}

// ============================================================ shard indexes

TEST_CASE("hostile shard index: names that leave the folder, wrong types", "[hostile][checkpoint]") {
    const std::string d = fresh_dir("index");
    write(d + "/config.json", slurp(test::data("vit-tiny-random/model/config.json")));
    const std::string index = d + "/model.safetensors.index.json";
    auto refuse = [&](const std::string& json, const std::string& message) {
        write(index, json);
        CHECK_THROWS_WITH(vit::detail::read_checkpoint(d), message);
    };
    refuse(R"({"weight_map": {"vit.x": "/etc/passwd"}})",
           index + ": shard name '/etc/passwd' is not a file name in the checkpoint folder");
    refuse(R"({"weight_map": {"vit.x": ".."}})", index + ": shard name '..' is not a file name in the checkpoint folder");
    refuse(R"({"weight_map": {"vit.x": "sub/../../x"}})",
           index + ": shard name 'sub/../../x' is not a file name in the checkpoint folder");
    refuse(R"({"weight_map": {"vit.x": ""}})", index + ": shard name '' is not a file name in the checkpoint folder");
    refuse(R"({"weight_map": {"vit.x": 3}})", index + ": weight_map entry 'vit.x' is not a file name");
    refuse(R"({"weight_map": ["a.safetensors"]})", index + ": no 'weight_map' object");
    refuse(R"({"metadata": {}})", index + ": no 'weight_map' object");
    refuse(R"([])", index + ": no 'weight_map' object");
    write(index, "{\"weight_map\": {");
    CHECK_THROWS_WITH(vit::detail::read_checkpoint(d), Contains(index + ": not valid JSON"));
    refuse(R"({"weight_map": {"vit.x": "absent.safetensors"}})",
           d + "/absent.safetensors: cannot open: No such file or directory");
    // "." is a directory; a shard must be a regular file.
    refuse(R"({"weight_map": {"vit.x": "."}})", index + ": shard name '.' is not a file name in the checkpoint folder");
    fs::create_directory(d + "/dir.safetensors");
    refuse(R"({"weight_map": {"vit.x": "dir.safetensors"}})", d + "/dir.safetensors: not a regular file");
}

// ============================================================ pytorch_model.bin

TEST_CASE("hostile pytorch_model.bin: not an archive at all", "[hostile][pytorch]") {
    CHECK_THROWS_WITH(read_pt(""), "h.bin: not a zip archive (0 bytes, too short for a zip directory)");
    CHECK_THROWS_WITH(read_pt(std::string(21, 'P')), "h.bin: not a zip archive (21 bytes, too short for a zip directory)");
    // A safetensors file under the wrong name.
    CHECK_THROWS_WITH(read_pt(slurp(test::data("vit-tiny-random/model/model.safetensors"))),
                      "h.bin: no zip end-of-central-directory record (not a zip archive, or truncated)");
    // An end record whose comment length runs past the end of the file.
    std::string eocd = "PK\x05\x06" + std::string(16, '\0');
    put_le(eocd, 100, 2);
    CHECK_THROWS_WITH(read_pt(eocd), Contains("no zip end-of-central-directory record"));
    // Legacy (pre-1.6) torch.save: a bare pickle, which would need a full unpickler.
    CHECK_THROWS_WITH(read_pt(std::string("\x80\x02\x8a\x0alo.", 7)), Contains("h.bin: a legacy torch.save file"));
}

TEST_CASE("hostile pytorch_model.bin: directory counts out of proportion to the file", "[hostile][pytorch]") {
    std::string zip = make_zip({{"archive/data.pkl", std::string("\x80\x02}q\x00.", 6)}});
    const std::size_t eocd = zip.size() - 22;
    // 65534 entries claimed by a directory of one entry: refused before reserving room for them.
    zip[eocd + 8] = zip[eocd + 10] = '\xfe';
    zip[eocd + 9] = zip[eocd + 11] = '\xff';
    CHECK_THROWS_WITH(read_pt(zip), Contains("h.bin: zip directory claims 65534 entries in 62 bytes"));
    // A directory size of 4 GB.
    zip = make_zip({{"archive/data.pkl", std::string("\x80\x02}q\x00.", 6)}});
    zip[eocd + 12] = zip[eocd + 13] = zip[eocd + 14] = '\xfe';
    CHECK_THROWS_WITH(read_pt(zip), Contains("runs past the end of the archive"));
}

TEST_CASE("hostile pytorch_model.bin: storages the pickle over-claims", "[hostile][pytorch]") {
    // A state dict of one tensor t = rebuild_tensor_v2(storage, 0, size, stride),
    // protocol 2, with the storage's numel and the view's size chosen below.
    auto checkpoint = [](std::uint32_t numel, std::uint32_t size0, std::uint32_t stride0, const std::string& storage) {
        std::string p = "\x80\x02}(X\x01\x00\x00\x00t"s;
        p += "ctorch._utils\n_rebuild_tensor_v2\n(";
        p += "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuJ"s;
        put_le(p, numel, 4);
        p += "tQK\x00J"s;
        put_le(p, size0, 4);
        p += "\x85J";
        put_le(p, stride0, 4);
        p += "\x85\x89}tRu.";
        return make_zip({{"archive/data.pkl", p}, {"archive/data/0", storage}});
    };
    REQUIRE(read_pt(checkpoint(4, 4, 1, std::string(16, '\0'))).find("t")->tensor.nbytes == 16);
    // numel 2^31 - 1 from a 16-byte storage entry.
    CHECK_THROWS_WITH(read_pt(checkpoint(0x7fffffff, 4, 1, std::string(16, '\0'))),
                      "h.bin: storage '0': entry holds 16 bytes, fewer than 2147483647 F32 elements need");
    // A view reaching past its storage.
    CHECK_THROWS_WITH(read_pt(checkpoint(4, 5, 1, std::string(16, '\0'))),
                      Contains("h.bin: tensor 't': size [5] with stride [1] at offset 0 reaches element 4, but storage '0' "
                               "holds only 4 elements"));
    // A stride-0 view of 2^31 elements over one float: copying it would turn
    // 16 bytes into 8 GB.
    CHECK_THROWS_WITH(read_pt(checkpoint(4, 0x7fffffff, 0, std::string(16, '\0'))),
                      Contains("non-contiguous view of 2147483647 elements would copy more than the checkpoint's own size"));
}

TEST_CASE("hostile pytorch_model.bin: replayed tensor rebuilds count against the item limit", "[hostile][pytorch]") {
    // _rebuild_tensor_v2 and its arguments (sizes and strides of rank 32)
    // memoized once, then "get, get, REDUCE, POP" over and over: 6 bytes of
    // pickle per tensor of 64 dimensions. Without counting them, 18 MB of
    // pickle held 1.9 GB of shapes.
    std::string p = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\nq\x00"s;
    p += "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQK\x00("s;
    for (int i = 0; i < 32; ++i) p += "K\x01";
    p += "t(";
    for (int i = 0; i < 32; ++i) p += "K\x00"s;
    p += "t\x89}tq\x01" "00"s;
    for (int i = 0; i < 2000; ++i) p += "h\x00h\x01R0"s;
    p += "N.";
    vit::detail::pickle_limits limits;
    limits.max_items = 64 * 1000;
    vit::detail::unpickler up(reinterpret_cast<const unsigned char*>(p.data()), p.size(), "amp.pkl", limits);
    CHECK_THROWS_WITH(up.load(), Contains("amp.pkl: containers hold more than 64000 items"));
}

TEST_CASE("hostile pytorch_model.bin: damage seen through load_model", "[hostile][pytorch][checkpoint]") {
    const std::string fixture = slurp(test::data("vit-tiny-random/pytorch_model/pytorch_model.bin"));
    const std::string config = slurp(test::data("vit-tiny-random/pytorch_model/config.json"));
    auto folder = [&](const std::string& name, const std::string& bin) {
        const std::string d = fresh_dir(name);
        write(d + "/config.json", config);
        write(d + "/pytorch_model.bin", bin);
        return d;
    };
    std::size_t largest = 0;
    SECTION("a byte of data.pkl flipped: the CRC names the entry") {
        // data.pkl is the archive's first entry: its local header is at 0.
        std::string bin = fixture;
        REQUIRE(bin.compare(30, 22, "pytorch_model/data.pkl") == 0);
        const std::size_t name_len = std::uint8_t(bin[26]) | std::uint8_t(bin[27]) << 8;
        const std::size_t extra_len = std::uint8_t(bin[28]) | std::uint8_t(bin[29]) << 8;
        const std::size_t at = 30 + name_len + extra_len + 40;  // inside the pickle
        bin[at] = static_cast<char>(bin[at] ^ 0x20);
        const std::string d = folder("pt-crc", bin);
        CHECK_THAT(load_error(d, largest),
                   Contains(d + "/pytorch_model.bin: entry 'pytorch_model/data.pkl' is corrupt (CRC-32"));
    }
    SECTION("cut in half") {
        const std::string d = folder("pt-cut", fixture.substr(0, fixture.size() / 2));
        CHECK(load_error(d, largest) ==
              d + "/pytorch_model.bin: no zip end-of-central-directory record (not a zip archive, or truncated)");
    }
    SECTION("a pickle that imports os.system") {
        const std::string pkl = "\x80\x02" "cos\nsystem\n(X\x02\x00\x00\x00idtR."s;
        const std::string d = folder("pt-os", make_zip({{"archive/data.pkl", pkl}}));
        CHECK_THAT(load_error(d, largest),
                   Contains(d + "/pytorch_model.bin: data.pkl: global 'os.system' is not allowed in a checkpoint"));
    }
    SECTION("hidden_size 2^16 in the config of a pytorch checkpoint") {
        nlohmann::json j = nlohmann::json::parse(config);
        j["hidden_size"] = 65536;
        const std::string d = fresh_dir("pt-hidden");
        write(d + "/config.json", j.dump());
        fs::create_symlink(test::data("vit-tiny-random/pytorch_model/pytorch_model.bin"), d + "/pytorch_model.bin");
        CHECK(load_error(d, largest) ==
              d + "/pytorch_model.bin: tensor 'vit.embeddings.cls_token': shape [1,1,64], expected [1,1,65536]");
        CHECK(largest < (std::size_t(4) << 20));
    }
}

// ================================================= file bytes in messages

namespace {

using Catch::StartsWith;

// The message of the vit::error that f throws.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const vit::error& e) {
        return e.what();
    }
    FAIL("no vit::error thrown");
    return {};
}

// Every byte of the message is part of printable UTF-8.
void check_clean(const std::string& msg) {
    CAPTURE(msg);
    CHECK(test::first_bad_byte(msg) == std::string::npos);
}

}  // namespace

TEST_CASE("hostile safetensors: header bytes quoted in messages are escaped", "[hostile][safetensors][escape]") {
    SECTION("a header that starts with 0xff 0xfe (a UTF-16 byte order mark)") {
        const std::string path = fresh_dir("escape-bom") + "/model.safetensors";
        write(path, st_file("\xff\xfe{}"));
        const std::string msg = error_of([&] { vit::detail::read_safetensors(path); });
        CHECK_THAT(msg, StartsWith(path + ": header is not valid JSON: "));
        CHECK_THAT(msg, Contains("\\xff"));
        check_clean(msg);
    }
    SECTION("a tensor name with 0xff and a newline, as raw bytes") {
        for (const std::string name : {"vit.\xff\nx", "vit.\n\xffx", "vit.\xc3\n"}) {
            const std::string msg = error_of([&] { parse_st(st_file("{" + u8(name, "[1]", 0, 1) + "}", "x")); });
            CHECK_THAT(msg, StartsWith("h.safetensors: header is not valid JSON: "));
            check_clean(msg);
        }
    }
    SECTION("tensor names and dtypes with escaped control characters, valid JSON") {
        CHECK_THROWS_WITH(parse_st(st_file(R"({"vit.\n\u0000\u001b[2J": {"dtype": "X8", "shape": [1], "data_offsets": [0, 1]}})", "x")),
                          "h.safetensors: tensor 'vit.\\n\\x00\\x1b[2J': unknown dtype 'X8'");
        CHECK_THROWS_WITH(parse_st(st_file(R"({"a": {"dtype": "F\u007f32", "shape": [1], "data_offsets": [0, 1]}})", "x")),
                          "h.safetensors: tensor 'a': unknown dtype 'F\\x7f32'");
        CHECK_THROWS_WITH(parse_st(st_file(R"({"Ägyptische Katze": {"dtype": "X8", "shape": [1], "data_offsets": [0, 1]}})", "x")),
                          "h.safetensors: tensor 'Ägyptische Katze': unknown dtype 'X8'");
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a\\n", "[1]", 0, 1) + "," + u8("a\\n", "[1]", 1, 2) + "}", "xy")),
                          "h.safetensors: tensor 'a\\n' appears twice in the header");
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("a\\r", "[2]", 0, 2) + "," + u8("b\\t", "[1]", 1, 2) + "}", "xy")),
                          "h.safetensors: tensors 'a\\r' and 'b\\t' overlap");
        CHECK_THROWS_WITH(parse_st(st_file("{" + u8("\\u2028", "[1]", 1, 2) + "}", "xy")),
                          "h.safetensors: tensor '\\xe2\\x80\\xa8' starts at byte 1 of the data, leaving a hole after byte 0");
        const std::string msg = error_of([&] { parse_st(st_file("{" + u8("a", "[4294967296, 4294967296, \"\\u007f\"]", 0, 1) + "}", "x")); });
        CHECK_THAT(msg, Contains("is larger than the file") && Contains("\\x7f"));
        check_clean(msg);
    }
}

TEST_CASE("hostile config.json: bytes quoted in messages are escaped", "[hostile][config][escape]") {
    SECTION("bytes that are not UTF-8") {
        const std::string d = fresh_dir("escape-config");
        for (const std::string text : {"{\"hidden_act\": \"gel\xff\xfe\"}", "\xff\xfe{}", "{\"a\": 1}\x1b[2J", "{\"\xc3\x28\": 1}"}) {
            write(d + "/config.json", text);
            const std::string msg = error_of([&] { vit::load_config(d + "/config.json"); });
            CHECK_THAT(msg, StartsWith(d + "/config.json: not valid JSON: "));
            check_clean(msg);
        }
        write(d + "/preprocessor_config.json", "{\"size\": {\"h\xff\": 1}}");
        const std::string msg = error_of([&] { vit::load_preprocess_config(d); });
        CHECK_THAT(msg, StartsWith(d + "/preprocessor_config.json: not valid JSON: ") && Contains("\\xff"));
        check_clean(msg);
    }
    SECTION("values quoted back") {
        CHECK_THROWS_WITH(cfg(R"({"hidden_act": "gelu\n\u001b[31m"})"),
                          StartsWith("config.json: hidden_act 'gelu\\n\\x1b[31m' is not supported"));
        CHECK_THROWS_WITH(cfg(R"({"architectures": ["ViT\u202eledoM"]})"),
                          StartsWith("config.json: architecture 'ViT\\xe2\\x80\\xaeledoM' is not supported"));
        CHECK_THROWS_WITH(cfg(R"({"hidden_size": "6\u007f4"})"), "config.json: 'hidden_size' must be an integer, got \"6\\x7f4\"");
        CHECK_THROWS_WITH(cfg(R"({"layer_norm_eps": "\u0085"})"),
                          "config.json: 'layer_norm_eps' must be a number in [0, 1], got \"\\xc2\\x85\"");
        CHECK_THROWS_WITH(cfg(R"({"id2label": {"0": "a", "1\n": "b"}})"),
                          "config.json: id2label key '1\\n' is not an index from 0 to 1");
        CHECK_THROWS_WITH(cfg(R"({"id2label": {"Ägyptische Katze": "a"}})"),
                          "config.json: id2label key 'Ägyptische Katze' is not an index from 0 to 0");
        // A long value is cut, not copied whole into the message.
        std::string many = "1";
        for (int i = 0; i < 100000; ++i) many += ",1";
        const std::string msg = error_of([&] { cfg("{\"hidden_size\": [" + many + "]}"); });
        CHECK(msg.size() < 1000);
        const std::string d = fresh_dir("escape-preprocessor");
        write(d + "/preprocessor_config.json", R"({"size": {"shortest\u007f": 1}})");
        CHECK_THROWS_WITH(vit::load_preprocess_config(d), Contains("got {\"shortest\\x7f\":1}"));
    }
}

TEST_CASE("hostile shard index: names quoted in messages are escaped", "[hostile][checkpoint][escape]") {
    const std::string d = fresh_dir("escape-index");
    const std::string index = d + "/model.safetensors.index.json";
    write(d + "/a.safetensors", st_file("{" + u8("vit.y", "[1]", 0, 1) + "}", "x"));
    write(index, R"({"weight_map": {"vit.x\n\u001b": "a.safetensors"}})");
    CHECK_THROWS_WITH(vit::detail::read_checkpoint(d),
                      d + "/a.safetensors: tensor 'vit.x\\n\\x1b' listed in model.safetensors.index.json is not in the shard");
    write(index, R"({"weight_map": {"vit.\u0000": 3}})");
    CHECK_THROWS_WITH(vit::detail::read_checkpoint(d), index + ": weight_map entry 'vit.\\x00' is not a file name");
    // The shard's name goes into every message about the shard: one that
    // would need escaping is refused here.
    for (const char* shard : {"a\\n.safetensors", "a\\u001b.safetensors", "a\\u0085.safetensors"}) {
        write(index, std::string(R"({"weight_map": {"vit.y": ")") + shard + "\"}}");
        const std::string msg = error_of([&] { vit::detail::read_checkpoint(d); });
        CHECK_THAT(msg, StartsWith(index + ": shard name 'a\\") && Contains("is not a file name in the checkpoint folder"));
        check_clean(msg);
    }
    write(index, "{\"weight_map\": {\"vit.y\": \"a\xff.safetensors\"}}");
    check_clean(error_of([&] { vit::detail::read_checkpoint(d); }));
}

TEST_CASE("hostile pytorch_model.bin: names quoted in messages are escaped", "[hostile][pytorch][escape]") {
    // Pickle strings are bytes, not checked to be UTF-8.
    const std::string pkl = "\x80\x02" "cos\xff\nsystem\n(X\x02\x00\x00\x00idtR."s;
    const std::string msg = error_of([&] { read_pt(make_zip({{"archive/data.pkl", pkl}})); });
    CHECK_THAT(msg, StartsWith("h.bin: data.pkl: global 'os\\xff.system' is not allowed in a checkpoint"));
    check_clean(msg);
    const std::string name = "a\xc3\x84\xff\n/data.pkl";
    const std::string entry = error_of([&] { read_pt(make_zip({{name, "\x80\x02}."}, {name, "\x80\x02}."}})); });
    CHECK(entry == "h.bin: entry 'a\xc3\x84\\xff\\n/data.pkl' appears twice in the zip directory");
    check_clean(entry);
}
