// vit-serve: a ViT classifier behind HTTP, speaking the Open Inference
// Protocol v2 (KServe/Triton) and the HuggingFace inference form.
// Boost.Beast/Asio: see README ("vit-serve") for why not cpp-httplib.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <vit/text.hpp>
#include <vit/vit.hpp>

#include "common/hub.hpp"
#include "common/labels.hpp"
#include "batcher.hpp"
#include "label_cache.hpp"
#include "metrics.hpp"
#include "page.hpp"
#include "protocol.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct options {
    std::string model, name, host = "127.0.0.1", api_key_file, dtype = "f32";
    int port = 8000, threads = 0, max_batch = 8, delay_ms = 2, max_queue = 64, max_body_mb = 16, timeout_s = 30;
};

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << "vit-serve: " << msg << "\n"
              << "usage: vit-serve --model M [--name NAME] [--host 127.0.0.1] [--port 8000] [--threads N]\n"
                 "       [--dtype f32|bf16|int8] [--max-batch-size 8] [--max-queue-delay-ms 2] [--max-queue 64]\n"
                 "       [--max-body-mb 16] [--timeout-s 30] [--api-key-file F]\n";
    std::exit(2);
}

options parse_args(int argc, char** argv) {
    options o;
    auto num = [&](int& i, int lo, int hi) {
        if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
        const std::string a = argv[i], v = argv[++i];
        try {
            std::size_t end = 0;
            const long x = std::stol(v, &end);
            if (end != v.size() || x < lo || x > hi) throw std::out_of_range(v);
            return int(x);
        } catch (const std::exception&) {
            usage(a + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
        }
    };
    auto str = [&](int& i) -> std::string {
        if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--model") o.model = str(i);
        else if (a == "--name") o.name = str(i);
        else if (a == "--host") o.host = str(i);
        else if (a == "--port") o.port = num(i, 0, 65535);
        else if (a == "--threads") o.threads = num(i, 0, 1024);
        else if (a == "--dtype") o.dtype = str(i);
        else if (a == "--max-batch-size") o.max_batch = num(i, 1, 1024);
        else if (a == "--max-queue-delay-ms") o.delay_ms = num(i, 0, 60000);
        else if (a == "--max-queue") o.max_queue = num(i, 1, 1000000);
        else if (a == "--max-body-mb") o.max_body_mb = num(i, 1, 4096);
        else if (a == "--timeout-s") o.timeout_s = num(i, 1, 86400);
        else if (a == "--api-key-file") o.api_key_file = str(i);
        else if (a == "-h" || a == "--help") usage("help");
        else usage("unknown option " + a);
    }
    if (o.model.empty()) usage("--model is required");
    if (o.dtype != "f32" && o.dtype != "bf16" && o.dtype != "int8") usage("--dtype is f32, bf16 or int8");
    if (o.name.empty()) {
        std::string m = o.model;
        while (m.size() > 1 && m.back() == '/') m.pop_back();
        const auto s = m.rfind('/');
        o.name = s == std::string::npos ? m : m.substr(s + 1);
    }
    return o;
}

// A CLIP or SigLIP tokenizer's files in a checkpoint folder.
bool has_tokenizer_files(const std::string& dir) {
    for (const char* f : {"tokenizer.json", "vocab.json", "spiece.model"}) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(std::filesystem::path(dir) / f, ec)) return true;
    }
    return false;
}

// Compares without an early exit so the time taken does not tell how much
// of a guessed key was right.
bool constant_time_equal(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i)
        diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

struct server_state {
    options opt;
    // The image tower: a CLIP or SigLIP checkpoint with its tokenizer files
    // loads both towers (zero_shot), any other the vision model alone.
    std::unique_ptr<vit::zero_shot_model> zero_shot;
    std::unique_ptr<vit::model> vision_only;
    const vit::model* model = nullptr;
    std::string no_text;  // why text requests are refused (no zero_shot)
    asio::thread_pool* text_pool = nullptr;  // runs the text tower off the HTTP threads
    serve::label_cache label_sets{64, std::size_t(8) << 20};  // 64 sets, 32 MiB of floats
    vit::preprocess_config pre;
    std::unique_ptr<serve::batcher> batch;
    serve::metrics stats;
    std::string api_key;
    std::atomic<bool> ready{false}, draining{false}, grace_over{false}, stopping{false};
    std::atomic<int> in_flight{0};
    std::function<void()> maybe_finish;  // stops the server once drained
};

using response = http::response<http::string_body>;

response json_response(int status, const nlohmann::json& j) {
    response r{http::status(status), 11};
    r.set(http::field::content_type, "application/json");
    // Replace, not throw: an error message may quote the request's invalid UTF-8.
    r.body() = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
}
response error_response(int status, const std::string& msg) { return json_response(status, {{"error", msg}}); }

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket s, server_state& st) : stream_(std::move(s)), st_(st), deadline_(stream_.get_executor()) {}
    void start() { read_header(); }

private:
    void read_header() {
        parser_.emplace();
        parser_->header_limit(16 * 1024);
        // Checked again against Content-Length before the body is read, so
        // an oversized body is refused without reading it.
        parser_->body_limit(std::uint64_t(st_.opt.max_body_mb) << 20);
        arm_deadline();
        http::async_read_header(stream_, buffer_, *parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
    }
    // The read deadline cancels the read instead of closing the socket (what
    // tcp_stream's own expiry does), so a late body can still get its 408.
    void arm_deadline() {
        timed_out_ = false;
        stream_.expires_after(std::chrono::seconds(st_.opt.timeout_s + 5));  // backstop
        deadline_.expires_after(std::chrono::seconds(st_.opt.timeout_s));
        deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec) return;  // re-armed or cancelled
            self->timed_out_ = true;
            beast::error_code ignored;
            self->stream_.socket().cancel(ignored);
        });
    }

    void on_header(beast::error_code ec) {
        if (ec == http::error::body_limit)  // Content-Length alone is over the limit
            return send_error_close(413, "body over --max-body-mb " + std::to_string(st_.opt.max_body_mb));
        if (ec && timed_out_)  // idle keep-alive: just close; a half-sent header: say why
            return buffer_.size() ? send_error_close(408, "request header not received within --timeout-s") : close();
        if (ec) {
            if (ec == http::error::header_limit || ec == http::error::bad_content_length || ec == http::error::bad_line_ending ||
                ec == http::error::bad_method || ec == http::error::bad_target || ec == http::error::bad_version ||
                ec == http::error::bad_field || ec == http::error::bad_value)
                return send_error_close(ec == http::error::header_limit ? 431 : 400, ec.message());
            return close();
        }
        t0_ = std::chrono::steady_clock::now();
        ++st_.in_flight;
        counted_ = true;
        const auto& h = parser_->get();
        if (h.has_content_length() && *parser_->content_length() > (std::uint64_t(st_.opt.max_body_mb) << 20))
            return finish(error_response(413, "body over --max-body-mb " + std::to_string(st_.opt.max_body_mb)), true);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
    }
    void on_body(beast::error_code ec) {
        if (ec == http::error::body_limit) return finish(error_response(413, "body over --max-body-mb"), true);
        if (ec && timed_out_) {
            // The stream is not at a message boundary: answer, then close.
            return finish(error_response(408, "request body not received within --timeout-s " + std::to_string(st_.opt.timeout_s)), true);
        }
        if (ec == http::error::partial_message || ec == http::error::end_of_stream || ec == asio::error::eof)
            return finish(error_response(400, "truncated body: the connection ended before Content-Length bytes"), true);
        if (ec) return finish(error_response(400, "bad body: " + ec.message()), true);
        deadline_.cancel();
        req_ = parser_->release();
        route_ = std::string(req_.target());
        if (const auto q = route_.find('?'); q != std::string::npos) route_.resize(q);
        handle();
    }

    void handle() {
        const auto method = req_.method();
        const std::string& t = route_;
        const std::string mp = "/v2/models/" + st_.opt.name;
        auto only = [&](http::verb v) {
            if (method == v) return true;
            finish(error_response(405, std::string(req_.method_string()) + " not allowed on " + t));
            return false;
        };
        // Health and metrics stay open without a key: probes and scrapers
        // usually carry none.
        const bool open_route = t == "/v2/health/live" || t == "/v2/health/ready" || t == "/metrics" || (t == "/" && method == http::verb::get);
        if (!st_.api_key.empty() && !open_route) {
            const std::string auth(req_[http::field::authorization]);
            const std::string prefix = "Bearer ";
            if (auth.compare(0, prefix.size(), prefix) != 0 || !constant_time_equal(auth.substr(prefix.size()), st_.api_key)) {
                auto r = error_response(401, "missing or wrong bearer token");
                r.set(http::field::www_authenticate, "Bearer");
                return finish(std::move(r));
            }
        }
        if (t == "/v2/health/live") {
            if (only(http::verb::get)) finish(json_response(200, {{"live", true}}));
        } else if (t == "/v2/health/ready" || t == mp + "/ready") {
            if (!only(http::verb::get)) return;
            const bool ok = st_.ready && !st_.draining;
            auto r = json_response(ok ? 200 : 503, {{"ready", ok}});
            if (!ok) r.set(http::field::retry_after, "1");
            finish(std::move(r));
        } else if (t == "/v2") {
            if (only(http::verb::get))
                finish(json_response(200, {{"name", "vit-serve"},
                                           {"version", VIT_VERSION_STRING},
                                           {"extensions", {"binary_tensor_data", "classification"}}}));
        } else if (t == mp || t == mp + "/versions/1") {
            if (only(http::verb::get)) finish(json_response(200, model_metadata()));
        } else if (t == mp + "/infer" || t == mp + "/versions/1/infer") {
            if (only(http::verb::post)) infer(kind::oip);
        } else if (t == "/predict" || (t == "/" && method == http::verb::post)) {
            if (only(http::verb::post)) infer(kind::hf);
        } else if (t == "/attention") {
            if (only(http::verb::post)) infer(kind::attention);
        } else if (t == "/") {
            if (!only(http::verb::get)) return;
            response r{http::status::ok, 11};
            r.set(http::field::content_type, "text/html; charset=utf-8");
            r.body() = serve::page_html();
            finish(std::move(r));
        } else if (t == "/metrics") {
            if (!only(http::verb::get)) return;
            response r{http::status::ok, 11};
            r.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            r.body() = st_.stats.text(st_.batch ? st_.batch->queued() : 0, st_.label_sets.sets());
            finish(std::move(r));
        } else if (t.rfind("/v2/models/", 0) == 0) {
            finish(error_response(404, "unknown model or route " + t + " (this server has " + st_.opt.name + ")"));
        } else {
            finish(error_response(404, "unknown route " + t));
        }
    }

    nlohmann::json model_metadata() const {
        const auto& cfg = st_.model->config();
        nlohmann::json outputs = nlohmann::json::array();
        if (cfg.arch == vit::architecture::image_classification)
            outputs.push_back({{"name", "logits"}, {"datatype", "FP32"}, {"shape", {-1, cfg.num_labels()}}});
        outputs.push_back({{"name", "embeddings"}, {"datatype", "FP32"}, {"shape", {-1, st_.model->embedding_size()}}});
        nlohmann::json inputs = {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {-1}}},
                                 {{"name", "pixel_values"}, {"datatype", "FP32"}, {"shape", {-1, 3, st_.pre.height, st_.pre.width}}}};
        if (st_.zero_shot) {
            inputs.push_back({{"name", "text"}, {"datatype", "BYTES"}, {"shape", {-1}}});
            outputs.push_back({{"name", "text_embeds"}, {"datatype", "FP32"}, {"shape", {-1, st_.zero_shot->text().embedding_size()}}});
        }
        return {{"name", st_.opt.name}, {"versions", {"1"}}, {"platform", "vit"}, {"inputs", inputs}, {"outputs", outputs}};
    }

    enum class kind { oip, hf, attention };

    void infer(kind k) {
        if (!st_.ready || st_.draining) return unavailable(st_.draining ? "server is draining" : "model not loaded yet");
        serve::decoded_request d;
        try {
            if (k != kind::oip) {
                const std::string ct(req_[http::field::content_type]);
                d = serve::decode_hf(req_.body(), ct.rfind("application/json", 0) == 0);
                if (k == kind::hf && !d.zero_shot() && st_.model->config().arch != vit::architecture::image_classification)
                    throw vit::error(std::string("this checkpoint has no classifier; ") +
                                     (st_.zero_shot ? "send candidate_labels for zero-shot scores, or " : "") +
                                     "use /v2/models/NAME/infer for embeddings");
                if (k != kind::hf && d.zero_shot()) throw vit::error("candidate_labels go to /predict or /, not " + route_);
            } else {
                std::size_t hlen = std::string::npos;
                if (auto it = req_.find("Inference-Header-Content-Length"); it != req_.end()) {
                    const std::string v(it->value());
                    std::size_t end = 0;
                    try {
                        hlen = std::stoul(v, &end);
                    } catch (const std::exception&) {
                        end = 0;
                    }
                    if (end == 0 || end != v.size()) throw vit::error("bad Inference-Header-Content-Length");
                }
                d = serve::decode_infer(req_.body(), hlen);
            }
            if (d.classification && st_.model->config().arch != vit::architecture::image_classification)
                throw vit::error("classification needs a classifier checkpoint");
            if ((d.zero_shot() || d.want_text_embeds) && !st_.zero_shot)
                throw vit::error(std::string(d.zero_shot() ? "candidate_labels need" : "the text input needs") +
                                 " a CLIP or SigLIP checkpoint with its text tower: " + st_.no_text);
        } catch (const vit::error& e) {
            return finish(error_response(400, e.what()));
        }
        if (d.want_text_embeds) return embed_texts(std::move(d));
        // Preprocess here, on the HTTP thread, so the forward never waits for it.
        auto j = std::make_unique<serve::job>();
        try {
            if (!d.images.empty()) {
                const auto px = vit::make_pixel_values<float>(d.images, st_.pre);
                j->n = px.batch, j->h = px.height, j->w = px.width;
                j->pixels = std::move(px.data);
                j->attention = k == kind::attention;
                d.images.clear();
            } else {
                j->n = d.n, j->h = d.h, j->w = d.w;
                j->pixels = std::move(d.pixels);
            }
        } catch (const vit::error& e) {
            return finish(error_response(400, e.what()));
        }
        auto self = shared_from_this();
        auto req = std::make_shared<serve::decoded_request>(std::move(d));
        auto label_embeds = std::make_shared<serve::label_cache::value>();  // zero-shot: set before the job is queued
        j->done = [self, req, k, label_embeds](serve::job_result r) {
            asio::post(self->stream_.get_executor(), [self, req, k, label_embeds, r = std::move(r)]() mutable {
                self->batch_ = r.batch_size;
                self->st_.stats.queued(r.queue_s);
                if (!r.error.empty()) return self->finish(error_response(500, r.error));
                self->finish(req->zero_shot() ? self->zero_shot_answer(*req, **label_embeds, r)
                             : k == kind::hf  ? self->hf_answer(*req, r)
                             : k == kind::oip ? self->oip_answer(*req, r)
                                              : self->attention_answer(r));
            });
        };
        if (!req->zero_shot()) {
            if (!st_.batch->submit(std::move(j))) unavailable("queue full");
            return;
        }
        const std::string key = serve::label_cache::key(req->hypothesis_template, req->candidate_labels);
        if ((*label_embeds = st_.label_sets.find(key))) {
            st_.stats.label_cache(true);
            if (!st_.batch->submit(std::move(j))) unavailable("queue full");
            return;
        }
        st_.stats.label_cache(false);
        // The labels' sentences through the text tower first (on its own
        // thread), then the image through the batcher.
        auto job = std::make_shared<std::unique_ptr<serve::job>>(std::move(j));
        asio::post(*st_.text_pool, [self, req, key, label_embeds, job] {
            try {
                const auto t0 = std::chrono::steady_clock::now();
                auto m = std::make_shared<const vit::matrix<float>>(
                    self->st_.zero_shot->label_embeddings(req->candidate_labels, req->hypothesis_template));
                self->st_.stats.texts(req->candidate_labels.size(),
                                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
                self->st_.label_sets.put(key, m);
                *label_embeds = std::move(m);
            } catch (const std::exception& e) {
                return self->fail_later(dynamic_cast<const vit::error*>(&e) ? 400 : 500, e.what());
            }
            if (!self->st_.batch->submit(std::move(*job)))
                asio::post(self->stream_.get_executor(), [self] { self->unavailable("queue full"); });
        });
    }

    // Answers an error from another thread, on this session's strand.
    void fail_later(int status, const std::string& msg) {
        asio::post(stream_.get_executor(), [self = shared_from_this(), status, msg] { self->finish(error_response(status, msg)); });
    }

    // OIP text input: the text tower on its thread, then text_embeds.
    void embed_texts(serve::decoded_request d) {
        auto self = shared_from_this();
        auto req = std::make_shared<serve::decoded_request>(std::move(d));
        asio::post(*st_.text_pool, [self, req] {
            serve::job_result r;
            try {
                const auto t0 = std::chrono::steady_clock::now();
                r.text_embeds = self->st_.zero_shot->text().embed(req->texts);
                self->st_.stats.texts(req->texts.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            } catch (const std::exception& e) {
                return self->fail_later(dynamic_cast<const vit::error*>(&e) ? 400 : 500, e.what());
            }
            asio::post(self->stream_.get_executor(), [self, req, r = std::move(r)] { self->finish(self->oip_answer(*req, r)); });
        });
    }

    // The HF zero-shot answer: every label (or top_k), best first, scored as
    // the pipeline scores (CLIP softmax over the labels, SigLIP sigmoid).
    response zero_shot_answer(const serve::decoded_request& d, const vit::matrix<float>& label_embeds, const serve::job_result& r) {
        const auto s = st_.zero_shot->scores(r.embeddings, label_embeds);
        nlohmann::json a = nlohmann::json::array();
        for (const auto& p : labels::ranked(s.probs.row(0).data(), int(s.probs.cols()), d.top_k_given ? d.top_k : 0, d.candidate_labels))
            a.push_back({{"label", p.label}, {"score", p.score}});
        return json_response(200, a);
    }

    void unavailable(const std::string& why) {
        auto r = error_response(503, why);
        r.set(http::field::retry_after, "1");
        finish(std::move(r));
    }

    // The rollout over the patch grid, scaled to [0, 1] for the page to draw.
    response attention_answer(const serve::job_result& r) const {
        const auto& pre = st_.pre;
        const int p = st_.model->config().patch_size;
        const auto [lo, hi] = std::minmax_element(r.rollout.begin(), r.rollout.end());
        nlohmann::json v = nlohmann::json::array();
        for (double x : r.rollout) v.push_back(*hi > *lo ? (x - *lo) / (*hi - *lo) : 0.0);
        return json_response(200, {{"rows", pre.height / p}, {"cols", pre.width / p}, {"values", std::move(v)}});
    }

    response hf_answer(const serve::decoded_request& d, const serve::job_result& r) {
        const auto& cfg = st_.model->config();
        nlohmann::json a = nlohmann::json::array();
        for (const auto& p : vit::top_k(r.logits.row(0).data(), cfg.num_labels(), d.top_k, cfg.labels))
            a.push_back({{"label", p.label}, {"score", p.score}});
        return json_response(200, a);
    }

    response oip_answer(const serve::decoded_request& d, const serve::job_result& r) {
        const auto& cfg = st_.model->config();
        const bool has_logits = r.logits.size() > 0;
        nlohmann::json outs = nlohmann::json::array();
        std::string blob;
        auto add = [&](const std::string& name, const std::string& dtype, nlohmann::json shape, nlohmann::json data,
                       const std::string& raw) {
            nlohmann::json o = {{"name", name}, {"datatype", dtype}, {"shape", shape}};
            if (d.binary_out) {
                o["parameters"] = {{"binary_data_size", raw.size()}};
                blob += raw;
            } else {
                o["data"] = std::move(data);
            }
            outs.push_back(std::move(o));
        };
        auto floats = [&](const std::string& name, const vit::matrix<float>& m) {
            nlohmann::json data = nlohmann::json::array();
            std::string raw;
            if (d.binary_out) raw.assign(reinterpret_cast<const char*>(m.data()), std::size_t(m.size()) * 4);
            else
                for (Eigen::Index i = 0; i < m.size(); ++i) data.push_back(m.data()[i]);
            add(name, "FP32", {m.rows(), m.cols()}, std::move(data), raw);
        };
        auto classes = [&](const std::string& name, const vit::matrix<float>& m) {
            nlohmann::json data = nlohmann::json::array();
            std::string raw;
            const int k = std::min(d.classification, int(m.cols()));
            for (Eigen::Index row = 0; row < m.rows(); ++row)
                for (const auto& p : vit::top_k(m.row(row).data(), int(m.cols()), k, cfg.labels)) {
                    char score[32];
                    std::snprintf(score, sizeof score, "%.6f", double(p.score));
                    const std::string s = std::string(score) + ":" + std::to_string(p.index) + ":" + p.label;
                    data.push_back(s);
                    const auto n = std::uint32_t(s.size());
                    for (int b = 0; b < 4; ++b) raw.push_back(char((n >> (8 * b)) & 0xFF));
                    raw += s;
                }
            add(name, "BYTES", {m.rows(), k}, std::move(data), raw);
        };
        if (d.want_logits && has_logits) (d.classification && d.classify_logits) ? classes("logits", r.logits) : floats("logits", r.logits);
        if (d.want_embeddings) floats("embeddings", r.embeddings);
        if (d.want_text_embeds) floats("text_embeds", r.text_embeds);
        if (outs.empty()) return error_response(400, "no outputs to return (this checkpoint has no logits)");
        nlohmann::json head = {{"model_name", st_.opt.name}, {"model_version", "1"}, {"outputs", outs}};
        if (!d.id.empty()) head["id"] = d.id;
        if (!d.binary_out) return json_response(200, head);
        response res{http::status::ok, 11};
        const std::string h = head.dump();
        res.set(http::field::content_type, "application/octet-stream");
        res.set("Inference-Header-Content-Length", std::to_string(h.size()));
        res.body() = h + blob;
        return res;
    }

    void log(const std::string& route, int status, int batch) const {
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
        // The target may hold any bytes: invalid UTF-8 is replaced, not thrown.
        std::cerr << nlohmann::json{{"route", route}, {"status", status}, {"ms", counted_ ? ms : 0.0}, {"batch", batch}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                         "\n";
    }

    void send_error_close(int status, const std::string& msg) {
        res_ = error_response(status, msg);
        res_.keep_alive(false);
        res_.prepare_payload();
        deadline_.cancel();
        stream_.expires_after(std::chrono::seconds(st_.opt.timeout_s));
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code, std::size_t) { self->close(); });
    }

    void finish(response r, bool close_after = false) {
        const int status = int(r.result_int());
        const std::string route = metrics_route();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
        st_.stats.request(route, status, s);
        log(route_.empty() ? "-" : route_, status, batch_);
        res_ = std::move(r);
        res_.keep_alive(!close_after && !st_.draining && req_.keep_alive());
        res_.prepare_payload();
        deadline_.cancel();
        stream_.expires_after(std::chrono::seconds(st_.opt.timeout_s));  // a client too slow to read
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->done_request();
            if (ec || !self->res_.keep_alive()) return self->close();
            self->req_ = {};
            self->route_.clear();
            self->batch_ = 0;
            self->read_header();
        });
    }

    // Collapses the target to a few label values so a client cannot grow the
    // metrics without bound.
    std::string metrics_route() const {
        const std::string mp = "/v2/models/" + st_.opt.name;
        for (const char* r : {"/", "/predict", "/attention", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready"})
            if (route_ == r) return route_;
        if (route_ == mp + "/infer") return "/v2/models/NAME/infer";
        if (route_ == mp) return "/v2/models/NAME";
        if (route_ == mp + "/ready") return "/v2/models/NAME/ready";
        return "other";
    }

    void done_request() {
        if (counted_) {
            counted_ = false;
            --st_.in_flight;
            if (st_.draining && st_.maybe_finish) st_.maybe_finish();
        }
    }

    void close() {
        done_request();
        deadline_.cancel();
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    beast::tcp_stream stream_;
    server_state& st_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::request<http::string_body> req_;
    response res_;
    std::string route_;
    std::chrono::steady_clock::time_point t0_;
    asio::steady_timer deadline_;
    bool counted_ = false, timed_out_ = false;
    int batch_ = 0;
};

// Out of file descriptors (or another accept error): back off a little
// instead of spinning on an error that retrying at once cannot clear.
void accept_loop(tcp::acceptor& acc, server_state& st, asio::steady_timer& backoff) {
    acc.async_accept(asio::make_strand(acc.get_executor()), [&acc, &st, &backoff](beast::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted || !acc.is_open()) return;
        if (ec) {
            std::cerr << nlohmann::json{{"event", "accept_error"}, {"error", ec.message()}}.dump() + "\n";
            backoff.expires_after(std::chrono::milliseconds(100));
            return backoff.async_wait([&acc, &st, &backoff](beast::error_code e) {
                if (!e) accept_loop(acc, st, backoff);
            });
        }
        std::make_shared<session>(std::move(s), st)->start();
        accept_loop(acc, st, backoff);
    });
}

// Each connection is a descriptor; the soft limit (often 1024) is raised to
// the hard one so that many idle clients do not starve new ones.
void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

}  // namespace

int main(int argc, char** argv) {
    server_state st;
    st.opt = parse_args(argc, argv);
    const options& opt = st.opt;
    try {
        if (!opt.api_key_file.empty()) {
            std::ifstream f(opt.api_key_file);
            if (!f) throw vit::error(opt.api_key_file + ": cannot read the API key file");
            std::getline(f, st.api_key);
            while (!st.api_key.empty() && std::isspace(static_cast<unsigned char>(st.api_key.back()))) st.api_key.pop_back();
            if (st.api_key.empty()) throw vit::error(opt.api_key_file + ": empty API key");
        }
        const int http_threads = 2;
        asio::io_context ioc(http_threads);
        asio::thread_pool text_pool(1);  // before the HTTP threads' joiner: joined after them, before ioc goes
        st.text_pool = &text_pool;
        tcp::acceptor acc(ioc);
        const tcp::endpoint ep(asio::ip::make_address(opt.host), static_cast<unsigned short>(opt.port));
        acc.open(ep.protocol());
        acc.set_option(asio::socket_base::reuse_address(true));
        acc.bind(ep);
        acc.listen(asio::socket_base::max_listen_connections);
        // Bound before the model loads, so /v2/health/ready can say 503 meanwhile.
        std::cerr << nlohmann::json{{"listening", opt.host + ":" + std::to_string(acc.local_endpoint().port())},
                                    {"model", opt.name}}
                         .dump()
                  << "\n";

        asio::signal_set signals(ioc, SIGTERM, SIGINT);
        asio::steady_timer grace(ioc);
        std::function<void()> stop_all = [&] {
            if (st.batch) st.batch->stop();
            ioc.stop();
        };
        st.maybe_finish = [&] {
            if (st.grace_over && st.in_flight == 0 && !st.stopping.exchange(true)) asio::post(ioc, stop_all);
        };
        std::function<void(beast::error_code, int)> on_signal = [&](beast::error_code ec, int) {
            if (ec) return;
            if (st.draining.exchange(true)) std::_Exit(1);  // second signal: at once
            std::cerr << nlohmann::json{{"event", "draining"}, {"in_flight", st.in_flight.load()}}.dump() << "\n";
            beast::error_code ignored;
            acc.close(ignored);
            // Requests already sent on accepted connections may not have been
            // parsed yet; give them a moment to be counted as in flight.
            grace.expires_after(std::chrono::milliseconds(300));
            grace.async_wait([&](beast::error_code e) {
                if (!e) {
                    st.grace_over = true;
                    st.maybe_finish();
                }
            });
            signals.async_wait(on_signal);
        };
        signals.async_wait(on_signal);
        asio::steady_timer backoff(ioc);
        raise_fd_limit();
        accept_loop(acc, st, backoff);

        std::vector<std::thread> pool;
        for (int i = 0; i < http_threads; ++i) pool.emplace_back([&] { ioc.run(); });
        // Joins the HTTP threads on every way out of this scope, a failed load included.
        struct joiner {
            asio::io_context& ioc;
            std::vector<std::thread>& pool;
            bool stop_first = true;
            ~joiner() {
                if (stop_first) ioc.stop();
                for (auto& t : pool)
                    if (t.joinable()) t.join();
            }
        } join_pool{ioc, pool};

        vit::load_options lo;
        lo.compute = opt.dtype == "bf16" ? vit::precision::bf16 : opt.dtype == "int8" ? vit::precision::int8 : vit::precision::f32;
        lo.threads = opt.threads;
        const std::string dir = hub::resolve_model(opt.model);
        // Both towers when the folder has tokenizer files (the text tower of a
        // checkpoint without them cannot be used); the vision model alone when
        // it has none, or when they are there but the text side cannot load.
        if (has_tokenizer_files(dir)) {
            try {
                st.zero_shot = std::make_unique<vit::zero_shot_model>(vit::load_zero_shot_model(dir, lo));
                st.model = &st.zero_shot->image();
            } catch (const vit::error& e) {
                st.no_text = e.what();
                std::cerr << nlohmann::json{{"event", "no_text"}, {"reason", st.no_text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            }
        } else {
            st.no_text = dir + ": a vision-only checkpoint (no tokenizer files: tokenizer.json, vocab.json + merges.txt, or spiece.model)";
        }
        if (!st.model) {
            st.vision_only = std::make_unique<vit::model>(vit::load_model(dir, lo));
            st.model = st.vision_only.get();
        }
        st.pre = st.model->preprocessing();
        const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        st.batch = std::make_unique<serve::batcher>(
            *st.model, threads, opt.max_batch, opt.delay_ms, std::size_t(opt.max_queue),
            serve::batch_stats{[&](int b, double s) { st.stats.forward(b, s); }});
        st.ready = true;
        std::cerr << nlohmann::json{{"event", "ready"}, {"model", dir}, {"text", bool(st.zero_shot)}}.dump() << "\n";
        join_pool.stop_first = false;  // run until the drain stops the context
        for (auto& t : pool) t.join();
        std::cerr << nlohmann::json{{"event", "stopped"}}.dump() << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "vit-serve: " << e.what() << "\n";
        return 1;
    }
}
