// A model's weights packed on background threads after load returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "thread_pool.hpp"

namespace vit::detail {

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

}  // namespace vit::detail
