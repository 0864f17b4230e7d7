// CLIP's vision tower (CLIPModel, CLIPVisionModel, ...WithProjection): a
// class embedding without bias in the patch projection, pre_layrnorm on the
// embeddings, post_layernorm on CLS (the pooler_output) and the
// visual_projection to image_embeds.
#pragma once

#include <string>
#include <vector>

#include "../../json.hpp"
#include "../../../config.hpp"
#include "../family.hpp"
#include "names.hpp"

namespace vit::detail {

template <class T>
class clip_head;

struct clip_family {
    static constexpr model_family id = model_family::clip;
    static std::vector<const char*> model_types() { return {"clip", "clip_vision_model"}; }
    static std::vector<accepted_architecture> architectures() {
        return {{"CLIPModel", architecture::backbone},
                {"CLIPVisionModelWithProjection", architecture::backbone},
                {"CLIPVisionModel", architecture::backbone}};
    }
    static constexpr architecture absent = architecture::backbone;
    static constexpr bool quick_gelu = true;
    static constexpr bool vision_config = true;  // CLIPModel's tower fields
    static std::vector<processor_rule> processors() {
        return {{"CLIPImageProcessor", true}, {"CLIPFeatureExtractor", true}};
    }

    // transformers' CLIPVisionConfig defaults.
    static void defaults(config& c) {
        c.patch_size = 32;
        c.act = hidden_act::quick_gelu;
        c.layer_norm_eps = 1e-5;
        c.projection_dim = 512;
    }
    // CLIPModel's projection_dim is its own; CLIPVisionModelWithProjection's is in its (vision) config.
    static void read_top(const nlohmann::json& j, config& c, const std::string& file) {
        read_int(j, "projection_dim", c.projection_dim, 1, 65536, file);
    }
    static void read_fields(const nlohmann::json&, config&, const std::string&) {}
    static int prefix_tokens(const config&) { return 1; }

    template <class Contains>
    static std::function<std::string(const std::string&)> file_names(Contains&&) {
        return prefixed_names("", {});
    }
    static std::string hub_prefix(const config&) { return ""; }

    static embedding_parts embeddings(const config& c) {
        const index_t H = c.hidden_size, P = c.patch_size;
        const std::string e = clip_names::tower + "embeddings.";
        embedding_parts parts;
        parts.cls = raw_tensor(e + "class_embedding", {H});
        parts.position = raw_tensor(e + "position_embedding.weight", {index_t(c.num_patches()) + 1, H});
        parts.patch = linear_part(e + "patch_embedding", {H, c.num_channels, P, P}, false);
        parts.pre_norm = layer_norm_part(clip_names::tower + "pre_layrnorm", H);
        return parts;
    }

    static block_names block(index_t l, const config&) { return clip_names::layer(l); }

    static tensor_part post_norm(const config& c) {
        return layer_norm_part(clip_names::tower + "post_layernorm", c.hidden_size);
    }
    // CLIPVisionModel has no projection; CLIPModel and ...WithProjection must;
    // without `architectures`, a file that holds one has it.
    static tensor_part projection(const config& c) {
        if (c.architecture_name == "CLIPVisionModel") return {};
        tensor_part p = linear_part("visual_projection", {c.projection_dim, c.hidden_size}, false);
        p.optional = c.architecture_name.empty();
        return p;
    }
    static std::vector<tensor_part> head_parts(const config& c) { return {post_norm(c), projection(c)}; }

    template <class T>
    using head = clip_head<T>;
};

}  // namespace vit::detail
