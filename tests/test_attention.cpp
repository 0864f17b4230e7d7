// The fused attention and the vectorised LayerNorm against their portable
// versions and a double-precision reference, on shapes that are multiples of
// no block size (1 token, odd head sizes, more tokens than one row block).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "vit/detail/attention.hpp"
#include "vit/detail/layers.hpp"

using namespace vit::detail;

namespace {

struct attention_shape {
    std::int64_t batch, heads, tokens, d;
};

template <class T>
void run_attention(const std::vector<T>& qkv, const attention_shape& s, bool fast, std::vector<T>& probs,
                   std::vector<T>& ctx) {
    probs.assign(std::size_t(s.batch * s.heads * s.tokens * s.tokens), T(-7));
    ctx.assign(std::size_t(s.batch * s.tokens * s.heads * s.d), T(-7));
    thread_pool pool(2);
    attention<T>({qkv.data(), probs.data(), ctx.data(), s.batch, s.heads, s.tokens, s.d}, fast, pool);
}

}  // namespace

TEST_CASE("fused attention matches the portable one and a double reference", "[attention]") {
    if (!attention_fast_available<float>()) {
        WARN("no AVX-512 on this CPU: only the portable attention runs here");
        return;
    }
    const attention_shape shapes[] = {{1, 1, 1, 16},  {2, 3, 5, 16},  {1, 4, 145, 16}, {1, 16, 145, 64},
                                      {3, 2, 37, 24}, {1, 2, 50, 80}, {2, 1, 197, 64}, {1, 1, 13, 1}};
    for (const auto& s : shapes) {
        CAPTURE(s.batch, s.heads, s.tokens, s.d);
        std::mt19937 rng(std::uint32_t(s.tokens * 131 + s.d));
        // Scores of a few units, as in a trained model, so the softmax is far
        // from uniform.
        std::normal_distribution<float> dist(0.f, 2.f);
        std::vector<float> qkv(std::size_t(s.batch * s.tokens * 3 * s.heads * s.d));
        for (auto& x : qkv) x = dist(rng);
        std::vector<double> qkv_d(qkv.begin(), qkv.end());

        std::vector<float> p_fast, c_fast, p_port, c_port;
        std::vector<double> p_ref, c_ref;
        run_attention(qkv, s, true, p_fast, c_fast);
        run_attention(qkv, s, false, p_port, c_port);
        run_attention(qkv_d, s, false, p_ref, c_ref);

        double worst_p = 0, worst_c = 0, worst_c_port = 0;
        for (std::size_t i = 0; i < p_ref.size(); ++i) worst_p = std::max(worst_p, std::fabs(p_fast[i] - p_ref[i]));
        for (std::size_t i = 0; i < c_ref.size(); ++i) {
            worst_c = std::max(worst_c, std::fabs(c_fast[i] - c_ref[i]));
            worst_c_port = std::max(worst_c_port, std::fabs(c_port[i] - c_ref[i]));
        }
        // Probabilities are in [0, 1]: a few float ulps of 1. The context is a
        // convex combination of up to 197 values of size up to ~8 (ulp 1e-6).
        CHECK(worst_p < 2e-6);
        CHECK(worst_c < 3e-5);
        // The fused kernel is no less accurate than the Eigen path.
        CHECK(worst_c <= 4 * worst_c_port + 1e-6);
        for (std::size_t r = 0; r < p_fast.size(); r += std::size_t(s.tokens)) {
            double sum = 0;
            for (std::int64_t c = 0; c < s.tokens; ++c) sum += p_fast[r + std::size_t(c)];
            REQUIRE(std::fabs(sum - 1) < 1e-5);
        }
    }
}

// Without a probabilities buffer (the caller does not want them) each thread
// keeps only the rows in flight; the context must not change by a bit.
TEST_CASE("attention without kept probabilities gives the same context", "[attention]") {
    const attention_shape shapes[] = {{1, 16, 145, 64}, {2, 3, 37, 24}, {1, 1, 1, 16}};
    for (const auto& s : shapes) {
        for (bool fast : {true, false}) {
            if (fast && !attention_fast_available<float>()) continue;
            CAPTURE(s.batch, s.heads, s.tokens, s.d, fast);
            std::mt19937 rng(std::uint32_t(s.tokens + s.d));
            std::normal_distribution<float> dist(0.f, 2.f);
            std::vector<float> qkv(std::size_t(s.batch * s.tokens * 3 * s.heads * s.d));
            for (auto& x : qkv) x = dist(rng);
            std::vector<float> probs, kept;
            run_attention(qkv, s, fast, probs, kept);
            std::vector<float> alone(kept.size(), -7.f);
            thread_pool pool(2);
            attention<float>({qkv.data(), nullptr, alone.data(), s.batch, s.heads, s.tokens, s.d}, fast, pool);
            CHECK(alone == kept);
        }
    }
}

TEST_CASE("vectorised LayerNorm matches the portable rows", "[attention]") {
    for (std::int64_t h : {1, 15, 16, 17, 48, 1024, 1031}) {
        CAPTURE(h);
        std::mt19937 rng{std::uint32_t(h)};
        std::normal_distribution<float> dist(0.f, 1.f);
        layer_norm<float> ln;
        ln.weight.resize(std::size_t(h));
        ln.bias.resize(std::size_t(h));
        for (auto& x : ln.weight) x = dist(rng);
        for (auto& x : ln.bias) x = dist(rng);
        const std::int64_t rows = 37;
        std::vector<float> x(std::size_t(rows * h));
        // Rows with a large mean, where a float mean would lose digits.
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = 300.f + dist(rng);
        std::vector<float> fast(x.size(), -7.f), port(x.size(), -7.f);
        thread_pool pool(2);
        ln.run(x.data(), fast.data(), rows, pool);
        for (std::int64_t r = 0; r < rows; ++r) ln.row(x.data() + r * h, port.data() + r * h, h);
        double worst = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
            worst = std::max(worst, double(std::fabs(fast[i] - port[i])) / (1 + std::fabs(port[i])));
        // Same double statistics, summed in another order: at most an ulp or
        // two of the float result.
        CHECK(worst < 5e-7);
    }
}
