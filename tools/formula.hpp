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
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <vit/config.hpp>
#include <vit/detail/io/safetensors.hpp>
#include <vit/detail/models/registry.hpp>
#include <vit/detail/models/text/registry.hpp>

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

// An encoder layer's tensors under the family's canonical names (vit::detail::block_names).
inline void add_block(std::vector<tensor_spec>& t, const vit::detail::block_names& n, const vit::config& c) {
    const std::int64_t H = c.hidden_size, I = c.intermediate_size;
    add_layer_norm(t, n.ln_before, H);
    add_layer_norm(t, n.ln_after, H);
    for (const std::string& qkv : {n.query, n.key, n.value}) add_linear(t, qkv, H, H, c.qkv_bias);
    add_linear(t, n.o_proj, H, H);
    add_linear(t, n.fc1, n.swiglu ? 2 * I : I, H);
    add_linear(t, n.fc2, H, I);
    for (const std::string& s : {n.scale1, n.scale2})
        if (!s.empty()) t.push_back({s, {H}});
}

// A tensor, LayerNorm or linear of the family's tables, under its canonical name.
inline void add_part(std::vector<tensor_spec>& t, const vit::detail::tensor_part& p) {
    using kind = vit::detail::tensor_part::kind;
    if (p.what == kind::tensor) t.push_back({p.name, p.shape});
    if (p.what == kind::layer_norm) add_layer_norm(t, p.name, p.shape.at(0));
    if (p.what == kind::linear) {
        t.push_back({p.name + ".weight", p.shape});
        if (p.bias) t.push_back({p.name + ".bias", {p.shape.at(0)}});
    }
}

// What a hub checkpoint of config `c` holds: every tensor the vision model
// has (a CLIPModel's or SiglipModel's text tower left out), with its shape,
// from the family's tables, named as the loader maps them to a hub file.
inline std::vector<tensor_spec> hub_tensors(const vit::config& c) {
    std::vector<tensor_spec> t;
    vit::detail::with_family(c.family, [&](auto f) {
        using F = decltype(f);
        const vit::detail::embedding_parts e = F::embeddings(c);
        // A hub file holds its embeddings under the family's prefix for this architecture.
        const std::string prefix = F::hub_prefix(c);
        auto contains = [&](const std::string& n) {
            return !prefix.empty() && ((e.cls && n == prefix + e.cls.name) || n == prefix + e.position.name);
        };
        for (const vit::detail::tensor_part& p : {e.cls, e.extra, e.position, e.patch, e.pre_norm})
            if (p) add_part(t, p);
        for (const vit::detail::tensor_part& p : e.unread) add_part(t, p);
        for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) add_block(t, F::block(l, c), c);
        for (const vit::detail::tensor_part& p : F::head_parts(c))
            if (p) add_part(t, p);
        // The file's names, as the loader maps them.
        const std::function<std::string(const std::string&)> file = F::file_names(contains);
        for (tensor_spec& s : t) s.name = file(s.name);
    });
    return t;
}

// Whether config.json `j` is a text tower alone (CLIPTextModel..., SiglipTextModel).
inline bool text_only(const nlohmann::json& j) {
    bool yes = false;
    vit::detail::for_each_text_family([&](auto f) {
        yes = yes || j.value("model_type", std::string()) == decltype(f)::model_types().at(1);
    });
    return yes;
}

// The text tower's tensors of config.json `j` (a CLIPModel or SiglipModel
// with text_config, or a text model alone; none otherwise), hub names, and
// logit_scale / logit_bias for a two-tower model.
inline std::vector<tensor_spec> hub_text_tensors(const nlohmann::json& j, const std::string& file) {
    std::vector<tensor_spec> t;
    const std::string type = j.value("model_type", std::string());
    std::string arch;
    if (j.contains("architectures") && j.at("architectures").is_array() && !j.at("architectures").empty())
        arch = j.at("architectures").at(0).get<std::string>();
    vit::detail::for_each_text_family([&](auto f) {
        using F = decltype(f);
        const bool both = type == F::model_types().at(0) && j.contains("text_config");
        if (!both && type != F::model_types().at(1)) return;
        const nlohmann::json& tj = both ? j.at("text_config") : j;
        const vit::detail::text_config c = F::read_config(tj, file);
        const std::int64_t H = c.hidden_size, I = c.intermediate_size;
        const std::string prefix = "text_model.";
        const vit::detail::text_tensor_names n = F::tensors(prefix, arch);
        t.push_back({n.token_embedding, {tj.value("vocab_size", F::vocab_size), H}});
        t.push_back({n.position_embedding, {tj.value("max_position_embeddings", F::max_positions), H}});
        for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
            const vit::detail::block_names b = vit::detail::text_layer_names(prefix, l);
            add_layer_norm(t, b.ln_before, H);
            add_layer_norm(t, b.ln_after, H);
            for (const auto& q : {b.query, b.key, b.value, b.o_proj}) add_linear(t, q, H, H);
            add_linear(t, b.fc1, I, H);
            add_linear(t, b.fc2, H, I);
        }
        add_layer_norm(t, n.final_norm, H);
        if (!n.pooler_head.empty()) add_linear(t, n.pooler_head, H, H);
        if (!n.projection.empty())
            add_linear(t, n.projection, (both ? j : tj).value("projection_dim", F::projection_dim), H, false);
        if (both) {
            t.push_back({"logit_scale", F::logit_bias ? std::vector<std::int64_t>{1} : std::vector<std::int64_t>{}});
            if (F::logit_bias) t.push_back({"logit_bias", {1}});
        }
    });
    return t;
}

inline void sort_by_name(std::vector<tensor_spec>& t) {
    std::sort(t.begin(), t.end(), [](const tensor_spec& a, const tensor_spec& b) { return a.name < b.name; });
}

// The same, sorted by name: a tensor's position there seeds its values.
inline std::vector<tensor_spec> checkpoint_tensors(const vit::config& c) {
    std::vector<tensor_spec> t = hub_tensors(c);
    sort_by_name(t);
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
               ends_with(n, "position_embedding.weight") || ends_with(n, "probe") ||
               ends_with(n, "token_embedding.weight") || n == "logit_scale" || n == "logit_bias") {
        center = 0, scale = 0.5;  // learned tokens and positions
    } else {
        std::int64_t fan_in = 1;
        for (std::size_t d = 1; d < t.shape.size(); ++d) fan_in *= t.shape[d];
        center = 0, scale = std::sqrt(3.0 / double(fan_in));
    }
}

// Every tensor's float32 bytes, computed on `threads` threads.
inline std::vector<vit::detail::tensor_blob> make_tensors(const std::vector<tensor_spec>& specs, unsigned threads = 2) {
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
inline std::vector<vit::detail::tensor_blob> make_tensors(const vit::config& c, unsigned threads = 2) {
    return make_tensors(checkpoint_tensors(c), threads);
}

}  // namespace formula
