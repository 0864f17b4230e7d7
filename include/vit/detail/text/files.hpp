// Reading a checkpoint folder's tokenizer files: JSON with limits, the
// special-token fields of tokenizer_config.json, and the added-token split
// every tokenizer starts with.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../error.hpp"
#include "../escape.hpp"
#include "../json.hpp"
#include "utf8.hpp"

namespace vit::detail::text {

inline bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline std::string join_path(const std::string& folder, const std::string& name) {
    return folder.empty() || folder.back() == '/' ? folder + name : folder + "/" + name;
}

// A tokenizer JSON file: tokenizer.json of a large vocabulary is a few MB;
// 64 MB leaves room for any real one and stops a runaway file.
inline nlohmann::json read_json(const std::string& path) {
    json_limits limits;
    limits.max_bytes = std::size_t(64) << 20;
    return read_json_file(path, limits);
}

// The JSON file if it is there, else an empty object.
inline nlohmann::json read_json_if_present(const std::string& path) {
    return is_regular_file(path) ? read_json(path) : nlohmann::json::object();
}

// A string field, empty when absent, null or not a string.
inline std::string string_field(const nlohmann::json& j, const char* key) {
    if (!j.is_object() || !j.contains(key) || !j.at(key).is_string()) return {};
    return j.at(key).get<std::string>();
}

// A boolean field, `fallback` when absent or not a boolean.
inline bool bool_field(const nlohmann::json& j, const char* key, bool fallback) {
    if (!j.is_object() || !j.contains(key) || !j.at(key).is_boolean()) return fallback;
    return j.at(key).get<bool>();
}

// A special token field: "<|endoftext|>" or {"content": "<|endoftext|>", ...}.
// Empty when absent or null.
inline std::string token_content(const nlohmann::json& j, const char* key, const std::string& file) {
    if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return {};
    const nlohmann::json& v = j.at(key);
    try {
        if (v.is_string()) return v.get<std::string>();
        return v.at("content").get<std::string>();
    } catch (const nlohmann::json::exception&) {
        throw error(file + ": '" + key + "' is neither a string nor a token with a \"content\" string");
    }
}

// model_max_length, when it is a real length (transformers writes 1e30 for "none").
inline int model_max_length(const nlohmann::json& config, int fallback) {
    if (!config.is_object() || !config.contains("model_max_length") || !config.at("model_max_length").is_number()) return fallback;
    const double v = config.at("model_max_length").get<double>();
    return v >= 1 && v <= 1e6 ? int(v) : fallback;
}

// A token matched as a whole before the model sees the text.
struct added_token {
    std::u32string content;
    std::int64_t id = 0;
    bool normalized = false;  // matched in the normalised text (tokenizers' rule)
    bool lstrip = false;      // the text to its left loses its trailing whitespace
    bool rstrip = false;      // the text to its right loses its leading whitespace
};

// The added tokens of tokenizer_config.json's "added_tokens_decoder".
inline std::vector<added_token> added_tokens_of_config(const nlohmann::json& config, const std::string& file) {
    std::vector<added_token> out;
    if (!config.is_object() || !config.contains("added_tokens_decoder")) return out;
    try {
        for (const auto& [key, v] : config.at("added_tokens_decoder").items()) {
            added_token t;
            t.id = std::stoll(key);
            t.content = decode_utf8(v.at("content").get<std::string>(), file + ": an added token");
            t.normalized = v.value("normalized", false);
            t.lstrip = v.value("lstrip", false);
            t.rstrip = v.value("rstrip", false);
            out.push_back(std::move(t));
        }
    } catch (const nlohmann::json::exception& e) {
        throw error(file + ": bad \"added_tokens_decoder\": " + escape_for_message(e.what(), 200));
    } catch (const std::logic_error&) {
        throw error(file + ": an \"added_tokens_decoder\" key is not an integer id");
    }
    return out;
}

// A piece of text between added tokens, or an added token.
struct segment {
    const added_token* token = nullptr;  // null: text
    std::u32string text;
};

// Splits `s` at the tokens `use(token)` selects: leftmost match first, the
// longest one there (the `tokenizers` crate's and transformers' trie rule).
template <class Use>
std::vector<segment> split_on_added(const std::u32string& s, const std::vector<added_token>& tokens, Use use) {
    std::vector<segment> out;
    std::size_t start = 0, i = 0;
    while (i < s.size()) {
        const added_token* best = nullptr;
        for (const added_token& t : tokens) {
            if (!use(t) || t.content.empty() || t.content.size() > s.size() - i) continue;
            if (s.compare(i, t.content.size(), t.content) == 0 &&
                (!best || t.content.size() > best->content.size()))
                best = &t;
        }
        if (!best) {
            ++i;
            continue;
        }
        if (i > start) out.push_back({nullptr, s.substr(start, i - start)});
        out.push_back({best, {}});
        i += best->content.size();
        start = i;
    }
    if (start < s.size()) out.push_back({nullptr, s.substr(start)});
    return out;
}

}  // namespace vit::detail::text
