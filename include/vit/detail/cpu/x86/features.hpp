// What this x86 CPU can run, read once from CPUID. Only cpu/dispatch.hpp
// includes this: kernels and layers are told what to run, they never ask.
#pragma once

#include "../arch.hpp"

namespace vit::detail::x86 {

struct features {
    bool avx2 = false;         // with FMA
    bool avx512 = false;       // F, BW, VL, DQ and FMA: what every AVX-512 kernel here uses
    bool avx512_bf16 = false;  // vdpbf16ps
    bool avx512_vnni = false;  // vpdpbusd
};

inline features detect() {
    features f;
#ifdef VIT_X86
    f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
    f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
#ifdef VIT_X86_BF16
    f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
#endif
    return f;
}

}  // namespace vit::detail::x86
