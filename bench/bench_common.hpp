// Shared by the kernel micro-benchmarks (gemm_bench, direct_bench): ViT-L's
// four linear layers, their epilogues, and the clocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <vector>

#include "vit/detail/cpu/epilogue.hpp"

namespace bench {

struct shape {
    const char* name;
    std::int64_t n, k;
    vit::detail::activation act;
    bool residual;  // c is its own residual, as the model's residual stream
};

inline constexpr shape vit_l_shapes[] = {{"qkv", 3072, 1024, vit::detail::activation::none, false},
                                         {"attn_out", 1024, 1024, vit::detail::activation::none, true},
                                         {"mlp_up", 4096, 1024, vit::detail::activation::gelu_erf, false},
                                         {"mlp_down", 1024, 4096, vit::detail::activation::none, true}};

// The epilogue of `s` writing c (row stride s.n).
inline vit::detail::epilogue<float> epilogue_for(const shape& s, const float* bias, const float* c) {
    vit::detail::epilogue<float> ep;
    ep.bias = bias;
    ep.act = s.act;
    if (s.residual) {
        ep.residual = c;
        ep.ld_residual = s.n;
    }
    return ep;
}

// Process CPU time: less disturbed than wall time by other processes taking
// a core (the pool's idle threads spin, then sleep).
inline double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace bench
