// The features a family's classifier reads, as transformers computes them:
// ViTForImageClassification the CLS token after the final LayerNorm;
// Dinov2(WithRegisters)ForImageClassification that CLS concatenated with the
// mean of the patch tokens (registers left out).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../../image.hpp"
#include "../../model.hpp"

namespace vit {

// The classifier architecture a linear probe on this family writes.
inline const char* classifier_architecture(model_family f) {
    switch (f) {
        case model_family::vit: return "ViTForImageClassification";
        case model_family::dinov2: return "Dinov2ForImageClassification";
        case model_family::dinov2_registers: return "Dinov2WithRegistersForImageClassification";
        default: break;
    }
    throw error(std::string("a linear head for model_type '") + family_name(f) +
                "' is not supported (vit, dinov2, dinov2_with_registers; a non-distilled DeiT is a vit checkpoint)");
}

inline bool reads_patch_mean(model_family f) {
    return f == model_family::dinov2 || f == model_family::dinov2_registers;
}

template <class T>
int classifier_input_size(const basic_model<T>& m) {
    classifier_architecture(m.config().family);
    return reads_patch_mean(m.config().family) ? 2 * m.config().hidden_size : m.config().hidden_size;
}

template <class T>
const char* classifier_input_kind(const basic_model<T>& m) {
    return reads_patch_mean(m.config().family) ? "cls_embedding+patch_mean" : "cls_embedding";
}

// What forward must compute for classifier_input.
template <class T>
forward_options classifier_input_options(const basic_model<T>& m) {
    forward_options o;
    o.output_last_hidden_state = reads_patch_mean(m.config().family);
    return o;
}

// The classifier's input rows [batch, classifier_input_size(m)] of a forward's output.
template <class T>
matrix<float> classifier_input(const basic_model<T>& m, const output<T>& out) {
    const int h = m.config().hidden_size, B = out.batch;
    const int width = classifier_input_size(m);
    matrix<float> x(B, width);
    for (int b = 0; b < B; ++b) {
        for (int j = 0; j < h; ++j) x(b, j) = float(out.cls_embedding(b, j));
        if (width == h) continue;
        const int first = m.config().prefix_tokens(), tokens = out.tokens;
        if (out.last_hidden_state.rows() != Eigen::Index(B) * tokens || tokens <= first)
            throw error("classifier_input: the output has no last_hidden_state (forward with classifier_input_options)");
        for (int j = 0; j < h; ++j) {
            double s = 0;  // in double: the mean of hundreds of tokens
            for (int t = first; t < tokens; ++t) s += double(out.last_hidden_state(Eigen::Index(b) * tokens + t, j));
            x(b, h + j) = float(s / double(tokens - first));
        }
    }
    return x;
}

struct image_features {
    matrix<float> rows;               // one per image read, in order
    std::vector<std::string> images;  // their paths
    std::vector<std::pair<std::string, std::string>> failed;  // path, why
};

// The classifier inputs of image files, `batch` images per forward; an image
// that cannot be read is listed in `failed` and left out.
template <class T>
image_features compute_features(const basic_model<T>& m, const std::vector<std::string>& paths, int batch,
                                workspace<T>& ws) {
    image_features r;
    const int width = classifier_input_size(m);
    std::vector<matrix<float>> parts;
    std::size_t total = 0;
    for (std::size_t i = 0; i < paths.size();) {
        std::vector<image> imgs;
        std::vector<std::string> names;
        for (; i < paths.size() && int(imgs.size()) < std::max(1, batch); ++i) {
            try {
                imgs.push_back(load_image(paths[i]));
                names.push_back(paths[i]);
            } catch (const std::exception& e) {
                r.failed.emplace_back(paths[i], e.what());
            }
        }
        if (imgs.empty()) continue;
        const pixel_values<T> px = make_pixel_values<T>(imgs, m.preprocessing());
        parts.push_back(classifier_input(m, m.forward(px, classifier_input_options(m), &ws)));
        total += names.size();
        for (auto& n : names) r.images.push_back(std::move(n));
    }
    r.rows.resize(Eigen::Index(total), width);
    Eigen::Index at = 0;
    for (const auto& p : parts) {
        r.rows.middleRows(at, p.rows()) = p;
        at += p.rows();
    }
    return r;
}

}  // namespace vit
