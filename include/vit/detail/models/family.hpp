// What a model family's room says about itself, in plain data: its config's
// names and rules, its tensors (as the loader reads them and the formula tool
// lists them), its image processor. No kernels here: config.hpp reads these.
// Each room (models/<family>/family.hpp) is a struct of static members:
//
//   id, model_types, architectures, absent (the architecture without
//   `architectures`), quick_gelu (accepted as hidden_act), vision_config
//   (its fields nest there), processors;
//   defaults(c), read_top(json, c, file), read_fields(json, c, file),
//   prefix_tokens(c);
//   file_names(contains) (canonical -> the file's names), hub_prefix(c),
//   embeddings(c), block(l, c), head_parts(c);
//   template <class T> using head = ... (the forward's last steps, head.hpp).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../index.hpp"
#include "block_names.hpp"

namespace vit::detail {

// An image processor class (and its ...Fast twin) whose rules differ from
// ViTImageProcessor's: pixel values normalised in float32, and an integer
// `size` a shortest edge (CLIP: default_to_square false) or a square.
struct processor_rule {
    const char* name;
    bool int_size_is_shortest_edge;
};

// Tensors outside the encoder layers, by canonical name.
struct tensor_part {
    enum class kind { none, tensor, layer_norm, linear };
    kind what = kind::none;
    std::string name;
    std::vector<index_t> shape;  // tensor: its shape; layer_norm: {H}; linear: the weight's
    bool bias = true;            // linear
    bool optional = false;       // read when the file holds it
    explicit operator bool() const { return what != kind::none; }
};
inline tensor_part raw_tensor(std::string name, std::vector<index_t> shape) {
    return {tensor_part::kind::tensor, std::move(name), std::move(shape), false, false};
}
inline tensor_part layer_norm_part(std::string name, index_t hidden) {
    return {tensor_part::kind::layer_norm, std::move(name), {hidden}, true, false};
}
inline tensor_part linear_part(std::string name, std::vector<index_t> weight_shape, bool bias = true) {
    return {tensor_part::kind::linear, std::move(name), std::move(weight_shape), bias, false};
}

// How position embeddings are resized for another grid (transformers'
// interpolate_pos_encoding): bicubic in double, or in float32 as PyTorch runs
// it for DINOv2, antialiased for DINOv2 with registers.
enum class pos_interpolation { f64, f32, f32_antialias };

// The patch embeddings: conv(kernel = stride = P) as a product, then the
// tokens before the patches, then position embeddings.
struct embedding_parts {
    tensor_part cls;                 // CLS, or none (SigLIP)
    tensor_part extra;               // tokens after CLS (DeiT's distillation token, DINOv2's registers), or none
    tensor_part position;            // [positions, H] (any leading 1s)
    tensor_part patch;               // the projection, a linear of shape [H, C, P, P]
    tensor_part pre_norm;            // a LayerNorm on the embeddings (CLIP's pre_layrnorm), or none
    std::vector<tensor_part> unread;  // in the file, never read (DINOv2's mask_token)
    index_t positions_before_grid = 1;  // CLS (and DeiT's distillation token) have positions; registers not
    pos_interpolation interpolation = pos_interpolation::f64;
};

// A file's names for canonical ones: under the base model's prefix (a
// classifier's checkpoint nests the model there), but for the heads, which
// stay at the top.
inline std::function<std::string(const std::string&)> prefixed_names(std::string prefix,
                                                                     std::vector<std::string> heads) {
    return [prefix = std::move(prefix), heads = std::move(heads)](const std::string& n) {
        for (const std::string& head : heads)
            if (n.rfind(head, 0) == 0) return n;
        return prefix + n;
    };
}

}  // namespace vit::detail
