// DINOv2's tensor names (Dinov2Model, Dinov2ForImageClassification and the
// with-registers variants), canonical = a Dinov2Model's own names.
#pragma once

#include <string>

#include "../../index.hpp"
#include "../block_names.hpp"

namespace vit::detail::dinov2_names {

inline block_names layer(index_t l, bool swiglu) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    return {p + "norm1",
            p + "norm2",
            p + "attention.attention.query",
            p + "attention.attention.key",
            p + "attention.attention.value",
            p + "attention.output.dense",
            p + (swiglu ? "mlp.weights_in" : "mlp.fc1"),
            p + (swiglu ? "mlp.weights_out" : "mlp.fc2"),
            p + "layer_scale1.lambda1",
            p + "layer_scale2.lambda1",
            swiglu};
}

// The classifier's checkpoint nests the model under its base_model_prefix.
inline std::string base_prefix(bool registers) { return registers ? "dinov2_with_registers." : "dinov2."; }

template <class Contains>
std::string prefix(Contains&& contains, bool registers) {
    const std::string p = base_prefix(registers);
    return contains(p + "embeddings.cls_token") ? p : "";
}

}  // namespace vit::detail::dinov2_names
