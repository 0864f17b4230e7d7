// The CLIP and SigLIP vision towers' tensor names, as CLIPModel,
// CLIPVisionModel(WithProjection), SiglipModel and SiglipVisionModel store
// them (the text tower's are never read).
#pragma once

#include <string>

#include "../../index.hpp"
#include "../block_names.hpp"

namespace vit::detail::clip_names {

inline const std::string tower = "vision_model.";

inline block_names layer(index_t l) {
    const std::string p = tower + "encoder.layers." + std::to_string(l) + ".";
    return {p + "layer_norm1",      p + "layer_norm2",      p + "self_attn.q_proj",   p + "self_attn.k_proj",
            p + "self_attn.v_proj", p + "self_attn.out_proj", p + "mlp.fc1",          p + "mlp.fc2",
            "",                     "",                     false};
}

}  // namespace vit::detail::clip_names
