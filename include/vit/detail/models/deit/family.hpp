// DeiT distilled (DeiTForImageClassificationWithTeacher): ViT's config and
// encoder, a distillation token after CLS, and two classifiers (on CLS and on
// the distillation token) whose mean is the logits.
#pragma once

#include <string>
#include <vector>

#include "../../../config.hpp"
#include "../family.hpp"
#include "../vit/family.hpp"
#include "names.hpp"

namespace vit::detail {

template <class T>
class deit_head;

struct deit_family {
    static constexpr model_family id = model_family::deit_distilled;
    static std::vector<const char*> model_types() { return {"deit"}; }
    static std::vector<accepted_architecture> architectures() {
        return {{"DeiTForImageClassificationWithTeacher", architecture::image_classification}};
    }
    static constexpr architecture absent = architecture::image_classification;
    static constexpr bool quick_gelu = true;
    static constexpr bool vision_config = false;
    static std::vector<processor_rule> processors() {
        return {{"DeiTImageProcessor", false}, {"DeiTFeatureExtractor", false}};
    }

    static void defaults(config&) {}  // DeiTConfig's are ViTConfig's
    static void read_top(const nlohmann::json&, config&, const std::string&) {}
    static void read_fields(const nlohmann::json&, config&, const std::string&) {}
    static int prefix_tokens(const config&) { return 2; }

    template <class Contains>
    static std::function<std::string(const std::string&)> file_names(Contains&& contains) {
        return prefixed_names(deit_names::prefix(contains),
                              {std::string(deit_names::cls_classifier) + ".",
                               std::string(deit_names::distillation_classifier) + "."});
    }
    static std::string hub_prefix(const config&) { return deit_names::base_prefix; }

    static embedding_parts embeddings(const config& c) {
        const index_t H = c.hidden_size;
        embedding_parts e = vit_family::embeddings(c);
        e.extra = raw_tensor(deit_names::distillation_token, {1, 1, H});
        e.position = raw_tensor("embeddings.position_embeddings", {1, index_t(c.num_patches()) + 2, H});
        e.positions_before_grid = 2;
        return e;
    }

    static block_names block(index_t l, const config& c) { return vit_family::block(l, c); }

    static tensor_part final_norm(const config& c) { return layer_norm_part("layernorm", c.hidden_size); }
    static tensor_part cls_classifier(const config& c) {
        return linear_part(deit_names::cls_classifier, {c.num_labels(), c.hidden_size});
    }
    static tensor_part distillation_classifier(const config& c) {
        return linear_part(deit_names::distillation_classifier, {c.num_labels(), c.hidden_size});
    }
    static std::vector<tensor_part> head_parts(const config& c) {
        return {final_norm(c), cls_classifier(c), distillation_classifier(c)};
    }

    template <class T>
    using head = deit_head<T>;
};

}  // namespace vit::detail
