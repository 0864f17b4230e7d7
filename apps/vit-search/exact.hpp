// Exact search: every row of every part scored by cosine against the query,
// streamed part by part, the best k kept in a heap.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <queue>
#include <string>
#include <vector>

#include <vit/error.hpp>

#include "common/feature_parts.hpp"

namespace search {

struct hit {
    std::string image;
    double score = 0;
};

// What a search did, for the line on stderr.
struct stats {
    std::size_t images = 0, parts = 0;
    std::string method;
};

// dot(x, q) and |x|^2 of one row in float, 16 lanes each; the clones let the
// compiler use AVX2 / AVX-512 where the CPU has them, without -march flags.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
inline void dot_and_norm(const float* x, const float* q, std::size_t n, float* dot, float* norm2) {
    constexpr std::size_t L = 16;
    float d[L] = {}, s[L] = {};
    std::size_t j = 0;
    for (; j + L <= n; j += L)
        for (std::size_t l = 0; l < L; ++l) {
            d[l] += x[j + l] * q[j + l];
            s[l] += x[j + l] * x[j + l];
        }
    float dd = 0, ss = 0;
    for (std::size_t l = 0; l < L; ++l) {
        dd += d[l];
        ss += s[l];
    }
    for (; j < n; ++j) {
        dd += x[j] * q[j];
        ss += x[j] * x[j];
    }
    *dot = dd;
    *norm2 = ss;
}

// The k best (score, then order of appearance) of a stream of candidates.
class top_k {
public:
    explicit top_k(std::size_t k) : k_(k) {}
    // Whether a score would enter now (cheap test before building a name).
    bool wants(double score) const { return heap_.size() < k_ || score > heap_.top().score; }
    void push(double score, const std::string& image) {
        if (!wants(score)) return;
        heap_.push({score, seq_++, image});
        if (heap_.size() > k_) heap_.pop();
    }
    // Best first.
    std::vector<hit> take() {
        std::vector<entry> e;
        while (!heap_.empty()) {
            e.push_back(heap_.top());
            heap_.pop();
        }
        std::vector<hit> out;
        for (auto it = e.rbegin(); it != e.rend(); ++it) out.push_back({it->image, it->score});
        return out;
    }

private:
    struct entry {
        double score;
        std::size_t seq;
        std::string image;
    };
    struct worse_first {  // the heap's top is the entry to drop first: lowest score, then latest
        bool operator()(const entry& a, const entry& b) const { return a.score != b.score ? a.score > b.score : a.seq < b.seq; }
    };
    std::size_t k_, seq_ = 0;
    std::priority_queue<entry, std::vector<entry>, worse_first> heap_;
};

// Checks a part's kind and width against the query's.
inline void check_part(const feature_parts::part& p, const std::string& kind, std::size_t width, const std::string& query_from) {
    if (p.records.images == 0) return;
    if (p.records.kind != kind)
        throw vit::error(p.files.jsonl + ": holds " + p.records.kind + " embeddings, and " + query_from + " gives " + kind +
                         "; index the images with the same model as the query");
    if (p.rows.width() != width)
        throw vit::error(p.files.npy + ": its embeddings have " + std::to_string(p.rows.width()) + " values, and " + query_from +
                         " gives " + std::to_string(width) + "; index the images with the same model as the query");
}

// The k images most similar (cosine) to `query` in a features folder, best first.
inline std::vector<hit> exact_search(const std::string& dir, const std::vector<float>& query, std::size_t k, const std::string& kind,
                                     const std::string& query_from, stats& st) {
    double qn = 0;
    for (float v : query) qn += double(v) * v;
    qn = std::sqrt(qn);
    if (!(qn > 0)) throw vit::error(query_from + ": the query embedding is zero; it has no direction to search along");
    top_k best(k);
    st = stats{0, 0, "exact"};
    for (const auto& files : feature_parts::list_parts(dir)) {
        const feature_parts::part p(files);
        check_part(p, kind, query.size(), query_from);
        const auto& names = p.records.image_of_row;
        for (std::size_t r = 0; r < names.size(); ++r) {
            if (names[r].empty()) continue;
            float dot = 0, n2 = 0;
            dot_and_norm(p.rows.row(r), query.data(), query.size(), &dot, &n2);
            const double score = n2 > 0 ? double(dot) / (std::sqrt(double(n2)) * qn) : 0.0;
            best.push(score, names[r]);
        }
        st.images += p.records.images;
        ++st.parts;
    }
    return best.take();
}

}  // namespace search
