// The thread pool's ways of splitting work: items claimed from a counter
// (parallel_for), one call per thread (for_each_thread), and ranges sized by
// each thread's measured speed (balanced_ranges), which the products use.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <vit/detail/cpu/packed_linear.hpp>
#include <vit/detail/cpu/thread_pool.hpp>

using vit::detail::thread_pool;

TEST_CASE("for_each_thread runs one call per thread, all at once", "[pool]") {
    for (const int threads : {1, 2, 3}) {
        CAPTURE(threads);
        thread_pool pool(threads);
        std::mutex mutex;
        std::vector<std::int64_t> seen;
        std::set<std::thread::id> ids;
        std::atomic<int> arrived{0};
        bool all_met = true;
        pool.for_each_thread([&](std::int64_t t) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                seen.push_back(t);
                ids.insert(std::this_thread::get_id());
            }
            // Every call waits for the others: calls run one after another on
            // one thread would never all arrive (bounded, so a failure cannot hang).
            arrived.fetch_add(1);
            const auto start = std::chrono::steady_clock::now();
            while (arrived.load() < threads && std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
                std::this_thread::yield();
            std::lock_guard<std::mutex> lock(mutex);
            all_met = all_met && arrived.load() == threads;
        });
        std::sort(seen.begin(), seen.end());
        std::vector<std::int64_t> expected(static_cast<std::size_t>(threads));
        for (int t = 0; t < threads; ++t) expected[std::size_t(t)] = t;
        CHECK(seen == expected);
        CHECK(ids.size() == std::size_t(threads));
        CHECK(all_met);
    }
}

TEST_CASE("for_each_thread rethrows a call's exception and the pool stays usable", "[pool]") {
    thread_pool pool(2);
    CHECK_THROWS_WITH(pool.for_each_thread([](std::int64_t t) {
        if (t == 1) throw std::runtime_error("thread 1 failed");
    }),
                      "thread 1 failed");
    std::atomic<int> calls{0};
    pool.for_each_thread([&](std::int64_t) { calls.fetch_add(1); });
    CHECK(calls.load() == 2);
}

TEST_CASE("balanced_ranges covers [0, n) with one contiguous range per thread", "[pool]") {
    for (const int threads : {1, 2, 3}) {
        thread_pool pool(threads);
        for (const std::int64_t n : {1, 2, 3, 5, 32, 97}) {
            CAPTURE(threads, n);
            std::mutex mutex;
            std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
            pool.balanced_ranges(n, [&](std::int64_t b, std::int64_t e) {
                std::lock_guard<std::mutex> lock(mutex);
                ranges.emplace_back(b, e);
            });
            std::sort(ranges.begin(), ranges.end());
            CHECK(ranges.size() == std::size_t(std::min<std::int64_t>(threads, n)));
            std::int64_t next = 0;
            for (const auto& r : ranges) {
                CHECK(r.first == next);
                CHECK(r.second >= r.first);
                next = r.second;
            }
            CHECK(next == n);
        }
    }
}

TEST_CASE("balanced_ranges weights converge to the threads' speeds", "[pool]") {
    // Thread 1 takes twice as long per item: the split that makes both finish
    // together gives thread 0 two thirds of the items.
    std::vector<double> weight = {1.0, 1.0};
    const std::int64_t n = 300;
    const double cost[2] = {1e-6, 2e-6};
    std::vector<std::int64_t> bound;
    for (int call = 0; call < 200; ++call) {
        const std::int64_t split = std::llround(double(n) * weight[0] / (weight[0] + weight[1]));
        bound = {0, split, n};
        const std::vector<double> seconds = {double(split) * cost[0], double(n - split) * cost[1]};
        thread_pool::update_weights(weight, bound, seconds);
    }
    CHECK(weight[0] / weight[1] == Approx(2.0).epsilon(0.02));
    CHECK(bound[1] == Approx(200).margin(2));

    // A thread that did nothing, or a zero time, teaches nothing.
    const std::vector<double> before = weight;
    thread_pool::update_weights(weight, {0, 0, n}, {0.0, 1e-3});
    CHECK(weight == before);
    thread_pool::update_weights(weight, {0, 100, n}, {0.0, 1e-3});
    CHECK(weight == before);

    // A thread a thousand times slower still gets a share: weights stay in
    // [0.5, 2], so it keeps at least a fifth of the items.
    std::vector<double> extreme = {1.0, 1.0};
    for (int call = 0; call < 100; ++call) thread_pool::update_weights(extreme, {0, 150, n}, {1e-6, 1e-3});
    CHECK(extreme[0] <= 2.0);
    CHECK(extreme[1] >= 0.5);
    CHECK(extreme[0] / extreme[1] > 3.0);
}

TEST_CASE("a product's results do not depend on how its columns are shared", "[pool]") {
    // Skew a 2-thread pool's weights (thread 1 made slow), then compare a
    // product on it with the same product on one thread, bit for bit.
    thread_pool skewed(2), one(1);
    for (int call = 0; call < 40; ++call)
        skewed.balanced_ranges(64, [](std::int64_t b, std::int64_t e) {
            if (b > 0) std::this_thread::sleep_for(std::chrono::microseconds(20 * (e - b)));
        });
    REQUIRE(skewed.weights()[0] > 1.5);

    const std::int64_t m = 37, n = 1000, k = 300;  // not multiples of any block
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::vector<float> w(static_cast<std::size_t>(n * k)), a(static_cast<std::size_t>(m * k)), bias(static_cast<std::size_t>(n));
    for (auto& x : w) x = dist(rng);
    for (auto& x : a) x = dist(rng);
    for (auto& x : bias) x = dist(rng);
    vit::detail::epilogue<float> ep;
    ep.bias = bias.data();
    ep.act = vit::detail::activation::gelu_erf;
    const vit::detail::packed_linear<float> lin(w.data(), n, k);
    std::vector<float> c1(std::size_t(m * n)), c2(std::size_t(m * n));
    lin.run(a.data(), m, k, c1.data(), n, ep, one);
    lin.run(a.data(), m, k, c2.data(), n, ep, skewed);
    CHECK(std::memcmp(c1.data(), c2.data(), sizeof(float) * c1.size()) == 0);
}

TEST_CASE("back-to-back and spaced regions see every item's writes", "[pool]") {
    // Items write plain memory that the caller reads after the region, as the
    // model's layers do: the pool's handoff must order it (weakly ordered CPUs
    // such as aarch64 show a missing barrier). Pauses longer than the spin
    // time send the workers to sleep, so both ways of waking are run.
    for (const int threads : {2, 3}) {
        CAPTURE(threads);
        thread_pool pool(threads);
        std::vector<std::int64_t> out(257);
        std::vector<std::int64_t> per_thread(static_cast<std::size_t>(threads));
        bool ok = true;
        for (int region = 0; region < 2000; ++region) {
            const std::int64_t n = 1 + region % std::int64_t(out.size());
            pool.parallel_for(n, [&](std::int64_t i) { out[std::size_t(i)] = region * 1000 + i; });
            for (std::int64_t i = 0; i < n; ++i) ok = ok && out[std::size_t(i)] == region * 1000 + i;
            pool.for_each_thread([&](std::int64_t t) { per_thread[std::size_t(t)] = region; });
            for (const std::int64_t r : per_thread) ok = ok && r == region;
            if (region % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            if (!ok) {
                FAIL_CHECK("stale item result after region " << region);
                break;
            }
        }
        CHECK(ok);
    }
}
