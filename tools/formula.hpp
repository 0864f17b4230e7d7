// The "formula" ViT-L/32-384 checkpoint of tests/data/FIXTURES.md: 306,632,680
// deterministic weights that transformers' reference outputs were computed
// from. Used by the full-size tests, the benchmark and vit-make-formula.
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
#include <vit/detail/models/vit/names.hpp>

namespace formula {

using tensor_spec = vit::detail::vit_names::tensor_spec;

// The hub checkpoint's tensors for a ViTForImageClassification config, sorted.
inline std::vector<tensor_spec> checkpoint_tensors(const vit::config& c) {
    std::vector<tensor_spec> t = vit::detail::vit_names::classification_checkpoint(c);
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

inline void center_scale(const tensor_spec& t, double& center, double& scale) {
    if (ends_with(t.name, ".bias")) {
        center = 0, scale = 0.05;
    } else if (t.name.find("layernorm") != std::string::npos && ends_with(t.name, ".weight")) {
        center = 1, scale = 0.2;
    } else if (ends_with(t.name, "cls_token") || ends_with(t.name, "position_embeddings")) {
        center = 0, scale = 0.5;
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
