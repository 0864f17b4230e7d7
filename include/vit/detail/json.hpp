// Reading JSON input: files within limits, and fields checked for type and
// range, every error naming the file (or request) and the key. The one set
// config.json, preprocessor_config.json and vit-serve's requests use.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "escape.hpp"
#include "io/mapped_file.hpp"

namespace vit::detail {

// Limits on the JSON files of a checkpoint folder (config.json, shard
// indexes). The largest real ones (21k ImageNet labels, indexes of thousands
// of shards) are around a megabyte and nest 3 deep.
struct json_limits {
    std::size_t max_bytes = std::size_t(16) << 20;
    std::size_t max_depth = 64;
};

// Reads and parses a JSON file. Mapped, so it must be a regular file (not a
// FIFO or /dev/zero, which would be read forever) within max_bytes; the
// depth limit keeps "[[[[..." from costing ~80 bytes of tree per byte.
inline nlohmann::json read_json_file(const std::string& path, const json_limits& limits = {}) {
    const mapped_file file(path);
    if (file.size() > limits.max_bytes)
        throw error(path + ": " + std::to_string(file.size()) + " bytes, over the limit of " +
                    std::to_string(limits.max_bytes) + " for a JSON file");
    std::size_t depth = 0;
    const nlohmann::json::parser_callback_t cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json&) {
        using event = nlohmann::json::parse_event_t;
        if (ev == event::object_start || ev == event::array_start) {
            if (++depth > limits.max_depth)
                throw error(path + ": JSON nests deeper than " + std::to_string(limits.max_depth) + " levels");
        } else if (ev == event::object_end || ev == event::array_end) {
            --depth;
        }
        return true;
    };
    try {
        return nlohmann::json::parse(file.data(), file.data() + file.size(), cb);
    } catch (const nlohmann::json::exception& e) {
        throw error(path + ": not valid JSON: " + escape_for_message(e.what(), 400));
    }
}

inline std::string json_type(const nlohmann::json& j) { return j.type_name(); }

// An integer within [lo, hi] (|lo|, |hi| < 2^63). With accept_float, a
// number written as a float within the range too, truncated: nlohmann's
// get<long long>() of a float out of range would be undefined behaviour.
inline long long json_int(const nlohmann::json& v, const std::string& file, const std::string& key, long long lo,
                          long long hi, bool accept_float = false) {
    if (accept_float && v.is_number_float()) {
        const double d = v.get<double>();
        if (!(d >= double(lo) && d <= double(hi)))
            throw error(file + ": '" + key + "' is " + v.dump() + ", expected " + std::to_string(lo) + " to " +
                        std::to_string(hi));
        return static_cast<long long>(d);
    }
    if (!v.is_number_integer())
        throw error(file + ": '" + key + "' must be an integer, got " + escape_for_message(v.dump()));
    // Unsigned beyond long long would wrap in get<long long>() and be
    // reported as a different number than the file holds.
    if (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(hi))
        throw error(file + ": '" + key + "' is " + std::to_string(v.get<unsigned long long>()) + ", expected " +
                    std::to_string(lo) + " to " + std::to_string(hi));
    const long long x = v.get<long long>();
    if (x < lo || x > hi)
        throw error(file + ": '" + key + "' is " + std::to_string(x) + ", expected " + std::to_string(lo) + " to " +
                    std::to_string(hi));
    return x;
}

// Reads an integer field within [lo, hi], or keeps `value` when absent.
inline void read_int(const nlohmann::json& j, const char* key, int& value, long long lo, long long hi,
                     const std::string& file) {
    if (j.contains(key)) value = static_cast<int>(json_int(j.at(key), file, key, lo, hi));
}

inline int json_positive_int(const nlohmann::json& j, const std::string& file, const std::string& key) {
    if (!j.is_number_integer() || j.get<long long>() <= 0 || j.get<long long>() > 1000000)
        throw error(file + ": key '" + key + "': expected a positive integer, got " +
                    (j.is_number() ? j.dump() : json_type(j)));
    return int(j.get<long long>());
}

inline bool json_bool(const nlohmann::json& j, const std::string& file, const std::string& key) {
    if (!j.is_boolean()) throw error(file + ": key '" + key + "': expected true or false, got " + json_type(j));
    return j.get<bool>();
}

// Reads a true/false field, or keeps `value` when absent.
inline void read_bool(const nlohmann::json& j, const char* key, bool& value, const std::string& file) {
    if (!j.contains(key)) return;
    if (!j.at(key).is_boolean()) throw error(file + ": '" + key + "' must be true or false");
    value = j.at(key).get<bool>();
}

inline double json_number(const nlohmann::json& j, const std::string& file, const std::string& key) {
    if (!j.is_number()) throw error(file + ": key '" + key + "': expected a number, got " + json_type(j));
    const double v = j.get<double>();
    if (!std::isfinite(v)) throw error(file + ": key '" + key + "': expected a finite number");
    return v;
}

// Reads a number field within (lo, hi] (lo_open) or [lo, hi], or keeps
// `value` when absent.
inline void read_number(const nlohmann::json& j, const char* key, double& value, double lo, double hi, bool lo_open,
                        const std::string& file) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    const bool low_ok = v.is_number() && (lo_open ? v.get<double>() > lo : v.get<double>() >= lo);
    if (!low_ok || v.get<double>() > hi) {
        auto num = [](double d) {
            std::string s = std::to_string(d);
            s.erase(s.find_last_not_of('0') + 1);
            if (s.back() == '.') s.pop_back();
            return s;
        };
        throw error(file + ": '" + key + "' must be a number in " + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) +
                    "], got " + escape_for_message(v.dump()));
    }
    value = v.get<double>();
}

// A string field, or `fallback` when absent.
inline std::string read_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                               const std::string& file) {
    if (!j.contains(key)) return fallback;
    if (!j.at(key).is_string()) throw error(file + ": '" + key + "' must be a string");
    return j.at(key).get<std::string>();
}

// A per-channel statistic: three numbers, or one number for all channels.
inline std::array<double, 3> json_triple(const nlohmann::json& j, const std::string& file, const std::string& key) {
    if (j.is_number()) {
        const double v = json_number(j, file, key);
        return {v, v, v};
    }
    if (!j.is_array() || j.size() != 3)
        throw error(file + ": key '" + key + "': expected 3 numbers (one per RGB channel), got " +
                    (j.is_array() ? std::to_string(j.size()) + " values" : json_type(j)));
    std::array<double, 3> v{};
    for (std::size_t i = 0; i < 3; ++i) v[i] = json_number(j.at(i), file, key + "[" + std::to_string(i) + "]");
    return v;
}

}  // namespace vit::detail
