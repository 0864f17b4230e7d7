// Prometheus text format 0.0.4: counters, a gauge and fixed-bucket histograms.
#pragma once

#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace serve {

class histogram {
public:
    explicit histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
    void observe(double v) {
        std::size_t i = 0;
        while (i < bounds_.size() && v > bounds_[i]) ++i;
        ++counts_[i];
        sum_ += v;
        ++count_;
    }
    void write(std::ostream& o, const std::string& name, const std::string& help) const {
        o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
        unsigned long long cum = 0;
        for (std::size_t i = 0; i < bounds_.size(); ++i) {
            cum += counts_[i];
            o << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cum << "\n";
        }
        o << name << "_bucket{le=\"+Inf\"} " << count_ << "\n" << name << "_sum " << sum_ << "\n" << name << "_count " << count_ << "\n";
    }

private:
    std::vector<double> bounds_;
    std::vector<unsigned long long> counts_;
    double sum_ = 0;
    unsigned long long count_ = 0;
};

class metrics {
public:
    void request(const std::string& route, int status, double seconds) {
        std::lock_guard<std::mutex> lk(mu_);
        ++requests_[{route, status}];
        request_s_.observe(seconds);
    }
    void forward(int batch, double seconds) {
        std::lock_guard<std::mutex> lk(mu_);
        batch_.observe(batch);
        infer_s_.observe(seconds);
        ++forwards_;
        inferences_ += unsigned(batch);
    }
    void queued(double seconds) {
        std::lock_guard<std::mutex> lk(mu_);
        queue_s_.observe(seconds);
    }
    // Texts run through the text tower (OIP text, zero-shot labels not cached).
    void texts(std::size_t n, double seconds) {
        std::lock_guard<std::mutex> lk(mu_);
        texts_ += n;
        text_s_.observe(seconds);
    }
    void label_cache(bool hit) {
        std::lock_guard<std::mutex> lk(mu_);
        ++(hit ? cache_hits_ : cache_misses_);
    }
    std::string text(std::size_t queue_length, std::size_t cached_label_sets = 0) const {
        std::lock_guard<std::mutex> lk(mu_);
        std::ostringstream o;
        o.precision(9);
        o << "# HELP vit_requests_total HTTP requests by route and status.\n# TYPE vit_requests_total counter\n";
        for (const auto& [k, v] : requests_)
            o << "vit_requests_total{route=\"" << k.first << "\",status=\"" << k.second << "\"} " << v << "\n";
        request_s_.write(o, "vit_request_duration_seconds", "Time from request parsed to response written.");
        queue_s_.write(o, "vit_queue_duration_seconds", "Time a request waited in the batch queue.");
        infer_s_.write(o, "vit_inference_duration_seconds", "Duration of one forward pass.");
        batch_.write(o, "vit_batch_size", "Images per forward pass.");
        o << "# HELP vit_inferences_total Images run through the model.\n# TYPE vit_inferences_total counter\n"
          << "vit_inferences_total " << inferences_ << "\n"
          << "# HELP vit_forward_executions_total Forward passes.\n# TYPE vit_forward_executions_total counter\n"
          << "vit_forward_executions_total " << forwards_ << "\n"
          << "# HELP vit_queue_length Requests waiting or running.\n# TYPE vit_queue_length gauge\n"
          << "vit_queue_length " << queue_length << "\n";
        text_s_.write(o, "vit_text_duration_seconds", "Duration of one text tower run (OIP text, uncached labels).");
        o << "# HELP vit_text_inferences_total Texts run through the text tower.\n# TYPE vit_text_inferences_total counter\n"
          << "vit_text_inferences_total " << texts_ << "\n"
          << "# HELP vit_label_cache_hits_total Zero-shot calls whose label embeddings were cached.\n"
          << "# TYPE vit_label_cache_hits_total counter\nvit_label_cache_hits_total " << cache_hits_ << "\n"
          << "# HELP vit_label_cache_misses_total Zero-shot calls that ran the text tower for their labels.\n"
          << "# TYPE vit_label_cache_misses_total counter\nvit_label_cache_misses_total " << cache_misses_ << "\n"
          << "# HELP vit_label_cache_sets Label sets held in the cache.\n# TYPE vit_label_cache_sets gauge\n"
          << "vit_label_cache_sets " << cached_label_sets << "\n";
        return o.str();
    }

private:
    mutable std::mutex mu_;
    std::map<std::pair<std::string, int>, unsigned long long> requests_;
    histogram request_s_{{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}};
    histogram queue_s_{{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}};
    histogram infer_s_{{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}};
    histogram batch_{{1, 2, 4, 8, 16, 32, 64}};
    histogram text_s_{{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}};
    unsigned long long forwards_ = 0, inferences_ = 0, texts_ = 0, cache_hits_ = 0, cache_misses_ = 0;
};

}  // namespace serve
