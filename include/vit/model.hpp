// A ViT-family checkpoint loaded for inference: ViTForImageClassification or
// ViTModel, DINOv2 (with registers), DeiT distilled, the CLIP and SigLIP
// vision towers. Loading (load, load_weights) is apart from computing
// (forward, which reads top to bottom as transformers' ViTModel.forward).
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
#include "detail/models/clip/names.hpp"
#include "detail/models/deit/names.hpp"
#include "detail/models/dinov2/names.hpp"
#include "detail/models/siglip/head.hpp"
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
        auto contains = [&](const std::string& n) { return m.store_->contains(n); };
        detail::weight_source::name_map names = detail::vit_names::file_names(contains);
        // The families' canonical names are their base models' own; a
        // classifier's checkpoint nests them under a prefix (not its heads).
        std::string prefix;
        if (m.config_.family == model_family::dinov2 || m.config_.family == model_family::dinov2_registers)
            prefix = detail::dinov2_names::prefix(contains, m.config_.family == model_family::dinov2_registers);
        if (m.config_.family == model_family::deit_distilled) prefix = detail::deit_names::prefix(contains);
        if (m.config_.family != model_family::vit)
            names = [prefix](const std::string& n) {
                for (const char* head : {"classifier.", "cls_classifier.", "distillation_classifier."})
                    if (n.rfind(head, 0) == 0) return n;
                return prefix + n;
            };
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

    // The image embedding (what vit-classify --features and vit-serve's
    // "embeddings" give): CLIP's image_embeds where there is a projection,
    // else the pooler_output where forward computes one (DINOv2, SigLIP,
    // CLIP, a ViTModel with a pooler), else the CLS token after the final
    // LayerNorm (cls_embedding; the classifiers).
    const char* embedding_kind() const {
        return has_projection_ ? "image_embeds" : computes_pooler() ? "pooler_output" : "cls_embedding";
    }
    int embedding_size() const { return has_projection_ ? config_.projection_dim : config_.hidden_size; }
    // That embedding's rows in a forward's output: [batch, embedding_size()].
    const matrix<T>& embedding(const output<T>& out) const {
        return has_projection_ ? out.image_embeds : computes_pooler() ? out.pooler_output : out.cls_embedding;
    }

    // The k most probable labels of an image file, preprocessed as the
    // checkpoint's image processor does, on every core (see forward without
    // a workspace). Needs <vit/image.hpp> (or <vit/vit.hpp>).
    std::vector<prediction> classify(const std::string& image_path, int k = 5) const {
        return classify(detail::image_input<T>::from_file(image_path, preprocess_), k);
    }

    // The k most probable labels of each image of a batch, best first.
    std::vector<prediction> classify(const pixel_values<T>& px, int k = 5) const {
        if (config_.arch != architecture::image_classification)
            throw error(std::string("classify: the checkpoint is ") +
                        (config_.architecture_name.empty() ? "a backbone" : "a " + config_.architecture_name) +
                        " without a classifier");
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
        const index_t Tk =
            index_t(px.height / config_.patch_size) * (px.width / config_.patch_size) + config_.prefix_tokens();
        const model_family family = config_.family;
        output<T> out;
        out.batch = px.batch;
        out.tokens = static_cast<int>(Tk);
        if (opt.output_last_hidden_state) out.last_hidden_state.resize(B * Tk, H);
        if (family != model_family::siglip) out.cls_embedding.resize(B, H);
        if (config_.arch == architecture::image_classification) out.logits.resize(B, config_.num_labels());
        else if (computes_pooler()) out.pooler_output.resize(B, H);
        if (family == model_family::deit_distilled) {
            out.cls_logits.resize(B, config_.num_labels());
            out.distillation_logits.resize(B, config_.num_labels());
        }
        if (has_projection_) out.image_embeds.resize(B, config_.projection_dim);
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
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, Tk = G + config_.prefix_tokens(),
                      rows = B * Tk;
        const model_family family = config_.family;
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

        embed(px, b0, B, w, buf.x);  // [rows, H]
        if (family == model_family::clip) {  // pre_layrnorm: the encoder's input
            pre_ln_.run(buf.x, buf.ln, rows, pool);
            std::copy(buf.ln, buf.ln + rows * H, buf.x);
        }
        if (opt.output_hidden_states) keep(out.hidden_states[0], buf.x, b0 * Tk, rows);
        clock.lap(&profile::embeddings);

        // When only the CLS rows feed the outputs asked for, the last layer
        // runs for them alone (see forward_options).
        const bool cls_only = family == model_family::vit && !opt.output_last_hidden_state &&
                              !opt.output_hidden_states && !opt.output_attentions && !layers_.empty();
        index_t m = rows;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            m = layers_[l].run(shape, buf, cls_only && l + 1 == layers_.size(), pool, clock);
            if (opt.output_attentions) keep(out.attentions[l], buf.probs, b0 * heads * Tk, B * heads * Tk);
            if (opt.output_hidden_states) keep(out.hidden_states[l + 1], buf.x, b0 * Tk, rows);
        }

        if (family != model_family::vit) {
            family_head(buf, B, Tk, b0, opt, pool, out);
            clock.lap(&profile::head);
            return;
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
    // patches [C, P, P], then CLS first (and DeiT's distillation token), then
    // position embeddings, into x; DINOv2's registers go after CLS, without.
    void embed(const pixel_values<T>& px, detail::index_t b0, detail::index_t B, workspace<T>& w, T* x) const {
        using detail::index_t;
        const index_t H = config_.hidden_size, P = config_.patch_size, C = config_.num_channels;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, prefix = config_.prefix_tokens(),
                      Tk = G + prefix;
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

    // The families' last steps, from the last layer's output in b.x: their
    // final LayerNorm and heads. The rows of every token are there (no
    // cls_only), so q | k | v, ctx and mlp are free scratch.
    void family_head(const detail::encoder_buffers<T>& b, detail::index_t B, detail::index_t Tk, detail::index_t b0,
                     const forward_options& opt, detail::thread_pool& pool, output<T>& out) const {
        using detail::index_t;
        const index_t H = config_.hidden_size, rows = B * Tk, prefix = config_.prefix_tokens();
        const model_family family = config_.family;
        auto rows_of = [&](matrix<T>& dst, const T* src, index_t width) {
            dst.middleRows(b0, B) = Eigen::Map<const matrix<T>>(src, B, width);
        };
        // Token t of each image, gathered to [B, H] at dst.
        auto gather = [&](const T* seq, index_t t, T* dst) {
            for (index_t i = 0; i < B; ++i) std::copy(seq + (i * Tk + t) * H, seq + (i * Tk + t + 1) * H, dst + i * H);
        };
        if (family == model_family::clip) {
            // last_hidden_state is the encoder's output; post_layernorm reads CLS alone.
            if (opt.output_last_hidden_state) out.last_hidden_state.middleRows(b0 * Tk, rows) =
                                                  Eigen::Map<const matrix<T>>(b.x, rows, H);
            gather(b.x, 0, b.ctx);
            post_ln_.run(b.ctx, b.ln, B, pool);
            rows_of(out.cls_embedding, b.ln, H);
            rows_of(out.pooler_output, b.ln, H);
            if (has_projection_) {
                projection_.run(b.ln, B, H, b.ctx, config_.projection_dim, pool);
                rows_of(out.image_embeds, b.ctx, config_.projection_dim);
            }
            return;
        }
        final_ln_.run(b.x, b.ln, rows, pool);  // DINOv2 / DeiT layernorm, SigLIP post_layernorm
        if (opt.output_last_hidden_state)
            out.last_hidden_state.middleRows(b0 * Tk, rows) = Eigen::Map<const matrix<T>>(b.ln, rows, H);
        if (family == model_family::siglip) {
            // x is free now; ctx holds [rows, H] with rows >= 2B.
            map_head_.run(b.ln, B, Tk, b.qkv, b.ctx, b.ctx + B * H, b.mlp, b.x, pool);
            rows_of(out.pooler_output, b.x, H);
            return;
        }
        gather(b.ln, 0, b.ctx);  // CLS after the LayerNorm
        rows_of(out.cls_embedding, b.ctx, H);
        if (family == model_family::deit_distilled) {
            T* dist = b.ctx + B * H;
            gather(b.ln, 1, dist);
            const index_t L = config_.num_labels();
            T* a = out.cls_logits.row(b0).data();
            T* d = out.distillation_logits.row(b0).data();
            classifier_.run(b.ctx, B, H, a, L, pool);
            distillation_classifier_.run(dist, B, H, d, L, pool);
            T* logits = out.logits.row(b0).data();
            for (index_t i = 0; i < B * L; ++i) logits[i] = (a[i] + d[i]) / T(2);
            return;
        }
        // DINOv2
        if (config_.arch != architecture::image_classification) {
            rows_of(out.pooler_output, b.ctx, H);
            return;
        }
        // The classifier reads CLS ++ the mean of the patch tokens (registers left out).
        T* in = b.qkv;  // [B, 2H]
        for (index_t i = 0; i < B; ++i) {
            std::copy(b.ctx + i * H, b.ctx + (i + 1) * H, in + i * 2 * H);
            for (index_t j = 0; j < H; ++j) {
                double sum = 0;
                for (index_t t = prefix; t < Tk; ++t) sum += double(b.ln[(i * Tk + t) * H + j]);
                in[i * 2 * H + H + j] = T(sum / double(Tk - prefix));
            }
        }
        classifier_.run(in, B, 2 * H, out.logits.row(b0).data(), config_.num_labels(), pool);
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
        act_ = c.act == hidden_act::gelu         ? detail::activation::gelu_erf
               : c.act == hidden_act::gelu_tanh  ? detail::activation::gelu_tanh
               : c.act == hidden_act::relu       ? detail::activation::relu
               : c.act == hidden_act::quick_gelu ? detail::activation::quick_gelu
                                                 : detail::activation::none;
        const index_t H = c.hidden_size, P = c.patch_size, C = c.num_channels;
        const model_family family = c.family;
        const bool dinov2 = family == model_family::dinov2 || family == model_family::dinov2_registers;
        const bool tower = family == model_family::clip || family == model_family::siglip;
        // Positions before the grid: CLS (and DeiT's distillation token); none for SigLIP.
        pos_prefix_ = family == model_family::siglip ? 0 : family == model_family::deit_distilled ? 2 : 1;
        pos_mode_ = family == model_family::dinov2             ? pos_interpolation::f32
                    : family == model_family::dinov2_registers ? pos_interpolation::f32_antialias
                                                               : pos_interpolation::f64;
        const index_t positions = index_t(c.num_patches()) + pos_prefix_;
        const std::string tw = detail::clip_names::tower;
        if (tower) {
            if (family == model_family::clip) cls_token_ = w.read<T>(tw + "embeddings.class_embedding", {H});
            pos_embed_ = w.read<T>(tw + "embeddings.position_embedding.weight", {positions, H});
        } else {
            cls_token_ = w.read<T>("embeddings.cls_token", {1, 1, H});
            pos_embed_ = w.read<T>("embeddings.position_embeddings", {1, positions, H});
        }
        if (family == model_family::deit_distilled)
            extra_tokens_ = w.read<T>(detail::deit_names::distillation_token, {1, 1, H});
        if (family == model_family::dinov2_registers && c.num_register_tokens > 0)
            extra_tokens_ = w.read<T>("embeddings.register_tokens", {1, c.num_register_tokens, H});
        // The patch projection runs in the compute precision; the classifier
        // and pooler, a sliver of the work, in full precision. CLIP's has no bias.
        if (tower)
            patch_proj_.load(w,
                             spec{{tw + "embeddings.patch_embedding"}, H, C * P * P, {H, C, P, P},
                                  family == model_family::siglip},
                             compute);
        else
            patch_proj_.load(w, spec{{"embeddings.patch_embeddings.projection"}, H, C * P * P, {H, C, P, P}, true},
                             compute);
        if (family == model_family::clip) pre_ln_.load(w, tw + "pre_layrnorm", H, c.layer_norm_eps);
        layers_.resize(std::size_t(c.num_hidden_layers));
        const bool defer = opt.background_packing && compute == precision::f32 && detail::linear<T>::can_defer();
        // Packing the weights is most of a load: spread the layers over threads.
        detail::thread_pool pool(threads);
        // Each layer's error is kept and the first layer's is thrown, so a bad
        // checkpoint gets the same message however the threads ran.
        std::vector<std::exception_ptr> failed(std::size_t(c.num_hidden_layers));
        pool.parallel_for(c.num_hidden_layers, [&](index_t l) {
            try {
                const detail::block_names n =
                    dinov2  ? detail::dinov2_names::layer(l, c.use_swiglu_ffn)
                    : tower ? detail::clip_names::layer(l)
                            : detail::vit_block(l);
                layers_[std::size_t(l)].load(w, n, c, compute, defer);
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
        if (family == model_family::clip) {
            post_ln_.load(w, tw + "post_layernorm", H, c.layer_norm_eps);
            // CLIPVisionModel has no projection; CLIPModel and ...WithProjection must.
            if (c.architecture_name != "CLIPVisionModel" && (!c.architecture_name.empty() || w.has("visual_projection.weight"))) {
                projection_.load(w, spec{{"visual_projection"}, c.projection_dim, H, {}, false}, precision::f32);
                has_projection_ = true;
            }
            return;
        }
        final_ln_.load(w, family == model_family::siglip ? tw + "post_layernorm" : "layernorm", H, c.layer_norm_eps);
        if (family == model_family::siglip) {
            map_head_.load(w, c, act_);
            return;
        }
        if (family == model_family::deit_distilled) {
            classifier_.load(w, spec{{detail::deit_names::cls_classifier}, c.num_labels(), H, {}, true}, precision::f32);
            distillation_classifier_.load(
                w, spec{{detail::deit_names::distillation_classifier}, c.num_labels(), H, {}, true}, precision::f32);
            return;
        }
        if (c.arch == architecture::image_classification) {
            // DINOv2's classifier reads CLS ++ the mean of the patch tokens.
            classifier_.load(w, spec{{"classifier"}, c.num_labels(), dinov2 ? 2 * H : H, {}, true}, precision::f32);
        } else if (family == model_family::vit && w.has("pooler.dense.weight")) {
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

    bool computes_pooler() const {
        return config_.arch != architecture::image_classification && (has_pooler_ || config_.family != model_family::vit);
    }

    // The checkpoint's position embeddings, or (transformers'
    // interpolate_pos_encoding) their grid part resized bicubically to gh x gw:
    // in double for ViT, DeiT, CLIP and SigLIP; in float32 as PyTorch does for
    // DINOv2, antialiased with registers.
    const T* position_embeddings(int gh, int gw, bool square_input, workspace<T>& w) const {
        const std::size_t lead = std::size_t(pos_prefix_);
        const int g =
            static_cast<int>(std::lround(std::sqrt(double(pos_embed_.size() / config_.hidden_size - lead))));
        const std::size_t positions = pos_embed_.size() / std::size_t(config_.hidden_size);
        if (std::size_t(gh) * gw + lead == positions && square_input) return pos_embed_.data();
        if (std::size_t(g) * g + lead != positions)
            throw error("forward: position embeddings of " + std::to_string(positions - lead) +
                        " patches are not a square grid, cannot interpolate them");
        if (w.pos_grid_h != gh || w.pos_grid_w != gw) {
            const std::size_t H = std::size_t(config_.hidden_size);
            const std::ptrdiff_t skip = std::ptrdiff_t(lead * H);
            w.pos_resized.assign(pos_embed_.begin(), pos_embed_.begin() + skip);
            if (pos_mode_ == pos_interpolation::f64) {
                std::vector<double> grid(pos_embed_.begin() + skip, pos_embed_.end());
                const std::vector<double> resized = detail::bicubic_resize(grid, g, g, config_.hidden_size, gh, gw);
                w.pos_resized.insert(w.pos_resized.end(), resized.begin(), resized.end());
            } else {
                std::vector<float> grid(pos_embed_.begin() + skip, pos_embed_.end());
                const std::vector<float> resized =
                    pos_mode_ == pos_interpolation::f32
                        ? detail::bicubic_resize_f32(grid, g, g, config_.hidden_size, gh, gw)
                        : detail::bicubic_resize_aa_f32(grid, g, g, config_.hidden_size, gh, gw);
                w.pos_resized.insert(w.pos_resized.end(), resized.begin(), resized.end());
            }
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
    std::vector<T> cls_token_;     // [H]; empty for SigLIP
    std::vector<T> extra_tokens_;  // DeiT's distillation token [H] or DINOv2's registers [R, H], after CLS
    std::vector<T> pos_embed_;     // [pos_prefix_ + grid^2, H]
    int pos_prefix_ = 1;           // positions before the grid
    enum class pos_interpolation { f64, f32, f32_antialias };
    pos_interpolation pos_mode_ = pos_interpolation::f64;
    detail::layer_norm<T> pre_ln_, post_ln_;  // CLIP's pre_layrnorm, post_layernorm
    detail::linear<T> projection_;            // CLIP's visual_projection [projection_dim, H]
    bool has_projection_ = false;
    detail::linear<T> distillation_classifier_;  // DeiT distilled's second head
    detail::map_head<T> map_head_;                // SigLIP
    detail::linear<T> patch_proj_;  // projection [H, C*P*P]
    std::vector<detail::encoder_layer<T>> layers_;
    detail::layer_norm<T> final_ln_;  // [H]; SigLIP's post_layernorm
    detail::linear<T> classifier_;   // [labels, H] (DINOv2: [labels, 2H]; DeiT: cls_classifier)
    detail::linear<T> pooler_;       // [H, H]
    bool has_pooler_ = false;
    detail::activation act_ = detail::activation::gelu_erf;
    detail::attention_kernel attention_kernel_ = detail::attention_kernel::portable;  // resolved at load
    std::unique_ptr<detail::workspace_cache<T>> spare_;  // for calls that bring no workspace
};

using model = basic_model<float>;

inline model load_model(const std::string& dir, const load_options& opt = {}) { return model::load(dir, opt); }

}  // namespace vit
