// The model's config.json: every ViTConfig field that changes the math.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/escape.hpp"
#include "detail/io/mapped_file.hpp"
#include "error.hpp"

namespace vit {

enum class architecture {
    image_classification,  // ViTForImageClassification: a classifier on the CLS token
    backbone,              // ViTModel: hidden states and, when present, the pooler
};

enum class hidden_act { gelu, gelu_tanh, relu };

struct config {
    architecture arch = architecture::image_classification;
    int image_height = 224, image_width = 224;  // ViTConfig defaults
    int patch_size = 16;
    int num_channels = 3;
    int hidden_size = 768;
    int num_hidden_layers = 12;
    int num_attention_heads = 12;
    int intermediate_size = 3072;
    hidden_act act = hidden_act::gelu;
    double layer_norm_eps = 1e-12;
    bool qkv_bias = true;
    std::vector<std::string> labels;  // id2label, by index

    int grid_height() const { return image_height / patch_size; }
    int grid_width() const { return image_width / patch_size; }
    int num_patches() const { return grid_height() * grid_width(); }
    int head_dim() const { return hidden_size / num_attention_heads; }
    int num_labels() const { return static_cast<int>(labels.size()); }
};

namespace detail {

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

// Reads an integer field within [lo, hi], or keeps `value` when absent.
inline void read_int(const nlohmann::json& j, const char* key, int& value, long long lo, long long hi,
                     const std::string& file) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    if (!v.is_number_integer())
        throw error(file + ": '" + key + "' must be an integer, got " + escape_for_message(v.dump()));
    // Unsigned beyond long long would wrap in get<long long>() and be
    // reported as a different number than the file holds.
    if (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(hi))
        throw error(file + ": '" + key + "' is " + std::to_string(v.get<unsigned long long>()) + ", expected " +
                    std::to_string(lo) + " to " + std::to_string(hi));
    const long long x = v.get<long long>();
    if (x < lo || x > hi)
        throw error(file + ": '" + key + "' is " + std::to_string(x) + ", expected " + std::to_string(lo) +
                    " to " + std::to_string(hi));
    value = static_cast<int>(x);
}

}  // namespace detail

// Parses config.json content; `file` names it in errors. Absent fields take
// transformers' ViTConfig defaults. Sizes are bounded so a hostile config
// cannot make the loader allocate without limit.
inline config parse_config(const nlohmann::json& j, const std::string& file) {
    if (!j.is_object()) throw error(file + ": not a JSON object");
    config c;
    if (j.contains("architectures")) {
        const auto& a = j.at("architectures");
        if (!a.is_array() || a.empty() || !a.at(0).is_string())
            throw error(file + ": 'architectures' must be a list of names");
        const std::string name = a.at(0).get<std::string>();
        if (name == "ViTForImageClassification") c.arch = architecture::image_classification;
        else if (name == "ViTModel") c.arch = architecture::backbone;
        else
            throw error(file + ": architecture '" + detail::escape_for_message(name) +
                        "' is not supported (ViTForImageClassification or ViTModel)");
    }
    if (j.contains("image_size")) {
        const auto& s = j.at("image_size");
        int h = c.image_height, w = c.image_width;
        if (s.is_array()) {
            if (s.size() != 2) throw error(file + ": 'image_size' must be an integer or [height, width]");
            nlohmann::json hw = {{"image_size[0]", s.at(0)}, {"image_size[1]", s.at(1)}};
            detail::read_int(hw, "image_size[0]", h, 1, 16384, file);
            detail::read_int(hw, "image_size[1]", w, 1, 16384, file);
        } else {
            detail::read_int(j, "image_size", h, 1, 16384, file);
            w = h;
        }
        c.image_height = h;
        c.image_width = w;
    }
    detail::read_int(j, "patch_size", c.patch_size, 1, 1024, file);
    detail::read_int(j, "num_channels", c.num_channels, 1, 64, file);
    detail::read_int(j, "hidden_size", c.hidden_size, 1, 65536, file);
    detail::read_int(j, "num_hidden_layers", c.num_hidden_layers, 0, 1024, file);
    detail::read_int(j, "num_attention_heads", c.num_attention_heads, 1, 4096, file);
    detail::read_int(j, "intermediate_size", c.intermediate_size, 1, 262144, file);
    if (c.hidden_size % c.num_attention_heads != 0)
        throw error(file + ": hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                    std::to_string(c.num_attention_heads));
    if (c.image_height < c.patch_size || c.image_width < c.patch_size)
        throw error(file + ": image_size is smaller than patch_size " + std::to_string(c.patch_size));
    if (j.contains("hidden_act")) {
        const auto& v = j.at("hidden_act");
        if (!v.is_string()) throw error(file + ": 'hidden_act' must be a string");
        const std::string a = v.get<std::string>();
        if (a == "gelu") c.act = hidden_act::gelu;
        else if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") c.act = hidden_act::gelu_tanh;
        else if (a == "relu") c.act = hidden_act::relu;
        else
            throw error(file + ": hidden_act '" + detail::escape_for_message(a) +
                        "' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)");
    }
    if (j.contains("layer_norm_eps")) {
        const auto& v = j.at("layer_norm_eps");
        if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 1)
            throw error(file + ": 'layer_norm_eps' must be a number in [0, 1], got " + detail::escape_for_message(v.dump()));
        c.layer_norm_eps = v.get<double>();
    }
    if (j.contains("qkv_bias")) {
        if (!j.at("qkv_bias").is_boolean()) throw error(file + ": 'qkv_bias' must be true or false");
        c.qkv_bias = j.at("qkv_bias").get<bool>();
    }
    // Labels: id2label when present, else num_labels generic names, else
    // PretrainedConfig's default of two.
    int num_labels = 2;
    detail::read_int(j, "num_labels", num_labels, 1, 1000000, file);
    if (j.contains("id2label")) {
        const auto& m = j.at("id2label");
        if (!m.is_object()) throw error(file + ": 'id2label' must be an object");
        if (m.size() > 1000000) throw error(file + ": 'id2label' has too many entries");
        c.labels.assign(m.size(), std::string());
        std::vector<bool> set(m.size(), false);
        for (auto it = m.begin(); it != m.end(); ++it) {
            std::size_t pos = 0;
            unsigned long idx = 0;
            try {
                idx = std::stoul(it.key(), &pos);
            } catch (const std::exception&) {
                pos = 0;
            }
            if (pos == 0 || pos != it.key().size() || idx >= m.size() || set[idx])
                throw error(file + ": id2label key '" + detail::escape_for_message(it.key()) +
                            "' is not an index from 0 to " + std::to_string(m.size() - 1));
            if (!it.value().is_string()) throw error(file + ": id2label '" + it.key() + "' is not a string");
            c.labels[idx] = it.value().get<std::string>();
            set[idx] = true;
        }
    } else {
        for (int i = 0; i < num_labels; ++i) c.labels.push_back("LABEL_" + std::to_string(i));
    }
    return c;
}

inline config load_config(const std::string& path) { return parse_config(detail::read_json_file(path), path); }

}  // namespace vit
