// The direct kernel (weights read as stored) against the packed AVX-512
// kernel: bit for bit, on shapes that are multiples of no block size, with
// every epilogue and residual aliasing.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gemm_helpers.hpp"
#include "vit/detail/cpu/packed_linear.hpp"
#include "vit/detail/cpu/x86/gemm_direct.hpp"
#include "vit/detail/io/checkpoint.hpp"
#include "vit/detail/nn/layer_norm.hpp"
#include "vit/detail/nn/linear.hpp"
#include "vit/detail/models/layers.hpp"
#include "vit/detail/models/vit/names.hpp"

using namespace vit::detail;
using test::epilogue_case;
using test::res_mode;

// The direct kernel exists only where the AVX-512 kernels are compiled.
#ifdef VIT_X86
namespace {

struct direct_problem {
    std::int64_t m, n, k;
    std::int64_t lda, ldw, ldc;
    std::vector<float> a, w_store, bias, c0;  // c0: initial c (the residual when aliased)
    std::vector<float> scale;                 // [n] the epilogue's scale
    const float* w() const { return w_store.data() + 1; }
};

// Weights as a memory-mapped file holds them: rows with a stride larger than
// k (stacked tensors) from a base that is not 64-byte aligned.
direct_problem make_direct_problem(std::int64_t m, std::int64_t n, std::int64_t k, std::uint32_t seed) {
    direct_problem p{m, n, k, k + 3, k + 1, n + 5, {}, {}, {}, {}, {}};
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    p.a.resize(m * p.lda);
    p.w_store.resize(1 + n * p.ldw);
    p.bias.resize(n);
    p.c0.resize(m * p.ldc);
    for (auto& x : p.a) x = d(rng);
    for (auto& x : p.w_store) x = d(rng) / std::sqrt(float(k));
    for (auto& x : p.bias) x = d(rng);
    for (auto& x : p.c0) x = d(rng);
    p.scale.resize(n);
    for (auto& x : p.scale) x = d(rng);
    return p;
}

// Runs the packed kernel (lin) or the direct one (lin == nullptr); returns c.
std::vector<float> run_direct_case(const packed_linear<float>* lin, const direct_problem& p, const epilogue_case& e,
                                   thread_pool& pool) {
    std::vector<float> c = p.c0, res = p.c0;
    const epilogue<float> ep = test::make_epilogue(e, p.bias.data(), p.scale.data(), c.data(), res.data(), p.ldc);
    if (lin)
        lin->run(p.a.data(), p.m, p.lda, c.data(), p.ldc, ep, pool);
    else
        avx512::direct_run(p.a.data(), p.m, p.lda, p.w(), p.n, p.k, p.ldw, c.data(), p.ldc, ep, pool);
    return c;
}

// Compares the kernels on p for the given epilogues; counts the cases.
void compare(const direct_problem& p, const std::vector<epilogue_case>& eps, thread_pool& pool, int& cases) {
    std::vector<float> w(p.n * p.k);
    for (std::int64_t j = 0; j < p.n; ++j) std::memcpy(&w[j * p.k], p.w() + j * p.ldw, sizeof(float) * p.k);
    const packed_linear<float> lin(w.data(), p.n, p.k, gemm_kernel::avx512);
    REQUIRE(lin.kernel() == gemm_kernel::avx512);
    for (const epilogue_case& e : eps) {
        INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " act=" << int(e.act) << " bias=" << e.bias
                  << " scale=" << e.scale << " res=" << int(e.rm) << " threads=" << pool.size());
        const auto want = run_direct_case(&lin, p, e, pool);
        const auto got = run_direct_case(nullptr, p, e, pool);
        REQUIRE(got.size() == want.size());
        if (std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) != 0) {
            std::size_t diffs = 0, first = 0;
            for (std::size_t i = 0; i < got.size(); ++i)
                if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && diffs++ == 0) first = i;
            INFO(diffs << " elements differ; first (" << first / p.ldc << ", " << first % p.ldc << "): direct "
                       << got[first] << " packed " << want[first]);
            FAIL("direct kernel differs from the packed one");
        }
        ++cases;
    }
}

}  // namespace

TEST_CASE("direct linear layer is bit-identical to the packed AVX-512 kernel", "[direct]") {
    if (!cpu().avx512) {
        WARN("no AVX-512 on this CPU: direct kernel not tested");
        return;
    }
    thread_pool pool(2);
    const auto eps = test::all_epilogues();
    int cases = 0;
    std::uint32_t seed = 1;
    // Rows: 1, a few, one zmm plus one (17), an image (145 = 9 x 16 + 1),
    // three, eight; depths across the 256-deep k-blocks; columns across the
    // 14-row weight groups and 112-column chunks.
    for (std::int64_t m : {1, 2, 13, 17, 145, 435, 1160})
        for (std::int64_t k : {1, 255, 257, 1024, 3000}) {
            for (std::int64_t n : {1, 31, 33}) compare(make_direct_problem(m, n, k, seed++), eps, pool, cases);
            // n = 1000 (several chunks per thread, an uneven last one): every
            // epilogue where the product is cheap, otherwise a rotating three.
            const direct_problem p = make_direct_problem(m, 1000, k, seed++);
            if (m * k <= 145 * 1024) {
                compare(p, eps, pool, cases);
            } else {
                std::vector<epilogue_case> some;
                for (int i = 0; i < 3; ++i) some.push_back(eps[(seed * 7 + i * 9) % eps.size()]);
                compare(p, some, pool, cases);
            }
        }
    // A model's shape: qkv of an image.
    compare(make_direct_problem(145, 3072, 1024, seed++),
            {{activation::none, true, false, res_mode::none}, {activation::gelu_erf, true, false, res_mode::alias},
             {activation::none, true, true, res_mode::alias}},
            pool, cases);
    // The column split depends on the pool; the result must not.
    for (int threads : {1, 3}) {
        thread_pool other(threads);
        compare(make_direct_problem(145, 1000, 1024, seed++),
                {{activation::none, true, false, res_mode::alias}, {activation::gelu_erf, true, false, res_mode::separate},
                 {activation::none, true, true, res_mode::alias}},
                other, cases);
    }
    INFO(cases << " cases");
    CHECK(cases > 2000);
}

TEST_CASE("direct linear layer handles k = 0 and empty outputs", "[direct]") {
    if (!cpu().avx512) {
        WARN("no AVX-512 on this CPU: direct kernel not tested");
        return;
    }
    thread_pool pool(2);
    // k = 0: the product is zero; the epilogue still applies.
    const std::int64_t m = 3, n = 20;
    std::vector<float> bias(n), c(m * n, 5.f), w(1, 0.f);
    for (std::int64_t j = 0; j < n; ++j) bias[j] = float(j) - 10.f;
    epilogue<float> ep;
    ep.bias = bias.data();
    ep.act = activation::relu;
    ep.residual = c.data();
    ep.ld_residual = n;
    avx512::direct_run(nullptr, m, 0, w.data(), n, 0, 0, c.data(), n, ep, pool);
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) REQUIRE(c[i * n + j] == std::max(bias[j], 0.f) + 5.f);
    // m = 0 or n = 0: nothing is touched.
    avx512::direct_run(nullptr, 0, 0, nullptr, n, 0, 0, nullptr, n, {}, pool);
    avx512::direct_run(nullptr, m, 0, nullptr, 0, 0, 0, nullptr, 0, {}, pool);
}
// The float32 pack of a deferred layer (panel ranges, shared by the threads):
// the same layout as the reference pack_weights, every element written (the
// memory is not zeroed first), and its product equals the one packed at load
// bit for bit. Shapes with a partial panel, several k-blocks with a partial
// one, several row blocks, one column.
TEST_CASE("packing after load equals packing at load, bit for bit", "[direct]") {
    if (!packed_linear<float>::can_pack_later()) {
        WARN("no AVX-512 on this CPU: layers are packed at load");
        return;
    }
    std::mt19937 rng(11);
    std::normal_distribution<float> d(0.f, 1.f);
    thread_pool pool(2);
    for (auto shape : {std::array<std::int64_t, 3>{200, 45, 300}, {3, 64, 513}, {1, 1, 17}, {14, 96, 256}}) {
        const std::int64_t m = shape[0], n = shape[1], k = shape[2];
        CAPTURE(m, n, k);
        std::vector<float> w(std::size_t(n * k)), x(std::size_t(m * k)), bias(static_cast<std::size_t>(n));
        for (auto& v : w) v = d(rng);
        for (auto& v : x) v = d(rng);
        for (auto& v : bias) v = d(rng);
        std::vector<const float*> rows;
        for (std::int64_t j = 0; j < n; ++j) rows.push_back(w.data() + j * k);
        const std::int64_t size = avx512::packed_size<avx512::f32_policy>(n, k);
        std::vector<float> reference(std::size_t(size), 0.f), fast(std::size_t(size), 1e30f);
        avx512::pack_weights<avx512::f32_policy>(n, k, reference.data(),
                                                 [&](std::int64_t j, std::int64_t kk) { return w[std::size_t(j * k + kk)]; });
        const std::int64_t panels = (n + 31) / 32;
        avx512::pack_panels<avx512::f32_policy>(rows.data(), n, k, fast.data(), panels / 2, panels);
        avx512::pack_panels<avx512::f32_policy>(rows.data(), n, k, fast.data(), 0, panels / 2);
        CHECK(std::memcmp(fast.data(), reference.data(), sizeof(float) * reference.size()) == 0);

        const packed_linear<float> at_load(w.data(), n, k);
        epilogue<float> ep;
        ep.bias = bias.data();
        ep.act = activation::gelu_erf;
        std::vector<float> expected(std::size_t(m * n)), again(expected.size(), -5.f);
        at_load.run(x.data(), m, k, expected.data(), n, ep, pool);
        packed_linear<float> shared = packed_linear<float>::unpacked(n, k);
        shared.pack(rows.data(), pool);
        shared.run(x.data(), m, k, again.data(), n, ep, pool);
        CHECK(std::memcmp(again.data(), expected.data(), sizeof(float) * again.size()) == 0);
    }
}
#endif  // VIT_X86

// A stacked layer left unpacked (no call has packed it yet) runs from the
// mapped file part by part; before and after it is packed it must equal the
// layer packed at load bit for bit, with the file's biases and without
// (qkv_bias = false: zeros), with a layer scale and without. Unlike the
// model-level tests, this one cannot miss a path.
TEST_CASE("a deferred stacked layer equals the packed one, with and without bias", "[direct]") {
    if (!linear<float>::can_defer()) {
        WARN("no AVX-512 on this CPU: layers are never deferred here");
        return;
    }
    const std::string dir = std::string(VIT_TEST_DATA) + "/vit-tiny-random/model";
    const tensor_store store = read_checkpoint(dir);
    const weight_source src(store, dir, vit_names::file_names([&](const std::string& n) { return store.contains(n); }));
    const std::int64_t H = 64;  // the tiny fixture's hidden size
    const std::string a = "encoder.layer.0.attention.attention.";
    for (bool has_bias : {true, false}) {
        CAPTURE(has_bias);
        const linear_spec s{{a + "query", a + "key", a + "value"}, H, H, {}, has_bias};
        const linear<float> packed = load_linear<float>(src, s, vit::precision::f32, false);
        REQUIRE(packed.is_packed());
        const std::int64_t m = 17;
        std::vector<float> x(std::size_t(m * H));
        std::mt19937 rng(5);
        std::normal_distribution<float> d(0.f, 1.f);
        for (auto& v : x) v = d(rng);
        std::vector<float> scale(std::size_t(3 * H));
        for (auto& v : scale) v = d(rng);
        thread_pool pool(2);
        for (bool add : {false, true}) {
            CAPTURE(add);
            // add: y += (x W^T + b) * scale, a residual branch with a layer scale.
            const linear<float> deferred = load_linear<float>(src, s, vit::precision::f32, true);
            REQUIRE_FALSE(deferred.is_packed());
            std::vector<float> init(std::size_t(m * 3 * H));
            for (auto& v : init) v = d(rng);
            auto ep_for = [&](std::vector<float>& y) {
                epilogue<float> ep;
                ep.bias = deferred.bias.data();
                if (add) {
                    ep.scale = scale.data();
                    ep.residual = y.data();
                    ep.ld_residual = 3 * H;
                }
                return ep;
            };
            std::vector<float> expected = init, direct = init, first = init, second = init;
            if (add) packed.add_to(x.data(), m, H, expected.data(), 3 * H, pool, scale.data());
            else packed.run(x.data(), m, H, expected.data(), 3 * H, pool);
            deferred.run_unpacked(x.data(), m, H, direct.data(), 3 * H, ep_for(direct), pool);
            CHECK(std::memcmp(direct.data(), expected.data(), sizeof(float) * expected.size()) == 0);
            // Unpacked, then packed by a call's try_pack.
            for (std::vector<float>* y : {&first, &second}) {
                if (add) deferred.add_to(x.data(), m, H, y->data(), 3 * H, pool, scale.data());
                else deferred.run(x.data(), m, H, y->data(), 3 * H, pool);
                CHECK(std::memcmp(y->data(), expected.data(), sizeof(float) * expected.size()) == 0);
                CHECK(deferred.is_packed() == (y == &second));
                if (y == &first) {
                    CHECK(deferred.try_pack(pool));
                    CHECK_FALSE(deferred.try_pack(pool));  // once
                }
            }
        }
        // Packed by pack_now (wait_packed's path) instead of a call.
        const linear<float> later = load_linear<float>(src, s, vit::precision::f32, true);
        later.pack_now(pool);
        REQUIRE(later.is_packed());
        std::vector<float> y1(std::size_t(m * 3 * H), -7.f), y2 = y1;
        later.run(x.data(), m, H, y1.data(), 3 * H, pool);
        packed.run(x.data(), m, H, y2.data(), 3 * H, pool);
        CHECK(std::memcmp(y1.data(), y2.data(), sizeof(float) * y1.size()) == 0);
    }
}
