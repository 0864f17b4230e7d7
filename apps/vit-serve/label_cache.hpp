// The text embeddings of zero-shot label sets, kept so that a client asking
// again with the same labels and template runs only the image tower. Least
// recently used sets go first once the cache holds max_sets sets or
// max_floats floats (README, vit-serve: 64 sets, 32 MiB).
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <vit/tensor.hpp>

namespace serve {

class label_cache {
public:
    using value = std::shared_ptr<const vit::matrix<float>>;

    label_cache(std::size_t max_sets, std::size_t max_floats) : max_sets_(max_sets), max_floats_(max_floats) {}

    // One key per (template, labels): each part length-prefixed, so no two
    // different sets share a key whatever bytes the labels hold.
    static std::string key(const std::string& hypothesis_template, const std::vector<std::string>& labels) {
        std::string k;
        auto add = [&](const std::string& s) { k += std::to_string(s.size()) + ":" + s; };
        add(hypothesis_template);
        for (const auto& l : labels) add(l);
        return k;
    }

    value find(const std::string& k) {
        std::lock_guard<std::mutex> lk(mu_);
        const auto it = index_.find(k);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);  // now the most recent
        return it->second->second;
    }

    void put(const std::string& k, value v) {
        const std::size_t size = std::size_t(v->size());
        std::lock_guard<std::mutex> lk(mu_);
        if (size > max_floats_) return;  // larger than the whole cache
        if (const auto it = index_.find(k); it != index_.end()) {  // computed twice at once: keep one
            floats_ -= std::size_t(it->second->second->size());
            order_.erase(it->second);
            index_.erase(it);
        }
        order_.emplace_front(k, std::move(v));
        index_[k] = order_.begin();
        floats_ += size;
        while (order_.size() > max_sets_ || floats_ > max_floats_) {
            floats_ -= std::size_t(order_.back().second->size());
            index_.erase(order_.back().first);
            order_.pop_back();
        }
    }

    std::size_t sets() {
        std::lock_guard<std::mutex> lk(mu_);
        return order_.size();
    }

private:
    std::size_t max_sets_, max_floats_, floats_ = 0;
    std::mutex mu_;
    std::list<std::pair<std::string, value>> order_;  // most recent first
    std::unordered_map<std::string, std::list<std::pair<std::string, value>>::iterator> index_;
};

}  // namespace serve
