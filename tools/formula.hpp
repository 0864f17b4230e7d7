// The "formula" checkpoints: deterministic weights for full-size models
// without downloading one. The ViT-L/32-384 of tests/data/FIXTURES.md
// (306,632,680 weights) is the one transformers' reference outputs were
// computed from; the other families' lists follow their hub checkpoints
// (tested against the fixtures') for benchmarks. Used by the full-size
// tests, the benchmark and vit-make-formula.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <vit/config.hpp>
#include <vit/detail/io/safetensors.hpp>
#include <vit/detail/models/clip/names.hpp>
#include <vit/detail/models/deit/names.hpp>
#include <vit/detail/models/dinov2/names.hpp>
#include <vit/detail/models/vit/encoder.hpp>

namespace formula {

struct tensor_spec {
    std::string name;
    std::vector<std::int64_t> shape;
};

inline void add_layer_norm(std::vector<tensor_spec>& t, const std::string& name, std::int64_t H) {
    t.push_back({name + ".weight", {H}});
    t.push_back({name + ".bias", {H}});
}

inline void add_linear(std::vector<tensor_spec>& t, const std::string& name, std::int64_t out, std::int64_t in,
                       bool bias = true) {
    t.push_back({name + ".weight", {out, in}});
    if (bias) t.push_back({name + ".bias", {out}});
}

// An encoder layer's tensors under the family's names (vit::detail::block_names).
inline void add_block(std::vector<tensor_spec>& t, const vit::detail::block_names& n, const vit::config& c,
                      const std::string& prefix) {
    const std::int64_t H = c.hidden_size, I = c.intermediate_size;
    add_layer_norm(t, prefix + n.ln_before, H);
    add_layer_norm(t, prefix + n.ln_after, H);
    for (const std::string& qkv : {n.query, n.key, n.value}) add_linear(t, prefix + qkv, H, H, c.qkv_bias);
    add_linear(t, prefix + n.o_proj, H, H);
    add_linear(t, prefix + n.fc1, n.swiglu ? 2 * I : I, H);
    add_linear(t, prefix + n.fc2, H, I);
    for (const std::string& s : {n.scale1, n.scale2})
        if (!s.empty()) t.push_back({prefix + s, {H}});
}

// ViT's, DeiT's and DINOv2's patch projection (a Conv2d with bias).
inline void add_patch_projection(std::vector<tensor_spec>& t, const std::string& prefix, const vit::config& c) {
    const std::int64_t H = c.hidden_size, P = c.patch_size;
    t.push_back({prefix + "embeddings.patch_embeddings.projection.weight", {H, c.num_channels, P, P}});
    t.push_back({prefix + "embeddings.patch_embeddings.projection.bias", {H}});
}

// What a hub checkpoint of config `c` holds: every tensor the vision model
// has (a CLIPModel's or SiglipModel's text tower left out), with its shape.
inline std::vector<tensor_spec> hub_tensors(const vit::config& c) {
    using vit::model_family;
    namespace d = vit::detail;
    const std::int64_t H = c.hidden_size, C = c.num_channels, P = c.patch_size, N = c.num_patches();
    const bool classifier = c.arch == vit::architecture::image_classification;
    std::vector<tensor_spec> t;
    switch (c.family) {
        case model_family::vit:
        case model_family::deit_distilled: {
            const bool deit = c.family == model_family::deit_distilled;
            const std::string p = deit ? "deit." : classifier ? "vit." : "";
            t.push_back({p + "embeddings.cls_token", {1, 1, H}});
            if (deit) t.push_back({p + d::deit_names::distillation_token, {1, 1, H}});
            t.push_back({p + "embeddings.position_embeddings", {1, N + c.prefix_tokens(), H}});
            add_patch_projection(t, p, c);
            for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) add_block(t, d::vit_block(l), c, p);
            add_layer_norm(t, p + "layernorm", H);
            if (deit) {
                add_linear(t, d::deit_names::cls_classifier, c.num_labels(), H);
                add_linear(t, d::deit_names::distillation_classifier, c.num_labels(), H);
            } else if (classifier) {
                add_linear(t, "classifier", c.num_labels(), H);
            }
            break;
        }
        case model_family::dinov2:
        case model_family::dinov2_registers: {
            const bool registers = c.family == model_family::dinov2_registers;
            const std::string p = !classifier ? "" : registers ? "dinov2_with_registers." : "dinov2.";
            t.push_back({p + "embeddings.cls_token", {1, 1, H}});
            t.push_back({p + "embeddings.mask_token", {1, H}});
            t.push_back({p + "embeddings.position_embeddings", {1, N + 1, H}});
            if (registers && c.num_register_tokens > 0)
                t.push_back({p + "embeddings.register_tokens", {1, c.num_register_tokens, H}});
            add_patch_projection(t, p, c);
            for (std::int64_t l = 0; l < c.num_hidden_layers; ++l)
                add_block(t, d::dinov2_names::layer(l, c.use_swiglu_ffn), c, p);
            add_layer_norm(t, p + "layernorm", H);
            if (classifier) add_linear(t, "classifier", c.num_labels(), 2 * H);
            break;
        }
        case model_family::clip:
        case model_family::siglip: {
            const bool clip = c.family == model_family::clip;
            const std::string p = d::clip_names::tower;
            if (clip) t.push_back({p + "embeddings.class_embedding", {H}});
            t.push_back({p + "embeddings.patch_embedding.weight", {H, C, P, P}});
            if (!clip) t.push_back({p + "embeddings.patch_embedding.bias", {H}});
            t.push_back({p + "embeddings.position_embedding.weight", {N + (clip ? 1 : 0), H}});
            if (clip) add_layer_norm(t, p + "pre_layrnorm", H);
            for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) add_block(t, d::clip_names::layer(l), c, "");
            add_layer_norm(t, p + "post_layernorm", H);
            if (clip && c.architecture_name != "CLIPVisionModel")
                add_linear(t, "visual_projection", c.projection_dim, H, false);
            if (!clip) {  // the attention-pooling head (siglip/head.hpp)
                const std::string h = p + "head.";
                t.push_back({h + "probe", {1, 1, H}});
                t.push_back({h + "attention.in_proj_weight", {3 * H, H}});
                t.push_back({h + "attention.in_proj_bias", {3 * H}});
                add_linear(t, h + "attention.out_proj", H, H);
                add_layer_norm(t, h + "layernorm", H);
                add_linear(t, h + "mlp.fc1", c.intermediate_size, H);
                add_linear(t, h + "mlp.fc2", H, c.intermediate_size);
            }
            break;
        }
    }
    return t;
}

// The same, sorted by name: a tensor's position there seeds its values.
inline std::vector<tensor_spec> checkpoint_tensors(const vit::config& c) {
    std::vector<tensor_spec> t = hub_tensors(c);
    std::sort(t.begin(), t.end(), [](const tensor_spec& a, const tensor_spec& b) { return a.name < b.name; });
    return t;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Element i of the tensor at sorted position k.
inline float value(std::uint64_t k, std::uint64_t i, double center, double scale) {
    std::uint64_t z = (k << 32) | i;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    const double u = double(z >> 40) / 16777216.0 * 2 - 1;
    return float(center + scale * u);
}

// The value range of a tensor, by the role its name gives it (ViT-L/32's
// rules, which the fixture's formula fixes, extended to the families' names).
inline void center_scale(const tensor_spec& t, double& center, double& scale) {
    const std::string& n = t.name;
    if (ends_with(n, "bias")) {  // ".bias", and SigLIP's in_proj_bias
        center = 0, scale = 0.05;
    } else if ((n.find("norm") != std::string::npos && ends_with(n, ".weight")) || ends_with(n, "lambda1")) {
        center = 1, scale = 0.2;  // LayerNorm gains, layer scale
    } else if (ends_with(n, "cls_token") || ends_with(n, "position_embeddings") || ends_with(n, "_token") ||
               ends_with(n, "_tokens") || ends_with(n, "class_embedding") ||
               ends_with(n, "position_embedding.weight") || ends_with(n, "probe")) {
        center = 0, scale = 0.5;  // learned tokens and positions
    } else {
        std::int64_t fan_in = 1;
        for (std::size_t d = 1; d < t.shape.size(); ++d) fan_in *= t.shape[d];
        center = 0, scale = std::sqrt(3.0 / double(fan_in));
    }
}

// Every tensor's float32 bytes, computed on `threads` threads.
inline std::vector<vit::detail::tensor_blob> make_tensors(const vit::config& c, unsigned threads = 2) {
    const auto specs = checkpoint_tensors(c);
    std::vector<vit::detail::tensor_blob> out(specs.size());
    for (std::size_t k = 0; k < specs.size(); ++k) {
        std::int64_t n = 1;
        for (auto d : specs[k].shape) n *= d;
        out[k] = {specs[k].name, vit::detail::dtype::f32, specs[k].shape, std::vector<unsigned char>(std::size_t(n) * 4)};
    }
    auto work = [&](unsigned part) {
        for (std::size_t k = part; k < specs.size(); k += threads) {
            double center, scale;
            center_scale(specs[k], center, scale);
            float* dst = reinterpret_cast<float*>(out[k].bytes.data());
            const std::size_t n = out[k].bytes.size() / 4;
            for (std::size_t i = 0; i < n; ++i) dst[i] = value(k, i, center, scale);
        }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& t : pool) t.join();
    return out;
}

}  // namespace formula
