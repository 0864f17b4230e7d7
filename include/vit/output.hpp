// What a forward pass returns, and the labels read off its logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace vit {

// What one forward call returns. Rows of the per-token matrices are image-major:
// row b * tokens + t is token t of image b (0 = CLS, but for SigLIP; then
// DeiT's distillation token or DINOv2's registers; then the patches).
template <class T>
struct output {
    int batch = 0, tokens = 0;
    matrix<T> logits;  // [batch, num_labels]: the classifiers (DeiT distilled: the two heads' mean)
    matrix<T> cls_logits, distillation_logits;  // [batch, num_labels]: DeiT distilled's two heads
    // [batch, hidden]: CLS after the final LayerNorm (CLIP: post_layernorm); not SigLIP (no CLS)
    matrix<T> cls_embedding;
    // [batch, hidden]: ViTModel's tanh(dense(CLS)) (with a pooler); DINOv2's CLS after
    // the LayerNorm; CLIP's post_layernorm(CLS); SigLIP's attention-pooling head
    matrix<T> pooler_output;
    matrix<T> image_embeds;  // [batch, projection_dim]: CLIP's visual_projection(pooler_output)
    // [batch * tokens, hidden] (if asked for): after the final LayerNorm (SigLIP:
    // post_layernorm; CLIP: the last layer's output, before post_layernorm)
    matrix<T> last_hidden_state;
    std::vector<matrix<T>> hidden_states;  // on request: embeddings, then each layer's output
    std::vector<matrix<T>> attentions;     // on request, per layer: [batch * heads * tokens, tokens]
};

struct prediction {
    std::string label;
    int index = 0;
    double score = 0;  // softmax probability
};

// Softmax over logits, then the k best, best first.
template <class T>
std::vector<prediction> top_k(const T* logits, int n, int k, const std::vector<std::string>& labels) {
    double mx = -INFINITY;
    for (int i = 0; i < n; ++i) mx = std::max(mx, double(logits[i]));
    std::vector<double> p(static_cast<std::size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += (p[i] = std::exp(double(logits[i]) - mx));
    std::vector<int> order(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) order[i] = i;
    k = std::max(0, std::min(k, n));
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    std::vector<prediction> out;
    for (int i = 0; i < k; ++i) {
        const int idx = order[i];
        out.push_back({idx < int(labels.size()) ? labels[idx] : "LABEL_" + std::to_string(idx), idx, p[idx] / sum});
    }
    return out;
}

}  // namespace vit
