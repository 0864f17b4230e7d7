// The patch embeddings every family shares, set by its embedding_parts:
// conv(kernel = stride = P) as a product over flattened patches [C, P, P],
// the tokens before the patches (CLS, DeiT's distillation token, DINOv2's
// registers), position embeddings (interpolated for other grids), and
// CLIP's pre_layrnorm.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../config.hpp"
#include "../../error.hpp"
#include "../../options.hpp"
#include "../../tensor.hpp"
#include "../../workspace.hpp"
#include "../cpu/thread_pool.hpp"
#include "../index.hpp"
#include "../io/weight_source.hpp"
#include "../nn/interpolate.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "family.hpp"
#include "layers.hpp"

namespace vit::detail {

template <class T>
class patch_embeddings {
public:
    void load(const weight_source& w, const embedding_parts& e, const config& c, precision compute) {
        const index_t H = c.hidden_size;
        hidden_ = H;
        prefix_ = c.prefix_tokens();
        pos_prefix_ = e.positions_before_grid;
        mode_ = e.interpolation;
        if (e.cls) cls_token_ = w.read<T>(e.cls.name, e.cls.shape);
        pos_embed_ = w.read<T>(e.position.name, e.position.shape);
        if (e.extra) extra_tokens_ = w.read<T>(e.extra.name, e.extra.shape);
        // The patch projection runs in the compute precision.
        const std::vector<index_t>& s = e.patch.shape;  // [H, C, P, P]
        patch_proj_ = load_linear<T>(w, linear_spec{{e.patch.name}, s[0], s[1] * s[2] * s[3], s, e.patch.bias}, compute);
        if (e.pre_norm) {
            pre_ln_ = load_layer_norm<T>(w, e.pre_norm.name, H, c.layer_norm_eps);
            has_pre_ln_ = true;
        }
    }

    // Images b0 .. b0 + B - 1 of px into x [B * Tk, H], through the
    // pre-LayerNorm when the family has one (ln: scratch [B * Tk, H]).
    void run(const pixel_values<T>& px, index_t b0, index_t B, index_t P, workspace<T>& w, T* x, T* ln) const {
        const index_t H = hidden_, C = px.channels;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, prefix = prefix_, Tk = G + prefix;
        thread_pool& pool = w.pool_;
        T* patches = w.patches_buf;  // [B * G, C * P * P]
        pool.parallel_for(B * G, [&](index_t bp) {
            const index_t b = bp / G, py = (bp % G) / gw, pxi = (bp % G) % gw;
            const T* img = px.image(int(b0 + b));
            T* dst = patches + bp * C * P * P;
            for (index_t c = 0; c < C; ++c)
                for (index_t i = 0; i < P; ++i) {
                    const T* row = img + (c * px.height + py * P + i) * px.width + pxi * P;
                    std::copy(row, row + P, dst + (c * P + i) * P);
                }
        });
        const T* pos = position_embeddings(gh, gw, px.height == px.width, w);  // [Tk, H]
        const index_t with_pos = pos_prefix_;  // leading tokens with a position embedding
        for (index_t b = 0; b < B; ++b) {
            // projection.weight [H, C*P*P] · patch + bias -> rows prefix .. prefix+G-1 of image b
            patch_proj_.run(patches + b * G * C * P * P, G, C * P * P, x + (b * Tk + prefix) * H, H, pool);
            std::copy(cls_token_.begin(), cls_token_.end(), x + b * Tk * H);
            std::copy(extra_tokens_.begin(), extra_tokens_.end(), x + (b * Tk + index_t(!cls_token_.empty())) * H);
            if (with_pos == prefix) {
                for (index_t i = 0; i < Tk * H; ++i) x[b * Tk * H + i] += pos[i];
            } else {  // registers: rows with_pos .. prefix - 1 take none
                for (index_t i = 0; i < with_pos * H; ++i) x[b * Tk * H + i] += pos[i];
                for (index_t i = 0; i < G * H; ++i) x[(b * Tk + prefix) * H + i] += pos[with_pos * H + i];
            }
        }
        if (has_pre_ln_) {  // the encoder's input
            const index_t rows = B * Tk;
            pre_ln_.run(x, ln, rows, pool);
            std::copy(ln, ln + rows * H, x);
        }
    }

private:
    // The checkpoint's position embeddings, or (transformers'
    // interpolate_pos_encoding) their grid part resized bicubically to gh x gw,
    // as the family's interpolation says.
    const T* position_embeddings(int gh, int gw, bool square_input, workspace<T>& w) const {
        const std::size_t lead = std::size_t(pos_prefix_);
        const int g = static_cast<int>(std::lround(std::sqrt(double(pos_embed_.size() / std::size_t(hidden_) - lead))));
        const std::size_t positions = pos_embed_.size() / std::size_t(hidden_);
        if (std::size_t(gh) * gw + lead == positions && square_input) return pos_embed_.data();
        if (std::size_t(g) * g + lead != positions)
            throw error("forward: position embeddings of " + std::to_string(positions - lead) +
                        " patches are not a square grid, cannot interpolate them");
        if (w.pos_grid_h != gh || w.pos_grid_w != gw) {
            const std::size_t H = std::size_t(hidden_);
            const int h = int(hidden_);
            const std::ptrdiff_t skip = std::ptrdiff_t(lead * H);
            w.pos_resized.assign(pos_embed_.begin(), pos_embed_.begin() + skip);
            if (mode_ == pos_interpolation::f64) {
                std::vector<double> grid(pos_embed_.begin() + skip, pos_embed_.end());
                const std::vector<double> resized = bicubic_resize(grid, g, g, h, gh, gw);
                w.pos_resized.insert(w.pos_resized.end(), resized.begin(), resized.end());
            } else {
                std::vector<float> grid(pos_embed_.begin() + skip, pos_embed_.end());
                const std::vector<float> resized = mode_ == pos_interpolation::f32
                                                       ? bicubic_resize_f32(grid, g, g, h, gh, gw)
                                                       : bicubic_resize_aa_f32(grid, g, g, h, gh, gw);
                w.pos_resized.insert(w.pos_resized.end(), resized.begin(), resized.end());
            }
            w.pos_grid_h = gh;
            w.pos_grid_w = gw;
        }
        return w.pos_resized.data();
    }

    index_t hidden_ = 0, prefix_ = 1;
    std::vector<T> cls_token_;     // [H]; empty for SigLIP
    std::vector<T> extra_tokens_;  // DeiT's distillation token [H] or DINOv2's registers [R, H], after CLS
    std::vector<T> pos_embed_;     // [pos_prefix_ + grid^2, H]
    index_t pos_prefix_ = 1;       // positions before the grid
    pos_interpolation mode_ = pos_interpolation::f64;
    linear<T> patch_proj_;  // projection [H, C*P*P]
    layer_norm<T> pre_ln_;  // CLIP's pre_layrnorm
    bool has_pre_ln_ = false;
};

}  // namespace vit::detail
