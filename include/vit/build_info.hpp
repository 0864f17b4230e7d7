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

}  // namespace vit
