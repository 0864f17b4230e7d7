// DeiT distilled's head: the final LayerNorm, a classifier on CLS and one on
// the distillation token; the logits are their mean.
#pragma once

#include "../head.hpp"
#include "../layers.hpp"
#include "family.hpp"

namespace vit::detail {

template <class T>
class deit_head : public family_head<T> {
    using base = family_head<T>;

public:
    void load(const weight_source& w, const config& c, activation) override {
        this->hidden_ = c.hidden_size;
        labels_ = c.num_labels();
        final_ln_ = load_layer_norm<T>(w, deit_family::final_norm(c), c.layer_norm_eps);
        classifier_ = load_linear<T>(w, deit_family::cls_classifier(c), precision::f32);
        distillation_classifier_ = load_linear<T>(w, deit_family::distillation_classifier(c), precision::f32);
    }

    void size_outputs(output<T>& out, index_t B) const override {
        out.cls_embedding.resize(B, this->hidden_);
        out.logits.resize(B, labels_);
        out.cls_logits.resize(B, labels_);
        out.distillation_logits.resize(B, labels_);
    }

    void run(const head_input<T>& g, output<T>& out) const override {
        const index_t H = this->hidden_, B = g.images, L = labels_;
        const encoder_buffers<T>& b = g.b;
        final_ln_.run(b.x, b.ln, B * g.tokens, g.pool);
        if (g.opt.output_last_hidden_state) base::keep_tokens(g, out, b.ln, H);
        base::gather(g, b.ln, 0, b.ctx, H);  // CLS after the LayerNorm
        base::rows_of(g, out.cls_embedding, b.ctx, H);
        T* dist = b.ctx + B * H;
        base::gather(g, b.ln, 1, dist, H);
        T* a = out.cls_logits.row(g.b0).data();
        T* d = out.distillation_logits.row(g.b0).data();
        classifier_.run(b.ctx, B, H, a, L, g.pool);
        distillation_classifier_.run(dist, B, H, d, L, g.pool);
        T* logits = out.logits.row(g.b0).data();
        for (index_t i = 0; i < B * L; ++i) logits[i] = (a[i] + d[i]) / T(2);
    }

    bool computes_pooler() const override { return false; }

private:
    layer_norm<T> final_ln_;                               // [H]
    linear<T> classifier_, distillation_classifier_;       // [labels, H]
    index_t labels_ = 0;
};

}  // namespace vit::detail
