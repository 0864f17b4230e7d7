// SigLIP's text tower (SiglipTextTransformer in SiglipModel and
// SiglipTextModel): the padding mask only (no causal mask), gelu_tanh, the
// last position pooled (a pad position for short texts) through a Linear
// head, whose output is both pooler_output and text_embeds.
#pragma once

#include <string>
#include <vector>

#include "../text/tower.hpp"

namespace vit::detail {

struct siglip_text_family {
    static constexpr const char* name = "SigLIP";
    static std::vector<const char*> model_types() { return {"siglip", "siglip_text_model"}; }
    static std::vector<const char*> vision_only() { return {"SiglipVisionModel"}; }
    static constexpr bool causal = false;
    static constexpr text_pooling pooling = text_pooling::last_position;
    static constexpr zero_shot_rule scores = zero_shot_rule::sigmoid;
    static constexpr bool logit_bias = true;
    // SiglipTextConfig's vocab_size and max_position_embeddings (the formula
    // tool's; the loader takes them from the tensors' shapes); no projection.
    static constexpr int vocab_size = 32000, max_positions = 64, projection_dim = 0;

    // transformers' SiglipTextConfig defaults (hub configs give few fields).
    static text_config read_config(const nlohmann::json& j, const std::string& file) {
        text_config c;
        c.hidden_size = 768;
        c.num_hidden_layers = 12;
        c.num_attention_heads = 12;
        c.intermediate_size = 3072;
        c.act = hidden_act::gelu_tanh;
        c.layer_norm_eps = 1e-6;
        read_text_fields(j, c, file);
        return c;
    }

    static text_tensor_names tensors(const std::string& prefix, const std::string&) {
        text_tensor_names n = text_tensor_names::under(prefix);
        n.pooler_head = prefix + "head";
        return n;
    }
};

}  // namespace vit::detail
