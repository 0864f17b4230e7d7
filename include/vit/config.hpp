// The model's config.json: every field that changes the math, for ViT and
// the families on its encoder (DINOv2, DeiT distilled, CLIP and SigLIP vision).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/escape.hpp"
#include "detail/json.hpp"
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

// The family's first model_type ("dinov2_with_registers" for DINOv2 with registers).
inline const char* family_name(model_family f);

enum class hidden_act { gelu, gelu_tanh, relu, quick_gelu };

struct config {
    model_family family{};  // the first: the family of a config without model_type
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
    int prefix_tokens() const;

    int grid_height() const { return image_height / patch_size; }
    int grid_width() const { return image_width / patch_size; }
    int num_patches() const { return grid_height() * grid_width(); }
    int head_dim() const { return hidden_size / num_attention_heads; }
    int num_labels() const { return static_cast<int>(labels.size()); }
};

namespace detail {

// The families' registry (detail/models/registry.hpp, included below):
// fn(F{}) for each family's room F, or for the one of id.
template <class Fn>
void for_each_family(Fn&& fn);
template <class Fn>
void with_family(model_family id, Fn&& fn);
// The family of a config without model_type: the registry's first.
inline model_family default_family();

// An architectures[0] a family runs, as image_classification or backbone.
struct accepted_architecture {
    const char* name;
    architecture arch;
};

// An architectures[0] the family runs, as image_classification or backbone.
inline void set_architecture(config& c, const std::string& file) {
    with_family(c.family, [&](auto f) {
        using F = decltype(f);
        const auto names = F::architectures();
        if (c.architecture_name.empty()) {
            c.arch = F::absent;
            return;
        }
        std::string list;
        for (const auto& a : names) {
            if (c.architecture_name == a.name) {
                c.arch = a.arch;
                return;
            }
            list += (list.empty() ? "" : names.size() == 2 ? " or " : ", ") + std::string(a.name);
        }
        // The default family (no model_type) is not named.
        throw error(file + ": architecture '" + escape_for_message(c.architecture_name) + "' is not supported" +
                    (c.family == default_family() ? std::string()
                                                  : std::string(" for model_type '") + family_name(c.family) + "'") +
                    " (" + list + ")");
    });
}

// The fields of the (vision) model's config that change the math.
// config.json's hidden_act over `act`; what ("", "text ") starts the
// field's name in messages.
inline void read_hidden_act(const nlohmann::json& j, hidden_act& act, bool quick_gelu, const std::string& what,
                            const std::string& file) {
    if (!j.contains("hidden_act")) return;
    const auto& v = j.at("hidden_act");
    if (!v.is_string()) throw error(file + ": " + what + "'hidden_act' must be a string");
    const std::string a = v.get<std::string>();
    if (a == "gelu") act = hidden_act::gelu;
    else if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") act = hidden_act::gelu_tanh;
    else if (a == "relu") act = hidden_act::relu;
    else if (a == "quick_gelu" && quick_gelu) act = hidden_act::quick_gelu;
    else
        throw error(file + ": " + what + "hidden_act '" + escape_for_message(a) + "' is not supported (gelu, gelu_new, " +
                    "gelu_pytorch_tanh, relu" + (quick_gelu ? ", quick_gelu)" : ")"));
}

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
    with_family(c.family, [&](auto f) { decltype(f)::read_fields(j, c, file); });  // DINOv2's mlp_ratio ...
    if (c.hidden_size % c.num_attention_heads != 0)
        throw error(file + ": hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                    std::to_string(c.num_attention_heads));
    if (c.image_height < c.patch_size || c.image_width < c.patch_size)
        throw error(file + ": image_size is smaller than patch_size " + std::to_string(c.patch_size));
    bool quick_gelu = false;
    with_family(c.family, [&](auto f) { quick_gelu = decltype(f)::quick_gelu; });
    read_hidden_act(j, c.act, quick_gelu, "", file);
    read_number(j, "layer_norm_eps", c.layer_norm_eps, 0, 1, false, file);
    read_bool(j, "qkv_bias", c.qkv_bias, file);
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
    const std::string type = detail::read_string(j, "model_type", "vit", file);
    bool known = false;
    std::string types;
    detail::for_each_family([&](auto f) {
        for (const char* t : decltype(f)::model_types()) {
            if (!known && type == t) {
                c.family = decltype(f)::id;
                known = true;
            }
            types += (types.empty() ? "" : ", ") + std::string(t);
        }
    });
    if (!known)
        throw error(file + ": model_type '" + detail::escape_for_message(type) + "' is not supported (" + types + ")");
    if (j.contains("architectures")) {
        const auto& a = j.at("architectures");
        if (!a.is_array() || a.empty() || !a.at(0).is_string())
            throw error(file + ": 'architectures' must be a list of names");
        c.architecture_name = a.at(0).get<std::string>();
    }
    detail::set_architecture(c, file);
    detail::with_family(c.family, [&](auto f) {
        using F = decltype(f);
        F::defaults(c);
        // CLIPModel and SiglipModel keep the vision tower's fields in vision_config.
        const bool nested = F::vision_config && j.contains("vision_config");
        if (nested && !j.at("vision_config").is_object()) throw error(file + ": 'vision_config' must be an object");
        F::read_top(j, c, file);
        detail::read_fields(nested ? j.at("vision_config") : j, c, file);
    });
    detail::read_labels(j, c, file);
    return c;
}

inline config load_config(const std::string& path) { return parse_config(detail::read_json_file(path), path); }

}  // namespace vit

#include "detail/models/registry.hpp"

namespace vit {

inline const char* family_name(model_family f) {
    const char* name = "?";
    detail::for_each_family([&](auto g) {
        if (decltype(g)::id == f) name = decltype(g)::model_types().front();
    });
    return name;
}

inline int config::prefix_tokens() const {
    int n = 1;
    detail::with_family(family, [&](auto f) { n = decltype(f)::prefix_tokens(*this); });
    return n;
}

inline model_family detail::default_family() {
    bool first = true;
    model_family id{};
    for_each_family([&](auto f) {
        if (first) id = decltype(f)::id;
        first = false;
    });
    return id;
}

}  // namespace vit
