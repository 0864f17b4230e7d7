// The DINOv2, CLIP, SigLIP and DeiT fixtures (tests/data/FIXTURES.md):
// their image processors byte for byte, their models against the float64
// references.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

const std::vector<std::string> family_fixtures = {"dinov2-tiny",  "dinov2-tiny-swiglu", "dinov2-tiny-cls",
                                                  "dinov2-registers-tiny", "clip-tiny", "siglip-tiny",
                                                  "deit-tiny-distilled"};

// The fixture images, in the references' batch order.
const std::vector<std::pair<std::string, std::string>> family_images = {{"coco_cats", "coco_cats.png"},
                                                                        {"chelsea", "chelsea.png"},
                                                                        {"camera_gray", "camera_gray.png"},
                                                                        {"coffee", "coffee.jpg"},
                                                                        {"tiny_7x5", "tiny_7x5.png"}};

std::string fixture(const std::string& name, const std::string& rel) { return test::data(name + "/" + rel); }

}  // namespace

TEST_CASE("family image processors: resized_u8 byte for byte, pixel values as normalize_lut", "[family][preprocess]") {
    for (const std::string& name : family_fixtures) {
        INFO(name);
        const vit::preprocess_config cfg = vit::load_preprocess_config(fixture(name, "model"));
        CHECK(cfg.float32_normalize);
        const test::reference ref(fixture(name, "reference.safetensors"));
        const test::ref_tensor lut = ref.get("normalize_lut");
        REQUIRE(lut.shape == std::vector<std::int64_t>{3, 256});
        for (const auto& [stem, file] : family_images) {
            INFO(stem);
            const test::ref_tensor want = ref.get(stem + ".resized_u8");
            const vit::image prepared = vit::prepare_image(vit::load_image(test::data("images/" + file)), cfg);
            REQUIRE(want.shape == std::vector<std::int64_t>{prepared.height, prepared.width, 3});
            std::size_t differ = 0;
            for (std::size_t i = 0; i < want.bytes.size(); ++i) differ += want.bytes[i] != prepared.rgb[i];
            CHECK(differ == 0);
            // pixel_values = lut[c, byte], exactly, in float32 and double.
            std::vector<float> px(prepared.rgb.size());
            std::vector<double> pxd(prepared.rgb.size());
            vit::write_pixel_values(prepared, cfg, px.data());
            vit::write_pixel_values(prepared, cfg, pxd.data());
            const std::size_t plane = std::size_t(prepared.width) * std::size_t(prepared.height);
            std::size_t wrong = 0;
            for (std::size_t c = 0; c < 3; ++c)
                for (std::size_t i = 0; i < plane; ++i) {
                    const double v = lut.values[c * 256 + want.bytes[i * 3 + c]];
                    wrong += double(px[c * plane + i]) != v || pxd[c * plane + i] != v;
                }
            CHECK(wrong == 0);
            if (stem == "coco_cats") {
                const test::ref_tensor pv = ref.get("coco_cats.pixel_values");
                REQUIRE(pv.values.size() == px.size());
                std::size_t off = 0;
                for (std::size_t i = 0; i < px.size(); ++i) off += double(px[i]) != pv.values[i];
                CHECK(off == 0);
            }
        }
    }
}

TEST_CASE("family image processors: size and crop rules", "[family][preprocess]") {
    vit::preprocess_config cfg;
    cfg.size_mode = vit::size_rule::shortest_edge;
    cfg.shortest_edge = 256;
    // The long side is truncated: 256 * 640 / 480 = 341.33, 256 * 451 / 300 = 384.85.
    CHECK(vit::resized_size(640, 480, cfg) == std::array<int, 2>{341, 256});
    CHECK(vit::resized_size(300, 451, cfg) == std::array<int, 2>{256, 384});
    CHECK(vit::resized_size(7, 5, cfg) == std::array<int, 2>{358, 256});
    // Crop offsets floored; a smaller image is padded with ceil(missing / 2) before.
    vit::image img;
    img.width = 3;
    img.height = 2;
    img.rgb = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6};
    const vit::image c = vit::center_crop(img, 2, 4);
    REQUIRE(c.rgb.size() == 2 * 4 * 3);
    const std::vector<std::uint8_t> want = {0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 4, 4, 4, 5, 5, 5, 0, 0, 0, 0, 0, 0};
    CHECK(c.rgb == want);
    const vit::image p = vit::center_crop(img, 4, 1);
    CHECK(p.rgb == std::vector<std::uint8_t>{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3});
    // CLIP's integer size is a shortest edge, DeiT's a square.
    const vit::preprocess_config clip = vit::load_preprocess_config(fixture("clip-tiny", "model"));
    CHECK(clip.size_mode == vit::size_rule::shortest_edge);
    CHECK(clip.shortest_edge == 224);
    CHECK((clip.do_center_crop && clip.crop_width == 224 && clip.crop_height == 224));
    const vit::preprocess_config deit = vit::load_preprocess_config(fixture("deit-tiny-distilled", "model"));
    CHECK(deit.size_mode == vit::size_rule::exact);
    CHECK((deit.width == 256 && deit.height == 256));
    // The ViT processor keeps its double-precision normalisation.
    CHECK_FALSE(vit::load_preprocess_config(test::data("vit-tiny-random/model")).float32_normalize);
}
