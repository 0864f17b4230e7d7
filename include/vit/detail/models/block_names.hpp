// An encoder layer's tensor names, which each family's room gives.
#pragma once

#include <string>

namespace vit::detail {

// A layer's tensor names (canonical, for the weight_source), and what its
// family adds to ViT's block.
struct block_names {
    std::string ln_before, ln_after, query, key, value, o_proj, fc1, fc2;
    std::string scale1, scale2;  // layer scale lambda1 [H] of each branch, or empty
    bool swiglu = false;         // fc1 = weights_in [2I, H]: silu(first half) * second half
};

}  // namespace vit::detail
