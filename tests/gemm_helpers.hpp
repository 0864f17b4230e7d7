// Shared by the linear-layer tests (test_gemm, test_direct): how an epilogue
// takes its residual.
#pragma once

#include <cstdint>

#include "vit/detail/cpu/epilogue.hpp"

namespace test {

// No residual, a separate buffer, or c itself (the model's residual stream).
enum class res_mode { none, separate, alias };

// The epilogue writing c (row stride ldc); `res` is the separate residual.
inline vit::detail::epilogue<float> make_epilogue(const float* bias, vit::detail::activation act, res_mode rm,
                                                  const float* c, const float* res, std::int64_t ldc) {
    vit::detail::epilogue<float> ep;
    ep.bias = bias;
    ep.act = act;
    if (rm != res_mode::none) {
        ep.residual = rm == res_mode::alias ? c : res;
        ep.ld_residual = ldc;
    }
    return ep;
}

}  // namespace test
