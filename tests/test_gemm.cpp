// Linear layers: every SIMD path against a double-precision reference, on
// shapes that are multiples of no block size, with every epilogue.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gemm_helpers.hpp"
#include "vit/build_info.hpp"
#include "vit/detail/cpu/packed_linear.hpp"
#include "vit/detail/cpu/packed_linear_bf16.hpp"
#include "vit/detail/cpu/packed_linear_int8.hpp"
#include "vit/detail/nn/swiglu.hpp"

using namespace vit::detail;
using test::epilogue_case;
using test::res_mode;

namespace {

struct problem {
    std::int64_t m, n, k;
    std::vector<float> a, w, bias, c0;  // c0: initial c (the residual when aliased)
    std::vector<float> scale;           // [n] the epilogue's scale
};

problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, std::uint32_t seed) {
    problem p{m, n, k, {}, {}, {}, {}, {}};
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    p.a.resize(m * (k + 3));  // lda = k + 3
    p.w.resize(n * k);
    p.bias.resize(n);
    p.c0.resize(m * (n + 5));  // ldc = n + 5
    for (auto& x : p.a) x = d(rng);
    for (auto& x : p.w) x = d(rng) / std::sqrt(float(k));
    for (auto& x : p.bias) x = d(rng);
    for (auto& x : p.c0) x = d(rng);
    p.scale.resize(n);
    for (auto& x : p.scale) x = d(rng);
    return p;
}

// Reference in double, act(a w + bias) * scale + residual; also returns per
// element sum |a||w| + |bias| (the scale of the rounding error of any float
// summation order), when scaled times |scale| plus |act(.) scale| (the
// multiply rounds once more).
void reference(const problem& p, const std::vector<float>& w, const std::vector<float>& a, const epilogue_case& e,
               std::vector<double>& out, std::vector<double>& mag) {
    const std::int64_t lda = p.k + 3, ldc = p.n + 5;
    out.assign(p.m * ldc, 0.0);
    mag.assign(p.m * ldc, 0.0);
    for (std::int64_t i = 0; i < p.m; ++i)
        for (std::int64_t j = 0; j < p.n; ++j) {
            double s = 0, sa = 0;
            for (std::int64_t kk = 0; kk < p.k; ++kk) {
                s += double(a[i * lda + kk]) * w[j * p.k + kk];
                sa += std::fabs(double(a[i * lda + kk]) * w[j * p.k + kk]);
            }
            if (e.bias) {
                s += p.bias[j];
                sa += std::fabs(p.bias[j]);
            }
            double v = activate<double>(e.act, s);
            if (e.scale) {
                v *= p.scale[j];
                sa = sa * std::fabs(p.scale[j]) + std::fabs(v);
            }
            if (e.rm != res_mode::none) v += p.c0[i * ldc + j];
            out[i * ldc + j] = v;
            mag[i * ldc + j] = sa;
        }
}

const activation all_acts[] = {activation::none, activation::gelu_erf, activation::gelu_tanh, activation::relu,
                               activation::quick_gelu};

struct shape {
    std::int64_t m, n, k;
};
// Rows: 1, a few, 145 * 3 (three images), more than one row block (> 192);
// columns and depths odd and across the 32 / 256 block sizes.
// (9 x 1100: more than one 16-panel column chunk per thread.)
const shape shapes[] = {{1, 1, 1},     {1, 37, 19},   {2, 33, 300},  {13, 1000, 65},  {435, 67, 129},
                        {29, 95, 513}, {333, 49, 37}, {145, 64, 1024}, {9, 1100, 1100}};

// Runs `lin` on `p` with the given epilogue; returns c.
template <class L>
std::vector<float> run_case(const L& lin, const problem& p, const std::vector<float>& a, const epilogue_case& e,
                            thread_pool& pool) {
    const std::int64_t lda = p.k + 3, ldc = p.n + 5;
    std::vector<float> c = p.c0, res = p.c0;
    const epilogue<float> ep = test::make_epilogue(e, p.bias.data(), p.scale.data(), c.data(), res.data(), ldc);
    lin.run(a.data(), p.m, lda, c.data(), ldc, ep, pool);
    return c;
}

std::string describe(const shape& s, const epilogue_case& e) {
    return "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
           " act=" + std::to_string(int(e.act)) + " bias=" + std::to_string(e.bias) +
           " scale=" + std::to_string(e.scale) + " res=" + std::to_string(int(e.rm));
}

// Checks c against the reference: inside the ldc padding nothing may change;
// in the matrix |c - ref| <= tol_rel * mag *  + 2^-23 |ref| + tol_abs.
void check(const problem& p, const std::vector<float>& c, const std::vector<double>& ref,
           const std::vector<double>& mag, double tol_rel, double tol_abs, double& worst) {
    const std::int64_t ldc = p.n + 5;
    for (std::int64_t i = 0; i < p.m; ++i) {
        for (std::int64_t j = 0; j < p.n; ++j) {
            const double err = std::fabs(c[i * ldc + j] - ref[i * ldc + j]);
            const double tol = tol_rel * mag[i * ldc + j] * 1.2 + std::ldexp(std::fabs(ref[i * ldc + j]), -22) + tol_abs;
            worst = std::max(worst, err / tol);
            if (!(err <= tol)) {
                INFO("row " << i << " col " << j << " got " << c[i * ldc + j] << " want " << ref[i * ldc + j]
                            << " tol " << tol);
                REQUIRE(err <= tol);
            }
        }
        for (std::int64_t j = p.n; j < ldc; ++j) REQUIRE(c[i * ldc + j] == p.c0[i * ldc + j]);
    }
}

}  // namespace

TEST_CASE("fp32 linear layers match a double reference", "[gemm]") {
    thread_pool pool(2);
    for (gemm_kernel kern : {gemm_kernel::avx512, gemm_kernel::avx2, gemm_kernel::portable}) {
        if (resolve_kernel(kern) != kern) continue;  // CPU cannot run it
        double worst = 0;
        std::uint32_t seed = 1;
        for (const shape& s : shapes) {
            const problem p = make_problem(s.m, s.n, s.k, seed++);
            const packed_linear<float> lin(p.w.data(), s.n, s.k, kern);
            REQUIRE(lin.kernel() == kern);
            for (const epilogue_case& e : test::all_epilogues()) {
                INFO("kernel " << int(kern) << " " << describe(s, e));
                std::vector<double> ref, mag;
                reference(p, p.w, p.a, e, ref, mag);
                const auto c = run_case(lin, p, p.a, e, pool);
                // Any summation order of k + 1 float terms: error <= (k + 1) u sum|terms|
                // (u = 2^-24); the activations and the scale add a few ulp.
                check(p, c, ref, mag, (s.k + 1) * std::ldexp(1.0, -24), 1e-30, worst);
            }
        }
        // The deterministic bound is loose; the typical error is far below it,
        // but for the output's own rounding: half an ulp is up to a quarter of
        // the bound's 2^-22 |ref|, reached where a small scale leaves c ~ residual.
        INFO("kernel " << int(kern) << " worst error / bound " << worst);
        CHECK(worst < 0.26);
    }
}

TEST_CASE("fp32 linear layer: double instantiation still works", "[gemm]") {
    thread_pool pool(2);
    const std::int64_t m = 7, n = 9, k = 11;
    std::vector<double> a(m * k), w(n * k), c(m * n, 1.0);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(double(i));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(double(i));
    const packed_linear<double> lin(w.data(), n, k);
    epilogue<double> ep;
    ep.residual = c.data();
    ep.ld_residual = n;
    lin.run(a.data(), m, k, c.data(), n, ep, pool);
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            double s = 1.0;
            for (std::int64_t kk = 0; kk < k; ++kk) s += a[i * k + kk] * w[j * k + kk];
            REQUIRE(std::fabs(c[i * n + j] - s) < 1e-12);
        }
}

// The vectorised GELUs alone: k = 1 and w = 1 make the product exact, so c is
// the activation of a itself.
TEST_CASE("vectorised activations are accurate to a few ulp", "[gemm]") {
    thread_pool pool(1);
    std::vector<float> x;
    for (float v = -14.f; v <= 14.f; v += 0.00137f) x.push_back(v);
    for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 30.f, -30.f, 1e4f, -1e4f}) x.push_back(v);
    const float one = 1.f;
    for (gemm_kernel kern : {gemm_kernel::avx512, gemm_kernel::avx2, gemm_kernel::portable}) {
        if (resolve_kernel(kern) != kern) continue;
        const packed_linear<float> lin(&one, 1, 1, kern);
        for (activation act : all_acts) {
            std::vector<float> c(x.size());
            epilogue<float> ep;
            ep.act = act;
            lin.run(x.data(), std::int64_t(x.size()), 1, c.data(), 1, ep, pool);
            double worst = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                const long double xv = x[i];
                long double want = 0;
                switch (act) {
                    case activation::none: want = xv; break;
                    case activation::relu: want = xv > 0 ? xv : 0; break;
                    case activation::gelu_erf: want = 0.5L * xv * std::erfc(-xv / std::sqrt(2.0L)); break;
                    case activation::gelu_tanh:
                        want = xv / (1 + std::exp(-2 * 0.79788456080286535588L * (xv + 0.044715L * xv * xv * xv)));
                        break;
                    case activation::quick_gelu: want = xv / (1 + std::exp(-1.702L * xv)); break;
                }
                // AVX-512 epilogue: relative error within a few units of 2^-24
                // (erf GELU: erfc-based, so also in the negative tail; tanh
                // GELU: plus the conditioning of exp(-2y), up to 8|y| units;
                // quick GELU likewise with exp(-1.702 x)). The
                // scalar epilogue (AVX2, portable) is the textbook float
                // formula, whose 1 + erf cancels in the tail: there, absolute
                // error in units of |x| 2^-24. Results below 1e-30 count as 0.
                const long double y = 0.79788456080286535588L * (xv + 0.044715L * xv * xv * xv);
                const long double scale = kern == gemm_kernel::avx512 ? std::max(std::fabs(want), 1e-30L)
                                                                      : std::max(std::fabs(xv), 1e-30L);
                const long double allowed = act == activation::gelu_tanh    ? 8 + 8 * std::fabs(y)
                                            : act == activation::quick_gelu ? 8 + 8 * std::fabs(1.702L * xv)
                                                                            : 8;
                const double err = double(std::fabs(c[i] - want) / scale / std::ldexp(1.0, -24) / allowed);
                worst = std::max(worst, err);
            }
            INFO("kernel " << int(kern) << " act " << int(act) << " worst error / allowed: " << worst);
            CHECK(worst <= 1);
        }
    }
}

// The bf16 and int8 layers' GELU (the next product rounds its input to bf16 or
// 8 bits, so a few ulp are not needed): within 2e-7 max(1, |x|) of the exact
// one everywhere, and about 1e-7 typically (Abramowitz & Stegun 7.1.26's
// bound is 1.5e-7 on erfc).
TEST_CASE("the coarse vectorised GELU stays within 2e-7 max(1, |x|)", "[gemm]") {
#ifdef VIT_X86
    if (!cpu().avx512) return;
    std::vector<float> x;
    for (float v = -16.f; v <= 16.f; v += 0.000731f) x.push_back(v);
    for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 30.f, -30.f, 1e4f, -1e4f}) x.push_back(v);
    const std::int64_t n = std::int64_t(x.size());
    std::vector<float> c = x;  // one row: the epilogue works in place
    const int vecs = int((n + 15) / 16);
    const __mmask16 tail = n % 16 ? __mmask16((1u << (n % 16)) - 1) : __mmask16(0xffff);
    avx512::epilogue_rows_any<true>(activation::gelu_erf, c.data(), n, 1, vecs, tail, nullptr, nullptr, nullptr, 0);
    double worst = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const long double xv = x[i], want = 0.5L * xv * std::erfc(-xv / std::sqrt(2.0L));
        worst = std::max(worst, double(std::fabs(c[i] - want) / std::max(1.0L, std::fabs(xv))));
    }
    INFO("worst |error| / max(1, |x|): " << worst);
    CHECK(worst <= 2e-7);
    CHECK(worst > 1e-8);  // it is the coarse one: the accurate one is ~50x closer
#endif
}

// bf16: the kernel must compute exactly the fp32-accumulated product of the
// bf16-rounded activations and weights, so the reference rounds both the same
// way (round to nearest even) and the fp32 bound applies. Against the
// unrounded fp32 product, each term carries up to 2^-8 relative error: the
// second check bounds |c - c_exact| by (2^-8 + 2^-18) sum|a w| + fp32 rounding.
TEST_CASE("bf16 linear layers match a double reference on bf16-rounded inputs", "[gemm]") {
    thread_pool pool(2);
    for (gemm_kernel kern : {gemm_kernel::automatic, gemm_kernel::portable}) {
        double worst = 0, worst_exact = 0;
        std::uint32_t seed = 100;
        for (const shape& s : shapes) {
            const problem p = make_problem(s.m, s.n, s.k, seed++);
            const packed_linear_bf16 lin(p.w.data(), s.n, s.k, kern);
            if (kern == gemm_kernel::automatic && !cpu().avx512_bf16) REQUIRE(lin.kernel() == gemm_kernel::portable);
            std::vector<float> wr = p.w, ar = p.a;
            for (auto& x : wr) x = round_bf16(x);
            for (auto& x : ar) x = round_bf16(x);
            for (const epilogue_case& e : test::all_epilogues()) {
                INFO("bf16 kernel " << int(lin.kernel()) << " " << describe(s, e));
                std::vector<double> ref, mag;
                reference(p, wr, ar, e, ref, mag);
                const auto c = run_case(lin, p, p.a, e, pool);
                check(p, c, ref, mag, (s.k + 1) * std::ldexp(1.0, -24), 1e-30, worst);
                if (e.act == activation::none) {
                    reference(p, p.w, p.a, e, ref, mag);
                    check(p, c, ref, mag, std::ldexp(1.0, -8) + std::ldexp(1.0, -18) + (s.k + 1) * std::ldexp(1.0, -24),
                          1e-30, worst_exact);
                }
            }
        }
        INFO("bf16 kernel " << int(kern) << " worst error / bound " << worst << ", vs fp32 inputs " << worst_exact);
        CHECK(worst <= 1);
        CHECK(worst_exact <= 1);
    }
}

// int8: reference = the layer in double with the dequantized weights and the
// exact activations. Bound per element (see packed_linear_int8.hpp): activation
// quantization (s_i / 2) sum_k |w_jk|, times the activation's slope (<= 1.13),
// plus fp32 rounding. The VNNI path and the scalar path do the same integer
// arithmetic, so they agree to a few ulp.
TEST_CASE("int8 linear layers stay within the quantization error bound", "[gemm]") {
    thread_pool pool(2);
    std::uint32_t seed = 200;
    double worst = 0, worst_vs_portable = 0;
    for (const shape& s : shapes) {
        problem p = make_problem(s.m, s.n, s.k, seed++);
        // A skewed row range (as after GELU) and a constant row exercise the zero point.
        for (std::int64_t kk = 0; kk < s.k; ++kk) p.a[kk] = std::fabs(p.a[kk]) + 0.5f;
        if (s.m > 2)
            for (std::int64_t kk = 0; kk < s.k; ++kk) p.a[(s.k + 3) + kk] = -0.25f;
        std::vector<std::int8_t> w8;
        std::vector<float> scales;
        packed_linear_int8::quantize(p.w.data(), s.n, s.k, w8, scales);
        std::vector<float> wd(w8.size());
        for (std::int64_t j = 0; j < s.n; ++j)
            for (std::int64_t kk = 0; kk < s.k; ++kk) wd[j * s.k + kk] = scales[j] * float(w8[j * s.k + kk]);
        const packed_linear_int8 fast(w8.data(), scales.data(), s.n, s.k);
        const packed_linear_int8 slow(w8.data(), scales.data(), s.n, s.k, gemm_kernel::portable);
        REQUIRE(slow.kernel() == gemm_kernel::portable);
        if (cpu().avx512_vnni) REQUIRE(fast.kernel() == gemm_kernel::avx512);
        std::vector<double> qbound(s.m * s.n);
        for (std::int64_t i = 0; i < s.m; ++i) {
            float lo = 0, hi = 0;
            for (std::int64_t kk = 0; kk < s.k; ++kk) {
                lo = std::min(lo, p.a[i * (s.k + 3) + kk]);
                hi = std::max(hi, p.a[i * (s.k + 3) + kk]);
            }
            const double step = make_row_quant(lo, hi).scale;
            for (std::int64_t j = 0; j < s.n; ++j) {
                double sw = 0;
                for (std::int64_t kk = 0; kk < s.k; ++kk) sw += std::fabs(wd[j * s.k + kk]);
                qbound[i * s.n + j] = step / 2 * sw * (1 + std::ldexp(1.0, -20));
            }
        }
        for (const epilogue_case& e : test::all_epilogues()) {
            INFO("int8 " << describe(s, e));
            std::vector<double> ref, mag;
            reference(p, wd, p.a, e, ref, mag);
            const auto c = run_case(fast, p, p.a, e, pool);
            const auto c_slow = run_case(slow, p, p.a, e, pool);
            const std::int64_t ldc = s.n + 5;
            for (std::int64_t i = 0; i < s.m; ++i) {
                for (std::int64_t j = 0; j < s.n; ++j) {
                    const double r = ref[i * ldc + j], scaled = e.scale ? std::fabs(p.scale[j]) : 1.0;
                    const double tol = 1.13 * qbound[i * s.n + j] * scaled +
                                       (s.k + 1) * std::ldexp(1.0, -24) * 1.2 * mag[i * ldc + j] +
                                       std::ldexp(std::fabs(r), -21) + 1e-30;
                    const double err = std::fabs(c[i * ldc + j] - r);
                    worst = std::max(worst, err / tol);
                    if (!(err <= tol)) {
                        INFO("row " << i << " col " << j << " got " << c[i * ldc + j] << " want " << r << " tol " << tol);
                        REQUIRE(err <= tol);
                    }
                    const double d = std::fabs(c[i * ldc + j] - c_slow[i * ldc + j]);
                    const double tol2 = std::ldexp(std::fabs(r) + mag[i * ldc + j] + 1e-30, -20);
                    worst_vs_portable = std::max(worst_vs_portable, d / tol2);
                    if (!(d <= tol2)) {
                        INFO("row " << i << " col " << j << " fast " << c[i * ldc + j] << " portable " << c_slow[i * ldc + j]);
                        REQUIRE(d <= tol2);
                    }
                }
                for (std::int64_t j = s.n; j < ldc; ++j) REQUIRE(c[i * ldc + j] == p.c0[i * ldc + j]);
            }
        }
    }
    INFO("int8 worst error / bound " << worst << ", VNNI vs scalar path / tolerance " << worst_vs_portable);
    CHECK(worst <= 1);
    CHECK(worst_vs_portable <= 1);
}

// run() is const and keeps its scratch per thread: two callers with their own
// pools may share one layer.
TEST_CASE("linear layers can be run concurrently from several threads", "[gemm]") {
    const problem p = make_problem(145, 300, 700, 300);
    const packed_linear<float> f32(p.w.data(), p.n, p.k);
    const packed_linear_bf16 bf16(p.w.data(), p.n, p.k);
    std::vector<std::int8_t> w8;
    std::vector<float> scales;
    packed_linear_int8::quantize(p.w.data(), p.n, p.k, w8, scales);
    const packed_linear_int8 int8(w8.data(), scales.data(), p.n, p.k);
    auto results = [&](thread_pool& pool) {
        std::vector<std::vector<float>> out;
        for (bool scale : {false, true}) {
            const epilogue_case e{activation::gelu_erf, true, scale, res_mode::alias};
            out.push_back(run_case(f32, p, p.a, e, pool));
            out.push_back(run_case(bf16, p, p.a, e, pool));
            out.push_back(run_case(int8, p, p.a, e, pool));
        }
        return out;
    };
    thread_pool solo(2);
    const auto want = results(solo);
    std::vector<std::vector<std::vector<float>>> got(3);
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t)
        callers.emplace_back([&, t] {
            thread_pool pool(2);
            for (int rep = 0; rep < 3; ++rep) got[t] = results(pool);
        });
    for (auto& th : callers) th.join();
    for (int t = 0; t < 3; ++t) REQUIRE(got[t] == want);  // deterministic: same split, same order
}

// A row's results may not depend on the rows computed with it (what makes a
// batch give each image's single-image bits): every kernel, on a product of
// 150 rows against sub-products of the same rows at offsets that are no
// multiple of any row block. Also 1 row (a GEMV for Eigen) and depths past a
// k block.
template <class L>
void check_rows_independent(const L& lin, const problem& p, thread_pool& pool) {
    const std::int64_t lda = p.k + 3, ldc = p.n + 5;
    const test::epilogue_case e{activation::quick_gelu, true, true, res_mode::alias};
    const std::vector<float> all = run_case(lin, p, p.a, e, pool);
    const std::pair<std::int64_t, std::int64_t> windows[] = {{0, 50}, {50, 50}, {100, 50}, {0, 1},  {49, 1},
                                                             {101, 1}, {48, 2},  {96, 4},   {7, 13}, {130, 20}};
    for (const auto& [r0, rows] : windows) {
        INFO("rows " << r0 << " .. " << r0 + rows - 1 << " of " << p.m << ", n=" << p.n << " k=" << p.k);
        std::vector<float> c(p.c0.begin() + r0 * ldc, p.c0.begin() + (r0 + rows) * ldc);
        const epilogue<float> ep = test::make_epilogue(e, p.bias.data(), p.scale.data(), c.data(), nullptr, ldc);
        lin.run(p.a.data() + r0 * lda, rows, lda, c.data(), ldc, ep, pool);
        bool same = true;
        for (std::int64_t i = 0; i < rows * ldc; ++i) same = same && c[i] == all[(r0 * ldc) + i];
        CHECK(same);
    }
}

TEST_CASE("a row's results do not depend on the other rows of the product", "[gemm]") {
    for (const int threads : {1, 2}) {
        thread_pool pool(threads);
        std::uint32_t seed = 400;
        for (const shape s : {shape{150, 192, 64}, shape{150, 64, 256}, shape{150, 37, 300}}) {
            const problem p = make_problem(s.m, s.n, s.k, seed++);
            for (gemm_kernel kern : {gemm_kernel::avx512, gemm_kernel::avx2, gemm_kernel::portable}) {
                if (resolve_kernel(kern) != kern) continue;
                INFO("fp32 kernel " << int(kern) << ", " << threads << " threads");
                check_rows_independent(packed_linear<float>(p.w.data(), s.n, s.k, kern), p, pool);
            }
            for (gemm_kernel kern : {gemm_kernel::automatic, gemm_kernel::portable}) {
                INFO("bf16 kernel " << int(kern) << ", " << threads << " threads");
                check_rows_independent(packed_linear_bf16(p.w.data(), s.n, s.k, kern), p, pool);
            }
            std::vector<std::int8_t> w8;
            std::vector<float> scales;
            packed_linear_int8::quantize(p.w.data(), s.n, s.k, w8, scales);
            for (gemm_kernel kern : {gemm_kernel::automatic, gemm_kernel::portable}) {
                INFO("int8 kernel " << int(kern) << ", " << threads << " threads");
                check_rows_independent(packed_linear_int8(w8.data(), scales.data(), s.n, s.k, kern), p, pool);
            }
        }
        // double (the portable product only), with a residual added.
        const std::int64_t m = 150, n = 21, k = 300;
        std::vector<double> a(m * k), w(n * k), c0(m * n);
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(double(i));
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(double(i)) / 17;
        for (std::size_t i = 0; i < c0.size(); ++i) c0[i] = std::cos(0.3 * double(i));
        const packed_linear<double> lin(w.data(), n, k);
        auto run = [&](std::int64_t r0, std::int64_t rows) {
            std::vector<double> c(c0.begin() + r0 * n, c0.begin() + (r0 + rows) * n);
            epilogue<double> ep;
            ep.residual = c.data();
            ep.ld_residual = n;
            lin.run(a.data() + r0 * k, rows, k, c.data(), n, ep, pool);
            return c;
        };
        const std::vector<double> all = run(0, m);
        for (const auto& [r0, rows] : {std::pair<std::int64_t, std::int64_t>{50, 50}, {49, 1}, {7, 13}}) {
            INFO("double rows " << r0 << " .. " << r0 + rows - 1 << ", " << threads << " threads");
            CHECK(run(r0, rows) == std::vector<double>(all.begin() + r0 * n, all.begin() + (r0 + rows) * n));
        }
    }
}

// SwiGLU's gate, compacted in place in waves: every row equal to silu(x1) x2
// in long double (a few ulp: exp, a division, a product), whatever the pool,
// on both paths (the vectorised one where the CPU has it).
TEST_CASE("SwiGLU's gate in place matches silu(x1) * x2", "[gemm]") {
    std::mt19937 rng(7);
    std::normal_distribution<float> d(0.f, 3.f);
    for (const bool vectorized : {false, swiglu_vectorized<float>()})
        for (int threads : {1, 2, 3})
            for (std::int64_t rows : {1, 2, 3, 17, 257})
                for (std::int64_t width : {1, 16, 37, 136}) {
                    INFO("vectorized " << vectorized << " threads " << threads << " rows " << rows << " width " << width);
                    thread_pool pool(threads);
                    std::vector<float> h(std::size_t(rows * 2 * width));
                    for (auto& v : h) v = d(rng);
                    h[0] = -120.f;  // exp(120) overflows float: silu(x1) is about -0
                    const std::vector<float> in = h;
                    swiglu_gate(h.data(), rows, width, pool, vectorized);
                    double worst = 0;
                    for (std::int64_t r = 0; r < rows; ++r)
                        for (std::int64_t j = 0; j < width; ++j) {
                            const long double a = in[std::size_t(r * 2 * width + j)];
                            const long double g = in[std::size_t(r * 2 * width + width + j)];
                            const long double want = a / (1 + std::exp(-a)) * g;
                            const long double err = std::fabs(h[std::size_t(r * width + j)] - want);
                            worst = std::max(worst, double(err / std::max(std::fabs(want), 1e-30L)));
                            REQUIRE(err <= std::ldexp(std::fabs(want), -20) + 1e-40L);
                        }
                    CHECK(worst < std::ldexp(1.0, -21));
                }
}

TEST_CASE("the kernel table falls back to a filled row at or below a request", "[gemm]") {
    const kernel_table& t = kernels();
    REQUIRE(t.f32[0].pack);  // the portable rows are always there
    REQUIRE(t.bf16[0].pack);
    REQUIRE(t.int8[0].pack);
    REQUIRE(t.attention_f32[0]);
    for (const gemm_kernel want : {gemm_kernel::automatic, gemm_kernel::portable, gemm_kernel::avx2, gemm_kernel::avx512}) {
        const int top = want == gemm_kernel::automatic ? 3 : int(want);
        for (const gemm_kernel got : {resolve_kernel(want), resolve_bf16_kernel(want), resolve_int8_kernel(want)})
            CHECK(int(got) <= top);
        CHECK(gemm_for<float>(want).kernel == resolve_kernel(want));
        CHECK(bf16_for(want).kernel == resolve_bf16_kernel(want));
        CHECK(int8_for(want).kernel == resolve_int8_kernel(want));
    }
    // No AVX2 bf16 or int8 kernel: that request runs the portable one.
    CHECK(resolve_bf16_kernel(gemm_kernel::avx2) == gemm_kernel::portable);
    CHECK(resolve_int8_kernel(gemm_kernel::avx2) == gemm_kernel::portable);
    CHECK(resolve_kernel(gemm_kernel::portable) == gemm_kernel::portable);
    CHECK((resolve_kernel(gemm_kernel::automatic) == gemm_kernel::avx512) == cpu().avx512);
    CHECK((resolve_bf16_kernel(gemm_kernel::automatic) == gemm_kernel::avx512) == cpu().avx512_bf16);
    CHECK((resolve_int8_kernel(gemm_kernel::automatic) == gemm_kernel::avx512) == cpu().avx512_vnni);
    CHECK(gemm_for<double>(gemm_kernel::avx512).kernel == gemm_kernel::portable);
    CHECK(attention_head_for<double>(attention_kernel::f32) == t.attention_f64);
    CHECK(!layer_norm_vectorized<double>());
    CHECK(!swiglu_vectorized<double>());
    CHECK(!direct_available<double>());
}

TEST_CASE("build_info says what bf16 buys on this CPU", "[gemm]") {
    const std::string s = vit::bf16_gain();
    CAPTURE(s);
    if (!cpu().avx512_bf16) {
        CHECK(s.find("emulated") != std::string::npos);
    } else {
        CHECK(s.find("halves the weight memory") != std::string::npos);
        CHECK((s.find("faster products") != std::string::npos) == cpu().bf16_faster);
        CHECK((s.find("AMX") != std::string::npos) == (cpu().amx && !cpu().bf16_faster));
    }
}
