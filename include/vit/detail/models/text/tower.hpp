// What a text family's room (models/clip/text.hpp, models/siglip/text.hpp)
// says about its text tower, in plain data: the generic text driver
// (<vit/text.hpp>) reads config and tensors through it and names no family.
//
// Each room is a struct of static members:
//   name ("CLIP"), model_types (the config.json model_types it reads: the
//   two-tower one first), text_config_key ("text_config"),
//   read_config(json, file) (the text tower's fields, transformers'
//   defaults for the missing ones), layer(l, prefix) (block_names),
//   tensor names under `prefix`, the pooling and projection rules, and the
//   zero-shot rule (scores).
#pragma once

#include <string>

#include "../../../config.hpp"
#include "../../cpu/epilogue.hpp"
#include "../../escape.hpp"
#include "../../index.hpp"
#include "../../json.hpp"
#include "../block_names.hpp"

namespace vit::detail {

// Which position of each text the pooler reads.
enum class text_pooling {
    first_max_id,   // the first position holding the row's largest id (CLIP: the first <|endoftext|>)
    last_position,  // the last position, padding or not (SigLIP)
};

// How zero-shot logits become probabilities.
enum class zero_shot_rule {
    softmax,  // over the labels of each image (CLIP)
    sigmoid,  // each logit alone, after adding logit_bias (SigLIP)
};

// A text tower's fields that change the math (config.json's text_config).
struct text_config {
    int hidden_size = 512;
    int num_hidden_layers = 12;
    int num_attention_heads = 8;
    int intermediate_size = 2048;
    hidden_act act = hidden_act::quick_gelu;
    double layer_norm_eps = 1e-5;
    int head_dim() const { return hidden_size / num_attention_heads; }
};

// The tensors outside the layers, by their names in the file (under the prefix).
struct text_tensor_names {
    std::string token_embedding, position_embedding, final_norm;
    std::string pooler_head;  // Linear H -> P' with bias on the pooled row, giving pooler_output, or empty
    std::string projection;   // Linear without bias on pooler_output, giving text_embeds, or empty
    bool projection_optional = false;  // read when the file holds it

    // The names CLIP and SigLIP share (embeddings, final LayerNorm) under prefix.
    static text_tensor_names under(const std::string& prefix) {
        text_tensor_names n;
        n.token_embedding = prefix + "embeddings.token_embedding.weight";
        n.position_embedding = prefix + "embeddings.position_embedding.weight";
        n.final_norm = prefix + "final_layer_norm";
        return n;
    }
};

// The tower's fields of `j` (a text_config object or a text model's
// config), over the defaults in `c`.
inline void read_text_fields(const nlohmann::json& j, text_config& c, const std::string& file) {
    read_int(j, "hidden_size", c.hidden_size, 1, 65536, file);
    read_int(j, "num_hidden_layers", c.num_hidden_layers, 0, 1024, file);
    read_int(j, "num_attention_heads", c.num_attention_heads, 1, 4096, file);
    read_int(j, "intermediate_size", c.intermediate_size, 1, 262144, file);
    read_number(j, "layer_norm_eps", c.layer_norm_eps, 0, 1, false, file);
    read_hidden_act(j, c.act, true, "text ", file);
    if (c.hidden_size % c.num_attention_heads != 0)
        throw error(file + ": text hidden_size " + std::to_string(c.hidden_size) +
                    " is not a multiple of num_attention_heads " + std::to_string(c.num_attention_heads));
}

// CLIP's and SigLIP's layer names under a text prefix ("text_model.").
inline block_names text_layer_names(const std::string& prefix, index_t l) {
    const std::string p = prefix + "encoder.layers." + std::to_string(l) + ".";
    return {p + "layer_norm1",      p + "layer_norm2",        p + "self_attn.q_proj", p + "self_attn.k_proj",
            p + "self_attn.v_proj", p + "self_attn.out_proj", p + "mlp.fc1",          p + "mlp.fc2",
            "",                     "",                       false};
}

}  // namespace vit::detail
