// CLIP's text tower (CLIPTextTransformer in CLIPModel, CLIPTextModel,
// CLIPTextModelWithProjection): causal attention with the padding mask,
// quick_gelu, pooled at the first <|endoftext|>, text_projection without bias.
#pragma once

#include <string>
#include <vector>

#include "../text/tower.hpp"

namespace vit::detail {

struct clip_text_family {
    static constexpr const char* name = "CLIP";
    static std::vector<const char*> model_types() { return {"clip", "clip_text_model"}; }
    // The vision-only classes of these model_types.
    static std::vector<const char*> vision_only() { return {"CLIPVisionModel", "CLIPVisionModelWithProjection"}; }
    static constexpr bool causal = true;
    // transformers pools at argmax(input_ids) under the legacy eos_token_id 2
    // (hub configs still have it) and at the first eos_token_id otherwise;
    // both are the first <|endoftext|> (49407, the largest id) of a tokenized
    // row, so the config's eos id is never searched for.
    static constexpr text_pooling pooling = text_pooling::first_max_id;
    static constexpr zero_shot_rule scores = zero_shot_rule::softmax;
    static constexpr bool logit_bias = false;
    // CLIPTextConfig's vocab_size, max_position_embeddings and projection_dim
    // (the formula tool's; the loader takes them from the tensors' shapes).
    static constexpr int vocab_size = 49408, max_positions = 77, projection_dim = 512;

    // transformers' CLIPTextConfig defaults.
    static text_config read_config(const nlohmann::json& j, const std::string& file) {
        text_config c;
        c.hidden_size = 512;
        c.num_hidden_layers = 12;
        c.num_attention_heads = 8;
        c.intermediate_size = 2048;
        c.act = hidden_act::quick_gelu;
        c.layer_norm_eps = 1e-5;
        read_text_fields(j, c, file);
        return c;
    }

    static text_tensor_names tensors(const std::string& prefix, const std::string& architecture) {
        text_tensor_names n = text_tensor_names::under(prefix);
        // CLIPTextModel has no projection (text_embeds = pooler_output);
        // CLIPModel and ...WithProjection must have one.
        if (architecture != "CLIPTextModel") n.projection = "text_projection";
        n.projection_optional = architecture.empty();
        return n;
    }
};

}  // namespace vit::detail
