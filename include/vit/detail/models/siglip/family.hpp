// SigLIP's vision tower (SiglipModel, SiglipVisionModel): no CLS, positions
// for the patches alone, post_layernorm on every token, and an
// attention-pooling (MAP) head whose output is the pooler_output.
#pragma once

#include <string>
#include <vector>

#include "../clip/names.hpp"
#include "../../../config.hpp"
#include "../family.hpp"

namespace vit::detail {

template <class T>
class siglip_head;

struct siglip_family {
    static constexpr model_family id = model_family::siglip;
    static std::vector<const char*> model_types() { return {"siglip", "siglip_vision_model"}; }
    static std::vector<accepted_architecture> architectures() {
        return {{"SiglipModel", architecture::backbone}, {"SiglipVisionModel", architecture::backbone}};
    }
    static constexpr architecture absent = architecture::backbone;
    static constexpr bool quick_gelu = true;
    static constexpr bool vision_config = true;  // SiglipModel's tower fields
    static std::vector<processor_rule> processors() { return {{"SiglipImageProcessor", false}}; }

    // transformers' SiglipVisionConfig defaults.
    static void defaults(config& c) {
        c.act = hidden_act::gelu_tanh;
        c.layer_norm_eps = 1e-6;
    }
    static void read_top(const nlohmann::json&, config&, const std::string&) {}
    static void read_fields(const nlohmann::json&, config&, const std::string&) {}
    static int prefix_tokens(const config&) { return 0; }

    template <class Contains>
    static std::function<std::string(const std::string&)> file_names(Contains&&) {
        return prefixed_names("", {});
    }
    static std::string hub_prefix(const config&) { return ""; }

    static embedding_parts embeddings(const config& c) {
        const index_t H = c.hidden_size, P = c.patch_size;
        const std::string e = clip_names::tower + "embeddings.";
        embedding_parts parts;
        parts.position = raw_tensor(e + "position_embedding.weight", {index_t(c.num_patches()), H});
        parts.patch = linear_part(e + "patch_embedding", {H, c.num_channels, P, P});
        parts.positions_before_grid = 0;
        return parts;
    }

    static block_names block(index_t l, const config&) { return clip_names::layer(l); }

    static tensor_part post_norm(const config& c) {
        return layer_norm_part(clip_names::tower + "post_layernorm", c.hidden_size);
    }
    // The MAP head's tensors, under vision_model.head.
    static std::string head_name(const char* part) { return clip_names::tower + "head." + part; }
    static std::vector<tensor_part> head_parts(const config& c) {
        const index_t H = c.hidden_size, I = c.intermediate_size;
        return {post_norm(c),
                raw_tensor(head_name("probe"), {1, 1, H}),
                raw_tensor(head_name("attention.in_proj_weight"), {3 * H, H}),
                raw_tensor(head_name("attention.in_proj_bias"), {3 * H}),
                linear_part(head_name("attention.out_proj"), {H, H}),
                layer_norm_part(head_name("layernorm"), H),
                linear_part(head_name("mlp.fc1"), {I, H}),
                linear_part(head_name("mlp.fc2"), {H, I})};
    }

    template <class T>
    using head = siglip_head<T>;
};

}  // namespace vit::detail
