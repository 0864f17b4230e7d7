// The safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the tensor bytes. Read by memory-mapping; written for conversions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../error.hpp"
#include "../escape.hpp"
#include "mapped_file.hpp"
#include "tensor_store.hpp"

namespace vit::detail {

struct safetensors_limits {
    std::uint64_t max_header_bytes = std::uint64_t(100) << 20;  // as the reference implementation
    std::size_t max_rank = 8;
    // A header nests 3 deep ({name: {shape: [...]}}); each level of "[[[["
    // costs the JSON tree ~80 bytes per header byte.
    std::size_t max_depth = 8;
};

inline bool parse_dtype(const std::string& s, dtype& out) {
    static constexpr std::pair<const char*, dtype> names[] = {
        {"F64", dtype::f64}, {"F32", dtype::f32}, {"F16", dtype::f16}, {"BF16", dtype::bf16},
        {"I64", dtype::i64}, {"I32", dtype::i32}, {"I16", dtype::i16}, {"I8", dtype::i8},
        {"U8", dtype::u8},   {"BOOL", dtype::boolean}};
    for (const auto& n : names)
        if (s == n.first) { out = n.second; return true; }
    return false;
}

// Parses a safetensors image in memory. `owner` keeps `data` alive; `name` is
// the file name used in every error message.
inline tensor_store parse_safetensors(std::shared_ptr<const void> owner, const unsigned char* data,
                                      std::size_t size, const std::string& name,
                                      const safetensors_limits& limits = {}) {
    auto fail = [&](const std::string& what) -> error { return error(name + ": " + what); };
    if (size < 8) throw fail("file too short for a safetensors header (" + std::to_string(size) + " bytes)");
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
    if (header_len > size - 8)
        throw fail("header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(size));
    if (header_len > limits.max_header_bytes)
        throw fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(limits.max_header_bytes));
    const char* hbegin = reinterpret_cast<const char*>(data + 8);

    // nlohmann::json keeps the last of duplicated keys silently: catch them,
    // at every depth ({"dtype": "F16", "dtype": "F32"} means different
    // things to different readers).
    std::vector<std::set<std::string>> seen;  // the keys of each open object
    std::string duplicate;
    bool duplicate_tensor = false;
    std::size_t depth = 0;
    nlohmann::json::parser_callback_t cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        using event = nlohmann::json::parse_event_t;
        if (ev == event::object_start || ev == event::array_start) {
            if (++depth > limits.max_depth)
                throw fail("header nests deeper than " + std::to_string(limits.max_depth) + " levels");
        } else if (ev == event::object_end || ev == event::array_end) {
            --depth;
        }
        if (ev == event::object_start) seen.emplace_back();
        else if (ev == event::object_end && !seen.empty()) seen.pop_back();
        else if (ev == event::key && !seen.empty() && parsed.is_string() &&
                 !seen.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
            duplicate = parsed.get<std::string>();
            duplicate_tensor = seen.size() == 1;
        }
        return true;
    };
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(hbegin, hbegin + header_len, cb);
    } catch (const nlohmann::json::exception& e) {
        throw fail("header is not valid JSON: " + escape_for_message(e.what(), 400));
    }
    if (!duplicate.empty())
        throw fail((duplicate_tensor ? "tensor '" : "key '") + escape_for_message(duplicate) +
                   "' appears twice in the header");
    if (!header.is_object()) throw fail("header is not a JSON object");

    const unsigned char* body = data + 8 + header_len;
    const std::uint64_t body_size = size - 8 - header_len;
    struct span { std::uint64_t begin, end; std::string name; };
    std::vector<span> spans;
    tensor_store store;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& tname = it.key();
        if (tname == "__metadata__") continue;
        auto tfail = [&](const std::string& what) { return fail("tensor '" + escape_for_message(tname) + "': " + what); };
        const auto& info = it.value();
        if (!info.is_object()) throw tfail("entry is not an object");
        if (!info.contains("dtype") || !info.at("dtype").is_string()) throw tfail("no dtype string");
        if (!info.contains("shape") || !info.at("shape").is_array()) throw tfail("no shape array");
        if (!info.contains("data_offsets") || !info.at("data_offsets").is_array() || info.at("data_offsets").size() != 2)
            throw tfail("data_offsets is not a pair");
        tensor_ref t;
        const std::string dt = info.at("dtype").get<std::string>();
        if (!parse_dtype(dt, t.type)) throw tfail("unknown dtype '" + escape_for_message(dt) + "'");
        const auto& shape = info.at("shape");
        if (shape.size() > limits.max_rank) throw tfail("rank " + std::to_string(shape.size()) + " is too large");
        std::uint64_t numel = 1;
        for (const auto& d : shape) {
            if (!d.is_number_unsigned()) throw tfail("shape has a dimension that is not a non-negative integer");
            const std::uint64_t v = d.get<std::uint64_t>();
            if (v != 0 && numel > body_size / v)
                throw tfail("shape " + escape_for_message(shape.dump()) + " is larger than the file");
            numel *= v;
            t.shape.push_back(static_cast<std::int64_t>(v));
        }
        const auto& off = info.at("data_offsets");
        if (!off.at(0).is_number_unsigned() || !off.at(1).is_number_unsigned())
            throw tfail("data_offsets are not non-negative integers");
        const std::uint64_t b = off.at(0).get<std::uint64_t>(), e = off.at(1).get<std::uint64_t>();
        if (b > e) throw tfail("data_offsets [" + std::to_string(b) + "," + std::to_string(e) + "] are reversed");
        if (e > body_size)
            throw tfail("data_offsets end " + std::to_string(e) + " is past the end of the data (" +
                        std::to_string(body_size) + " bytes)");
        const std::uint64_t want = numel * dtype_size(t.type);
        if (e - b != want)
            throw tfail("data_offsets span " + std::to_string(e - b) + " bytes, shape " + shape_string(t.shape) +
                        " of " + dt + " needs " + std::to_string(want));
        t.data = body + b;
        t.nbytes = static_cast<std::size_t>(want);
        spans.push_back({b, e, tname});
        store.add(tname, std::move(t), name);
    }
    // As the reference implementation, the tensors must tile the data exactly
    // (in any header order): no overlap, no hole, nothing after the last one.
    // Bytes that no tensor owns could carry another file (a polyglot).
    std::sort(spans.begin(), spans.end(),
              [](const span& x, const span& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; });
    std::uint64_t covered = 0;
    for (std::size_t i = 0; i < spans.size(); ++i) {
        if (spans[i].begin < covered)
            throw fail("tensors '" + escape_for_message(spans[i - 1].name) + "' and '" + escape_for_message(spans[i].name) +
                       "' overlap");
        if (spans[i].begin > covered)
            throw fail("tensor '" + escape_for_message(spans[i].name) + "' starts at byte " + std::to_string(spans[i].begin) +
                       " of the data, leaving a hole after byte " + std::to_string(covered));
        covered = spans[i].end;
    }
    if (covered != body_size)
        throw fail("the tensors cover " + std::to_string(covered) + " bytes but the data after the header is " +
                   std::to_string(body_size) + " bytes");
    store.keep(std::move(owner));
    return store;
}

inline tensor_store read_safetensors(const std::string& path, const safetensors_limits& limits = {}) {
    auto file = std::make_shared<mapped_file>(path);
    const unsigned char* p = file->data();
    const std::size_t n = file->size();
    tensor_store store = parse_safetensors(std::move(file), p, n, path, limits);
    store.add_mapped_range(p, n);
    return store;
}

// One tensor to write: raw little-endian bytes of `shape` in `type`.
struct tensor_blob {
    std::string name;
    dtype type;
    std::vector<std::int64_t> shape;
    std::vector<unsigned char> bytes;
};

inline void write_safetensors(const std::string& path, const std::vector<tensor_blob>& tensors,
                              const nlohmann::json& metadata = nlohmann::json::object()) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const auto& t : tensors) {
        std::uint64_t numel = 1;
        for (auto d : t.shape) numel *= static_cast<std::uint64_t>(d);
        if (numel * dtype_size(t.type) != t.bytes.size())
            throw error(path + ": tensor '" + escape_for_message(t.name) + "': " + std::to_string(t.bytes.size()) +
                        " bytes do not match shape " + shape_string(t.shape));
        header[t.name] = {{"dtype", dtype_name(t.type)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // keeps tensor data 8-byte aligned in the file
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw error(path + ": cannot open for writing");
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(std::uint64_t(h.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    out.flush();
    if (!out) throw error(path + ": write failed");
}

}  // namespace vit::detail
