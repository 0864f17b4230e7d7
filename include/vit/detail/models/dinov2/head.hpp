// DINOv2's head: the final LayerNorm over every token; the classifier reads
// CLS ++ the mean of the patch tokens (registers left out), the backbone's
// pooler_output is CLS.
#pragma once

#include <algorithm>

#include "../head.hpp"
#include "../layers.hpp"
#include "family.hpp"

namespace vit::detail {

template <class T>
class dinov2_head : public family_head<T> {
    using base = family_head<T>;

public:
    void load(const weight_source& w, const config& c, activation) override {
        using F = dinov2_family;  // the same parts with registers
        this->hidden_ = c.hidden_size;
        labels_ = c.num_labels();
        prefix_ = c.prefix_tokens();
        final_ln_ = load_layer_norm<T>(w, F::final_norm(c), c.layer_norm_eps);
        if (const tensor_part p = F::classifier(c)) {
            classifier_ = load_linear<T>(w, p, precision::f32);
            classifies_ = true;
        }
    }

    void size_outputs(output<T>& out, index_t B) const override {
        out.cls_embedding.resize(B, this->hidden_);
        if (classifies_) out.logits.resize(B, labels_);
        else out.pooler_output.resize(B, this->hidden_);
    }

    void run(const head_input<T>& g, output<T>& out) const override {
        const index_t H = this->hidden_, B = g.images, Tk = g.tokens, prefix = prefix_;
        const encoder_buffers<T>& b = g.b;
        final_ln_.run(b.x, b.ln, B * Tk, g.pool);
        if (g.opt.output_last_hidden_state) base::keep_tokens(g, out, b.ln, H);
        base::gather(g, b.ln, 0, b.ctx, H);  // CLS after the LayerNorm
        base::rows_of(g, out.cls_embedding, b.ctx, H);
        if (!classifies_) {
            base::rows_of(g, out.pooler_output, b.ctx, H);
            return;
        }
        T* in = b.qkv;  // [B, 2H]
        for (index_t i = 0; i < B; ++i) {
            std::copy(b.ctx + i * H, b.ctx + (i + 1) * H, in + i * 2 * H);
            for (index_t j = 0; j < H; ++j) {
                double sum = 0;
                for (index_t t = prefix; t < Tk; ++t) sum += double(b.ln[(i * Tk + t) * H + j]);
                in[i * 2 * H + H + j] = T(sum / double(Tk - prefix));
            }
        }
        classifier_.run(in, B, 2 * H, out.logits.row(g.b0).data(), labels_, g.pool);
    }

    bool computes_pooler() const override { return !classifies_; }

private:
    layer_norm<T> final_ln_;  // [H]
    linear<T> classifier_;    // [labels, 2H]
    bool classifies_ = false;
    index_t labels_ = 0, prefix_ = 1;
};

}  // namespace vit::detail
