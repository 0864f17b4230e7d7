// A ViT checkpoint loaded for inference: ViTForImageClassification or
// ViTModel. Loading (load, load_weights) is apart from computing (forward,
// which reads top to bottom as transformers' ViTModel.forward).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/cpu/background_packer.hpp"
#include "detail/cpu/dispatch.hpp"
#include "detail/cpu/thread_pool.hpp"
#include "detail/index.hpp"
#include "detail/io/checkpoint.hpp"
#include "detail/io/weight_source.hpp"
#include "detail/models/vit/encoder.hpp"
#include "detail/models/vit/names.hpp"
#include "detail/nn/interpolate.hpp"
#include "detail/nn/layer_norm.hpp"
#include "detail/nn/linear.hpp"
#include "error.hpp"
#include "options.hpp"
#include "output.hpp"
#include "preprocess.hpp"
#include "profile.hpp"
#include "tensor.hpp"
#include "workspace.hpp"

namespace vit {

namespace detail {
// Image files to pixel_values; defined by <vit/image.hpp>, which
// basic_model::classify(path) needs (the model alone does not decode images).
template <class T>
struct image_input;
}  // namespace detail

template <class T>
class basic_model {
public:
    using scalar = T;

    // Reads DIR/config.json, DIR/preprocessor_config.json (optional) and the
    // weights (see detail::read_checkpoint).
    static basic_model load(const std::string& dir, const load_options& opt = {}) {
        basic_model m;
        m.config_ = load_config(dir + "/config.json");
        m.preprocess_ = load_preprocess_config(dir);
        m.store_ = std::make_shared<const detail::tensor_store>(detail::read_checkpoint(dir));
        const detail::vit_names::file_names names([&](const std::string& n) { return m.store_->contains(n); });
        m.load_weights(detail::weight_source(*m.store_, dir, names), opt);
        return m;
    }

    // Movable, not copyable: a model may still be packing its weights in the
    // background (load_options::background_packing).
    basic_model(basic_model&&) noexcept = default;
    basic_model& operator=(basic_model&&) noexcept = default;  // packer_ first: the old one stops first
    ~basic_model() { packer_.reset(); }  // stop packing before the layers it writes go away

    // Whether every layer runs on its packed weights (see
    // load_options::background_packing); wait_packed() blocks until then.
    bool packed() const { return !packer_ || packer_->done(); }
    void wait_packed() const {
        if (packer_) packer_->wait();
    }

    const vit::config& config() const { return config_; }
    const preprocess_config& preprocessing() const { return preprocess_; }
    bool has_pooler() const { return has_pooler_; }

    // The k most probable labels of an image file, preprocessed as the
    // checkpoint's image processor does, on every core (see forward without
    // a workspace). Needs <vit/image.hpp> (or <vit/vit.hpp>).
    std::vector<prediction> classify(const std::string& image_path, int k = 5) const {
        return classify(detail::image_input<T>::from_file(image_path, preprocess_), k);
    }

    // The k most probable labels of each image of a batch, best first.
    std::vector<prediction> classify(const pixel_values<T>& px, int k = 5) const {
        if (config_.arch != architecture::image_classification)
            throw error("classify: the checkpoint is a ViTModel backbone without a classifier");
        forward_options opt;
        opt.output_last_hidden_state = false;
        const output<T> out = forward(px, opt);
        return top_k(out.logits.data(), config_.num_labels(), k, config_.labels);
    }

    // The forward pass of transformers' ViTForImageClassification / ViTModel.
    // Any height and width that are multiples of the patch size are accepted;
    // position embeddings are then interpolated as with
    // interpolate_pos_encoding=True. Const and thread-safe. Without a
    // workspace it borrows one of the model's own (on load_options::threads
    // threads, buffers reused across calls; one per concurrent call); pass one
    // per calling thread to choose the thread count.
    output<T> forward(const pixel_values<T>& px, const forward_options& opt = {}, workspace<T>* ws = nullptr) const {
        if (!ws) {
            auto lease = spare_->borrow();
            return forward(px, opt, &lease.get());
        }
        workspace<T>& w = *ws;
        check_input(px);
        using detail::index_t;
        const index_t B = px.batch, H = config_.hidden_size, heads = config_.num_attention_heads;
        const index_t Tk = index_t(px.height / config_.patch_size) * (px.width / config_.patch_size) + 1;
        output<T> out;
        out.batch = px.batch;
        out.tokens = static_cast<int>(Tk);
        if (opt.output_last_hidden_state) out.last_hidden_state.resize(B * Tk, H);
        out.cls_embedding.resize(B, H);
        if (config_.arch == architecture::image_classification) out.logits.resize(B, config_.num_labels());
        else if (has_pooler_) out.pooler_output.resize(B, H);
        if (opt.output_hidden_states) out.hidden_states.assign(layers_.size() + 1, matrix<T>(B * Tk, H));
        if (opt.output_attentions) out.attentions.assign(layers_.size(), matrix<T>(B * heads * Tk, Tk));
        if (opt.profile) ++opt.profile->calls;
        // A batch runs as groups of about group_rows tokens, so a group's
        // activations stay in the caches (BENCHMARKS.md).
        const index_t group = std::max<index_t>(1, group_rows / Tk);
        index_t b0 = 0;
        // While there is a group for every pool thread, each thread runs its
        // own group through the whole model in its own workspace (no joins,
        // no activations read across cores); a single image, or the groups
        // left over, run on all threads together. Every output element takes
        // the same operations either way, so the results are bit-identical.
        const index_t lanes = w.threads();
        if (lanes > 1 && B >= lanes * group) {
            w.make_lanes(int(lanes));
            std::vector<vit::profile> lane_profile(opt.profile ? std::size_t(lanes) : 0);
            for (; b0 + lanes * group <= B; b0 += lanes * group)
                w.pool_.for_each_thread([&](index_t t) {
                    forward_options lane_opt = opt;
                    lane_opt.profile = opt.profile ? &lane_profile[std::size_t(t)] : nullptr;
                    run_group(px, b0 + t * group, group, lane_opt, *w.lanes_[std::size_t(t)], out);
                });
            // A stage's wall time is the lanes' average (they ran side by side).
            for (const vit::profile& p : lane_profile) opt.profile->add(p, 1.0 / double(lanes));
        }
        for (; b0 < B; b0 += group) run_group(px, b0, std::min(group, B - b0), opt, w, out);
        return out;
    }

private:
    static constexpr detail::index_t group_rows = 160;

    // Images b0 .. b0 + B - 1 of px through the whole model, into their rows
    // of out (sized by forward).
    void run_group(const pixel_values<T>& px, detail::index_t b0, detail::index_t B, const forward_options& opt,
                   workspace<T>& w, output<T>& out) const {
        using detail::index_t;
        const index_t H = config_.hidden_size, I = config_.intermediate_size, heads = config_.num_attention_heads;
        const index_t P = config_.patch_size, C = config_.num_channels;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, Tk = G + 1, rows = B * Tk;
        w.reserve(rows, H, I, opt.output_attentions ? B * heads * Tk * Tk : 0, B * G * C * P * P);
        detail::thread_pool& pool = w.pool_;
        detail::stage_clock clock(opt.profile);
        const detail::encoder_buffers<T> buf{w.x, w.ln, w.qkv, w.ctx, w.mlp, opt.output_attentions ? w.probs : nullptr};
        const detail::encoder_shape shape{B, Tk, H, I, heads, config_.head_dim(), act_, attention_kernel_};
        // This group's rows of a per-token output matrix.
        auto keep = [&](matrix<T>& dst, const T* src, index_t row0, index_t n) {
            dst.middleRows(row0, n) = Eigen::Map<const matrix<T>>(src, n, dst.cols());
        };

        embed(px, b0, B, w, buf.x);  // [rows, H]
        if (opt.output_hidden_states) keep(out.hidden_states[0], buf.x, b0 * Tk, rows);
        clock.lap(&profile::embeddings);

        // When only the CLS rows feed the outputs asked for, the last layer
        // runs for them alone (see forward_options).
        const bool cls_only =
            !opt.output_last_hidden_state && !opt.output_hidden_states && !opt.output_attentions && !layers_.empty();
        index_t m = rows;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            m = layers_[l].run(shape, buf, cls_only && l + 1 == layers_.size(), pool, clock);
            if (opt.output_attentions) keep(out.attentions[l], buf.probs, b0 * heads * Tk, B * heads * Tk);
            if (opt.output_hidden_states) keep(out.hidden_states[l + 1], buf.x, b0 * Tk, rows);
        }

        final_ln_.run(buf.x, buf.ln, m, pool);
        clock.lap(&profile::layer_norm);
        T* cls = buf.ln;  // the CLS rows after the final LayerNorm, [B, H]
        if (!cls_only) {
            if (opt.output_last_hidden_state) keep(out.last_hidden_state, buf.ln, b0 * Tk, rows);
            cls = buf.x;  // x is free now
            for (index_t b = 0; b < B; ++b) std::copy(buf.ln + b * Tk * H, buf.ln + (b * Tk + 1) * H, cls + b * H);
        }
        head(cls, b0, B, pool, out);
        clock.lap(&profile::head);
    }

    // Patch embedding: conv(kernel = stride = P) as a product over flattened
    // patches [C, P, P], then CLS first, then position embeddings, into x.
    void embed(const pixel_values<T>& px, detail::index_t b0, detail::index_t B, workspace<T>& w, T* x) const {
        using detail::index_t;
        const index_t H = config_.hidden_size, P = config_.patch_size, C = config_.num_channels;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, Tk = G + 1;
        detail::thread_pool& pool = w.pool_;
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
        for (index_t b = 0; b < B; ++b) {
            // projection.weight [H, C*P*P] · patch + bias -> rows 1..G of image b
            patch_proj_.run(patches + b * G * C * P * P, G, C * P * P, x + (b * Tk + 1) * H, H, pool);
            std::copy(cls_token_.begin(), cls_token_.end(), x + b * Tk * H);
            for (index_t i = 0; i < Tk * H; ++i) x[b * Tk * H + i] += pos[i];
        }
    }

    // The classifier on the CLS rows [B, H], or ViTModel's pooler tanh(dense(CLS)).
    void head(const T* cls, detail::index_t b0, detail::index_t B, detail::thread_pool& pool, output<T>& out) const {
        const detail::index_t H = config_.hidden_size;
        out.cls_embedding.middleRows(b0, B) = Eigen::Map<const matrix<T>>(cls, B, H);
        if (config_.arch == architecture::image_classification) {
            classifier_.run(cls, B, H, out.logits.row(b0).data(), config_.num_labels(), pool);
        } else if (has_pooler_) {
            pooler_.run(cls, B, H, out.pooler_output.row(b0).data(), H, pool);
            out.pooler_output.middleRows(b0, B) = out.pooler_output.middleRows(b0, B).array().tanh().matrix();
        }
    }

    basic_model() = default;

    void load_weights(const detail::weight_source& w, const load_options& opt) {
        using detail::index_t;
        using spec = typename detail::linear<T>::spec;
        const precision compute = opt.compute;
        const vit::config& c = config_;
        const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        spare_ = std::make_unique<detail::workspace_cache<T>>(threads);
        // bf16 mode: attention's products in bf16 too, as PyTorch's bf16 runs
        // them; int8 keeps float32 attention (its accuracy, BENCHMARKS.md).
        attention_kernel_ = detail::resolve_attention<T>(compute == precision::bf16 ? detail::attention_kernel::bf16
                                                                                    : detail::attention_kernel::f32);
        act_ = c.act == hidden_act::gelu        ? detail::activation::gelu_erf
               : c.act == hidden_act::gelu_tanh ? detail::activation::gelu_tanh
                                                : detail::activation::relu;
        const index_t H = c.hidden_size, P = c.patch_size, C = c.num_channels;
        const index_t positions = index_t(c.num_patches()) + 1;
        cls_token_ = w.read<T>("embeddings.cls_token", {1, 1, H});
        pos_embed_ = w.read<T>("embeddings.position_embeddings", {1, positions, H});
        // The patch projection runs in the compute precision; the classifier
        // and pooler, a sliver of the work, in full precision.
        patch_proj_.load(w, spec{{"embeddings.patch_embeddings.projection"}, H, C * P * P, {H, C, P, P}, true},
                         compute);
        layers_.resize(std::size_t(c.num_hidden_layers));
        const bool defer = opt.background_packing && compute == precision::f32 && detail::linear<T>::can_defer();
        // Packing the weights is most of a load: spread the layers over threads.
        detail::thread_pool pool(threads);
        // Each layer's error is kept and the first layer's is thrown, so a bad
        // checkpoint gets the same message however the threads ran.
        std::vector<std::exception_ptr> failed(std::size_t(c.num_hidden_layers));
        pool.parallel_for(c.num_hidden_layers, [&](index_t l) {
            try {
                layers_[std::size_t(l)].load(w, l, c, compute, defer);
            } catch (...) {
                failed[std::size_t(l)] = std::current_exception();
            }
        });
        for (const auto& e : failed)
            if (e) std::rethrow_exception(e);
        if (defer) {
            store_->populate();
            // Layers in forward order, so the first forwards gain from it soonest.
            using layer = detail::encoder_layer<T>;
            layer* layers = layers_.data();
            std::shared_ptr<const detail::tensor_store> store = store_;
            packer_ = std::make_unique<detail::background_packer>(
                threads, index_t(layers_.size()) * layer::products, [layers, store](index_t i) {
                    layers[i / layer::products].product(int(i % layer::products))->pack_deferred(*store);
                });
        }
        final_ln_.load(w, "layernorm", H, c.layer_norm_eps);
        if (c.arch == architecture::image_classification) {
            classifier_.load(w, spec{{"classifier"}, c.num_labels(), H, {}, true}, precision::f32);
        } else if (w.has("pooler.dense.weight")) {
            pooler_.load(w, spec{{"pooler.dense"}, H, H, {}, true}, precision::f32);
            has_pooler_ = true;
        }
    }

    void check_input(const pixel_values<T>& px) const {
        const int P = config_.patch_size;
        if (px.batch < 1) throw error("forward: empty batch");
        if (px.channels != config_.num_channels)
            throw error("forward: input has " + std::to_string(px.channels) + " channels, the model expects " +
                        std::to_string(config_.num_channels));
        if (px.height < P || px.width < P || px.height % P != 0 || px.width % P != 0)
            throw error("forward: input size " + std::to_string(px.width) + "x" + std::to_string(px.height) +
                        " is not a multiple of the patch size " + std::to_string(P));
        if (px.data.size() != std::size_t(px.batch) * px.channels * px.height * px.width)
            throw error("forward: pixel_values holds " + std::to_string(px.data.size()) + " values, its shape needs " +
                        std::to_string(std::size_t(px.batch) * px.channels * px.height * px.width));
    }

    // The checkpoint's position embeddings, or (transformers'
    // interpolate_pos_encoding) their grid part resized bicubically to gh x gw.
    const T* position_embeddings(int gh, int gw, bool square_input, workspace<T>& w) const {
        const int g = static_cast<int>(std::lround(std::sqrt(double(pos_embed_.size() / config_.hidden_size - 1))));
        const std::size_t positions = pos_embed_.size() / std::size_t(config_.hidden_size);
        if (std::size_t(gh) * gw + 1 == positions && square_input) return pos_embed_.data();
        if (std::size_t(g) * g + 1 != positions)
            throw error("forward: position embeddings of " + std::to_string(positions - 1) +
                        " patches are not a square grid, cannot interpolate them");
        if (w.pos_grid_h != gh || w.pos_grid_w != gw) {
            const std::size_t H = std::size_t(config_.hidden_size);
            std::vector<double> grid(pos_embed_.begin() + std::ptrdiff_t(H), pos_embed_.end());
            const std::vector<double> resized = detail::bicubic_resize(grid, g, g, config_.hidden_size, gh, gw);
            w.pos_resized.assign(pos_embed_.begin(), pos_embed_.begin() + std::ptrdiff_t(H));
            w.pos_resized.insert(w.pos_resized.end(), resized.begin(), resized.end());
            w.pos_grid_h = gh;
            w.pos_grid_w = gw;
        }
        return w.pos_resized.data();
    }

    // Declared first: moved first (an old packer stops before the layers it
    // writes are replaced); the destructor stops it explicitly.
    std::unique_ptr<detail::background_packer> packer_;
    std::shared_ptr<const detail::tensor_store> store_;  // the mapped file, for unpacked layers
    vit::config config_;
    preprocess_config preprocess_;
    std::vector<T> cls_token_;  // [H]
    std::vector<T> pos_embed_;  // [1 + grid^2, H]
    detail::linear<T> patch_proj_;  // projection [H, C*P*P]
    std::vector<detail::encoder_layer<T>> layers_;
    detail::layer_norm<T> final_ln_;  // [H]
    detail::linear<T> classifier_;   // [labels, H]
    detail::linear<T> pooler_;       // [H, H]
    bool has_pooler_ = false;
    detail::activation act_ = detail::activation::gelu_erf;
    detail::attention_kernel attention_kernel_ = detail::attention_kernel::portable;  // resolved at load
    std::unique_ptr<detail::workspace_cache<T>> spare_;  // for calls that bring no workspace
};

using model = basic_model<float>;

inline model load_model(const std::string& dir, const load_options& opt = {}) { return model::load(dir, opt); }

}  // namespace vit
