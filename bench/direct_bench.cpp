// Direct kernel (gemm_direct.hpp: weights read as stored, W[n][k]) against the
// packed AVX-512 kernel on ViT-L's linear layers, weights streamed from DRAM
// as in the model (each call uses the next of several distinct copies, > 64
// MiB in all). The two kernels run interleaved, call by call, so the
// machine's drift over minutes affects both alike; GFLOP/s (2 m n k per
// call) from the median wall time of `reps` calls each, and from the median
// process CPU time / threads, which other processes taking a core disturb
// less (the pool's threads spin, so it counts waits too).
//
// The direct kernel's weights sit on 4 KiB pages (`4k`, the default), as in a
// memory-mapped file, or on transparent huge pages (`huge`), as the packed
// kernel's always do. On this project's VM, 4 KiB pages are periodically
// expensive to touch again (a host-side event; no guest page faults): for one
// rotation through the copies every call of the direct kernel then runs at
// 20-25% speed. The medians below hide such an episode only when it covers
// less than half of a shape's calls.
//   g++ -O2 -std=c++17 -I include -I/usr/include/eigen3 bench/direct_bench.cpp -pthread
//   ./a.out [reps] [4k|huge] [threads...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <ctime>
#include <random>
#include <vector>

#include <sys/mman.h>

#include "vit/detail/cpu/packed_linear.hpp"
#include "vit/detail/cpu/x86/gemm_direct.hpp"
#include "bench_common.hpp"

using namespace vit::detail;

namespace {

// n floats on 4 KiB pages (no transparent huge pages), or huge pages.
class weight_copy {
public:
    weight_copy(std::size_t n, bool huge) : n_(n), bytes_(n * sizeof(float)) {
        if (huge) {
            huge_.reset(n);
            p_ = huge_.data();
            return;
        }
        void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_NOHUGEPAGE
        madvise(p, bytes_, MADV_NOHUGEPAGE);
#endif
        mapped_ = p_ = static_cast<float*>(p);
    }
    weight_copy(const weight_copy&) = delete;
    weight_copy& operator=(const weight_copy&) = delete;
    ~weight_copy() {
        if (mapped_) munmap(mapped_, bytes_);
    }
    float* data() { return p_; }
    std::size_t size() const { return n_; }

private:
    std::size_t n_, bytes_;
    float* p_ = nullptr;
    float* mapped_ = nullptr;
    aligned_array<float> huge_;
};

}  // namespace

int main(int argc, char** argv) {
    if (!cpu().avx512) {
        std::printf("no AVX-512 on this CPU\n");
        return 0;
    }
    const int reps = argc > 1 ? std::atoi(argv[1]) : 9;
    const bool huge = argc > 2 && std::strcmp(argv[2], "huge") == 0;
    std::vector<int> thread_counts;
    for (int i = 3; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
    if (thread_counts.empty()) thread_counts = {1, 2};
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::printf("reps %d (median of each kernel, calls interleaved), direct weights on %s pages\n", reps,
                huge ? "huge" : "4 KiB");
    std::printf("%-9s %5s %5s %5s %3s %8s %8s %6s %8s %8s %6s %5s\n", "", "", "", "", "", "wall", "", "", "cpu/T",
                "", "", "");
    std::printf("%-9s %5s %5s %5s %3s %8s %8s %6s %8s %8s %6s %5s\n", "shape", "m", "n", "k", "T", "packed", "direct",
                "ratio", "packed", "direct", "ratio", "same");
    for (int threads : thread_counts) {
        thread_pool pool(threads);
        for (std::int64_t m : {145, 1160}) {
            for (const bench::shape& s : bench::vit_l_shapes) {
                // Distinct copies, > 64 MiB per kernel: every call streams its weights from DRAM.
                const std::int64_t bytes = 4 * s.n * s.k;
                const std::int64_t copies = std::max<std::int64_t>(4, ((96 << 20) + bytes - 1) / bytes);
                std::vector<std::unique_ptr<weight_copy>> raw;
                std::vector<packed_linear<float>> packed;
                for (std::int64_t i = 0; i < copies; ++i) {
                    raw.push_back(std::make_unique<weight_copy>(static_cast<std::size_t>(s.n * s.k), huge));
                    float* w = raw.back()->data();
                    for (std::int64_t j = 0; j < s.n * s.k; ++j) w[j] = dist(rng) * 0.03f;
                    packed.emplace_back(w, s.n, s.k, gemm_kernel::avx512);
                }
                std::vector<float> a(m * s.k), bias(s.n), c0(m * s.n);
                for (auto& x : a) x = dist(rng);
                for (auto& x : bias) x = dist(rng);
                for (auto& x : c0) x = dist(rng);
                std::vector<float> c1 = c0, c2 = c0;
                auto ep_for = [&](std::vector<float>& c) { return bench::epilogue_for(s, bias.data(), c.data()); };
                // One untimed round on fresh outputs, compared bit for bit.
                std::int64_t next = 0;
                packed[0].run(a.data(), m, s.k, c1.data(), s.n, ep_for(c1), pool);
                avx512::direct_run(a.data(), m, s.k, raw[0]->data(), s.n, s.k, s.k, c2.data(), s.n, ep_for(c2), pool);
                const bool same = std::memcmp(c1.data(), c2.data(), sizeof(float) * c1.size()) == 0;
                std::vector<double> tp, td, cp, cd;
                for (int r = 0; r < reps + 1; ++r) {
                    next = (next + 1) % copies;
                    // Alternate which kernel goes first.
                    for (int order = 0; order < 2; ++order) {
                        const bool direct = (order == 0) == (r % 2 == 0);
                        std::vector<float>& c = direct ? c2 : c1;
                        const epilogue<float> ep = ep_for(c);
                        const double c0 = bench::cpu_seconds();
                        const auto t0 = std::chrono::steady_clock::now();
                        if (direct)
                            avx512::direct_run(a.data(), m, s.k, raw[next]->data(), s.n, s.k, s.k, c.data(), s.n, ep,
                                               pool);
                        else
                            packed[next].run(a.data(), m, s.k, c.data(), s.n, ep, pool);
                        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                        const double dc = (bench::cpu_seconds() - c0) / threads;
                        if (r > 0) {  // the first round warms up
                            (direct ? td : tp).push_back(dt);
                            (direct ? cd : cp).push_back(dc);
                        }
                    }
                }
                const double flop = 2.0 * m * s.n * s.k;
                const double gp = flop / bench::median(tp) * 1e-9, gd = flop / bench::median(td) * 1e-9;
                const double gcp = flop / bench::median(cp) * 1e-9, gcd = flop / bench::median(cd) * 1e-9;
                std::printf("%-9s %5lld %5lld %5lld %3d %8.1f %8.1f %6.3f %8.1f %8.1f %6.3f %5s\n", s.name,
                            (long long)m, (long long)s.n, (long long)s.k, threads, gp, gd, gd / gp, gcp, gcd, gcd / gcp,
                            same ? "yes" : "NO");
                std::fflush(stdout);
            }
        }
    }
}
