// A small fork-join pool: the one source of threads in the library.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vit::detail {

// Splits `total` into `parts` nearly equal pieces; returns the start of piece i.
inline std::int64_t even_split(std::int64_t total, std::int64_t parts, std::int64_t i) {
    return total / parts * i + std::min(i, total % parts);
}

// Runs parallel regions (parallel_for, for_each_thread, balanced_ranges) on
// `threads - 1` workers plus the calling thread. One region at a time per
// pool: each concurrent caller of a model uses its own pool (it lives in the
// caller's workspace), so pools never contend; balanced_ranges' speed
// estimates are the pool's own too.
//
// A forward pass is ~170 short parallel regions; waking a sleeping thread
// takes tens of microseconds on a VM, and every region waits for its slowest
// thread. So workers (and the caller, waiting for them) spin for a short
// while before sleeping: back-to-back regions never sleep, an idle pool
// sleeps after `spin_time`.
class thread_pool {
public:
    explicit thread_pool(int threads = 1)
        : size_(std::max(1, threads)),
          weight_(std::size_t(size_), 1.0),
          bound_(std::size_t(size_) + 1),
          seconds_(std::size_t(size_)) {
        for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { work(i); });
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
        run(body, n, false);
    }

    // Calls fn(t) once on each thread t of the pool (the caller is 0), all at
    // the same time: unlike parallel_for's items, which a thread that comes
    // early may take several of, each call has a thread of its own.
    template <class F>
    void for_each_thread(F&& fn) {
        if (size_ == 1) return fn(std::int64_t(0));
        std::function<void(std::int64_t)> body = [&fn](std::int64_t t) { fn(t); };
        run(body, size_, true);
    }

    // Calls fn(begin, end) on each thread over contiguous ranges that cover
    // [0, n), each sized by its thread's speed in earlier calls: one core of
    // a VM is often slower than the other for a while, and every join waits
    // for the slowest (BENCHMARKS.md).
    // Items should cost alike (the weight panels of a product).
    template <class F>
    void balanced_ranges(std::int64_t n, F&& fn) {
        if (n <= 0) return;
        if (n < size_) {  // fewer items than threads: one each
            parallel_for(n, [&](std::int64_t i) { fn(i, i + 1); });
            return;
        }
        double total = 0, sum = 0;
        for (const double w : weight_) total += w;
        for (int t = 0; t < size_; ++t) {
            bound_[std::size_t(t)] = std::llround(double(n) * sum / total);
            sum += weight_[std::size_t(t)];
        }
        bound_[std::size_t(size_)] = n;
        for_each_thread([&](std::int64_t t) {
            const auto start = std::chrono::steady_clock::now();
            fn(bound_[std::size_t(t)], bound_[std::size_t(t) + 1]);
            seconds_[std::size_t(t)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        });
        update_weights(weight_, bound_, seconds_);
    }

    // Moves each thread's weight a step towards its measured speed (items per
    // second, relative to the threads' mean): an average over the last ~10
    // calls, which follows a slow core within a layer or two of a forward
    // pass and does not chase one call's noise. Weights stay within [0.5, 2].
    static void update_weights(std::vector<double>& weight, const std::vector<std::int64_t>& bound,
                               const std::vector<double>& seconds) {
        const std::size_t threads = weight.size();
        auto speed = [&](std::size_t t) { return double(bound[t + 1] - bound[t]) / seconds[t]; };
        double mean = 0;
        for (std::size_t t = 0; t < threads; ++t) {
            if (bound[t + 1] <= bound[t] || !(seconds[t] > 0)) return;  // nothing to learn from
            mean += speed(t) / double(threads);
        }
        const double step = 0.1;
        double total = 0;
        for (std::size_t t = 0; t < threads; ++t) {
            weight[t] += step * (speed(t) / mean - weight[t]);
            total += weight[t];
        }
        for (double& w : weight) w = std::min(2.0, std::max(0.5, w * double(threads) / total));
    }
    const std::vector<double>& weights() const { return weight_; }

private:
    // Hands `body` to the workers: items [0, n) claimed from a counter, or
    // (per_thread) item t to thread t.
    void run(std::function<void(std::int64_t)>& body, std::int64_t n, bool per_thread) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            body_ = &body;
            count_ = n;
            per_thread_ = per_thread;
            next_.store(per_thread ? n : 0);
            pending_.store(static_cast<int>(workers_.size()));
            failure_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        if (per_thread) run_item(0);
        run_items();
        if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [this] { return pending_.load() == 0; });
        }
        std::lock_guard<std::mutex> lock(mutex_);
        body_ = nullptr;
        if (failure_) std::rethrow_exception(failure_);
    }
    void run_item(std::int64_t i) {
        try {
            (*body_)(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!failure_) failure_ = std::current_exception();
            next_.store(count_);  // stop handing out work
        }
    }
    void run_items() {
        for (;;) {
            const std::int64_t i = next_.fetch_add(1);
            if (i >= count_) return;
            run_item(i);
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
#elif defined(__GNUC__) && defined(__aarch64__)
        __asm__ __volatile__("yield");  // ARM's spin-wait hint, as pause is x86's
#endif
    }
    void work(int index) {
        std::uint64_t seen = 0;
        for (;;) {
            spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); });
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
                if (stop_) return;
                seen = generation_.load();
            }
            if (per_thread_) run_item(index);
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
    bool per_thread_ = false;  // set with body_, read by workers after they see the new generation
    // balanced_ranges: each thread's relative speed, and per call its range
    // bounds and seconds.
    std::vector<double> weight_;
    std::vector<std::int64_t> bound_;
    std::vector<double> seconds_;
    std::atomic<std::int64_t> next_{0};
    std::atomic<int> pending_{0};
    std::exception_ptr failure_;
};

}  // namespace vit::detail
