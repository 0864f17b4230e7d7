// A small fork-join pool: the one source of threads in the library.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vit::detail {

// Runs parallel_for bodies on `threads - 1` workers plus the calling thread.
// One parallel_for at a time per pool: each concurrent caller of a model uses
// its own pool (it lives in the caller's workspace), so pools never contend.
//
// A forward pass is ~170 short parallel regions; waking a sleeping thread
// takes tens of microseconds on a VM, and every region waits for its slowest
// thread. So workers (and the caller, waiting for them) spin for a short
// while before sleeping: back-to-back regions never sleep, an idle pool
// sleeps after `spin_time`.
class thread_pool {
public:
    explicit thread_pool(int threads = 1) : size_(std::max(1, threads)) {
        for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { work(); });
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    int size() const { return size_; }

    // Calls fn(i) for every i in [0, n), spread over the pool; returns when all
    // are done. An exception from fn is rethrown here (the first one).
    template <class F>
    void parallel_for(std::int64_t n, F&& fn) {
        if (n <= 0) return;
        if (size_ == 1 || n == 1) {
            for (std::int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        std::function<void(std::int64_t)> body = [&fn](std::int64_t i) { fn(i); };
        {
            std::lock_guard<std::mutex> lock(mutex_);
            body_ = &body;
            count_ = n;
            next_.store(0);
            pending_.store(static_cast<int>(workers_.size()));
            failure_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        run_items();
        if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [this] { return pending_.load() == 0; });
        }
        std::lock_guard<std::mutex> lock(mutex_);
        body_ = nullptr;
        if (failure_) std::rethrow_exception(failure_);
    }

private:
    void run_items() {
        for (;;) {
            const std::int64_t i = next_.fetch_add(1);
            if (i >= count_) return;
            try {
                (*body_)(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!failure_) failure_ = std::current_exception();
                next_.store(count_);  // stop handing out work
            }
        }
    }
    // Polls `ready` for up to spin_time; true if it became true.
    template <class Pred>
    static bool spin_until(Pred ready) {
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
            for (int i = 0; i < 64; ++i) {
                if (ready()) return true;
                pause();
            }
            if (std::chrono::steady_clock::now() - start > spin_time) return false;
        }
    }
    static void pause() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_ia32_pause();
#endif
    }
    void work() {
        std::uint64_t seen = 0;
        for (;;) {
            spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); });
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
                if (stop_) return;
                seen = generation_.load();
            }
            run_items();
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                // Under the lock: the caller may be between its check and its wait.
                std::lock_guard<std::mutex> lock(mutex_);
                done_.notify_one();
            }
        }
    }

    int size_;
    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    static constexpr std::chrono::microseconds spin_time{200};
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> generation_{0};
    std::function<void(std::int64_t)>* body_ = nullptr;
    std::int64_t count_ = 0;
    std::atomic<std::int64_t> next_{0};
    std::atomic<int> pending_{0};
    std::exception_ptr failure_;
};

}  // namespace vit::detail
