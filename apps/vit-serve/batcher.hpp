// Dynamic batching: HTTP threads queue preprocessed pixel values; one
// inference thread gathers up to max_batch images, waiting at most max_delay
// for company, runs one forward and hands each request its rows back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <vit/vit.hpp>

#include "common/rollout.hpp"

namespace serve {

struct job_result {
    std::string error;            // empty on success
    vit::matrix<float> logits;    // [n, labels] (image classification only)
    vit::matrix<float> embeddings;  // [n, model.embedding_size()]
    std::vector<double> rollout;    // attention jobs: CLS rollout over the patch grid
    vit::matrix<float> text_embeds;  // OIP text requests: [n, P] (the text tower's, not the batcher's)
    int batch_size = 0;           // images in the forward this job rode in
    double queue_s = 0, infer_s = 0;
};

struct job {
    int n = 0, h = 0, w = 0;
    std::vector<float> pixels;  // [n, 3, h, w]
    bool attention = false;     // one image, run alone with attentions kept
    std::function<void(job_result)> done;
    std::chrono::steady_clock::time_point queued;
};

struct batch_stats {
    std::function<void(int batch, double infer_s)> on_forward;
};

class batcher {
public:
    batcher(const vit::model& m, int threads, int max_batch, int max_delay_ms, std::size_t max_queue, batch_stats stats)
        : model_(m), ws_(threads), max_batch_(max_batch), delay_(max_delay_ms), max_queue_(max_queue),
          stats_(std::move(stats)), thread_([this] { run(); }) {}
    ~batcher() { stop(); }

    // False when the queue is full: the caller answers 503.
    bool submit(std::unique_ptr<job> j) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            if (stopping_ || queue_.size() >= max_queue_) return false;
            j->queued = std::chrono::steady_clock::now();
            queue_.push_back(std::move(j));
        }
        cv_.notify_one();
        return true;
    }
    std::size_t queued() {
        std::lock_guard<std::mutex> lk(mu_);
        return queue_.size() + running_;
    }
    // Finishes every queued job, then returns.
    void stop() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    void run() {
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            // Wait for company up to the delay after the oldest arrival.
            const auto deadline = queue_.front()->queued + delay_;
            while (!stopping_ && !queue_.front()->attention && images_compatible() < max_batch_ &&
                   cv_.wait_until(lk, deadline) != std::cv_status::timeout) {
            }
            std::vector<std::unique_ptr<job>> batch;
            int images = 0;
            const int h = queue_.front()->h, w = queue_.front()->w;
            const bool attention = queue_.front()->attention;
            for (auto it = queue_.begin(); it != queue_.end();) {
                if (batch.empty() || (!attention && !(*it)->attention && (*it)->h == h && (*it)->w == w && images + (*it)->n <= max_batch_)) {
                    images += (*it)->n;
                    batch.push_back(std::move(*it));
                    it = queue_.erase(it);
                } else {
                    ++it;
                }
            }
            running_ = std::size_t(batch.size());
            lk.unlock();
            execute(batch, images, h, w, attention);
            lk.lock();
            running_ = 0;
        }
    }
    static bool compatible(const job& a, const job& b) { return a.h == b.h && a.w == b.w && !a.attention && !b.attention; }
    int images_compatible() const {
        int n = 0;
        for (const auto& j : queue_)
            if (compatible(*j, *queue_.front())) n += j->n;
        return n;
    }
    void execute(std::vector<std::unique_ptr<job>>& batch, int images, int h, int w, bool attention) {
        const auto t0 = std::chrono::steady_clock::now();
        job_result shared;
        vit::output<float> out;
        try {
            vit::pixel_values<float> px(images, 3, h, w);
            std::size_t off = 0;
            for (const auto& j : batch) {
                std::copy(j->pixels.begin(), j->pixels.end(), px.data.begin() + std::ptrdiff_t(off));
                off += j->pixels.size();
            }
            vit::forward_options fo;
            fo.output_last_hidden_state = false;
            fo.output_attentions = attention;
            out = model_.forward(px, fo, &ws_);
        } catch (const std::exception& e) {
            shared.error = e.what();
        }
        const double infer_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (stats_.on_forward && shared.error.empty()) stats_.on_forward(images, infer_s);
        const auto& emb = model_.embedding(out);
        Eigen::Index row = 0;
        for (auto& j : batch) {
            job_result r;
            r.error = shared.error;
            r.batch_size = images;
            r.infer_s = infer_s;
            r.queue_s = std::chrono::duration<double>(t0 - j->queued).count();
            if (r.error.empty()) {
                if (out.logits.size()) r.logits = out.logits.middleRows(row, j->n);
                r.embeddings = emb.middleRows(row, j->n);
                if (attention) r.rollout = rollout::attention_rollout(out, model_.config().num_attention_heads);
            }
            row += j->n;
            j->done(std::move(r));
        }
    }

    const vit::model& model_;
    vit::workspace<float> ws_;
    int max_batch_;
    std::chrono::milliseconds delay_;
    std::size_t max_queue_;
    batch_stats stats_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<job>> queue_;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::thread thread_;  // last: starts after everything it uses
};

}  // namespace serve
