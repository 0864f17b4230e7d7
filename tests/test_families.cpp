// The DINOv2, CLIP, SigLIP and DeiT fixtures (tests/data/FIXTURES.md):
// their image processors byte for byte, their models against the float64
// references.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <vit/convert.hpp>

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

namespace {

// The fixture image `stem` as the model saw it: resized_u8 through normalize_lut.
template <class T>
void fill_from_lut(const test::reference& ref, const std::string& key, T* chw) {
    const test::ref_tensor u8 = ref.get(key), lut = ref.get("normalize_lut");
    const std::size_t plane = std::size_t(u8.shape.at(0) * u8.shape.at(1));
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t i = 0; i < plane; ++i) chw[c * plane + i] = T(lut.values[c * 256 + u8.bytes[i * 3 + c]]);
}

template <class T>
vit::pixel_values<T> fixture_pixels(const test::reference& ref, const std::vector<std::string>& keys) {
    const test::ref_tensor first = ref.get(keys.at(0));
    vit::pixel_values<T> px(int(keys.size()), 3, int(first.shape.at(0)), int(first.shape.at(1)));
    for (std::size_t i = 0; i < keys.size(); ++i) fill_from_lut(ref, keys[i], px.image(int(i)));
    return px;
}

// The output a reference key names.
template <class T>
const vit::matrix<T>* output_named(const vit::output<T>& out, const std::string& name) {
    if (name == "last_hidden_state") return &out.last_hidden_state;
    if (name == "pooler_output") return &out.pooler_output;
    if (name == "image_embeds") return &out.image_embeds;
    if (name == "logits") return &out.logits;
    if (name == "cls_logits") return &out.cls_logits;
    if (name == "distillation_logits") return &out.distillation_logits;
    return nullptr;
}

const std::vector<std::string> output_names = {"last_hidden_state", "pooler_output", "image_embeds",
                                               "logits",            "cls_logits",    "distillation_logits"};

// Every stored output of every image within tol of the float64 truth; the
// largest difference.
template <class T>
double check_fixture(const std::string& name, double tol) {
    const vit::basic_model<T> m = vit::basic_model<T>::load(fixture(name, "model"));
    const test::reference ref(fixture(name, "reference.safetensors"));
    double worst = 0;
    vit::forward_options opt;
    for (const auto& img : family_images) {
        const std::string& stem = img.first;
        INFO(name << " " << stem);
        const vit::output<T> out = m.forward(fixture_pixels<T>(ref, {stem + ".resized_u8"}), opt);
        int checked = 0;
        for (const std::string& o : output_names) {
            if (!ref.has(stem + "." + o)) continue;
            INFO(o);
            const test::ref_tensor want = ref.get(stem + "." + o);
            const vit::matrix<T>* got = output_named(out, o);
            REQUIRE(std::size_t(got->size()) == want.values.size());
            const double d = test::max_abs_diff(*got, want.values);
            CHECK(d <= tol);
            worst = std::max(worst, d);
            ++checked;
        }
        CHECK(checked >= 1);
    }
    return worst;
}

// The float32 batch of all images against batch.<output>_fp32, and each row
// equal to the image run alone.
void check_batch(const std::string& name) {
    const vit::model m = vit::load_model(fixture(name, "model"));
    const test::reference ref(fixture(name, "reference.safetensors"));
    std::vector<std::string> keys;
    for (const auto& img : family_images) keys.push_back(img.first + ".resized_u8");
    const vit::pixel_values<float> px = fixture_pixels<float>(ref, keys);
    const vit::output<float> batch = m.forward(px);
    int checked = 0;
    for (const std::string& o : output_names) {
        if (!ref.has("batch." + o + "_fp32")) continue;
        INFO(name << " batch." << o);
        const test::ref_tensor want = ref.get("batch." + o + "_fp32");
        const vit::matrix<float>& got = *output_named(batch, o);
        REQUIRE(std::size_t(got.size()) == want.values.size());
        CHECK(test::max_abs_diff(got, want.values) <= 1e-5);
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const vit::output<float> one = m.forward(fixture_pixels<float>(ref, {keys[i]}));
            // Bit for bit on every path: a row's bits do not depend on its batch.
            CHECK(output_named(one, o)->row(0) == got.row(Eigen::Index(i)));
        }
        ++checked;
    }
    CHECK(checked == 1);
}

}  // namespace

TEST_CASE("DINOv2: every stored output within 1e-5, float32 and double", "[family][dinov2]") {
    for (const std::string name : {"dinov2-tiny", "dinov2-tiny-swiglu", "dinov2-tiny-cls", "dinov2-registers-tiny"}) {
        const double f = check_fixture<float>(name, 1e-5), d = check_fixture<double>(name, 1e-5);
        WARN(name << ": max |diff| float32 " << f << ", double " << d);
        check_batch(name);
    }
}

TEST_CASE("DINOv2: 280x196 input interpolates the 37x37 positions to 14x20", "[family][dinov2]") {
    const test::reference ref(fixture("dinov2-tiny", "reference.safetensors"));
    const vit::model m = vit::load_model(fixture("dinov2-tiny", "model"));
    const vit::basic_model<double> md = vit::basic_model<double>::load(fixture("dinov2-tiny", "model"));
    const vit::output<float> out = m.forward(fixture_pixels<float>(ref, {"coco_cats.resized_u8_280x196"}));
    const vit::output<double> outd = md.forward(fixture_pixels<double>(ref, {"coco_cats.resized_u8_280x196"}));
    REQUIRE(out.tokens == 1 + 14 * 20);
    const double a = test::max_abs_diff(out.last_hidden_state, ref.get("coco_cats.last_hidden_state_280x196").values);
    const double b = test::max_abs_diff(out.pooler_output, ref.get("coco_cats.pooler_output_280x196").values);
    const double c = test::max_abs_diff(outd.last_hidden_state, ref.get("coco_cats.last_hidden_state_280x196").values);
    WARN("280x196: max |diff| float32 " << std::max(a, b) << ", double " << c);
    CHECK(a <= 1e-5);
    CHECK(b <= 1e-5);
    CHECK(c <= 1e-5);
}

TEST_CASE("DeiT distilled: logits, cls_logits, distillation_logits within 1e-5", "[family][deit]") {
    const double f = check_fixture<float>("deit-tiny-distilled", 1e-5), d = check_fixture<double>("deit-tiny-distilled", 1e-5);
    WARN("deit-tiny-distilled: max |diff| float32 " << f << ", double " << d);
    check_batch("deit-tiny-distilled");
    const vit::model m = vit::load_model(fixture("deit-tiny-distilled", "model"));
    const vit::output<float> out = m.forward(vit::pixel_values<float>(1, 3, 224, 224));
    CHECK(out.tokens == 2 + 196);
    CHECK(out.logits == ((out.cls_logits + out.distillation_logits) / 2.0f).eval());
}

TEST_CASE("CLIP vision: last_hidden_state, pooler_output, image_embeds within 1e-5", "[family][clip]") {
    const double f = check_fixture<float>("clip-tiny", 1e-5), d = check_fixture<double>("clip-tiny", 1e-5);
    WARN("clip-tiny: max |diff| float32 " << f << ", double " << d);
    check_batch("clip-tiny");
}

TEST_CASE("SigLIP vision: last_hidden_state, pooler_output (MAP head) within 1e-5", "[family][siglip]") {
    const double f = check_fixture<float>("siglip-tiny", 1e-5), d = check_fixture<double>("siglip-tiny", 1e-5);
    WARN("siglip-tiny: max |diff| float32 " << f << ", double " << d);
    check_batch("siglip-tiny");
    const vit::model m = vit::load_model(fixture("siglip-tiny", "model"));
    CHECK(m.forward(vit::pixel_values<float>(1, 3, 224, 224)).tokens == 196);
}

TEST_CASE("each family's image embedding: its kind, width and transformers' values", "[family][embedding]") {
    // The output users retrieve with, per family, from transformers' own
    // get_image_features / pooler_output; the classifiers fall back to CLS.
    const std::vector<std::pair<std::string, std::string>> want_kind = {
        {"dinov2-tiny", "pooler_output"},           {"dinov2-registers-tiny", "pooler_output"},
        {"dinov2-tiny-cls", "cls_embedding"},       {"clip-tiny", "image_embeds"},
        {"siglip-tiny", "pooler_output"},           {"deit-tiny-distilled", "cls_embedding"}};
    for (const auto& [name, kind] : want_kind) {
        INFO(name);
        const vit::model m = vit::load_model(fixture(name, "model"));
        CHECK(std::string(m.embedding_kind()) == kind);
        CHECK(m.embedding_size() == (kind == "image_embeds" ? m.config().projection_dim : m.config().hidden_size));
        const test::reference ref(fixture(name, "reference.safetensors"));
        const vit::output<float> out = m.forward(fixture_pixels<float>(ref, {"coco_cats.resized_u8"}));
        const vit::matrix<float>& e = m.embedding(out);
        CHECK(e.rows() == 1);
        CHECK(e.cols() == m.embedding_size());
        if (ref.has("coco_cats." + kind)) CHECK(test::max_abs_diff(e, ref.get("coco_cats." + kind).values) <= 1e-5);
        else CHECK(e == out.cls_embedding);  // the classifiers store no embedding
    }
}

namespace {

double cosine(const vit::matrix<float>& a, const vit::matrix<float>& b, Eigen::Index row) {
    const Eigen::VectorXd x = a.row(row).cast<double>().transpose(), y = b.row(row).cast<double>().transpose();
    return x.dot(y) / (x.norm() * y.norm());
}

// The lowest cosine similarity, over the fixture images, of the embeddings in
// `prec` to float32's.
double lowest_cosine(const std::string& name, vit::precision prec) {
    vit::load_options lo;
    lo.compute = prec;
    const vit::model f32 = vit::load_model(fixture(name, "model")), low = vit::load_model(fixture(name, "model"), lo);
    const test::reference ref(fixture(name, "reference.safetensors"));
    std::vector<std::string> keys;
    for (const auto& img : family_images) keys.push_back(img.first + ".resized_u8");
    const vit::pixel_values<float> px = fixture_pixels<float>(ref, keys);
    const vit::output<float> a = f32.forward(px), b = low.forward(px);
    double worst = 1;
    for (Eigen::Index r = 0; r < Eigen::Index(keys.size()); ++r)
        worst = std::min(worst, cosine(f32.embedding(a), low.embedding(b), r));
    return worst;
}

}  // namespace

TEST_CASE("bf16 and int8 embeddings of DINOv2 and CLIP: cosine to float32", "[family][embedding][precision]") {
    for (const std::string name : {"dinov2-tiny", "dinov2-tiny-swiglu", "dinov2-registers-tiny", "clip-tiny"}) {
        INFO(name);
        const double bf16 = lowest_cosine(name, vit::precision::bf16), int8 = lowest_cosine(name, vit::precision::int8);
        WARN(name << ": lowest cosine to float32, bf16 " << bf16 << ", int8 " << int8);
        CHECK(bf16 >= 0.999);
        CHECK(int8 >= 0.99);
        CHECK(bf16 < 1.0);  // the low precision did run
    }
}

TEST_CASE("vit-convert on each family: the checkpoint loads with its processor, embeddings close", "[family][convert]") {
    for (const std::string name : {"dinov2-tiny-swiglu", "dinov2-registers-tiny", "clip-tiny", "siglip-tiny", "deit-tiny-distilled"}) {
        INFO(name);
        const vit::model f32 = vit::load_model(fixture(name, "model"));
        const test::reference ref(fixture(name, "reference.safetensors"));
        std::vector<std::string> keys;
        for (const auto& img : family_images) keys.push_back(img.first + ".resized_u8");
        const vit::pixel_values<float> px = fixture_pixels<float>(ref, keys);
        const vit::output<float> a = f32.forward(px);
        // Bounds as for bf16 / int8 compute above; file rounding costs the same.
        for (const auto& c : {std::make_pair(vit::file_dtype::bf16, 0.999), std::make_pair(vit::file_dtype::int8, 0.99)}) {
            const std::string dst = test::tmp_dir() + "/convert-" + name + (c.first == vit::file_dtype::bf16 ? "-bf16" : "-int8");
            REQUIRE(std::system(("rm -rf '" + dst + "'").c_str()) == 0);
            vit::convert_checkpoint(fixture(name, "model"), dst, c.first);
            const vit::model low = vit::load_model(dst);
            CHECK(std::string(low.embedding_kind()) == f32.embedding_kind());
            CHECK(low.preprocessing().crop_height == f32.preprocessing().crop_height);
            CHECK(low.preprocessing().shortest_edge == f32.preprocessing().shortest_edge);
            CHECK(low.preprocessing().filter == f32.preprocessing().filter);
            CHECK(low.preprocessing().mean == f32.preprocessing().mean);
            const vit::output<float> b = low.forward(px);
            double worst = 1;
            for (Eigen::Index r = 0; r < Eigen::Index(keys.size()); ++r)
                worst = std::min(worst, cosine(f32.embedding(a), low.embedding(b), r));
            WARN(name << " converted: lowest cosine to float32 " << worst);
            CHECK(worst >= c.second);
            CHECK(worst < 1.0);
        }
    }
}
