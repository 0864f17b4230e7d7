// The index type of every size and offset in the computation.
#pragma once

#include <cstdint>

namespace vit::detail {

using index_t = std::int64_t;

}  // namespace vit::detail
