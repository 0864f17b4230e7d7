// Micro-benchmark of the linear layers on ViT-L/32-384's shapes: GFLOP/s
// (2 m n k per product), median over repetitions, on a 2-thread pool; also
// per CPU-second (x threads) and the best repetition, which say more than
// the wall-clock median when other processes share the cores.
//   g++ -O2 -std=c++17 -I include -I/usr/include/eigen3 bench/gemm_bench.cpp -pthread
//   ./a.out [threads] [reps] [kernel: auto|portable|avx2|avx512|bf16|bf16-portable|int8|int8-portable]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>
#include <random>
#include <string>
#include <vector>

#include "vit/detail/cpu/packed_linear.hpp"
#include "vit/detail/cpu/packed_linear_bf16.hpp"
#include "vit/detail/cpu/packed_linear_int8.hpp"
#include "bench_common.hpp"

using namespace vit::detail;

namespace {

// Median wall time, and median process CPU time: the second is less disturbed
// by other processes taking a core (the pool's idle threads sleep), which
// makes it the better figure for comparing kernels on a busy machine.
struct timing {
    double wall, cpu, best_wall, best_cpu;  // medians, minima
};

template <class F>
timing time_calls(int reps, F&& f) {
    std::vector<double> t, cpu;
    for (int r = 0; r < reps; ++r) {
        const double c0 = bench::cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        cpu.push_back(bench::cpu_seconds() - c0);
    }
    std::sort(t.begin(), t.end());
    std::sort(cpu.begin(), cpu.end());
    return {t[t.size() / 2], cpu[cpu.size() / 2], t.front(), cpu.front()};
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 21;
    const std::string which = argc > 3 ? argv[3] : "auto";
    const gemm_kernel want = which == "portable" ? gemm_kernel::portable
                             : which == "avx2"   ? gemm_kernel::avx2
                             : which == "avx512" ? gemm_kernel::avx512
                                                 : gemm_kernel::automatic;
    thread_pool pool(threads);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::printf("threads %d, reps %d (median), kernel %s\n", threads, reps, which.c_str());
    std::printf("%-10s %6s %6s %6s %10s %10s %14s %10s %14s\n", "shape", "m", "n", "k", "ms", "GFLOP/s",
                "GFLOP/cpu-s*T", "best", "best cpu");
    for (std::int64_t m : {145, 1160}) {
        for (const bench::shape& s : bench::vit_l_shapes) {
            std::vector<float> w(s.n * s.k), a(m * s.k), bias(s.n), c(m * s.n);
            for (auto& x : w) x = dist(rng) * 0.03f;
            // As in the model, weights come from DRAM: cycle through copies
            // totalling more than the last-level cache.
            const std::int64_t copies = std::max<std::int64_t>(2, (256 << 20) / (4 * s.n * s.k));
            for (auto& x : a) x = dist(rng);
            for (auto& x : bias) x = dist(rng);
            for (auto& x : c) x = dist(rng);
            std::vector<packed_linear<float>> lin;
            std::vector<packed_linear_bf16> lin16;
            std::vector<packed_linear_int8> lin8;
            std::vector<std::int8_t> w8;
            std::vector<float> scales;
            if (which.rfind("int8", 0) == 0) packed_linear_int8::quantize(w.data(), s.n, s.k, w8, scales);
            for (std::int64_t i = 0; i < copies; ++i) {
                if (which.rfind("int8", 0) == 0)
                    lin8.emplace_back(w8.data(), scales.data(), s.n, s.k,
                                      which == "int8" ? gemm_kernel::automatic : gemm_kernel::portable);
                else if (which.rfind("bf16", 0) == 0)
                    lin16.emplace_back(w.data(), s.n, s.k,
                                       which == "bf16" ? gemm_kernel::automatic : gemm_kernel::portable);
                else
                    lin.emplace_back(w.data(), s.n, s.k, want);
            }
            std::int64_t next = 0;
            const epilogue<float> ep = bench::epilogue_for(s, bias.data(), c.data());
            auto call = [&] {
                if (!lin8.empty())
                    lin8[next].run(a.data(), m, s.k, c.data(), s.n, ep, pool);
                else if (!lin16.empty())
                    lin16[next].run(a.data(), m, s.k, c.data(), s.n, ep, pool);
                else
                    lin[next].run(a.data(), m, s.k, c.data(), s.n, ep, pool);
                next = (next + 1) % copies;
            };
            for (int i = 0; i < 3; ++i) call();
            const timing tm = time_calls(reps, call);
            const double flop = 2.0 * m * s.n * s.k;
            std::printf("%-10s %6lld %6lld %6lld %10.3f %10.1f %14.1f %10.1f %14.1f\n", s.name, (long long)m,
                        (long long)s.n, (long long)s.k, tm.wall * 1e3, flop / tm.wall * 1e-9,
                        flop / (tm.cpu / threads) * 1e-9, flop / tm.best_wall * 1e-9,
                        flop / (tm.best_cpu / threads) * 1e-9);
        }
    }
}
