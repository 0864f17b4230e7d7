// SigLIP's head: post_layernorm over every token, then the attention-pooling
// (MAP) head: a learned probe attends over the tokens (nn.MultiheadAttention,
// q | k | v packed in in_proj), then out_proj, and a residual LayerNorm + MLP;
// the probe's row is the pooled image feature (pooler_output).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../../config.hpp"
#include "../../../options.hpp"
#include "../../cpu/memory.hpp"
#include "../../cpu/thread_pool.hpp"
#include "../../index.hpp"
#include "../../io/weight_source.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/linear.hpp"
#include "../head.hpp"
#include "../layers.hpp"
#include "family.hpp"

namespace vit::detail {

template <class T>
struct map_head {
    std::vector<double> query;  // [H] probe . Wq^T + bq: the same for every image, made at load
    linear<T> kv;               // in_proj rows H .. 3H: [2H, H]
    linear<T> out_proj, fc1, fc2;
    layer_norm<T> ln;
    index_t hidden = 0, inter = 0, heads = 1;
    activation act = activation::gelu_tanh;

    // parts: siglip_family::head_parts after post_layernorm: probe,
    // in_proj weight and bias, out_proj, layernorm, fc1, fc2.
    void load(const weight_source& w, const config& c, activation act_) {
        const index_t H = hidden = c.hidden_size;
        inter = c.intermediate_size;
        heads = c.num_attention_heads;
        act = act_;
        const std::vector<tensor_part> parts = siglip_family::head_parts(c);
        auto read = [&](std::size_t i) { return w.read<T>(parts[i].name, parts[i].shape); };
        const std::vector<T> probe = read(1);
        const std::vector<T> in_w = read(2);
        const std::vector<T> in_b = read(3);
        query.assign(std::size_t(H), 0.0);
        for (index_t i = 0; i < H; ++i) {
            double s = double(in_b[std::size_t(i)]);
            for (index_t j = 0; j < H; ++j) s += double(probe[std::size_t(j)]) * double(in_w[std::size_t(i * H + j)]);
            query[std::size_t(i)] = s;
        }
        kv.product = packed_linear<T>(in_w.data() + H * H, 2 * H, H);
        kv.bias.assign(in_b.begin() + std::ptrdiff_t(H), in_b.end());
        out_proj = load_linear<T>(w, parts[4], precision::f32);
        ln = load_layer_norm<T>(w, parts[5], c.layer_norm_eps);
        fc1 = load_linear<T>(w, parts[6], precision::f32);
        fc2 = load_linear<T>(w, parts[7], precision::f32);
    }

    // tokens [B * Tk, H] -> out [B, H]. Scratch: kvbuf [B * Tk, 2H], ctx and
    // normed [B, H], mlp [B, I].
    void run(const T* tokens, index_t B, index_t Tk, T* kvbuf, T* ctx, T* normed, T* mlp, T* out,
             thread_pool& pool) const {
        const index_t H = hidden, d = H / heads;
        kv.run(tokens, B * Tk, H, kvbuf, 2 * H, pool);  // k | v per token
        const double scale = 1.0 / std::sqrt(double(d));
        pool.parallel_for(B * heads, [&](index_t bh) {
            const index_t b = bh / heads, h = bh % heads;
            // The scores in the thread's own scratch: no allocation per image and head.
            double* p = static_cast<double*>(thread_scratch(scratch::attention, sizeof(double) * std::size_t(Tk)));
            double mx = -INFINITY;
            for (index_t t = 0; t < Tk; ++t) {
                const T* k = kvbuf + (b * Tk + t) * 2 * H + h * d;
                double s = 0;
                for (index_t i = 0; i < d; ++i) s += query[std::size_t(h * d + i)] * scale * double(k[i]);
                p[t] = s;
                mx = std::max(mx, s);
            }
            double sum = 0;
            for (index_t t = 0; t < Tk; ++t) sum += (p[t] = std::exp(p[t] - mx));
            for (index_t i = 0; i < d; ++i) {
                double acc = 0;
                for (index_t t = 0; t < Tk; ++t) acc += p[t] * double(kvbuf[(b * Tk + t) * 2 * H + H + h * d + i]);
                ctx[b * H + h * d + i] = T(acc / sum);
            }
        });
        out_proj.run(ctx, B, H, out, H, pool);  // the residual
        ln.run(out, normed, B, pool);
        fc1.run(normed, B, H, mlp, inter, pool, act);
        fc2.add_to(mlp, B, inter, out, H, pool);
    }
};

template <class T>
class siglip_head : public family_head<T> {
    using base = family_head<T>;

public:
    void load(const weight_source& w, const config& c, activation act) override {
        this->hidden_ = c.hidden_size;
        post_ln_ = load_layer_norm<T>(w, siglip_family::post_norm(c), c.layer_norm_eps);
        map_head_.load(w, c, act);
    }

    void size_outputs(output<T>& out, index_t B) const override { out.pooler_output.resize(B, this->hidden_); }

    void run(const head_input<T>& g, output<T>& out) const override {
        const index_t H = this->hidden_, B = g.images, Tk = g.tokens;
        const encoder_buffers<T>& b = g.b;
        post_ln_.run(b.x, b.ln, B * Tk, g.pool);
        if (g.opt.output_last_hidden_state) base::keep_tokens(g, out, b.ln, H);
        // x is free now; ctx holds [rows, H] with rows >= 2B.
        map_head_.run(b.ln, B, Tk, b.qkv, b.ctx, b.ctx + B * H, b.mlp, b.x, g.pool);
        base::rows_of(g, out.pooler_output, b.x, H);
    }

    bool computes_pooler() const override { return true; }

private:
    layer_norm<T> post_ln_;  // post_layernorm [H]
    map_head<T> map_head_;
};

}  // namespace vit::detail
