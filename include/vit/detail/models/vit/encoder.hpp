// The pre-norm Transformer encoder layer of ViT, the block the model
// families share: x += o_proj(attention(ln_before(x))), x += fc2(act(fc1(ln_after(x)))),
// with DINOv2's layer scale (x += lambda * branch) and SwiGLU MLP; act is the
// family's (CLIP's quick_gelu among them), fused into fc1's product, as the
// layer scales are into o_proj's and fc2's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../../../config.hpp"
#include "../../../options.hpp"
#include "../../../profile.hpp"
#include "../../cpu/dispatch.hpp"
#include "../../cpu/thread_pool.hpp"
#include "../../index.hpp"
#include "../../io/weight_source.hpp"
#include "../../nn/attention.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/linear.hpp"
#include "../../nn/swiglu.hpp"
#include "../block_names.hpp"
#include "../layers.hpp"

namespace vit::detail {

// A group's activations (workspace<T>), each [rows, width] row-major.
template <class T>
struct encoder_buffers {
    T* x;      // [rows, H] the residual stream
    T* ln;     // [rows, H] LayerNorm output
    T* qkv;    // [rows, 3H] q | k | v
    T* ctx;    // [rows, H] attention context
    T* mlp;    // [rows, I] MLP hidden
    T* probs;  // [B * heads * Tk, Tk] attention probabilities, or null (not kept)
};

// The shapes and choices one layer runs with.
struct encoder_shape {
    index_t images, tokens, hidden, intermediate, heads, head_dim;
    activation act;
    attention_kernel attention;
};

template <class T>
struct encoder_layer {
    layer_norm<T> ln_before, ln_after;  // [H]
    linear<T> qkv;                      // query|key|value stacked: [3H, H], bias [3H]
    linear<T> o_proj;                   // attention.output.dense [H, H]
    linear<T> fc1;                      // intermediate.dense [I, H]
    linear<T> fc2;                      // output.dense [H, I]
    std::vector<T> scale1, scale2;      // layer scale [H], or empty
    bool swiglu = false;

    void load(const weight_source& w, const block_names& n, const config& c, precision compute, bool defer) {
        const index_t H = c.hidden_size, I = c.intermediate_size;
        ln_before = load_layer_norm<T>(w, n.ln_before, H, c.layer_norm_eps);
        ln_after = load_layer_norm<T>(w, n.ln_after, H, c.layer_norm_eps);
        // One [3H, H] product instead of three [H, H]: a third of the passes over the activations.
        qkv = load_linear<T>(w, linear_spec{{n.query, n.key, n.value}, H, H, {}, c.qkv_bias}, compute, defer);
        o_proj = load_linear<T>(w, linear_spec{{n.o_proj}, H, H, {}, true}, compute, defer);
        fc1 = load_linear<T>(w, linear_spec{{n.fc1}, n.swiglu ? 2 * I : I, H, {}, true}, compute, defer);
        fc2 = load_linear<T>(w, linear_spec{{n.fc2}, H, I, {}, true}, compute, defer);
        if (!n.scale1.empty()) scale1 = w.read<T>(n.scale1, {H});
        if (!n.scale2.empty()) scale2 = w.read<T>(n.scale2, {H});
        swiglu = n.swiglu;
    }

    // The layer's products, in forward order (for background packing).
    linear<T>* product(int i) {
        linear<T>* parts[] = {&qkv, &o_proj, &fc1, &fc2};
        return parts[i];
    }
    const linear<T>* product(int i) const {
        const linear<T>* parts[] = {&qkv, &o_proj, &fc1, &fc2};
        return parts[i];
    }
    static constexpr int products = 4;

    // Runs the layer on the group's images in place in b.x. cls_only: only
    // the CLS tokens attend (against every token's key and value) and go on,
    // gathered to the first B rows of x (a classifying last layer needs no
    // more). valid, causal: a text tower's attention mask (attention_args).
    // Returns the rows of x that hold the output.
    index_t run(const encoder_shape& s, const encoder_buffers<T>& b, bool cls_only, thread_pool& pool,
                stage_clock& clock, const std::int64_t* valid = nullptr, bool causal = false) const {
        const index_t B = s.images, Tk = s.tokens, H = s.hidden, I = s.intermediate, rows = B * Tk;
        // x = x + o_proj(attention(layernorm_before(x)))
        ln_before.run(b.x, b.ln, rows, pool);
        clock.lap(&profile::layer_norm);
        qkv.run(b.ln, rows, H, b.qkv, 3 * H, pool);  // [rows, 3H]: q | k | v
        clock.lap(&profile::qkv);
        attention<T>({b.qkv, b.probs, b.ctx, B, s.heads, Tk, s.head_dim, cls_only ? 1 : Tk, valid, causal}, s.attention,
                     pool);
        clock.lap(&profile::attention);
        index_t m = rows;
        const T* context = b.ctx;
        if (cls_only) {
            // Row b * Tk -> b, each before its source; the context into the spent q | k | v.
            for (index_t i = 0; i < B; ++i) {
                std::copy(b.ctx + i * Tk * H, b.ctx + (i * Tk + 1) * H, b.qkv + i * H);
                if (i) std::copy(b.x + i * Tk * H, b.x + (i * Tk + 1) * H, b.x + i * H);
            }
            m = B;
            context = b.qkv;
        }
        // x + lambda1 * o_proj(.) with a layer scale (null: none), in the product's epilogue.
        o_proj.add_to(context, m, H, b.x, H, pool, scale1.empty() ? nullptr : scale1.data());
        clock.lap(&profile::attention_output);
        // x = x + fc2(act(fc1(layernorm_after(x))))
        ln_after.run(b.x, b.ln, m, pool);
        clock.lap(&profile::layer_norm);
        if (swiglu) {
            fc1.run(b.ln, m, H, b.mlp, 2 * I, pool);  // [m, 2I] -> silu(x1) * x2 [m, I]
            swiglu_gate(b.mlp, m, I, pool);
        } else {
            fc1.run(b.ln, m, H, b.mlp, I, pool, s.act);
        }
        clock.lap(&profile::mlp_up);
        fc2.add_to(b.mlp, m, I, b.x, H, pool, scale2.empty() ? nullptr : scale2.data());
        clock.lap(&profile::mlp_down);
        return m;
    }
};

}  // namespace vit::detail
