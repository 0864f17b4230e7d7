// The decoded image the preprocessing works on, and the resampling filters
// that resize it (no image code: preprocess.hpp and vit::core use them too).
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

// PIL.Image.Resampling numbering, as preprocessor_config.json stores it.
enum class resample { nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5 };

inline const char* resample_name(resample r) {
    switch (r) {
        case resample::nearest: return "nearest";
        case resample::lanczos: return "lanczos";
        case resample::bilinear: return "bilinear";
        case resample::bicubic: return "bicubic";
        case resample::box: return "box";
        case resample::hamming: return "hamming";
    }
    return "?";
}

}  // namespace vit
