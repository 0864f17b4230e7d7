// The model families, one line each: config.hpp reads their configs
// through it, the model driver loads and runs them, the formula tool lists
// their tensors. A family's room is models/<family>/ (family.hpp: config,
// names, tensors; head.hpp: its last steps).
#pragma once

#include <utility>

#include "../../config.hpp"
#include "clip/family.hpp"
#include "deit/family.hpp"
#include "dinov2/family.hpp"
#include "siglip/family.hpp"
#include "vit/family.hpp"

namespace vit::detail {

template <class... F>
struct family_list {};

// The first is the family of a config without model_type.
using families = family_list<vit_family,               //
                             dinov2_family,            //
                             dinov2_registers_family,  //
                             deit_family,              //
                             clip_family,              //
                             siglip_family>;

// fn(F{}) for each family F, in the registry's order.
template <class Fn, class... F>
void for_each_family_in(Fn&& fn, family_list<F...>) {
    (fn(F{}), ...);
}
template <class Fn>
void for_each_family(Fn&& fn) {
    for_each_family_in(fn, families{});
}

// fn(F{}) for the family whose id is `id`.
template <class Fn>
void with_family(model_family id, Fn&& fn) {
    bool found = false;
    for_each_family([&](auto f) {
        if (!found && decltype(f)::id == id) {
            found = true;
            fn(f);
        }
    });
    if (!found) throw error("model family " + std::to_string(int(id)) + " is not in the registry");
}

}  // namespace vit::detail
