// Shared by the linear-layer tests (test_gemm, test_direct): the epilogues
// under test and how one takes its residual.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "vit/detail/cpu/epilogue.hpp"

namespace test {

// No residual, a separate buffer, or c itself (the model's residual stream).
enum class res_mode { none, separate, alias };

// One epilogue under test: its activation, whether it adds the bias and then
// multiplies by a per-column scale (DINOv2's layer scale), its residual.
struct epilogue_case {
    vit::detail::activation act;
    bool bias, scale;
    res_mode rm;
};

// Every activation with every residual mode, each with no bias, a bias, and a
// bias then a scale.
inline std::vector<epilogue_case> all_epilogues() {
    using vit::detail::activation;
    std::vector<epilogue_case> out;
    for (activation act : {activation::none, activation::gelu_erf, activation::gelu_tanh, activation::relu,
                           activation::quick_gelu})
        for (const auto& [bias, scale] : {std::pair{false, false}, std::pair{true, false}, std::pair{true, true}})
            for (res_mode rm : {res_mode::none, res_mode::separate, res_mode::alias})
                out.push_back({act, bias, scale, rm});
    return out;
}

// The epilogue of case e writing c (row stride ldc); `res` is the separate
// residual, bias and scale the case's vectors when it uses them.
inline vit::detail::epilogue<float> make_epilogue(const epilogue_case& e, const float* bias, const float* scale,
                                                  const float* c, const float* res, std::int64_t ldc) {
    vit::detail::epilogue<float> ep;
    ep.bias = e.bias ? bias : nullptr;
    ep.scale = e.scale ? scale : nullptr;
    ep.act = e.act;
    if (e.rm != res_mode::none) {
        ep.residual = e.rm == res_mode::alias ? c : res;
        ep.ld_residual = ldc;
    }
    return ep;
}

}  // namespace test
