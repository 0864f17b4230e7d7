// The buffers and threads a forward pass computes in.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "detail/cpu/memory.hpp"
#include "detail/cpu/thread_pool.hpp"
#include "detail/index.hpp"

namespace vit {

namespace detail {
template <class>
class patch_embeddings;
}  // namespace detail

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
    template <class>
    friend class basic_text_model;
    template <class>
    friend class detail::patch_embeddings;
    // All of a group's activations live in one block, on huge pages where
    // it is large enough (aligned_array): fewer TLB misses for the products'
    // row-strided accesses (BENCHMARKS.md). Grows, never shrinks.
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

    // A batch of B items in groups of `group`: while there is a group for
    // every pool thread, each thread runs its own group in its own lane
    // workspace (no joins, no activations read across cores); the groups
    // left over run on all threads together. run(b0, n, ws, lane) with lane
    // -1 for the shared groups. Every item takes the same operations either
    // way, so results do not depend on the split.
    template <class Run>
    void run_groups(detail::index_t B, detail::index_t group, Run&& run) {
        const detail::index_t lanes = threads();
        detail::index_t b0 = 0;
        if (lanes > 1 && B >= lanes * group) {
            make_lanes(int(lanes));
            for (; b0 + lanes * group <= B; b0 += lanes * group)
                pool_.for_each_thread([&](detail::index_t t) { run(b0 + t * group, group, *lanes_[std::size_t(t)], t); });
        }
        for (; b0 < B; b0 += group) run(b0, std::min(group, B - b0), *this, detail::index_t(-1));
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

namespace detail {

// Workspaces kept for the calls that bring none (basic_model::classify and
// forward without one): each call borrows one, so calls from several threads
// at once each get their own, and buffers are reused across calls.
template <class T>
class workspace_cache {
public:
    explicit workspace_cache(int threads) : threads_(threads) {}

    class lease {
    public:
        lease(workspace_cache& c, std::unique_ptr<workspace<T>> w) : cache_(c), w_(std::move(w)) {}
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        ~lease() { cache_.give_back(std::move(w_)); }
        workspace<T>& get() { return *w_; }

    private:
        workspace_cache& cache_;
        std::unique_ptr<workspace<T>> w_;
    };

    lease borrow() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!free_.empty()) {
                std::unique_ptr<workspace<T>> w = std::move(free_.back());
                free_.pop_back();
                return lease(*this, std::move(w));
            }
        }
        return lease(*this, std::make_unique<workspace<T>>(threads_));
    }

private:
    void give_back(std::unique_ptr<workspace<T>> w) {
        std::lock_guard<std::mutex> lock(mutex_);
        free_.push_back(std::move(w));
    }

    int threads_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<workspace<T>>> free_;
};

}  // namespace detail

}  // namespace vit
