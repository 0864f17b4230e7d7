// ViT's head: the final LayerNorm, then the classifier on CLS, or
// ViTModel's pooler tanh(dense(CLS)).
#pragma once

#include <algorithm>

#include "../head.hpp"
#include "../layers.hpp"
#include "family.hpp"

namespace vit::detail {

template <class T>
class vit_head : public family_head<T> {
    using base = family_head<T>;

public:
    void load(const weight_source& w, const config& c, activation) override {
        this->hidden_ = c.hidden_size;
        labels_ = c.num_labels();
        final_ln_ = load_layer_norm<T>(w, vit_family::final_norm(c), c.layer_norm_eps);
        // The classifier and pooler, a sliver of the work, in full precision.
        if (const tensor_part p = vit_family::classifier(c)) {
            classifier_ = load_linear<T>(w, p, precision::f32);
            classifies_ = true;
        } else if (const tensor_part q = vit_family::pooler(c); q && w.has(q.name + ".weight")) {
            pooler_ = load_linear<T>(w, q, precision::f32);
            has_pooler_ = true;
        }
    }

    void size_outputs(output<T>& out, index_t B) const override {
        out.cls_embedding.resize(B, this->hidden_);
        if (classifies_) out.logits.resize(B, labels_);
        else if (has_pooler_) out.pooler_output.resize(B, this->hidden_);
    }

    void run(const head_input<T>& g, output<T>& out) const override {
        const index_t H = this->hidden_, B = g.images, Tk = g.tokens;
        const encoder_buffers<T>& b = g.b;
        final_ln_.run(b.x, b.ln, g.rows, g.pool);
        g.clock.lap(&profile::layer_norm);
        T* cls = b.ln;  // the CLS rows after the final LayerNorm, [B, H]
        if (!g.cls_only) {
            if (g.opt.output_last_hidden_state) base::keep_tokens(g, out, b.ln, H);
            cls = b.x;  // x is free now
            for (index_t i = 0; i < B; ++i) std::copy(b.ln + i * Tk * H, b.ln + (i * Tk + 1) * H, cls + i * H);
        }
        base::rows_of(g, out.cls_embedding, cls, H);
        if (classifies_) {
            classifier_.run(cls, B, H, out.logits.row(g.b0).data(), labels_, g.pool);
        } else if (has_pooler_) {
            pooler_.run(cls, B, H, out.pooler_output.row(g.b0).data(), H, g.pool);
            out.pooler_output.middleRows(g.b0, B) = out.pooler_output.middleRows(g.b0, B).array().tanh().matrix();
        }
    }

    bool reads_cls_only() const override { return true; }
    bool has_pooler() const override { return has_pooler_; }
    bool computes_pooler() const override { return has_pooler_; }

private:
    layer_norm<T> final_ln_;  // [H]
    linear<T> classifier_;    // [labels, H]
    linear<T> pooler_;        // [H, H]
    bool classifies_ = false, has_pooler_ = false;
    index_t labels_ = 0;
};

}  // namespace vit::detail
