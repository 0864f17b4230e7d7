// ViT (ViTModel, ViTForImageClassification): transformers' ViTConfig is
// config's own defaults; the classifier reads CLS, ViTModel has a pooler.
#pragma once

#include <string>
#include <vector>

#include "../../../config.hpp"
#include "../family.hpp"
#include "names.hpp"

namespace vit::detail {

template <class T>
class vit_head;

struct vit_family {
    static constexpr model_family id = model_family::vit;
    static std::vector<const char*> model_types() { return {"vit"}; }
    static std::vector<accepted_architecture> architectures() {
        return {{"ViTForImageClassification", architecture::image_classification}, {"ViTModel", architecture::backbone}};
    }
    static constexpr architecture absent = architecture::image_classification;
    static constexpr bool quick_gelu = false;
    static constexpr bool vision_config = false;
    static std::vector<processor_rule> processors() { return {}; }  // ViTImageProcessor: the default rules

    static void defaults(config&) {}
    static void read_top(const nlohmann::json&, config&, const std::string&) {}
    static void read_fields(const nlohmann::json&, config&, const std::string&) {}
    static int prefix_tokens(const config&) { return 1; }

    template <class Contains>
    static vit_names::file_names file_names(Contains&& contains) {
        return vit_names::file_names(contains);
    }
    static std::string hub_prefix(const config& c) {
        return c.arch == architecture::image_classification ? "vit." : "";
    }

    static embedding_parts embeddings(const config& c) {
        const index_t H = c.hidden_size, P = c.patch_size;
        embedding_parts e;
        e.cls = raw_tensor("embeddings.cls_token", {1, 1, H});
        e.position = raw_tensor("embeddings.position_embeddings", {1, index_t(c.num_patches()) + 1, H});
        e.patch = linear_part("embeddings.patch_embeddings.projection", {H, c.num_channels, P, P});
        return e;
    }

    // ViT's names (vit_names), the classic ones.
    static block_names block(index_t l, const config&) {
        auto name = [l](const char* part) { return vit_names::layer(l, part); };
        return {name("layernorm_before"),        name("layernorm_after"),
                name("attention.attention.query"), name("attention.attention.key"),
                name("attention.attention.value"), name("attention.output.dense"),
                name("intermediate.dense"),      name("output.dense"),
                "",                              "",
                false};
    }

    static tensor_part final_norm(const config& c) { return layer_norm_part("layernorm", c.hidden_size); }
    // The classifier on CLS, or ViTModel's pooler (when the file has one).
    static tensor_part classifier(const config& c) {
        if (c.arch != architecture::image_classification) return {};
        return linear_part("classifier", {c.num_labels(), c.hidden_size});
    }
    static tensor_part pooler(const config& c) {
        if (c.arch == architecture::image_classification) return {};
        tensor_part p = linear_part("pooler.dense", {c.hidden_size, c.hidden_size});
        p.optional = true;
        return p;
    }
    static std::vector<tensor_part> head_parts(const config& c) { return {final_norm(c), classifier(c), pooler(c)}; }

    template <class T>
    using head = vit_head<T>;
};

}  // namespace vit::detail
