// libFuzzer target: image decoding (stb_image, libjpeg-turbo, the EXIF
// reader), then a resize of whatever decoded, as the preprocessing does.
#include <cstddef>
#include <cstdint>

#include <vit/error.hpp>
#include <vit/image.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // A lower pixel cap than Pillow's keeps each run fast; the check that
    // enforces it is the same.
    vit::image_limits limits;
    limits.max_pixels = std::uint64_t(1) << 20;
    try {
        const vit::image img = vit::decode_image(data, size, "fuzz.img", limits);
        if (img.width <= 0 || img.height <= 0 ||
            img.rgb.size() != std::size_t(img.width) * std::size_t(img.height) * 3)
            __builtin_trap();
        const auto filter = static_cast<vit::resample>(size ? data[size - 1] % 6 : 0);
        const vit::image small = vit::resize(img, 1 + (size % 13), 1 + (size % 7), filter);
        volatile std::uint8_t sink = small.rgb[0];
        (void)sink;
    } catch (const vit::error&) {
    }
    return 0;
}
