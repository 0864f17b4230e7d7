// Where one forward pass keeps the attention's operands: the interface
// between the attention layer and its kernels.
#pragma once

#include <cstdint>

namespace vit::detail {

// Where one forward pass keeps the attention's operands.
// qkv: [batch * tokens, 3 * heads * d], row = image-major token, columns
// q | k | v, each head's d columns contiguous (the stacked projection's output).
// probs: [batch * heads * tokens, tokens], written when not null (the caller
// wants them); otherwise each thread keeps only the rows in flight, which
// spares a forward pass writing (and the cache holding) heads x tokens^2
// floats per image and layer.
// ctx: [batch * tokens, heads * d], heads side by side as transformers
// concatenates them before the output projection.
// queries: how many of each image's tokens, from the first, attend (their
// rows of ctx and probs are written, the others' are left as they were):
// tokens, or 1 when only the CLS token goes on (a classifying last layer).
// valid, causal: the attention mask of a text tower (null, false: none).
// Query q of image b sees key k iff k < valid[b] (right-padded inputs: the
// keys past an attention_mask's ones) and, when causal, k <= q; masked keys
// get probability 0 (transformers adds finfo.min, whose exp is 0).
template <class T>
struct attention_args {
    const T* qkv;
    T* probs;
    T* ctx;
    std::int64_t batch, heads, tokens, d, queries;
    const std::int64_t* valid = nullptr;
    bool causal = false;

    // How many keys, from the first, query q of image b sees.
    std::int64_t keys_seen(std::int64_t b, std::int64_t q) const {
        std::int64_t n = valid ? valid[b] : tokens;
        if (causal && q + 1 < n) n = q + 1;
        return n;
    }
};

}  // namespace vit::detail
