// A ViT checkpoint loaded for inference: ViTForImageClassification or ViTModel.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/attention.hpp"
#include "detail/checkpoint.hpp"
#include "detail/gemm.hpp"
#include "detail/layers.hpp"
#include "detail/thread_pool.hpp"
#include "error.hpp"
#include "image.hpp"

namespace vit {

template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Normalised images, [batch, channels, height, width] row-major: transformers'
// `pixel_values`.
template <class T>
struct pixel_values {
    int batch = 0, channels = 0, height = 0, width = 0;
    std::vector<T> data;

    pixel_values() = default;
    pixel_values(int n, int c, int h, int w)
        : batch(n), channels(c), height(h), width(w), data(std::size_t(n) * c * h * w) {}
    T* image(int i) { return data.data() + std::size_t(i) * channels * height * width; }
    const T* image(int i) const { return data.data() + std::size_t(i) * channels * height * width; }
};

// Prepares each image as the checkpoint's image processor does (resize with
// its filter) and stacks their pixel_values. Without resizing, the images
// must share one size.
template <class T>
pixel_values<T> make_pixel_values(const std::vector<image>& images, const preprocess_config& cfg) {
    if (images.empty()) throw error("make_pixel_values: no images");
    std::vector<image> prepared;
    prepared.reserve(images.size());
    for (const image& img : images) prepared.push_back(prepare_image(img, cfg));
    const int w = prepared.front().width, h = prepared.front().height;
    pixel_values<T> px(int(prepared.size()), 3, h, w);
    for (std::size_t i = 0; i < prepared.size(); ++i) {
        if (prepared[i].width != w || prepared[i].height != h)
            throw error("make_pixel_values: image " + std::to_string(i) + " is " + std::to_string(prepared[i].width) +
                        "x" + std::to_string(prepared[i].height) + ", the batch is " + std::to_string(w) + "x" +
                        std::to_string(h) + " (and do_resize is off)");
        write_pixel_values(prepared[i], cfg, px.image(int(i)));
    }
    return px;
}

struct load_options {
    precision compute = precision::f32;  // the encoder's Linear layers; an int8 checkpoint is int8 anyway
    int threads = 0;                      // for packing the weights; 0: every core
    // float32 on an AVX-512 CPU, from a file holding float32: return as soon
    // as the weights are mapped and checked, and build the faster packed
    // layout on `threads` background threads. Until a layer is packed it runs
    // from the mapped file, with the same results bit for bit (at about 0.9x
    // the speed). basic_model::wait_packed() waits for the end. Off: pack
    // everything before load returns.
    bool background_packing = true;
};

namespace detail {
// Runs pack_item(0 .. items-1) on `threads` threads in the background, in
// order, until done or destroyed (which stops it between items and waits).
class background_packer {
public:
    template <class F>
    background_packer(int threads, std::int64_t items, F pack_item)
        : thread_([this, threads, items, pack_item] {
              {
                  thread_pool pool(threads);
                  pool.parallel_for(items, [&](std::int64_t i) {
                      if (stop_.load(std::memory_order_relaxed)) return;
                      // A layer that fails to pack (out of memory) keeps
                      // running from the file: slower, same results.
                      try {
                          pack_item(i);
                      } catch (...) {
                      }
                  });
              }
              std::lock_guard<std::mutex> lock(mutex_);
              done_ = true;
              finished_.notify_all();
          }) {}
    background_packer(const background_packer&) = delete;
    background_packer& operator=(const background_packer&) = delete;
    ~background_packer() {
        stop_.store(true);
        thread_.join();
    }
    bool done() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return done_;
    }
    void wait() const {
        std::unique_lock<std::mutex> lock(mutex_);
        finished_.wait(lock, [this] { return done_; });
    }

private:
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    mutable std::condition_variable finished_;
    bool done_ = false;
    std::thread thread_;  // last: starts once the members above exist
};
}  // namespace detail

// Wall-clock seconds per stage of the forward pass, added up over the calls
// given the same profile (forward_options::profile). For finding where time
// goes; costs a clock read per stage.
struct profile {
    double embeddings = 0;        // patch projection, CLS, position embeddings
    double layer_norm = 0;        // the 2 per layer and the final one
    double qkv = 0;               // query/key/value projections
    double attention = 0;         // softmax(q k^T / sqrt(d)) v, all heads
    double attention_output = 0;  // attention.output.dense + residual
    double mlp_up = 0;            // intermediate.dense + activation
    double mlp_down = 0;          // output.dense + residual
    double head = 0;              // CLS extraction, classifier or pooler, outputs
    int calls = 0;

    // The stages in forward order, by name: the one list that add(), total()
    // and reports (vit-bench --profile) go through.
    struct stage {
        const char* name;
        double profile::*seconds;
    };
    static const std::array<stage, 8>& stages() {
        static const std::array<stage, 8> list = {{{"embeddings", &profile::embeddings},
                                                   {"layer_norm", &profile::layer_norm},
                                                   {"qkv", &profile::qkv},
                                                   {"attention", &profile::attention},
                                                   {"attention_output", &profile::attention_output},
                                                   {"mlp_up", &profile::mlp_up},
                                                   {"mlp_down", &profile::mlp_down},
                                                   {"head", &profile::head}}};
        return list;
    }
    // Adds another profile's stage times, scaled (calls are not added).
    void add(const profile& o, double scale) {
        for (const stage& s : stages()) this->*s.seconds += scale * (o.*s.seconds);
    }
    double total() const {
        double sum = 0;
        for (const stage& s : stages()) sum += this->*s.seconds;
        return sum;
    }
};

struct forward_options {
    // false: output::last_hidden_state stays empty, and unless hidden states or
    // attentions are asked for, the last layer's attention (queries; keys and
    // values still come from every token), attention output and MLP run for
    // the CLS tokens only, as logits, cls_embedding and pooler_output need
    // (ViT-L/32: 3% of a forward saved; with the fast kernels these outputs are
    // bit for bit the same, with the portable ones within rounding).
    bool output_last_hidden_state = true;
    bool output_hidden_states = false;  // fill output::hidden_states
    bool output_attentions = false;     // fill output::attentions
    vit::profile* profile = nullptr;    // add per-stage timings here
};

namespace detail {
// Charges the time since the previous lap to one field of a profile.
class stage_clock {
public:
    explicit stage_clock(vit::profile* p) : p_(p) {
        if (p_) last_ = std::chrono::steady_clock::now();
    }
    void lap(double vit::profile::*field) {
        if (!p_) return;
        const auto now = std::chrono::steady_clock::now();
        p_->*field += std::chrono::duration<double>(now - last_).count();
        last_ = now;
    }

private:
    vit::profile* p_;
    std::chrono::steady_clock::time_point last_;
};
}  // namespace detail

// What one forward call returns. Rows of the per-token matrices are image-major:
// row b * tokens + t is token t (0 = CLS) of image b.
template <class T>
struct output {
    int batch = 0, tokens = 0;
    matrix<T> logits;             // [batch, num_labels]; ViTForImageClassification only
    matrix<T> cls_embedding;      // [batch, hidden]: CLS after the final LayerNorm
    matrix<T> pooler_output;      // [batch, hidden]: tanh(dense(CLS)); ViTModel with a pooler only
    matrix<T> last_hidden_state;  // [batch * tokens, hidden], after the final LayerNorm (if asked for)
    std::vector<matrix<T>> hidden_states;  // on request: embeddings, then each layer's output
    std::vector<matrix<T>> attentions;     // on request, per layer: [batch * heads * tokens, tokens]
};

struct prediction {
    std::string label;
    int index = 0;
    double score = 0;  // softmax probability
};

// Softmax over logits, then the k best, best first.
template <class T>
std::vector<prediction> top_k(const T* logits, int n, int k, const std::vector<std::string>& labels) {
    double mx = -INFINITY;
    for (int i = 0; i < n; ++i) mx = std::max(mx, double(logits[i]));
    std::vector<double> p(static_cast<std::size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += (p[i] = std::exp(double(logits[i]) - mx));
    std::vector<int> order(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) order[i] = i;
    k = std::max(0, std::min(k, n));
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    std::vector<prediction> out;
    for (int i = 0; i < k; ++i) {
        const int idx = order[i];
        out.push_back({idx < int(labels.size()) ? labels[idx] : "LABEL_" + std::to_string(idx), idx, p[idx] / sum});
    }
    return out;
}

// Buffers and threads for forward passes. Reuse one across calls to avoid
// allocating (it grows to the largest batch seen); give each thread that
// calls a model at the same time its own.
template <class T>
class workspace {
public:
    explicit workspace(int threads = 1) : pool_(threads) {}
    int threads() const { return pool_.size(); }

private:
    template <class>
    friend class basic_model;
    // All of a group's activations live in one block, which for ViT-L/32
    // (7.7 MB) sits on a few 2 MiB pages (aligned_array): on 4 KiB pages the
    // products' row-strided reads and writes missed the TLB, and a forward
    // was 3-5% slower (float32, bf16 and int8 alike). Grows, never shrinks.
    void reserve(detail::index_t rows, detail::index_t hidden, detail::index_t inter, detail::index_t scores,
                 detail::index_t patches) {
        const detail::index_t need[parts] = {rows * hidden, rows * hidden, rows * 3 * hidden, rows * hidden,
                                             rows * inter,  scores,        patches};
        bool fits = true;
        for (int i = 0; i < parts; ++i) fits = fits && need[i] <= size_[i];
        if (fits) return;
        std::size_t total = 0;
        for (int i = 0; i < parts; ++i) {
            size_[i] = std::max(size_[i], need[i]);
            total += std::size_t(padded(size_[i]));
        }
        arena_.reset(total);
        T* next = arena_.data();
        T** const part[parts] = {&x, &ln, &qkv, &ctx, &mlp, &probs, &patches_buf};
        for (int i = 0; i < parts; ++i) {
            *part[i] = next;
            next += padded(size_[i]);
        }
    }
    // Whole cache lines per buffer, so no two share one.
    static detail::index_t padded(detail::index_t n) { return (n + 15) / 16 * 16; }
    // Workspaces of one thread each, for batches run one image per pool thread
    // (basic_model::forward). Made before the threads use them.
    void make_lanes(int n) {
        while (int(lanes_.size()) < n) lanes_.push_back(std::make_unique<workspace>(1));
    }

    static constexpr int parts = 7;
    detail::thread_pool pool_;
    std::vector<std::unique_ptr<workspace>> lanes_;
    detail::aligned_array<T> arena_;
    detail::index_t size_[parts] = {};
    // [rows, H] residual stream, [rows, H] LayerNorm output, [rows, 3H] q | k | v,
    // [rows, H] attention context, [rows, I] MLP hidden, attention
    // probabilities (when asked for), [images * patches, C * P * P] patches.
    T *x = nullptr, *ln = nullptr, *qkv = nullptr, *ctx = nullptr, *mlp = nullptr, *probs = nullptr,
      *patches_buf = nullptr;
    // Position embeddings resized for the last non-native grid.
    int pos_grid_h = -1, pos_grid_w = -1;
    std::vector<T> pos_resized;
};

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
        m.load_weights(detail::weight_source(*m.store_, dir), opt);
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

    // The k most probable labels of an image file, preprocessed as the
    // checkpoint's image processor does.
    std::vector<prediction> classify(const std::string& image_path, int k = 5) const {
        if (config_.arch != architecture::image_classification)
            throw error("classify: the checkpoint is a ViTModel backbone without a classifier");
        forward_options opt;
        opt.output_last_hidden_state = false;
        const auto out = forward(make_pixel_values<T>({load_image(image_path)}, preprocess_), opt);
        return top_k(out.logits.data(), config_.num_labels(), k, config_.labels);
    }
    bool has_pooler() const { return has_pooler_; }

    // The forward pass of transformers' ViTForImageClassification / ViTModel.
    // Any height and width that are multiples of the patch size are accepted;
    // position embeddings are then interpolated as with
    // interpolate_pos_encoding=True. Const and thread-safe: pass a workspace
    // per calling thread to reuse buffers and set the thread count.
    output<T> forward(const pixel_values<T>& px, const forward_options& opt = {}, workspace<T>* ws = nullptr) const {
        workspace<T> local(1);
        workspace<T>& w = ws ? *ws : local;
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
        // A batch runs as groups of images of about group_rows tokens each, so
        // a group's activations stay in the caches, while a whole batch's (8
        // images: ~50 MB per layer) would go through DRAM. One ViT-L/32-384
        // image per group: two per group measured the same for float32 and
        // bfloat16 and 3% slower for int8 (whose MLP activations then leave L2).
        const index_t group = std::max<index_t>(1, group_rows / Tk);
        index_t b0 = 0;
        // While there is a group for every pool thread, each thread runs its
        // own group through the whole model alone, in its own workspace: no
        // thread then waits for another at each of a forward's ~170 parallel
        // steps, or reads activations another core wrote, or packs the
        // activations the other packs too. A single image (or the groups left
        // over) runs on all threads together. Every output element takes the
        // same operations either way, so the results are bit-identical.
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
        const index_t H = config_.hidden_size, I = config_.intermediate_size;
        const index_t heads = config_.num_attention_heads, d = config_.head_dim(), P = config_.patch_size;
        const index_t gh = px.height / P, gw = px.width / P, G = gh * gw, Tk = G + 1, rows = B * Tk;
        const index_t C = config_.num_channels;
        w.reserve(rows, H, I, opt.output_attentions ? B * heads * Tk * Tk : 0, B * G * C * P * P);
        detail::thread_pool& pool = w.pool_;
        detail::stage_clock clock(opt.profile);
        T* x = w.x;  // the residual stream [rows, H]
        // This group's rows of a per-token output matrix.
        auto keep = [&](matrix<T>& dst, const T* src, index_t row0, index_t n) {
            dst.middleRows(row0, n) = Eigen::Map<const matrix<T>>(src, n, dst.cols());
        };

        // Embeddings: conv(kernel = stride = P) as a product over flattened
        // patches [C, P, P], then CLS first, then position embeddings.
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
        if (opt.output_hidden_states) keep(out.hidden_states[0], x, b0 * Tk, rows);
        clock.lap(&profile::embeddings);

        const detail::activation act = config_.act == hidden_act::gelu        ? detail::activation::gelu_erf
                                       : config_.act == hidden_act::gelu_tanh ? detail::activation::gelu_tanh
                                                                               : detail::activation::relu;
        T *ln = w.ln, *qkv = w.qkv, *ctx = w.ctx, *mlp = w.mlp;
        T* probs = opt.output_attentions ? w.probs : nullptr;
        // Whether only the CLS tokens' last layer is needed (see forward_options).
        const bool cls_only =
            !opt.output_last_hidden_state && !opt.output_hidden_states && !opt.output_attentions && !layers_.empty();
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const encoder_layer& L = layers_[l];
            // x = x + o_proj(attention(layernorm_before(x)))
            L.ln_before.run(x, ln, rows, pool);
            clock.lap(&profile::layer_norm);
            // After attention the rows are independent. In the last layer,
            // when only the CLS rows feed the outputs asked for, they alone go
            // on: only they attend (against every token's key and value),
            // and afterwards they are gathered to the front of x (row b * Tk
            // -> b, each before its source) and, for the context, into the
            // spent q | k | v.
            const bool last_cls = cls_only && l + 1 == layers_.size();
            L.qkv.run(ln, rows, H, qkv, 3 * H, pool);  // [rows, 3H]: q | k | v
            clock.lap(&profile::qkv);
            detail::attention<T>({qkv, probs, ctx, B, heads, Tk, d, last_cls ? 1 : Tk}, attention_kernel_, pool);
            if (opt.output_attentions) keep(out.attentions[l], probs, b0 * heads * Tk, B * heads * Tk);
            clock.lap(&profile::attention);
            index_t m = rows;
            const T* context = ctx;
            if (last_cls) {
                for (index_t b = 0; b < B; ++b) {
                    std::copy(ctx + b * Tk * H, ctx + (b * Tk + 1) * H, qkv + b * H);
                    if (b) std::copy(x + b * Tk * H, x + (b * Tk + 1) * H, x + b * H);
                }
                m = B;
                context = qkv;
            }
            L.o_proj.run(context, m, H, x, H, pool, detail::activation::none, x, H);
            clock.lap(&profile::attention_output);
            // x = x + fc2(act(fc1(layernorm_after(x))))
            L.ln_after.run(x, ln, m, pool);
            clock.lap(&profile::layer_norm);
            L.fc1.run(ln, m, H, mlp, I, pool, act);
            clock.lap(&profile::mlp_up);
            L.fc2.run(mlp, m, I, x, H, pool, detail::activation::none, x, H);
            if (opt.output_hidden_states) keep(out.hidden_states[l + 1], x, b0 * Tk, rows);
            clock.lap(&profile::mlp_down);
        }

        final_ln_.run(x, ln, cls_only ? B : rows, pool);
        clock.lap(&profile::layer_norm);
        T* cls = ln;  // the CLS rows after the final LayerNorm, [B, H]
        if (!cls_only) {
            if (opt.output_last_hidden_state) keep(out.last_hidden_state, ln, b0 * Tk, rows);
            cls = w.x;  // x is free now
            for (index_t b = 0; b < B; ++b) std::copy(ln + b * Tk * H, ln + (b * Tk + 1) * H, cls + b * H);
        }
        keep(out.cls_embedding, cls, b0, B);
        if (config_.arch == architecture::image_classification) {
            classifier_.run(cls, B, H, out.logits.row(b0).data(), config_.num_labels(), pool);
        } else if (has_pooler_) {
            pooler_.run(cls, B, H, out.pooler_output.row(b0).data(), H, pool);
            out.pooler_output.middleRows(b0, B) = out.pooler_output.middleRows(b0, B).array().tanh().matrix();
        }
        clock.lap(&profile::head);
    }

    basic_model() = default;

    struct encoder_layer {
        detail::layer_norm<T> ln_before, ln_after;  // [H]
        detail::linear<T> qkv;                      // query|key|value stacked: [3H, H], bias [3H]
        detail::linear<T> o_proj;                   // attention.output.dense [H, H]
        detail::linear<T> fc1;                      // intermediate.dense [I, H]
        detail::linear<T> fc2;                      // output.dense [H, I]
    };

    void load_weights(const detail::weight_source& w, const load_options& opt) {
        const precision compute = opt.compute;
        // bf16 mode: attention's products in bf16 too, as PyTorch's bf16 runs
        // them, where the CPU has AVX512_BF16 (ViT-L/32 logit error vs float32
        // 0.0215 -> 0.0224). int8 keeps float32 attention: in bf16 its error
        // rose from 0.067 to 0.078, past ONNX Runtime int8's 0.077.
        attention_kernel_ = compute == precision::bf16 ? detail::attention_kernel::bf16 : detail::attention_kernel::f32;
        using detail::index_t;
        using spec = typename detail::linear<T>::spec;
        const vit::config& c = config_;
        const index_t H = c.hidden_size, I = c.intermediate_size, P = c.patch_size, C = c.num_channels;
        const index_t positions = index_t(c.num_patches()) + 1;
        cls_token_ = w.read<T>("embeddings.cls_token", {1, 1, H});
        pos_embed_ = w.read<T>("embeddings.position_embeddings", {1, positions, H});
        // The patch projection runs in the requested compute precision: it is
        // 1% of the operations but took 3.5% of an int8 forward in float32
        // (int8 logit error on ViT-L/32: 0.060 -> 0.066). The classifier and
        // pooler are a sliver of the work and stay in full precision.
        patch_proj_.load(w, spec{{"embeddings.patch_embeddings.projection"}, H, C * P * P, {H, C, P, P}, true},
                         compute);
        layers_.resize(std::size_t(c.num_hidden_layers));
        const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        const bool defer = opt.background_packing && compute == precision::f32 && detail::linear<T>::can_defer();
        // Packing the weights is most of a load: spread the layers over threads.
        detail::thread_pool pool(threads);
        // Each layer's error is kept and the first layer's is thrown, so a bad
        // checkpoint gets the same message however the threads ran.
        std::vector<std::exception_ptr> failed(std::size_t(c.num_hidden_layers));
        pool.parallel_for(c.num_hidden_layers, [&](index_t l) {
            try {
                const std::string p = "encoder.layer." + std::to_string(l) + ".";
                encoder_layer& L = layers_[std::size_t(l)];
                L.ln_before.load(w, p + "layernorm_before", H, c.layer_norm_eps);
                L.ln_after.load(w, p + "layernorm_after", H, c.layer_norm_eps);
                // One [3H, H] product instead of three [H, H]: a third of the passes over the activations.
                const std::string a = p + "attention.attention.";
                L.qkv.load(w, spec{{a + "query", a + "key", a + "value"}, H, H, {}, c.qkv_bias}, compute, defer);
                L.o_proj.load(w, spec{{p + "attention.output.dense"}, H, H, {}, true}, compute, defer);
                L.fc1.load(w, spec{{p + "intermediate.dense"}, I, H, {}, true}, compute, defer);
                L.fc2.load(w, spec{{p + "output.dense"}, H, I, {}, true}, compute, defer);
            } catch (...) {
                failed[std::size_t(l)] = std::current_exception();
            }
        });
        for (const auto& e : failed)
            if (e) std::rethrow_exception(e);
        if (defer) {
            store_->populate();
            // Layers in forward order, so the first forwards gain from it soonest.
            encoder_layer* layers = layers_.data();
            std::shared_ptr<const detail::tensor_store> store = store_;
            packer_ = std::make_unique<detail::background_packer>(
                threads, index_t(layers_.size()) * 4, [layers, store](index_t i) {
                    encoder_layer& L = layers[i / 4];
                    detail::linear<T>* parts[] = {&L.qkv, &L.o_proj, &L.fc1, &L.fc2};
                    parts[i % 4]->pack_deferred(*store);
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
    std::vector<encoder_layer> layers_;
    detail::layer_norm<T> final_ln_;  // [H]
    detail::linear<T> classifier_;   // [labels, H]
    detail::linear<T> pooler_;       // [H, H]
    bool has_pooler_ = false;
    // Fused AVX-512 attention where the CPU has it; bf16 products in the bf16
    // compute mode (set by load_weights).
    detail::attention_kernel attention_kernel_ = detail::attention_kernel::f32;
};

using model = basic_model<float>;

inline model load_model(const std::string& dir, const load_options& opt = {}) { return model::load(dir, opt); }

}  // namespace vit
