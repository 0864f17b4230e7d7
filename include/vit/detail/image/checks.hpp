// The checks every image path makes: a decoded image is whole, and a header's
// size is within image_limits before any pixel memory is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../../error.hpp"
#include "../../image_types.hpp"

namespace vit::detail {

inline void check_image(const image& img, const char* what) {
    if (img.width <= 0 || img.height <= 0 ||
        img.rgb.size() != std::size_t(img.width) * std::size_t(img.height) * 3)
        throw error(std::string(what) + ": image is empty or its pixel buffer does not match " +
                    std::to_string(img.width) + "x" + std::to_string(img.height) + "x3");
}

inline void check_pixel_limit(const std::string& name, std::uint64_t w, std::uint64_t h, const image_limits& limits) {
    if (w == 0 || h == 0) throw error(name + ": image has no pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")");
    if (w * h > limits.max_pixels)
        throw error(name + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels exceeds the limit of " +
                    std::to_string(limits.max_pixels));
}

}  // namespace vit::detail
