// CLIP's head: post_layernorm on CLS (the pooler_output; last_hidden_state
// is the encoder's output), then visual_projection to image_embeds.
#pragma once

#include "../head.hpp"
#include "../layers.hpp"
#include "family.hpp"

namespace vit::detail {

template <class T>
class clip_head : public family_head<T> {
    using base = family_head<T>;

public:
    void load(const weight_source& w, const config& c, activation) override {
        this->hidden_ = c.hidden_size;
        projection_dim_ = c.projection_dim;
        post_ln_ = load_layer_norm<T>(w, clip_family::post_norm(c), c.layer_norm_eps);
        const tensor_part p = clip_family::projection(c);
        if (p && (!p.optional || w.has(p.name + ".weight"))) {
            projection_ = load_linear<T>(w, p, precision::f32);
            has_projection_ = true;
        }
    }

    void size_outputs(output<T>& out, index_t B) const override {
        out.cls_embedding.resize(B, this->hidden_);
        out.pooler_output.resize(B, this->hidden_);
        if (has_projection_) out.image_embeds.resize(B, projection_dim_);
    }

    void run(const head_input<T>& g, output<T>& out) const override {
        const index_t H = this->hidden_, B = g.images;
        const encoder_buffers<T>& b = g.b;
        if (g.opt.output_last_hidden_state) base::keep_tokens(g, out, b.x, H);
        base::gather(g, b.x, 0, b.ctx, H);
        post_ln_.run(b.ctx, b.ln, B, g.pool);
        base::rows_of(g, out.cls_embedding, b.ln, H);
        base::rows_of(g, out.pooler_output, b.ln, H);
        if (has_projection_) {
            projection_.run(b.ln, B, H, b.ctx, projection_dim_, g.pool);
            base::rows_of(g, out.image_embeds, b.ctx, projection_dim_);
        }
    }

    bool computes_pooler() const override { return true; }
    embedding_output embedding() const override {
        return has_projection_ ? embedding_output::image_embeds : embedding_output::pooler_output;
    }
    int embedding_size() const override { return has_projection_ ? int(projection_dim_) : this->hidden_; }

private:
    layer_norm<T> post_ln_;  // post_layernorm [H]
    linear<T> projection_;   // visual_projection [projection_dim, H]
    bool has_projection_ = false;
    index_t projection_dim_ = 0;
};

}  // namespace vit::detail
