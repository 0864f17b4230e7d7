// The model's config.json: every field that changes the math, for ViT and
// the families on its encoder (DINOv2, DeiT distilled, CLIP and SigLIP vision).
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
    image_classification,  // ViTForImageClassification (and the families' classifiers)
    backbone,              // ViTModel: hidden states and, when present, the pooler (the families' embedders)
};

// The model family, from config.json's model_type (absent: ViT).
enum class model_family {
    vit,               // ViTModel, ViTForImageClassification
    dinov2,            // Dinov2Model, Dinov2ForImageClassification
    dinov2_registers,  // Dinov2WithRegistersModel, Dinov2WithRegistersForImageClassification
    deit_distilled,    // DeiTForImageClassificationWithTeacher
    clip,              // CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection: the vision tower
    siglip,            // SiglipModel, SiglipVisionModel: the vision tower
};

inline const char* family_name(model_family f) {
    switch (f) {
        case model_family::vit: return "vit";
        case model_family::dinov2: return "dinov2";
        case model_family::dinov2_registers: return "dinov2_with_registers";
        case model_family::deit_distilled: return "deit";
        case model_family::clip: return "clip";
        case model_family::siglip: return "siglip";
    }
    return "?";
}

enum class hidden_act { gelu, gelu_tanh, relu, quick_gelu };

struct config {
    model_family family = model_family::vit;
    architecture arch = architecture::image_classification;
    std::string architecture_name;  // architectures[0], or empty
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
    bool use_swiglu_ffn = false;  // DINOv2: intermediate_size is then the SwiGLU hidden width
    int num_register_tokens = 0;  // DINOv2 with registers
    int projection_dim = 0;       // CLIP: visual_projection's output (0: no projection)
    std::vector<std::string> labels;  // id2label, by index

    // Tokens before the patches: CLS (none for SigLIP), DeiT's distillation
    // token, DINOv2's registers.
    int prefix_tokens() const {
        switch (family) {
            case model_family::siglip: return 0;
            case model_family::deit_distilled: return 2;
            case model_family::dinov2_registers: return 1 + num_register_tokens;
            default: return 1;
        }
    }

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

namespace detail {

// An architectures[0] the family runs, as image_classification or backbone.
inline void set_architecture(config& c, const std::string& file) {
    struct accepted {
        const char* name;
        architecture arch;
    };
    using A = architecture;
    std::vector<accepted> names;
    A absent = A::backbone;
    switch (c.family) {
        case model_family::vit:
            names = {{"ViTForImageClassification", A::image_classification}, {"ViTModel", A::backbone}};
            absent = A::image_classification;
            break;
        case model_family::dinov2:
            names = {{"Dinov2Model", A::backbone}, {"Dinov2ForImageClassification", A::image_classification}};
            break;
        case model_family::dinov2_registers:
            names = {{"Dinov2WithRegistersModel", A::backbone},
                     {"Dinov2WithRegistersForImageClassification", A::image_classification}};
            break;
        case model_family::deit_distilled:
            names = {{"DeiTForImageClassificationWithTeacher", A::image_classification}};
            absent = A::image_classification;
            break;
        case model_family::clip:
            names = {{"CLIPModel", A::backbone}, {"CLIPVisionModelWithProjection", A::backbone},
                     {"CLIPVisionModel", A::backbone}};
            break;
        case model_family::siglip: names = {{"SiglipModel", A::backbone}, {"SiglipVisionModel", A::backbone}}; break;
    }
    if (c.architecture_name.empty()) {
        c.arch = absent;
        return;
    }
    std::string list;
    for (const accepted& a : names) {
        if (c.architecture_name == a.name) {
            c.arch = a.arch;
            return;
        }
        list += (list.empty() ? "" : names.size() == 2 ? " or " : ", ") + std::string(a.name);
    }
    throw error(file + ": architecture '" + escape_for_message(c.architecture_name) + "' is not supported" +
                (c.family == model_family::vit ? std::string()
                                               : std::string(" for model_type '") + family_name(c.family) + "'") +
                " (" + list + ")");
}

// transformers' config defaults of each family (ViTConfig's are config's own).
inline void family_defaults(config& c) {
    switch (c.family) {
        case model_family::vit:
        case model_family::deit_distilled: break;
        case model_family::dinov2:
        case model_family::dinov2_registers:
            c.patch_size = 14;
            c.layer_norm_eps = 1e-6;
            c.num_register_tokens = c.family == model_family::dinov2_registers ? 4 : 0;
            break;
        case model_family::clip:
            c.patch_size = 32;
            c.act = hidden_act::quick_gelu;
            c.layer_norm_eps = 1e-5;
            c.projection_dim = 512;
            break;
        case model_family::siglip:
            c.act = hidden_act::gelu_tanh;
            c.layer_norm_eps = 1e-6;
            break;
    }
}

// DINOv2's MLP width from mlp_ratio (and SwiGLU's rounding), its registers.
inline void dinov2_fields(const nlohmann::json& j, config& c, const std::string& file) {
    double ratio = 4;
    if (j.contains("mlp_ratio")) {
        const auto& v = j.at("mlp_ratio");
        if (!v.is_number() || !(v.get<double>() > 0) || v.get<double>() > 64)
            throw error(file + ": 'mlp_ratio' must be a number in (0, 64], got " + escape_for_message(v.dump()));
        ratio = v.get<double>();
    }
    if (j.contains("use_swiglu_ffn")) {
        if (!j.at("use_swiglu_ffn").is_boolean()) throw error(file + ": 'use_swiglu_ffn' must be true or false");
        c.use_swiglu_ffn = j.at("use_swiglu_ffn").get<bool>();
    }
    // int(H * mlp_ratio); SwiGLU: (int(hidden * 2 / 3) + 7) // 8 * 8, as Python computes them.
    const long long hidden = static_cast<long long>(double(c.hidden_size) * ratio);
    const long long width = c.use_swiglu_ffn ? (static_cast<long long>(double(hidden) * 2 / 3) + 7) / 8 * 8 : hidden;
    if (width < 1 || width > 262144)
        throw error(file + ": mlp_ratio " + escape_for_message(j.contains("mlp_ratio") ? j.at("mlp_ratio").dump() : "4") +
                    " gives an MLP width of " + std::to_string(width) + ", expected 1 to 262144");
    c.intermediate_size = int(width);
    if (c.family == model_family::dinov2_registers)
        read_int(j, "num_register_tokens", c.num_register_tokens, 0, 1024, file);
}

// The fields of the (vision) model's config that change the math.
inline void read_fields(const nlohmann::json& j, config& c, const std::string& file) {
    if (j.contains("image_size")) {
        const auto& s = j.at("image_size");
        int h = c.image_height, w = c.image_width;
        if (s.is_array()) {
            if (s.size() != 2) throw error(file + ": 'image_size' must be an integer or [height, width]");
            nlohmann::json hw = {{"image_size[0]", s.at(0)}, {"image_size[1]", s.at(1)}};
            read_int(hw, "image_size[0]", h, 1, 16384, file);
            read_int(hw, "image_size[1]", w, 1, 16384, file);
        } else {
            read_int(j, "image_size", h, 1, 16384, file);
            w = h;
        }
        c.image_height = h;
        c.image_width = w;
    }
    read_int(j, "patch_size", c.patch_size, 1, 1024, file);
    read_int(j, "num_channels", c.num_channels, 1, 64, file);
    read_int(j, "hidden_size", c.hidden_size, 1, 65536, file);
    read_int(j, "num_hidden_layers", c.num_hidden_layers, 0, 1024, file);
    read_int(j, "num_attention_heads", c.num_attention_heads, 1, 4096, file);
    read_int(j, "intermediate_size", c.intermediate_size, 1, 262144, file);
    if (c.family == model_family::dinov2 || c.family == model_family::dinov2_registers) dinov2_fields(j, c, file);
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
        else if (a == "quick_gelu" && c.family != model_family::vit) c.act = hidden_act::quick_gelu;
        else
            throw error(file + ": hidden_act '" + escape_for_message(a) + "' is not supported (gelu, gelu_new, " +
                        "gelu_pytorch_tanh, relu" + (c.family != model_family::vit ? ", quick_gelu)" : ")"));
    }
    if (j.contains("layer_norm_eps")) {
        const auto& v = j.at("layer_norm_eps");
        if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 1)
            throw error(file + ": 'layer_norm_eps' must be a number in [0, 1], got " + escape_for_message(v.dump()));
        c.layer_norm_eps = v.get<double>();
    }
    if (j.contains("qkv_bias")) {
        if (!j.at("qkv_bias").is_boolean()) throw error(file + ": 'qkv_bias' must be true or false");
        c.qkv_bias = j.at("qkv_bias").get<bool>();
    }
}

inline void read_labels(const nlohmann::json& j, config& c, const std::string& file) {
    // Labels: id2label when present, else num_labels generic names, else
    // PretrainedConfig's default of two.
    int num_labels = 2;
    read_int(j, "num_labels", num_labels, 1, 1000000, file);
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
                throw error(file + ": id2label key '" + escape_for_message(it.key()) +
                            "' is not an index from 0 to " + std::to_string(m.size() - 1));
            if (!it.value().is_string()) throw error(file + ": id2label '" + it.key() + "' is not a string");
            c.labels[idx] = it.value().get<std::string>();
            set[idx] = true;
        }
    } else {
        for (int i = 0; i < num_labels; ++i) c.labels.push_back("LABEL_" + std::to_string(i));
    }
}

}  // namespace detail

// Parses config.json content; `file` names it in errors. Absent fields take
// transformers' defaults (ViTConfig's, or the family's). Sizes are bounded so
// a hostile config cannot make the loader allocate without limit.
inline config parse_config(const nlohmann::json& j, const std::string& file) {
    if (!j.is_object()) throw error(file + ": not a JSON object");
    config c;
    // The family first: it picks the architectures, the defaults and where the fields are.
    std::string type = "vit";
    if (j.contains("model_type")) {
        if (!j.at("model_type").is_string()) throw error(file + ": 'model_type' must be a string");
        type = j.at("model_type").get<std::string>();
    }
    if (type == "vit") c.family = model_family::vit;
    else if (type == "dinov2") c.family = model_family::dinov2;
    else if (type == "dinov2_with_registers") c.family = model_family::dinov2_registers;
    else if (type == "deit") c.family = model_family::deit_distilled;
    else if (type == "clip" || type == "clip_vision_model") c.family = model_family::clip;
    else if (type == "siglip" || type == "siglip_vision_model") c.family = model_family::siglip;
    else
        throw error(file + ": model_type '" + detail::escape_for_message(type) +
                    "' is not supported (vit, dinov2, dinov2_with_registers, deit, clip, clip_vision_model, siglip, "
                    "siglip_vision_model)");
    if (j.contains("architectures")) {
        const auto& a = j.at("architectures");
        if (!a.is_array() || a.empty() || !a.at(0).is_string())
            throw error(file + ": 'architectures' must be a list of names");
        c.architecture_name = a.at(0).get<std::string>();
    }
    detail::set_architecture(c, file);
    detail::family_defaults(c);
    // CLIPModel and SiglipModel keep the vision tower's fields in vision_config.
    const bool towers = (c.family == model_family::clip || c.family == model_family::siglip) && j.contains("vision_config");
    if (towers && !j.at("vision_config").is_object()) throw error(file + ": 'vision_config' must be an object");
    // CLIPModel's projection_dim is its own; CLIPVisionModelWithProjection's is in its (vision) config.
    if (c.family == model_family::clip) detail::read_int(j, "projection_dim", c.projection_dim, 1, 65536, file);
    detail::read_fields(towers ? j.at("vision_config") : j, c, file);
    detail::read_labels(j, c, file);
    return c;
}

inline config load_config(const std::string& path) { return parse_config(detail::read_json_file(path), path); }

}  // namespace vit
