// Direct kernel (gemm_direct.hpp: weights read as stored, W[n][k]) against the
// packed AVX-512 kernel on ViT-L's linear layers, weights streamed from DRAM
// as in the model (each call uses the next of several distinct copies, > 64
// MiB in all). The two kernels run interleaved, call by call, so the
// machine's drift over minutes affects both alike; GFLOP/s (2 m n k per
// call) from the median wall time of `reps` calls each.
//   g++ -O2 -std=c++17 -I include -I/usr/include/eigen3 bench/direct_bench.cpp -pthread
//   ./a.out [reps] [threads...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "vit/detail/gemm.hpp"
#include "vit/detail/gemm_direct.hpp"

using namespace vit::detail;

namespace {

struct shape {
    const char* name;
    std::int64_t n, k;
    activation act;
    bool residual;  // aliased, as the model's residual stream
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    if (!cpu_has_avx512()) {
        std::printf("no AVX-512 on this CPU\n");
        return 0;
    }
    const int reps = argc > 1 ? std::atoi(argv[1]) : 9;
    std::vector<int> thread_counts;
    for (int i = 2; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
    if (thread_counts.empty()) thread_counts = {1, 2};
    const shape shapes[] = {{"qkv", 3072, 1024, activation::none, false},
                            {"attn_out", 1024, 1024, activation::none, true},
                            {"mlp_up", 4096, 1024, activation::gelu_erf, false},
                            {"mlp_down", 1024, 4096, activation::none, true}};
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::printf("reps %d (median of each kernel, calls interleaved)\n", reps);
    std::printf("%-9s %5s %5s %5s %3s %10s %10s %8s %8s\n", "shape", "m", "n", "k", "T", "packed", "direct", "ratio",
                "same");
    for (int threads : thread_counts) {
        thread_pool pool(threads);
        for (std::int64_t m : {145, 1160}) {
            for (const shape& s : shapes) {
                // Distinct copies, > 64 MiB per kernel: every call streams its weights from DRAM.
                const std::int64_t bytes = 4 * s.n * s.k;
                const std::int64_t copies = std::max<std::int64_t>(4, ((96 << 20) + bytes - 1) / bytes);
                std::vector<std::vector<float>> raw(static_cast<std::size_t>(copies));
                std::vector<packed_linear<float>> packed;
                for (auto& w : raw) {
                    w.resize(static_cast<std::size_t>(s.n * s.k));
                    for (auto& x : w) x = dist(rng) * 0.03f;
                    packed.emplace_back(w.data(), s.n, s.k, gemm_kernel::avx512);
                }
                std::vector<float> a(m * s.k), bias(s.n), c0(m * s.n);
                for (auto& x : a) x = dist(rng);
                for (auto& x : bias) x = dist(rng);
                for (auto& x : c0) x = dist(rng);
                std::vector<float> c1 = c0, c2 = c0;
                auto ep_for = [&](std::vector<float>& c) {
                    epilogue<float> ep;
                    ep.bias = bias.data();
                    ep.act = s.act;
                    if (s.residual) {
                        ep.residual = c.data();
                        ep.ld_residual = s.n;
                    }
                    return ep;
                };
                // One untimed round on fresh outputs, compared bit for bit.
                std::int64_t next = 0;
                packed[0].run(a.data(), m, s.k, c1.data(), s.n, ep_for(c1), pool);
                avx512::direct_run(a.data(), m, s.k, raw[0].data(), s.n, s.k, s.k, c2.data(), s.n, ep_for(c2), pool);
                const bool same = std::memcmp(c1.data(), c2.data(), sizeof(float) * c1.size()) == 0;
                std::vector<double> tp, td;
                for (int r = 0; r < reps + 1; ++r) {
                    next = (next + 1) % copies;
                    // Alternate which kernel goes first.
                    for (int order = 0; order < 2; ++order) {
                        const bool direct = (order == 0) == (r % 2 == 0);
                        std::vector<float>& c = direct ? c2 : c1;
                        const epilogue<float> ep = ep_for(c);
                        const auto t0 = std::chrono::steady_clock::now();
                        if (direct)
                            avx512::direct_run(a.data(), m, s.k, raw[next].data(), s.n, s.k, s.k, c.data(), s.n, ep,
                                               pool);
                        else
                            packed[next].run(a.data(), m, s.k, c.data(), s.n, ep, pool);
                        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                        if (r > 0) (direct ? td : tp).push_back(dt);  // the first round warms up
                    }
                }
                const double flop = 2.0 * m * s.n * s.k;
                const double gp = flop / median(tp) * 1e-9, gd = flop / median(td) * 1e-9;
                std::printf("%-9s %5lld %5lld %5lld %3d %10.1f %10.1f %8.3f %8s\n", s.name, (long long)m,
                            (long long)s.n, (long long)s.k, threads, gp, gd, gd / gp, same ? "yes" : "NO");
                std::fflush(stdout);
            }
        }
    }
}
