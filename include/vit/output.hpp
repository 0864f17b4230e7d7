// What a forward pass returns, and the labels read off its logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace vit {

// What one forward call returns. Rows of the per-token matrices are image-major:
// row b * tokens + t is token t (0 = CLS) of image b.
template <class T>
struct output {
    int batch = 0, tokens = 0;
    matrix<T> logits;             // [batch, num_labels]; ViTForImageClassification only
    matrix<T> cls_embedding;      // [batch, hidden]: CLS after the final LayerNorm
    matrix<T> pooler_output;      // [batch, hidden]: tanh(dense(CLS)); ViTModel with a pooler only
    matrix<T> last_hidden_state;  // [batch * tokens, hidden], after the final LayerNorm (if asked for)
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
