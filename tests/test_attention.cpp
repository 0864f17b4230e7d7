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

#include "vit/detail/nn/attention.hpp"
#include "vit/detail/nn/layer_norm.hpp"
#include "vit/detail/nn/linear.hpp"

using namespace vit::detail;

namespace {

struct attention_shape {
    std::int64_t batch, heads, tokens, d;
};

template <class T>
void run_attention(const std::vector<T>& qkv, const attention_shape& s, attention_kernel kernel,
                   std::vector<T>& probs, std::vector<T>& ctx) {
    probs.assign(std::size_t(s.batch * s.heads * s.tokens * s.tokens), T(-7));
    ctx.assign(std::size_t(s.batch * s.tokens * s.heads * s.d), T(-7));
    thread_pool pool(2);
    attention<T>({qkv.data(), probs.data(), ctx.data(), s.batch, s.heads, s.tokens, s.d, s.tokens}, kernel, pool);
}

// Stacked q | k | v for shape s, normal with sigma 2: scores of a few units,
// as in a trained model, so the softmax is far from uniform.
std::vector<float> random_qkv(const attention_shape& s, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, 2.f);
    std::vector<float> qkv(std::size_t(s.batch * s.tokens * 3 * s.heads * s.d));
    for (auto& x : qkv) x = dist(rng);
    return qkv;
}

}  // namespace

TEST_CASE("fused attention matches the portable one and a double reference", "[attention]") {
    if (!attention_available<float>(attention_kernel::f32)) {
        WARN("no AVX-512 on this CPU: only the portable attention runs here");
        return;
    }
    const attention_shape shapes[] = {{1, 1, 1, 16},  {2, 3, 5, 16},  {1, 4, 145, 16}, {1, 16, 145, 64},
                                      {3, 2, 37, 24}, {1, 2, 50, 80}, {2, 1, 197, 64}, {1, 1, 13, 1}};
    for (const auto& s : shapes) {
        CAPTURE(s.batch, s.heads, s.tokens, s.d);
        const std::vector<float> qkv = random_qkv(s, std::uint32_t(s.tokens * 131 + s.d));
        std::vector<double> qkv_d(qkv.begin(), qkv.end());

        std::vector<float> p_fast, c_fast, p_port, c_port;
        std::vector<double> p_ref, c_ref;
        run_attention(qkv, s, attention_kernel::f32, p_fast, c_fast);
        run_attention(qkv, s, attention_kernel::portable, p_port, c_port);
        run_attention(qkv_d, s, attention_kernel::portable, p_ref, c_ref);

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

// The bf16 kernel rounds q, k (times the scale), the probabilities and v to
// bf16 (relative error u = 2^-9 each) and sums in fp32. From first principles:
// a score moves by at most E = 2.01 u sum_c |q_c k_c| scale, so each
// probability by a factor within exp(+-2E); with p and v rounded too,
// |ctx - exact| <= (exp(2E) (1 + u)^2 - 1) sum_j p_j |v_j| (+ fp32 sums).
// The bound is checked element by element against the double reference, and
// the error must also exceed the fp32 kernel's (so bf16 really ran).
TEST_CASE("bf16 attention stays within its rounding bound", "[attention]") {
    if (!attention_available<float>(attention_kernel::bf16)) {
        WARN("no AVX512_BF16 on this CPU: the bf16 attention falls back and is not tested here");
        return;
    }
    const attention_shape shapes[] = {{1, 1, 1, 16}, {2, 3, 5, 16}, {1, 16, 145, 64}, {3, 2, 37, 24},
                                      {1, 2, 50, 80}, {2, 1, 197, 64}, {1, 1, 13, 1}, {1, 2, 33, 7}};
    const double u = std::ldexp(1.0, -9);
    for (const auto& s : shapes) {
        CAPTURE(s.batch, s.heads, s.tokens, s.d);
        const std::vector<float> qkv = random_qkv(s, std::uint32_t(s.tokens * 17 + s.d));
        std::vector<double> qkv_d(qkv.begin(), qkv.end());
        std::vector<float> p16, c16, p32, c32;
        std::vector<double> p_ref, c_ref;
        run_attention(qkv, s, attention_kernel::bf16, p16, c16);
        run_attention(qkv, s, attention_kernel::f32, p32, c32);
        run_attention(qkv_d, s, attention_kernel::portable, p_ref, c_ref);
        const std::int64_t H = s.heads * s.d, n = s.tokens;
        const double scale = 1 / std::sqrt(double(s.d));
        double worst = 0, err16 = 0, err32 = 0;
        for (std::int64_t b = 0; b < s.batch; ++b)
            for (std::int64_t h = 0; h < s.heads; ++h)
                for (std::int64_t i = 0; i < n; ++i) {
                    const double* q = qkv_d.data() + (b * n + i) * 3 * H + h * s.d;
                    double E = 0;
                    for (std::int64_t j = 0; j < n; ++j) {
                        const double* k = qkv_d.data() + (b * n + j) * 3 * H + H + h * s.d;
                        double sum = 0;
                        for (std::int64_t c = 0; c < s.d; ++c) sum += std::fabs(q[c] * k[c]);
                        E = std::max(E, 2.01 * u * sum * scale);
                    }
                    const double factor = std::exp(2 * E) * (1 + u) * (1 + u) - 1;
                    const double* p = p_ref.data() + ((b * s.heads + h) * n + i) * n;
                    for (std::int64_t c = 0; c < s.d; ++c) {
                        double mass = 0;  // sum_j p_j |v_jc|
                        for (std::int64_t j = 0; j < n; ++j)
                            mass += p[j] * std::fabs(qkv_d[std::size_t((b * n + j) * 3 * H + 2 * H + h * s.d + c)]);
                        const std::size_t at = std::size_t((b * n + i) * H + h * s.d + c);
                        const double e = std::fabs(c16[at] - c_ref[at]);
                        const double tol = factor * mass + 2e-5 * (mass + 1e-30);
                        worst = std::max(worst, e / tol);
                        err16 = std::max(err16, e);
                        err32 = std::max(err32, std::fabs(c32[at] - c_ref[at]));
                    }
                }
        INFO("worst error / bound " << worst << ", largest error bf16 " << err16 << ", fp32 " << err32);
        CHECK(worst <= 1);
        if (s.tokens > 1) CHECK(err16 > 4 * err32);
    }
}

// Without a probabilities buffer (the caller does not want them) each thread
// keeps only the rows in flight; the context must not change by a bit.
TEST_CASE("attention without kept probabilities gives the same context", "[attention]") {
    const attention_shape shapes[] = {{1, 16, 145, 64}, {2, 3, 37, 24}, {1, 1, 1, 16}};
    for (const auto& s : shapes) {
        for (attention_kernel kernel : {attention_kernel::f32, attention_kernel::bf16, attention_kernel::portable}) {
            if (!attention_available<float>(kernel)) continue;
            CAPTURE(s.batch, s.heads, s.tokens, s.d, int(kernel));
            const std::vector<float> qkv = random_qkv(s, std::uint32_t(s.tokens + s.d));
            std::vector<float> probs, kept;
            run_attention(qkv, s, kernel, probs, kept);
            std::vector<float> alone(kept.size(), -7.f);
            thread_pool pool(2);
            attention<float>({qkv.data(), nullptr, alone.data(), s.batch, s.heads, s.tokens, s.d, s.tokens}, kernel, pool);
            CHECK(alone == kept);
        }
    }
}

// Only the first `queries` tokens of each image attend (a classifying last
// layer needs the CLS token's context alone): their context rows are those of
// the full attention, bit for bit with the fused kernels (each row's sums do
// not depend on the others), within rounding with the portable one (Eigen's
// products may associate differently on fewer rows); the other rows and the
// other probabilities are not written.
TEST_CASE("attention for the first tokens only gives their rows of the full one", "[attention]") {
    const attention_shape shapes[] = {{1, 16, 145, 64}, {3, 2, 37, 24}, {2, 3, 13, 16}, {1, 1, 1, 16}};
    for (const auto& s : shapes) {
        for (attention_kernel kernel : {attention_kernel::f32, attention_kernel::bf16, attention_kernel::portable}) {
            if (!attention_available<float>(kernel)) continue;
            for (const std::int64_t queries : {std::int64_t(1), std::min<std::int64_t>(13, s.tokens)}) {
                CAPTURE(s.batch, s.heads, s.tokens, s.d, int(kernel), queries);
                const std::vector<float> qkv = random_qkv(s, std::uint32_t(s.tokens * 7 + s.d));
                std::vector<float> probs, full;
                run_attention(qkv, s, kernel, probs, full);
                std::vector<float> some_probs(probs.size(), -7.f), some(full.size(), -7.f);
                thread_pool pool(2);
                attention<float>({qkv.data(), some_probs.data(), some.data(), s.batch, s.heads, s.tokens, s.d, queries},
                                 kernel, pool);
                // got / want: [blocks][tokens][width]; rows of tokens >= queries untouched.
                auto check_rows = [&](const std::vector<float>& got, const std::vector<float>& want,
                                      std::int64_t blocks, std::int64_t width, float portable_tol) {
                    for (std::int64_t b = 0; b < blocks; ++b)
                        for (std::int64_t t = 0; t < s.tokens; ++t)
                            for (std::int64_t c = 0; c < width; ++c) {
                                const std::size_t at = std::size_t((b * s.tokens + t) * width + c);
                                if (t >= queries) REQUIRE(got[at] == -7.f);
                                else if (kernel == attention_kernel::portable) REQUIRE(std::fabs(got[at] - want[at]) <= portable_tol);
                                else REQUIRE(got[at] == want[at]);
                            }
                };
                check_rows(some, full, s.batch, s.heads * s.d, 1e-5f);
                check_rows(some_probs, probs, s.batch * s.heads, s.tokens, 1e-6f);
            }
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

// A text tower's mask: query q of image b sees key k iff k < valid[b] and
// (not causal or k <= q). Every kernel against a double reference written
// from that rule (the softmax over the seen keys only), masked probabilities
// exactly 0; with no mask the same call gives the unmasked result bit for bit.
TEST_CASE("attention honours the padding and causal mask on every kernel", "[attention][text]") {
    const attention_shape s{3, 2, 37, 12};
    const std::vector<std::int64_t> valid = {37, 9, 1};
    const std::vector<float> qkv = random_qkv(s, 77u);
    const std::int64_t H = s.heads * s.d, n = s.tokens;
    for (const bool causal : {false, true}) {
        // The reference: softmax over the seen keys in double.
        std::vector<double> want(std::size_t(s.batch * n * H));
        for (std::int64_t b = 0; b < s.batch; ++b)
            for (std::int64_t h = 0; h < s.heads; ++h)
                for (std::int64_t q = 0; q < n; ++q) {
                    const std::int64_t seen = causal ? std::min(valid[std::size_t(b)], q + 1) : valid[std::size_t(b)];
                    std::vector<double> sc(static_cast<std::size_t>(seen));
                    double mx = -1e300, sum = 0;
                    for (std::int64_t k = 0; k < seen; ++k) {
                        double dot = 0;
                        for (std::int64_t c = 0; c < s.d; ++c)
                            dot += double(qkv[std::size_t((b * n + q) * 3 * H + h * s.d + c)]) *
                                   qkv[std::size_t((b * n + k) * 3 * H + H + h * s.d + c)];
                        sc[std::size_t(k)] = dot / std::sqrt(double(s.d));
                        mx = std::max(mx, sc[std::size_t(k)]);
                    }
                    for (auto& x : sc) sum += (x = std::exp(x - mx));
                    for (std::int64_t c = 0; c < s.d; ++c) {
                        double acc = 0;
                        for (std::int64_t k = 0; k < seen; ++k)
                            acc += sc[std::size_t(k)] / sum * qkv[std::size_t((b * n + k) * 3 * H + 2 * H + h * s.d + c)];
                        want[std::size_t((b * n + q) * H + h * s.d + c)] = acc;
                    }
                }
        for (const attention_kernel kernel : {attention_kernel::portable, attention_kernel::f32, attention_kernel::bf16}) {
            if (!attention_available<float>(kernel)) continue;
            CAPTURE(causal, int(kernel));
            std::vector<float> probs(std::size_t(s.batch * s.heads * n * n), -7.f), ctx(std::size_t(s.batch * n * H));
            thread_pool pool(2);
            attention<float>({qkv.data(), probs.data(), ctx.data(), s.batch, s.heads, n, s.d, n, valid.data(), causal},
                             kernel, pool);
            double worst = 0;
            for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(ctx[i] - want[i]));
            CHECK(worst < (kernel == attention_kernel::bf16 ? 0.1 : 3e-5));
            for (std::int64_t b = 0; b < s.batch; ++b)
                for (std::int64_t q = 0; q < n; ++q) {
                    const std::int64_t seen = causal ? std::min(valid[std::size_t(b)], q + 1) : valid[std::size_t(b)];
                    const float* p = probs.data() + ((b * s.heads + 1) * n + q) * n;
                    for (std::int64_t k = seen; k < n; ++k) REQUIRE(p[k] == 0.f);
                }
            // The double kernel too.
            if (kernel == attention_kernel::portable) {
                std::vector<double> qd(qkv.begin(), qkv.end()), pd(probs.size()), cd(ctx.size());
                attention<double>({qd.data(), pd.data(), cd.data(), s.batch, s.heads, n, s.d, n, valid.data(), causal},
                                  kernel, pool);
                double wd = 0;
                for (std::size_t i = 0; i < want.size(); ++i) wd = std::max(wd, std::fabs(cd[i] - want[i]));
                CHECK(wd < 1e-12);
            }
            // No mask: all keys seen, bit for bit the unmasked call.
            std::vector<float> ctx0(ctx.size()), ctx1(ctx.size());
            const std::vector<std::int64_t> all(std::size_t(s.batch), n);
            attention<float>({qkv.data(), nullptr, ctx0.data(), s.batch, s.heads, n, s.d, n}, kernel, pool);
            attention<float>({qkv.data(), nullptr, ctx1.data(), s.batch, s.heads, n, s.d, n, all.data(), false}, kernel,
                             pool);
            CHECK(ctx0 == ctx1);
        }
    }
}
