// What this x86 CPU can run, read once from CPUID. Only cpu/dispatch.hpp
// includes this: kernels and layers are told what to run, they never ask.
#pragma once

#include "../arch.hpp"

#ifdef VIT_X86
#include <cpuid.h>
#endif

namespace vit::detail::x86 {

struct features {
    bool avx2 = false;         // with FMA
    bool avx512 = false;       // F, BW, VL, DQ and FMA: what every AVX-512 kernel here uses
    bool avx512_bf16 = false;  // vdpbf16ps
    bool avx512_vnni = false;  // vpdpbusd
    // AMX (CPUID.(7,0):EDX bits 22 AMX-BF16, 24 AMX-TILE) and the OS saving
    // its tile state (XCR0 bits 17, 18): reported, not used by any kernel yet.
    bool amx_bf16 = false, amx_tile = false, amx_os = false;
    bool amd = false;  // AuthenticAMD: its AVX512_BF16 dot products outrun fp32 FMAs, Intel's do not
};

inline features detect() {
    features f;
#ifdef VIT_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    // The vendor string is EBX, EDX, ECX of leaf 0: "Auth" "enti" "cAMD".
    if (__get_cpuid(0, &a, &b, &c, &d)) f.amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.amx_bf16 = (d >> 22) & 1;
        f.amx_tile = (d >> 24) & 1;
    }
    // XGETBV needs OSXSAVE (CPUID.1:ECX bit 27).
    if (__get_cpuid(1, &a, &b, &c, &d) && ((c >> 27) & 1)) {
        unsigned lo = 0, hi = 0;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        f.amx_os = ((lo >> 17) & 3) == 3;
    }
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
