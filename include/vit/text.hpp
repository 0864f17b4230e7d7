// CLIP's and SigLIP's text towers and zero-shot image classification, as
// transformers computes them (CLIPTextTransformer, SiglipTextTransformer,
// ZeroShotImageClassificationPipeline).
//
//   vit::zero_shot_model m = vit::load_zero_shot_model("clip-vit-base-patch32");
//   for (const auto& p : m.classify("cat.jpg", {"cat", "dog", "car"}))
//       std::cout << p.score << " " << p.label << "\n";
//
// The generic text driver: each family's rules (config defaults, tensor
// names, pooling, projection, scores) are in its room
// (detail/models/<family>/text.hpp); the layers are the vision tower's
// encoder_layer. Needs the vit::text CMake target for the tokenizers (without
// its libraries, loading throws a vit::error naming the missing one).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "detail/cpu/dispatch.hpp"
#include "detail/cpu/thread_pool.hpp"
#include "detail/index.hpp"
#include "detail/io/checkpoint.hpp"
#include "detail/io/weight_source.hpp"
#include "detail/json.hpp"
#include "detail/models/layers.hpp"
#include "detail/models/text/registry.hpp"
#include "detail/models/vit/encoder.hpp"
#include "error.hpp"
#include "model.hpp"
#include "options.hpp"
#include "output.hpp"
#include "profile.hpp"
#include "tensor.hpp"
#include "tokenizer.hpp"
#include "workspace.hpp"

namespace vit {

// A text forward's outputs.
template <class T>
struct text_output {
    int batch = 0, tokens = 0;    // tokens: the padded length of the batch
    matrix<T> last_hidden_state;  // [batch * tokens, H] after the final LayerNorm (when asked)
    matrix<T> pooler_output;      // [batch, H]  CLIP: at the end token; SigLIP: head(last position)
    matrix<T> text_embeds;        // [batch, P]  projected (CLIP text_projection; SigLIP = pooler_output), not normalised
};

struct text_forward_options {
    bool output_last_hidden_state = true;
};

namespace detail {
// A text family's rules, as the driver uses them (from its room).
struct text_rules {
    std::string family;  // "CLIP", "SigLIP"
    bool causal = false;
    text_pooling pooling = text_pooling::first_max_id;
    zero_shot_rule scores = zero_shot_rule::softmax;
    bool logit_bias = false;
    bool zero_shot_truncation = false;
};
}  // namespace detail

template <class T>
class basic_text_model {
public:
    using scalar = T;

    // DIR/config.json (CLIPModel, SiglipModel, CLIPTextModel(WithProjection),
    // SiglipTextModel), the weights and the tokenizer files. A vision-only
    // checkpoint, or missing tokenizer files, throw vit::error naming the
    // folder or file and what is missing.
    static basic_text_model load(const std::string& dir, const load_options& opt = {}) {
        basic_text_model m;
        const std::string file = dir + "/config.json";
        const nlohmann::json j = detail::read_json_file(file);
        if (!j.is_object()) throw error(file + ": not a JSON object");
        const std::string type = detail::read_string(j, "model_type", "vit", file);
        std::string arch;
        if (j.contains("architectures") && j.at("architectures").is_array() && !j.at("architectures").empty() &&
            j.at("architectures").at(0).is_string())
            arch = j.at("architectures").at(0).get<std::string>();
        bool found = false;
        detail::for_each_text_family([&](auto f) {
            using F = decltype(f);
            const auto types = F::model_types();
            const bool both = type == types.at(0), text_only = type == types.at(1);
            if (found || (!both && !text_only)) return;
            found = true;
            for (const char* v : F::vision_only())
                if (arch == v)
                    throw error(dir + ": no text tower: config.json's architecture is " + arch +
                                ", a vision tower alone");
            // CLIPModel and SiglipModel keep the text tower's fields in text_config.
            const nlohmann::json none = nlohmann::json::object();
            const nlohmann::json& tj = both && j.contains("text_config") ? j.at("text_config") : both ? none : j;
            if (!tj.is_object()) throw error(file + ": 'text_config' must be an object");
            m.config_ = F::read_config(tj, file);
            m.rules_.family = F::name;
            m.rules_.causal = F::causal;
            m.rules_.pooling = F::pooling;
            m.rules_.scores = F::scores;
            m.rules_.logit_bias = F::logit_bias;
            m.rules_.zero_shot_truncation = F::scores == detail::zero_shot_rule::sigmoid;
            // The weights first: a vision-only CLIPModel folder has neither
            // text tensors nor tokenizer, and "no text tower" says more.
            m.store_ = std::make_shared<const detail::tensor_store>(detail::read_checkpoint(dir));
            // Hub checkpoints nest the tower under text_model.; some exports do not.
            const std::string probe = "embeddings.token_embedding.weight";
            std::string prefix = "text_model.";
            if (!m.store_->contains(prefix + probe)) {
                if (!m.store_->contains(probe))
                    throw error(dir + ": no text tower: the weights have no tensor 'text_model." + probe + "'");
                prefix.clear();
            }
            m.tokenizer_.emplace(dir);
            m.load_weights(dir, F::tensors(prefix, arch), prefix, opt);
        });
        if (!found)
            throw error(dir + ": no text tower: config.json's model_type is '" + detail::escape_for_message(type) +
                        "' (CLIPModel, CLIPTextModel, SiglipModel and SiglipTextModel checkpoints have one)");
        return m;
    }

    basic_text_model(basic_text_model&&) noexcept = default;
    basic_text_model& operator=(basic_text_model&&) noexcept = default;

    const vit::tokenizer& tokenizer() const { return *tokenizer_; }
    int hidden_size() const { return config_.hidden_size; }
    int embedding_size() const { return int(embed_size_); }   // P (columns of text_embeds)
    int context_length() const { return int(positions_); }    // max_position_embeddings (77 CLIP, 64 SigLIP)
    int vocab_size() const { return int(vocab_); }
    const char* family() const { return rules_.family.c_str(); }  // "CLIP" or "SigLIP"

    // Ids as the zero-shot pipeline tokenizes (CLIP: padding to the longest;
    // SigLIP: to 64), truncated as transformers does (the content is cut, the
    // special tokens kept) to the context length.
    token_batch encode(const std::vector<std::string>& texts) const {
        text_options o = tokenizer_->default_options();
        o.max_length = std::min(o.max_length, context_length());
        return tokenizer_->encode(texts, o);
    }

    // The text tower on a batch of token ids. attention_mask must be
    // right-padded (ones, then zeros) or empty (every token seen). Const and
    // thread-safe; without a workspace it borrows one of the model's own.
    text_output<T> forward(const token_batch& tokens, const text_forward_options& opt = {},
                           workspace<T>* ws = nullptr) const {
        if (!ws) {
            auto lease = spare_->borrow();
            return forward(tokens, opt, &lease.get());
        }
        using detail::index_t;
        const index_t B = index_t(tokens.input_ids.size());
        std::vector<std::int64_t> valid, pooled;
        const index_t Tk = check_tokens(tokens, valid, pooled);
        text_output<T> out;
        out.batch = int(B);
        out.tokens = int(Tk);
        if (opt.output_last_hidden_state) out.last_hidden_state.resize(B * Tk, config_.hidden_size);
        out.pooler_output.resize(B, pooler_size_);
        out.text_embeds.resize(B, embed_size_);
        ws->run_groups(B, std::max<index_t>(1, group_rows / Tk), [&](index_t b0, index_t n, workspace<T>& w, index_t) {
            run_group(tokens, valid, pooled, b0, n, Tk, opt, w, out);
        });
        return out;
    }

    // text_embeds of each text, [texts.size(), P], not normalised.
    matrix<T> embed(const std::vector<std::string>& texts) const {
        text_forward_options opt;
        opt.output_last_hidden_state = false;
        return forward(encode(texts), opt).text_embeds;
    }

private:
    template <class>
    friend class basic_zero_shot_model;
    static constexpr detail::index_t group_rows = 256;

    basic_text_model() = default;

    void load_weights(const std::string& dir, const detail::text_tensor_names& n, const std::string& prefix,
                      const load_options& opt) {
        using detail::index_t;
        const detail::text_config& c = config_;
        const index_t H = c.hidden_size;
        const detail::weight_source w(*store_, dir, [](const std::string& s) { return s; });
        // Sizes the config may not give come from the tensors' shapes.
        auto shape_of = [&](const std::string& name) {
            const detail::tensor_store::entry* e = store_->find(name);
            if (!e) throw error(dir + ": tensor '" + name + "' is missing");
            if (e->tensor.shape.size() != 2 || e->tensor.shape[1] < 1 || e->tensor.shape[0] < 1)
                throw error(e->file + ": tensor '" + name + "': shape " + detail::shape_string(e->tensor.shape) +
                            ", expected 2 dimensions");
            return e->tensor.shape;
        };
        vocab_ = shape_of(n.token_embedding)[0];
        token_embedding_ = w.read_view<T>(n.token_embedding, {vocab_, H});
        positions_ = shape_of(n.position_embedding)[0];
        position_embedding_ = w.read<T>(n.position_embedding, {positions_, H});
        const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        spare_ = std::make_unique<detail::workspace_cache<T>>(threads);
        attention_kernel_ = detail::resolve_attention<T>(
            opt.compute == precision::bf16 ? detail::attention_kernel::bf16 : detail::attention_kernel::f32);
        act_ = detail::to_activation(c.act);
        // The vision tower's encoder layer, read with the text tower's sizes.
        vit::config lc;
        lc.hidden_size = c.hidden_size;
        lc.intermediate_size = c.intermediate_size;
        lc.num_attention_heads = c.num_attention_heads;
        lc.layer_norm_eps = c.layer_norm_eps;
        lc.qkv_bias = true;
        layers_.resize(std::size_t(c.num_hidden_layers));
        detail::thread_pool pool(threads);
        std::vector<std::exception_ptr> failed(layers_.size());
        pool.parallel_for(c.num_hidden_layers, [&](index_t l) {
            try {
                layers_[std::size_t(l)].load(w, detail::text_layer_names(prefix, l), lc, opt.compute, false);
            } catch (...) {
                failed[std::size_t(l)] = std::current_exception();
            }
        });
        for (const auto& e : failed)
            if (e) std::rethrow_exception(e);
        final_norm_ = detail::load_layer_norm<T>(w, n.final_norm, H, c.layer_norm_eps);
        pooler_size_ = H;
        if (!n.pooler_head.empty()) {
            pooler_size_ = shape_of(n.pooler_head + ".weight")[0];
            pooler_head_ = detail::load_linear<T>(w, detail::linear_spec{{n.pooler_head}, pooler_size_, H, {}, true},
                                                  precision::f32);
            has_pooler_head_ = true;
        }
        embed_size_ = pooler_size_;
        if (!n.projection.empty() && (!n.projection_optional || store_->contains(n.projection + ".weight"))) {
            embed_size_ = shape_of(n.projection + ".weight")[0];
            projection_ = detail::load_linear<T>(
                w, detail::linear_spec{{n.projection}, embed_size_, pooler_size_, {}, false}, precision::f32);
            has_projection_ = true;
        }
        // The zero-shot temperature and bias (0-d or [1] tensors), when the checkpoint has them.
        auto scalar = [&](const std::string& name, std::optional<double>& v) {
            const detail::tensor_store::entry* e = store_->find(name);
            if (!e) return;
            if (e->tensor.numel() != 1 || e->tensor.shape.size() > 1)
                throw error(e->file + ": tensor '" + name + "': shape " + detail::shape_string(e->tensor.shape) +
                            ", expected [] or [1]");
            v = w.read<double>(name, e->tensor.shape).at(0);
        };
        scalar("logit_scale", logit_scale_);
        scalar("logit_bias", logit_bias_);
    }

    // Checks a batch; valid[b]: the keys text b's queries see; pooled[b]: its pooled position.
    detail::index_t check_tokens(const token_batch& t, std::vector<std::int64_t>& valid,
                                 std::vector<std::int64_t>& pooled) const {
        using detail::index_t;
        const std::size_t B = t.input_ids.size();
        if (B == 0) throw error("text forward: empty batch");
        const std::size_t Tk = t.input_ids[0].size();
        if (Tk == 0) throw error("text forward: text 0 has no tokens");
        if (Tk > std::size_t(positions_))
            throw error("text forward: " + std::to_string(Tk) + " tokens, more than the text tower's " +
                        std::to_string(positions_) + " positions (encode() truncates)");
        if (!t.attention_mask.empty() && t.attention_mask.size() != B)
            throw error("text forward: " + std::to_string(t.attention_mask.size()) + " attention_mask rows for " +
                        std::to_string(B) + " texts");
        valid.assign(B, std::int64_t(Tk));
        pooled.assign(B, 0);
        for (std::size_t b = 0; b < B; ++b) {
            const auto& ids = t.input_ids[b];
            const std::string which = "text forward: text " + std::to_string(b);
            if (ids.size() != Tk)
                throw error(which + " has " + std::to_string(ids.size()) + " tokens, text 0 has " + std::to_string(Tk) +
                            " (pad the batch to one length)");
            for (const std::int64_t id : ids)
                if (id < 0 || id >= vocab_)
                    throw error(which + ": token id " + std::to_string(id) + " is outside the vocabulary (0 to " +
                                std::to_string(vocab_ - 1) + ")");
            if (!t.attention_mask.empty()) {
                const auto& m = t.attention_mask[b];
                if (m.size() != Tk)
                    throw error(which + ": attention_mask has " + std::to_string(m.size()) + " values for " +
                                std::to_string(Tk) + " tokens");
                std::size_t ones = 0;
                while (ones < Tk && m[ones] == 1) ++ones;
                for (std::size_t k = ones; k < Tk; ++k)
                    if (m[k] != 0)
                        throw error(which + ": attention_mask is not right-padded (ones, then zeros): value " +
                                    std::to_string(m[k]) + " at position " + std::to_string(k));
                if (ones == 0) throw error(which + ": attention_mask has no ones");
                valid[b] = std::int64_t(ones);
            }
            if (rules_.pooling == detail::text_pooling::last_position)
                pooled[b] = std::int64_t(Tk) - 1;
            else  // the first maximum, as torch.argmax
                pooled[b] = std::max_element(ids.begin(), ids.end()) - ids.begin();
        }
        return index_t(Tk);
    }

    // Texts b0 .. b0 + B - 1 through the tower, into their rows of out.
    void run_group(const token_batch& tokens, const std::vector<std::int64_t>& valid,
                   const std::vector<std::int64_t>& pooled, detail::index_t b0, detail::index_t B, detail::index_t Tk,
                   const text_forward_options& opt, workspace<T>& w, text_output<T>& out) const {
        using detail::index_t;
        const detail::text_config& c = config_;
        const index_t H = c.hidden_size, I = c.intermediate_size, rows = B * Tk;
        w.reserve(rows, H, I, 0, 0);
        detail::thread_pool& pool = w.pool_;
        detail::stage_clock clock(nullptr);
        const detail::encoder_buffers<T> buf{w.x, w.ln, w.qkv, w.ctx, w.mlp, nullptr};
        const detail::encoder_shape shape{B, Tk, H, I, c.num_attention_heads, c.head_dim(), act_, attention_kernel_};

        // x = token_embedding[ids] + position_embedding[0 .. Tk - 1]
        for (index_t b = 0; b < B; ++b) {
            const auto& ids = tokens.input_ids[std::size_t(b0 + b)];
            for (index_t t = 0; t < Tk; ++t) {
                const T* tok = token_embedding_.data + ids[std::size_t(t)] * H;
                const T* pos = position_embedding_.data() + t * H;
                T* x = buf.x + (b * Tk + t) * H;
                for (index_t h = 0; h < H; ++h) x[h] = tok[h] + pos[h];
            }
        }
        for (const auto& layer : layers_) layer.run(shape, buf, false, pool, clock, valid.data() + b0, rules_.causal);
        final_norm_.run(buf.x, buf.ln, rows, pool);
        if (opt.output_last_hidden_state)
            out.last_hidden_state.middleRows(b0 * Tk, rows) = Eigen::Map<const matrix<T>>(buf.ln, rows, H);

        // The pooled rows, gathered; then the family's head and projection.
        for (index_t b = 0; b < B; ++b) {
            const T* src = buf.ln + (b * Tk + pooled[std::size_t(b0 + b)]) * H;
            std::copy(src, src + H, buf.ctx + b * H);
        }
        T* pooler = out.pooler_output.data() + b0 * pooler_size_;
        if (has_pooler_head_)
            pooler_head_.run(buf.ctx, B, H, pooler, pooler_size_, pool);
        else
            std::copy(buf.ctx, buf.ctx + B * H, pooler);
        T* embeds = out.text_embeds.data() + b0 * embed_size_;
        if (has_projection_)
            projection_.run(pooler, B, pooler_size_, embeds, embed_size_, pool);
        else
            std::copy(pooler, pooler + B * pooler_size_, embeds);
    }

    detail::text_config config_;
    detail::text_rules rules_;
    std::optional<vit::tokenizer> tokenizer_;
    std::shared_ptr<const detail::tensor_store> store_;  // the mapped file the token embeddings stay in
    typename detail::weight_source::template view<T> token_embedding_;  // [vocab, H]
    std::vector<T> position_embedding_;                                  // [positions, H]
    detail::index_t vocab_ = 0, positions_ = 0, pooler_size_ = 0, embed_size_ = 0;
    std::vector<detail::encoder_layer<T>> layers_;
    detail::layer_norm<T> final_norm_;
    detail::linear<T> pooler_head_, projection_;
    bool has_pooler_head_ = false, has_projection_ = false;
    std::optional<double> logit_scale_, logit_bias_;
    detail::activation act_ = detail::activation::quick_gelu;
    detail::attention_kernel attention_kernel_ = detail::attention_kernel::portable;
    std::unique_ptr<detail::workspace_cache<T>> spare_;
};

using text_model = basic_text_model<float>;

inline text_model load_text_model(const std::string& dir, const load_options& opt = {}) {
    return text_model::load(dir, opt);
}

template <class T>
struct zero_shot_scores {
    matrix<T> logits_per_image;  // [images, labels]: exp(logit_scale) * cos (+ logit_bias for SigLIP)
    matrix<T> probs;             // CLIP: softmax over each row; SigLIP: sigmoid of each logit
};

// Both towers of a CLIP or SigLIP checkpoint plus logit_scale (and
// logit_bias): ZeroShotImageClassificationPipeline's scores.
template <class T>
class basic_zero_shot_model {
public:
    static basic_zero_shot_model load(const std::string& dir, const load_options& opt = {}) {
        // The text tower first: a checkpoint without logit_scale fails before
        // the (larger) image tower is read.
        auto text = std::make_shared<const basic_text_model<T>>(basic_text_model<T>::load(dir, opt));
        check_text(*text, dir);
        return from(std::make_shared<const basic_model<T>>(basic_model<T>::load(dir, opt)), std::move(text), dir);
    }

    // Both towers, already loaded from one checkpoint, shared: a program
    // that also classifies or embeds holds each tower once. `where` names
    // them in errors.
    static basic_zero_shot_model from(std::shared_ptr<const basic_model<T>> image,
                                      std::shared_ptr<const basic_text_model<T>> text,
                                      const std::string& where = "zero-shot") {
        if (!image || !text) throw error(where + ": zero-shot needs both an image and a text model");
        check_text(*text, where);
        if (image->embedding_size() != text->embedding_size())
            throw error(where + ": the image embedding has " + std::to_string(image->embedding_size()) +
                        " values, the text embedding " + std::to_string(text->embedding_size()));
        basic_zero_shot_model m;
        m.image_ = std::move(image);
        m.text_ = std::move(text);
        return m;
    }

    const basic_model<T>& image() const { return *image_; }  // image_embeds via image().embedding(out)
    const basic_text_model<T>& text() const { return *text_; }
    double logit_scale() const { return *text_->logit_scale_; }          // before exp
    double logit_bias() const { return text_->logit_bias_.value_or(0); }  // 0 for CLIP

    static constexpr const char* default_template = "This is a photo of {}.";

    // The label sentences' text_embeds [labels, P], tokenized as the pipeline
    // does: the template's first "{}" replaced by the label; CLIP padded to
    // the longest sentence, not truncated (a sentence longer than the context
    // throws, as transformers' model would); SigLIP padded and truncated to 64.
    matrix<T> label_embeddings(const std::vector<std::string>& labels,
                               const std::string& hypothesis_template = default_template) const {
        if (labels.empty()) throw error("zero-shot: no labels");
        std::vector<std::string> sentences;
        for (const std::string& l : labels) {
            std::string s = hypothesis_template;
            const std::size_t at = s.find("{}");
            if (at != std::string::npos) s.replace(at, 2, l);
            sentences.push_back(std::move(s));
        }
        const basic_text_model<T>& t = *text_;
        text_options o = t.tokenizer().default_options();
        o.max_length = std::min(o.max_length, t.context_length());
        o.truncation = t.rules_.zero_shot_truncation;
        const token_batch tokens = t.tokenizer().encode(sentences, o);
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const auto& mask = tokens.attention_mask[i];
            const auto n = std::count(mask.begin(), mask.end(), std::int64_t(1));
            if (n > t.context_length())
                throw error("zero-shot: label " + std::to_string(i) + " ('" + detail::escape_for_message(labels[i]) +
                            "'): its sentence is " + std::to_string(n) + " tokens, more than the text tower's " +
                            std::to_string(t.context_length()));
        }
        text_forward_options opt;
        opt.output_last_hidden_state = false;
        return t.forward(tokens, opt).text_embeds;
    }

    // Scores from embeddings (not yet normalised: this normalises both).
    zero_shot_scores<T> scores(const matrix<T>& image_embeds, const matrix<T>& label_embeds) const {
        if (image_embeds.cols() != label_embeds.cols())
            throw error("zero-shot: image embeddings have " + std::to_string(image_embeds.cols()) +
                        " columns, label embeddings " + std::to_string(label_embeds.cols()));
        const matrix<T> img = normalised(image_embeds), txt = normalised(label_embeds);
        const T scale = std::exp(T(logit_scale())), bias = T(logit_bias());
        zero_shot_scores<T> s;
        s.logits_per_image = img * txt.transpose() * scale;
        if (text_->rules_.logit_bias) s.logits_per_image.array() += bias;
        s.probs.resizeLike(s.logits_per_image);
        for (Eigen::Index i = 0; i < s.probs.rows(); ++i) {
            const auto row = s.logits_per_image.row(i);
            if (text_->rules_.scores == detail::zero_shot_rule::sigmoid) {
                s.probs.row(i) = row.unaryExpr([](T x) { return T(1) / (T(1) + std::exp(-x)); });
            } else {
                const T mx = row.maxCoeff();
                s.probs.row(i) = (row.array() - mx).exp();
                s.probs.row(i) /= s.probs.row(i).sum();
            }
        }
        return s;
    }

    zero_shot_scores<T> scores(const pixel_values<T>& px, const std::vector<std::string>& labels,
                               const std::string& hypothesis_template = default_template) const {
        forward_options opt;
        opt.output_last_hidden_state = false;
        const output<T> out = image_->forward(px, opt);
        return scores(image_->embedding(out), label_embeddings(labels, hypothesis_template));
    }

    // An image file's labels, best first (score = probs), at most k (k <= 0:
    // all). Needs <vit/image.hpp> (or <vit/vit.hpp>).
    std::vector<prediction> classify(const std::string& image_path, const std::vector<std::string>& labels, int k = -1,
                                     const std::string& hypothesis_template = default_template) const {
        const zero_shot_scores<T> s =
            scores(detail::image_input<T>::from_file(image_path, image_->preprocessing()), labels, hypothesis_template);
        std::vector<prediction> best;
        for (int j = 0; j < int(labels.size()); ++j) best.push_back({labels[std::size_t(j)], j, double(s.probs(0, j))});
        std::stable_sort(best.begin(), best.end(),
                         [](const prediction& a, const prediction& b) { return a.score > b.score; });
        if (k > 0 && std::size_t(k) < best.size()) best.resize(std::size_t(k));
        return best;
    }

private:
    basic_zero_shot_model() = default;

    static void check_text(const basic_text_model<T>& t, const std::string& where) {
        if (!t.logit_scale_)
            throw error(where + ": no tensor 'logit_scale': zero-shot scores need a CLIPModel or SiglipModel checkpoint");
        if (t.rules_.logit_bias && !t.logit_bias_)
            throw error(where + ": no tensor 'logit_bias': " + t.rules_.family + " zero-shot scores need it");
    }

    // Each row over its L2 norm, as transformers: x / ||x||.
    static matrix<T> normalised(const matrix<T>& x) {
        matrix<T> y = x;
        for (Eigen::Index i = 0; i < y.rows(); ++i) y.row(i) /= std::sqrt(y.row(i).squaredNorm());
        return y;
    }

    std::shared_ptr<const basic_model<T>> image_;
    std::shared_ptr<const basic_text_model<T>> text_;
};

using zero_shot_model = basic_zero_shot_model<float>;

inline zero_shot_model load_zero_shot_model(const std::string& dir, const load_options& opt = {}) {
    return zero_shot_model::load(dir, opt);
}

}  // namespace vit
