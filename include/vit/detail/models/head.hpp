// A family's last steps after the encoder (its final LayerNorm, classifiers,
// pooler, projection), as the model driver calls them: once per group of
// images, never per token.
#pragma once

#include <algorithm>
#include <memory>

#include <Eigen/Core>

#include "../../config.hpp"
#include "../../options.hpp"
#include "../../output.hpp"
#include "../../profile.hpp"
#include "../cpu/dispatch.hpp"
#include "../cpu/thread_pool.hpp"
#include "../index.hpp"
#include "../io/weight_source.hpp"
#include "vit/encoder.hpp"

namespace vit::detail {

// Which output is a family's image embedding.
enum class embedding_output { cls_embedding, pooler_output, image_embeds };

// A group of images after the last layer, in b.x.
template <class T>
struct head_input {
    const encoder_buffers<T>& b;
    index_t b0, images, tokens;  // the group is images b0 .. b0 + images - 1, of tokens each
    index_t rows;                // rows of x the last layer left: images * tokens, or images (cls_only)
    bool cls_only;               // the last layer ran for the CLS rows alone
    const forward_options& opt;
    thread_pool& pool;
    stage_clock& clock;
};

template <class T>
class family_head {
public:
    virtual ~family_head() = default;
    // The head's tensors, read after the encoder's.
    virtual void load(const weight_source& w, const config& c, activation act) = 0;
    // Sizes the outputs run() writes, for a batch of B images.
    virtual void size_outputs(output<T>& out, index_t B) const = 0;
    // From the last layer's output to the group's rows of out. Without
    // cls_only, every token's rows are there and q | k | v, ctx and mlp are
    // free scratch.
    virtual void run(const head_input<T>& g, output<T>& out) const = 0;

    // Whether the last layer may run for the CLS rows alone when no per-token
    // output is asked for (only CLS feeds this head).
    virtual bool reads_cls_only() const { return false; }
    virtual bool has_pooler() const { return false; }  // ViTModel's pooler
    virtual bool computes_pooler() const = 0;          // forward fills pooler_output
    virtual embedding_output embedding() const {
        return computes_pooler() ? embedding_output::pooler_output : embedding_output::cls_embedding;
    }
    virtual int embedding_size() const { return hidden_; }

protected:
    // This group's rows of a [batch, width] output from src [B, width].
    static void rows_of(const head_input<T>& g, matrix<T>& dst, const T* src, index_t width) {
        dst.middleRows(g.b0, g.images) = Eigen::Map<const matrix<T>>(src, g.images, width);
    }
    // The group's rows of last_hidden_state, from src [rows, H].
    static void keep_tokens(const head_input<T>& g, output<T>& out, const T* src, index_t H) {
        out.last_hidden_state.middleRows(g.b0 * g.tokens, g.images * g.tokens) =
            Eigen::Map<const matrix<T>>(src, g.images * g.tokens, H);
    }
    // Token t of each image of seq [B * Tk, H], gathered to dst [B, H].
    static void gather(const head_input<T>& g, const T* seq, index_t t, T* dst, index_t H) {
        for (index_t i = 0; i < g.images; ++i)
            std::copy(seq + (i * g.tokens + t) * H, seq + (i * g.tokens + t + 1) * H, dst + i * H);
    }

    int hidden_ = 0;
};

}  // namespace vit::detail
