// The text towers' families, one line each (their rooms: models/<family>/text.hpp).
#pragma once

#include "../clip/text.hpp"
#include "../registry.hpp"
#include "../siglip/text.hpp"

namespace vit::detail {

using text_families = family_list<clip_text_family, siglip_text_family>;

template <class Fn>
void for_each_text_family(Fn&& fn) {
    for_each_family_in(fn, text_families{});
}

}  // namespace vit::detail
