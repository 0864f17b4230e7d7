// vit-convert's conversions: what each costs, tested on the fixtures.
#include <catch2/catch.hpp>

#include <vit/convert.hpp>

#include "helpers.hpp"

namespace {

vit::matrix<float> fixture_logits(const vit::model& m, const test::reference& ref) {
    std::vector<test::ref_tensor> imgs;
    for (const auto& s : test::image_stems()) imgs.push_back(ref.get(s + ".resized_u8"));
    return m.forward(test::pixels_from_refs<float>(imgs)).logits;
}

std::string converted(const std::string& src, vit::file_dtype to, const std::string& name) {
    const std::string dst = test::tmp_dir() + "/convert-" + name;
    REQUIRE(std::system(("rm -rf '" + dst + "'").c_str()) == 0);
    vit::convert_checkpoint(src, dst, to);
    return dst;
}

}  // namespace

TEST_CASE("vit-convert: f32 from pytorch_model.bin reproduces the logits exactly") {
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto src = test::data("vit-tiny-random/pytorch_model");
    const auto dst = converted(src, vit::file_dtype::f32, "f32");
    CHECK(vit::detail::file_exists(dst + "/config.json"));
    const auto a = fixture_logits(vit::load_model(src), ref), b = fixture_logits(vit::load_model(dst), ref);
    CHECK((a - b).cwiseAbs().maxCoeff() == 0.0f);
}

TEST_CASE("vit-convert: f16 and bf16 within their rounding bounds") {
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto src = test::data("vit-tiny-random/model");
    const auto base = fixture_logits(vit::load_model(src), ref);
    // Bounds as in test_checkpoint.cpp: weights rounded to 2^-11 (F16) and
    // 2^-8 (BF16) relative; measured 2.5e-3 and 1.1e-2 on this model.
    for (const auto& c : {std::make_pair(vit::file_dtype::f16, 5e-3), std::make_pair(vit::file_dtype::bf16, 3e-2)}) {
        const auto dst = converted(src, c.first, c.first == vit::file_dtype::f16 ? "f16" : "bf16");
        const auto store = vit::detail::read_safetensors(dst + "/model.safetensors");
        CHECK(store.find("vit.encoder.layer.0.output.dense.weight")->tensor.type ==
              (c.first == vit::file_dtype::f16 ? vit::detail::dtype::f16 : vit::detail::dtype::bf16));
        const double d = (fixture_logits(vit::load_model(dst), ref) - base).cwiseAbs().maxCoeff();
        CHECK(d > 0);
        CHECK(d < c.second);
    }
}

TEST_CASE("vit-convert: int8 keeps top-1 on every fixture image") {
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto src = test::data("vit-tiny-random/model");
    const auto dst = converted(src, vit::file_dtype::int8, "int8");
    const auto store = vit::detail::read_safetensors(dst + "/model.safetensors");
    const auto* w = store.find("vit.encoder.layer.1.intermediate.dense.weight");
    REQUIRE(w);
    CHECK(w->tensor.type == vit::detail::dtype::i8);
    REQUIRE(store.find("vit.encoder.layer.1.intermediate.dense.weight_scale"));
    CHECK(store.find("vit.encoder.layer.1.intermediate.dense.weight_scale")->tensor.shape == std::vector<std::int64_t>{256});
    CHECK(store.find("classifier.weight")->tensor.type == vit::detail::dtype::f32);

    const auto base = fixture_logits(vit::load_model(src), ref);
    const auto q = fixture_logits(vit::load_model(dst), ref);
    for (Eigen::Index i = 0; i < base.rows(); ++i) {
        Eigen::Index a, b;
        base.row(i).maxCoeff(&a);
        q.row(i).maxCoeff(&b);
        CHECK(a == b);
    }
    // Per-channel int8 weights and per-row 8-bit activations: measured 0.032
    // on this model (its logits span about +-1.5).
    const double d = (q - base).cwiseAbs().maxCoeff();
    WARN("int8 vs f32, largest logit difference: " << d);
    CHECK(d < 0.05);

    // The double model runs the dequantized weights with exact activations:
    // what remains is the weights' rounding alone, smaller than both together.
    const auto qd = vit::basic_model<double>::load(dst);
    std::vector<test::ref_tensor> imgs;
    for (const auto& s : test::image_stems()) imgs.push_back(ref.get(s + ".resized_u8"));
    const auto ld = qd.forward(test::pixels_from_refs<double>(imgs)).logits;
    const double weights_only = (ld.cast<float>() - base).cwiseAbs().maxCoeff();
    CHECK(weights_only > 0);
    CHECK(weights_only < 0.05);
}

TEST_CASE("vit-convert refuses what it cannot read") {
    CHECK_THROWS_WITH(vit::convert_checkpoint(test::tmp_dir() + "/nowhere", test::tmp_dir() + "/x", vit::file_dtype::f16),
                      Catch::Contains("config.json: cannot open"));
    CHECK_THROWS_WITH(vit::parse_file_dtype("f8"), Catch::Contains("'f8' is not one of"));
}
