// What this build and this CPU run: for logs and --version lines.
#pragma once

#include <string>

#include "detail/cpu/dispatch.hpp"

namespace vit {

// The float32 product kernel this CPU runs, e.g. "AVX-512".
inline std::string cpu_kernels() {
    switch (detail::resolve_kernel(detail::gemm_kernel::automatic)) {
        case detail::gemm_kernel::avx512: return "AVX-512";
        case detail::gemm_kernel::avx2: return "AVX2";
        default: return "portable (Eigen)";
    }
}

// What precision::bf16 (--dtype bf16) buys on this CPU, in a line. Its weights
// take half the memory wherever AVX512_BF16 runs it; it is faster than f32
// only where those dot products outrun fp32 FMAs (AMD's; not Intel's, whose
// AMX would, but no kernel here uses AMX yet).
inline std::string bf16_gain() {
    const detail::cpu_features& c = detail::cpu();
    if (!c.avx512_bf16)
        return "bf16 is emulated on this CPU (no AVX512_BF16): its rounding, for accuracy checks, with neither less "
               "memory nor more speed than f32";
    if (c.bf16_faster) return "bf16 halves the weight memory and runs faster products than f32 (AVX512_BF16)";
    return std::string("bf16 halves the weight memory here, not the time: this CPU's AVX512_BF16 dot products are no "
                       "faster than f32 FMAs") +
           (c.amx ? " (its AMX, which would be, is not used yet)" : "");
}

}  // namespace vit
