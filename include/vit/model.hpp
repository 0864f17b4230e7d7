// A ViT-family checkpoint loaded for inference: the generic driver. The
// family (detail/models/registry.hpp) gives the names, the embeddings' parts,
// the encoder's blocks and the head; the driver loads them and runs
// embeddings -> encoder layers -> head. Loading (load, load_weights) is apart
// from computing (forward, which reads top to bottom as transformers'
// ViTModel.forward).
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
#include "detail/cpu/dispatch.hpp"
#include "detail/cpu/thread_pool.hpp"
#include "detail/index.hpp"
#include "detail/io/checkpoint.hpp"
#include "detail/io/weight_source.hpp"
#include "detail/models/embeddings.hpp"
#include "detail/models/head.hpp"
#include "detail/models/heads.hpp"
#include "detail/models/registry.hpp"
#include "detail/models/vit/encoder.hpp"
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
        auto contains = [&](const std::string& n) { return m.store_->contains(n); };
        // The canonical names are the family's base model's own; a
        // classifier's checkpoint may nest them under a prefix (not its heads).
        detail::weight_source::name_map names;
        detail::with_family(m.config_.family, [&](auto f) { names = decltype(f)::file_names(contains); });
        m.load_weights(detail::weight_source(*m.store_, dir, names), opt);
        return m;
    }

    // Movable, not copyable (its layers may still be packed by the first
    // calls, load_options::background_packing).
    basic_model(basic_model&&) noexcept = default;
    basic_model& operator=(basic_model&&) noexcept = default;

    // Whether every layer runs on its packed weights (see
    // load_options::background_packing). wait_packed() packs the layers no
    // call has packed yet, on load_options::threads threads, and returns when
    // every layer is packed, so that the calls after it all run at full
    // speed. Thread-safe, also while calls run.
    bool packed() const {
        for (const auto& l : layers_)
            for (int i = 0; i < detail::encoder_layer<T>::products; ++i)
                if (!l.product(i)->is_packed()) return false;
        return true;
    }
    void wait_packed() const {
        if (packed()) return;
        detail::thread_pool pool(threads_);
        for (const auto& l : layers_)
            for (int i = 0; i < detail::encoder_layer<T>::products; ++i) l.product(i)->pack_now(pool);
    }

    const vit::config& config() const { return config_; }
    const preprocess_config& preprocessing() const { return preprocess_; }
    bool has_pooler() const { return head_->has_pooler(); }

    // The image embedding (what vit-classify --features and vit-serve's
    // "embeddings" give): CLIP's image_embeds where there is a projection,
    // else the pooler_output where forward computes one (DINOv2, SigLIP,
    // CLIP, a ViTModel with a pooler), else the CLS token after the final
    // LayerNorm (cls_embedding; the classifiers).
    const char* embedding_kind() const {
        switch (head_->embedding()) {
            case detail::embedding_output::image_embeds: return "image_embeds";
            case detail::embedding_output::pooler_output: return "pooler_output";
            case detail::embedding_output::cls_embedding: break;
        }
        return "cls_embedding";
    }
    int embedding_size() const { return head_->embedding_size(); }
    // That embedding's rows in a forward's output: [batch, embedding_size()].
    const matrix<T>& embedding(const output<T>& out) const {
        switch (head_->embedding()) {
            case detail::embedding_output::image_embeds: return out.image_embeds;
            case detail::embedding_output::pooler_output: return out.pooler_output;
            case detail::embedding_output::cls_embedding: break;
        }
        return out.cls_embedding;
    }

    // The k most probable labels of an image file, preprocessed as the
    // checkpoint's image processor does, on every core (see forward without
    // a workspace). Needs <vit/image.hpp> (or <vit/vit.hpp>).
    std::vector<prediction> classify(const std::string& image_path, int k = 5) const {
        return classify(detail::image_input<T>::from_file(image_path, preprocess_), k).at(0);
    }

    // The k most probable labels of each image of a batch, best first: one
    // list per image.
    std::vector<std::vector<prediction>> classify(const pixel_values<T>& px, int k = 5) const {
        if (config_.arch != architecture::image_classification)
            throw error(std::string("classify: the checkpoint is ") +
                        (config_.architecture_name.empty() ? "a backbone" : "a " + config_.architecture_name) +
                        " without a classifier");
        forward_options opt;
        opt.output_last_hidden_state = false;
        const output<T> out = forward(px, opt);
        std::vector<std::vector<prediction>> best;
        for (int i = 0; i < out.batch; ++i)
            best.push_back(top_k(out.logits.row(i).data(), config_.num_labels(), k, config_.labels));
        return best;
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
        pack_some(w.pool_);
        using detail::index_t;
        const index_t B = px.batch, H = config_.hidden_size, heads = config_.num_attention_heads;
        const index_t Tk =
            index_t(px.height / config_.patch_size) * (px.width / config_.patch_size) + config_.prefix_tokens();
        output<T> out;
        out.batch = px.batch;
        out.tokens = static_cast<int>(Tk);
        if (opt.output_last_hidden_state) out.last_hidden_state.resize(B * Tk, H);
        head_->size_outputs(out, B);
        if (opt.output_hidden_states) out.hidden_states.assign(layers_.size() + 1, matrix<T>(B * Tk, H));
        if (opt.output_attentions) out.attentions.assign(layers_.size(), matrix<T>(B * heads * Tk, Tk));
        if (opt.profile) ++opt.profile->calls;
        // A batch runs as groups of about group_rows tokens, so a group's
        // activations stay in the caches (BENCHMARKS.md); see run_groups.
        const index_t lanes = w.threads();
        std::vector<vit::profile> lane_profile(opt.profile ? std::size_t(lanes) : 0);
        w.run_groups(B, std::max<index_t>(1, group_rows / Tk), [&](index_t b0, index_t n, workspace<T>& ws, index_t t) {
            if (t < 0 || !opt.profile) return run_group(px, b0, n, opt, ws, out);
            forward_options lane_opt = opt;
            lane_opt.profile = &lane_profile[std::size_t(t)];
            run_group(px, b0, n, lane_opt, ws, out);
        });
        // A stage's wall time is the lanes' average (they ran side by side).
        for (const vit::profile& p : lane_profile) opt.profile->add(p, 1.0 / double(lanes));
        return out;
    }

private:
    static constexpr detail::index_t group_rows = 160;
    // The calls after a load with background_packing pack the weights this
    // many at a time (at least one product each).
    static constexpr detail::index_t pack_calls = 24;

    // Packs the next unpacked products in forward order, about 1/pack_calls
    // of the weights, on the call's own threads before it runs: packing 1.2 GB
    // costs about one forward (page faults on the fresh memory, mostly), and
    // spread so it adds ~5% to each of the first calls, whose unpacked layers
    // run from the file at ~0.93x (BENCHMARKS.md). A product another call is
    // packing is skipped, never waited for.
    void pack_some(detail::thread_pool& pool) const {
        if (pack_budget_ <= 0) return;
        detail::index_t left = pack_budget_;
        for (const auto& l : layers_)
            for (int i = 0; i < detail::encoder_layer<T>::products && left > 0; ++i) {
                const detail::index_t n = l.product(i)->unpacked_weights();
                if (n > 0 && l.product(i)->try_pack(pool)) left -= n;
            }
    }

    // Images b0 .. b0 + B - 1 of px through the whole model, into their rows
    // of out (sized by forward).
    void run_group(const pixel_values<T>& px, detail::index_t b0, detail::index_t B, const forward_options& opt,
                   workspace<T>& w, output<T>& out) const {
        using detail::index_t;
        const index_t H = config_.hidden_size, I = config_.intermediate_size, heads = config_.num_attention_heads;
        const index_t P = config_.patch_size, C = config_.num_channels;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, Tk = G + config_.prefix_tokens(),
                      rows = B * Tk;
        // SwiGLU's first product is twice the MLP width.
        w.reserve(rows, H, config_.use_swiglu_ffn ? 2 * I : I, opt.output_attentions ? B * heads * Tk * Tk : 0,
                  B * G * C * P * P);
        detail::thread_pool& pool = w.pool_;
        detail::stage_clock clock(opt.profile);
        const detail::encoder_buffers<T> buf{w.x, w.ln, w.qkv, w.ctx, w.mlp, opt.output_attentions ? w.probs : nullptr};
        const detail::encoder_shape shape{B, Tk, H, I, heads, config_.head_dim(), act_, attention_kernel_};
        // This group's rows of a per-token output matrix.
        auto keep = [&](matrix<T>& dst, const T* src, index_t row0, index_t n) {
            dst.middleRows(row0, n) = Eigen::Map<const matrix<T>>(src, n, dst.cols());
        };

        embeddings_.run(px, b0, B, P, w, buf.x, buf.ln);  // [rows, H]
        if (opt.output_hidden_states) keep(out.hidden_states[0], buf.x, b0 * Tk, rows);
        clock.lap(&profile::embeddings);

        // When only the CLS rows feed the outputs asked for, the last layer
        // runs for them alone (see forward_options).
        const bool cls_only = head_->reads_cls_only() && !opt.output_last_hidden_state && !opt.output_hidden_states &&
                              !opt.output_attentions && !layers_.empty();
        index_t m = rows;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            m = layers_[l].run(shape, buf, cls_only && l + 1 == layers_.size(), pool, clock);
            if (opt.output_attentions) keep(out.attentions[l], buf.probs, b0 * heads * Tk, B * heads * Tk);
            if (opt.output_hidden_states) keep(out.hidden_states[l + 1], buf.x, b0 * Tk, rows);
        }

        head_->run(detail::head_input<T>{buf, b0, B, Tk, m, cls_only, opt, pool, clock}, out);
        clock.lap(&profile::head);
    }

    basic_model() = default;

    void load_weights(const detail::weight_source& w, const load_options& opt) {
        using detail::index_t;
        const precision compute = opt.compute;
        const vit::config& c = config_;
        const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        threads_ = threads;
        spare_ = std::make_unique<detail::workspace_cache<T>>(threads);
        // bf16 mode: attention's products in bf16 too, as PyTorch's bf16 runs
        // them; int8 keeps float32 attention (its accuracy, BENCHMARKS.md).
        attention_kernel_ = detail::resolve_attention<T>(compute == precision::bf16 ? detail::attention_kernel::bf16
                                                                                    : detail::attention_kernel::f32);
        act_ = detail::to_activation(c.act);
        std::vector<detail::block_names> blocks(std::size_t(c.num_hidden_layers));
        detail::with_family(c.family, [&](auto f) {
            using F = decltype(f);
            embeddings_.load(w, F::embeddings(c), c, compute);
            for (index_t l = 0; l < c.num_hidden_layers; ++l) blocks[std::size_t(l)] = F::block(l, c);
            head_ = std::make_unique<typename F::template head<T>>();
        });
        layers_.resize(std::size_t(c.num_hidden_layers));
        const bool defer = opt.background_packing && compute == precision::f32 && detail::linear<T>::can_defer();
        // Packing the weights is most of a load: spread the layers over threads.
        detail::thread_pool pool(threads);
        // Each layer's error is kept and the first layer's is thrown, so a bad
        // checkpoint gets the same message however the threads ran.
        std::vector<std::exception_ptr> failed(std::size_t(c.num_hidden_layers));
        pool.parallel_for(c.num_hidden_layers, [&](index_t l) {
            try {
                layers_[std::size_t(l)].load(w, blocks[std::size_t(l)], c, compute, defer);
            } catch (...) {
                failed[std::size_t(l)] = std::current_exception();
            }
        });
        for (const auto& e : failed)
            if (e) std::rethrow_exception(e);
        // Deferred layers are read in place until their first call packs them:
        // their page tables are filled now in one call per file, not by a
        // fault per 4 KiB in the first forward.
        if (defer) {
            store_->populate();
            for (const auto& l : layers_)
                for (int i = 0; i < detail::encoder_layer<T>::products; ++i)
                    pack_budget_ += l.product(i)->unpacked_weights();
            pack_budget_ = std::max<index_t>(1, pack_budget_ / pack_calls);
        }
        head_->load(w, c, act_);
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

    std::shared_ptr<const detail::tensor_store> store_;  // the mapped file, for unpacked layers
    int threads_ = 1;                                    // load_options::threads, resolved
    detail::index_t pack_budget_ = 0;                    // weights a call packs (pack_some); 0: none deferred
    vit::config config_;
    preprocess_config preprocess_;
    detail::patch_embeddings<T> embeddings_;
    std::vector<detail::encoder_layer<T>> layers_;
    std::unique_ptr<detail::family_head<T>> head_;  // the family's last steps
    detail::activation act_ = detail::activation::gelu_erf;
    detail::attention_kernel attention_kernel_ = detail::attention_kernel::portable;  // resolved at load
    std::unique_ptr<detail::workspace_cache<T>> spare_;  // for calls that bring no workspace
};

using model = basic_model<float>;

inline model load_model(const std::string& dir, const load_options& opt = {}) { return model::load(dir, opt); }

}  // namespace vit
