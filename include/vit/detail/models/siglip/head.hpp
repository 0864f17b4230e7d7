// SigLIP's attention-pooling (MAP) head: a learned probe attends over the
// tokens after post_layernorm (nn.MultiheadAttention, q | k | v packed in
// in_proj), then out_proj, and a residual LayerNorm + MLP; the probe's row is
// the pooled image feature.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../../config.hpp"
#include "../../../options.hpp"
#include "../../cpu/thread_pool.hpp"
#include "../../index.hpp"
#include "../../io/weight_source.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/linear.hpp"
#include "../clip/names.hpp"

namespace vit::detail {

template <class T>
struct map_head {
    std::vector<double> query;  // [H] probe . Wq^T + bq: the same for every image, made at load
    linear<T> kv;               // in_proj rows H .. 3H: [2H, H]
    linear<T> out_proj, fc1, fc2;
    layer_norm<T> ln;
    index_t hidden = 0, inter = 0, heads = 1;
    activation act = activation::gelu_tanh;

    void load(const weight_source& w, const config& c, activation act_) {
        using spec = typename linear<T>::spec;
        const index_t H = hidden = c.hidden_size;
        inter = c.intermediate_size;
        heads = c.num_attention_heads;
        act = act_;
        const std::string p = clip_names::tower + "head.";
        const std::vector<T> probe = w.read<T>(p + "probe", {1, 1, H});
        const std::vector<T> in_w = w.read<T>(p + "attention.in_proj_weight", {3 * H, H});
        const std::vector<T> in_b = w.read<T>(p + "attention.in_proj_bias", {3 * H});
        query.assign(std::size_t(H), 0.0);
        for (index_t i = 0; i < H; ++i) {
            double s = double(in_b[std::size_t(i)]);
            for (index_t j = 0; j < H; ++j) s += double(probe[std::size_t(j)]) * double(in_w[std::size_t(i * H + j)]);
            query[std::size_t(i)] = s;
        }
        kv.product = packed_linear<T>(in_w.data() + H * H, 2 * H, H);
        kv.bias.assign(in_b.begin() + std::ptrdiff_t(H), in_b.end());
        out_proj.load(w, spec{{p + "attention.out_proj"}, H, H, {}, true}, precision::f32);
        ln.load(w, p + "layernorm", H, c.layer_norm_eps);
        fc1.load(w, spec{{p + "mlp.fc1"}, inter, H, {}, true}, precision::f32);
        fc2.load(w, spec{{p + "mlp.fc2"}, H, inter, {}, true}, precision::f32);
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
            std::vector<double> p(static_cast<std::size_t>(Tk));
            double mx = -INFINITY;
            for (index_t t = 0; t < Tk; ++t) {
                const T* k = kvbuf + (b * Tk + t) * 2 * H + h * d;
                double s = 0;
                for (index_t i = 0; i < d; ++i) s += query[std::size_t(h * d + i)] * scale * double(k[i]);
                p[std::size_t(t)] = s;
                mx = std::max(mx, s);
            }
            double sum = 0;
            for (double& v : p) sum += (v = std::exp(v - mx));
            for (index_t i = 0; i < d; ++i) {
                double acc = 0;
                for (index_t t = 0; t < Tk; ++t) acc += p[std::size_t(t)] * double(kvbuf[(b * Tk + t) * 2 * H + H + h * d + i]);
                ctx[b * H + h * d + i] = T(acc / sum);
            }
        });
        out_proj.run(ctx, B, H, out, H, pool);  // the residual
        ln.run(out, normed, B, pool);
        fc1.run(normed, B, H, mlp, inter, pool, act);
        fc2.add_to(mlp, B, inter, out, H, pool);
    }
};

}  // namespace vit::detail
