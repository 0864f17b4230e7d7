// DINOv2 (Dinov2Model, Dinov2ForImageClassification) and DINOv2 with
// registers: layer scale, an optional SwiGLU MLP, position embeddings
// interpolated in float32; the classifier reads CLS ++ the mean of the
// patch tokens, the backbone's pooler_output is CLS after the LayerNorm.
#pragma once

#include <string>
#include <vector>

#include "../../escape.hpp"
#include "../../json.hpp"
#include "../../../config.hpp"
#include "../family.hpp"
#include "names.hpp"

namespace vit::detail {

template <class T>
class dinov2_head;

template <bool Registers>
struct dinov2_rules {
    static constexpr model_family id = Registers ? model_family::dinov2_registers : model_family::dinov2;
    static std::vector<const char*> model_types() {
        return {Registers ? "dinov2_with_registers" : "dinov2"};
    }
    static std::vector<accepted_architecture> architectures() {
        if (Registers)
            return {{"Dinov2WithRegistersModel", architecture::backbone},
                    {"Dinov2WithRegistersForImageClassification", architecture::image_classification}};
        return {{"Dinov2Model", architecture::backbone},
                {"Dinov2ForImageClassification", architecture::image_classification}};
    }
    static constexpr architecture absent = architecture::backbone;
    static constexpr bool quick_gelu = true;
    static constexpr bool vision_config = false;
    static std::vector<processor_rule> processors() {
        if (Registers) return {};  // the same BitImageProcessor
        return {{"BitImageProcessor", false}};
    }

    // transformers' Dinov2Config defaults.
    static void defaults(config& c) {
        c.patch_size = 14;
        c.layer_norm_eps = 1e-6;
        c.num_register_tokens = Registers ? 4 : 0;
    }
    static void read_top(const nlohmann::json&, config&, const std::string&) {}

    // The MLP width from mlp_ratio (and SwiGLU's rounding), the registers.
    static void read_fields(const nlohmann::json& j, config& c, const std::string& file) {
        double ratio = 4;
        read_number(j, "mlp_ratio", ratio, 0, 64, true, file);
        read_bool(j, "use_swiglu_ffn", c.use_swiglu_ffn, file);
        // int(H * mlp_ratio); SwiGLU: (int(hidden * 2 / 3) + 7) // 8 * 8, as Python computes them.
        const long long hidden = static_cast<long long>(double(c.hidden_size) * ratio);
        const long long width =
            c.use_swiglu_ffn ? (static_cast<long long>(double(hidden) * 2 / 3) + 7) / 8 * 8 : hidden;
        if (width < 1 || width > 262144)
            throw error(file + ": mlp_ratio " +
                        escape_for_message(j.contains("mlp_ratio") ? j.at("mlp_ratio").dump() : "4") +
                        " gives an MLP width of " + std::to_string(width) + ", expected 1 to 262144");
        c.intermediate_size = int(width);
        if (Registers) read_int(j, "num_register_tokens", c.num_register_tokens, 0, 1024, file);
    }
    static int prefix_tokens(const config& c) { return Registers ? 1 + c.num_register_tokens : 1; }

    // A classifier's checkpoint nests the model under its base_model_prefix.
    template <class Contains>
    static std::function<std::string(const std::string&)> file_names(Contains&& contains) {
        return prefixed_names(dinov2_names::prefix(contains, Registers), {"classifier."});
    }
    static std::string hub_prefix(const config& c) {
        return c.arch == architecture::image_classification ? dinov2_names::base_prefix(Registers) : "";
    }

    static embedding_parts embeddings(const config& c) {
        const index_t H = c.hidden_size, P = c.patch_size;
        embedding_parts e;
        e.cls = raw_tensor("embeddings.cls_token", {1, 1, H});
        e.position = raw_tensor("embeddings.position_embeddings", {1, index_t(c.num_patches()) + 1, H});
        if (Registers && c.num_register_tokens > 0)
            e.extra = raw_tensor("embeddings.register_tokens", {1, c.num_register_tokens, H});
        e.patch = linear_part("embeddings.patch_embeddings.projection", {H, c.num_channels, P, P});
        e.unread = {raw_tensor("embeddings.mask_token", {1, H})};
        // Registers sit between CLS and the patches, without positions.
        e.positions_before_grid = 1;
        e.interpolation = Registers ? pos_interpolation::f32_antialias : pos_interpolation::f32;
        return e;
    }

    static block_names block(index_t l, const config& c) { return dinov2_names::layer(l, c.use_swiglu_ffn); }

    static tensor_part final_norm(const config& c) { return layer_norm_part("layernorm", c.hidden_size); }
    // Reads CLS ++ the mean of the patch tokens.
    static tensor_part classifier(const config& c) {
        if (c.arch != architecture::image_classification) return {};
        return linear_part("classifier", {c.num_labels(), 2 * index_t(c.hidden_size)});
    }
    static std::vector<tensor_part> head_parts(const config& c) { return {final_norm(c), classifier(c)}; }

    template <class T>
    using head = dinov2_head<T>;
};

using dinov2_family = dinov2_rules<false>;
using dinov2_registers_family = dinov2_rules<true>;

}  // namespace vit::detail
