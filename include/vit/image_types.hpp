// The decoded image the preprocessing works on.
#pragma once

#include <cstdint>
#include <vector>

namespace vit {

// 8-bit RGB, row-major, channels interleaved (H, W, 3).
struct image {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb;
};

struct image_limits {
    // Pillow's Image.MAX_IMAGE_PIXELS. Larger images are refused from their
    // header, before any pixel memory is allocated.
    std::uint64_t max_pixels = 89478485;
};

}  // namespace vit
