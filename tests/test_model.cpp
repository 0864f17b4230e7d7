#include <chrono>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace {

const char* tiny = "vit-tiny-random/model";

template <class T>
void check_tiny_image(const vit::basic_model<T>& m, const test::reference& ref, const std::string& stem, double tol) {
    INFO("image " << stem);
    const auto px = test::pixels_from_refs<T>({ref.get(stem + ".resized_u8")});
    vit::forward_options opt;
    opt.output_hidden_states = opt.output_attentions = true;
    const auto out = m.forward(px, opt);
    CHECK(test::max_abs_diff(out.logits, ref.get(stem + ".logits").values) < tol);
    CHECK(test::max_abs_diff(out.cls_embedding, ref.get(stem + ".cls_embedding").values) < tol);
    const auto hs = ref.get(stem + ".hidden_states");  // [layers + 1, 145, hidden]
    REQUIRE(out.hidden_states.size() == std::size_t(hs.shape.at(0)));
    const std::size_t hs_stride = std::size_t(hs.shape.at(1) * hs.shape.at(2));
    for (std::size_t l = 0; l < out.hidden_states.size(); ++l) {
        INFO("hidden state " << l);
        CHECK(test::max_abs_diff(out.hidden_states[l], hs.values, l * hs_stride) < tol);
    }
    const auto at = ref.get(stem + ".attentions");  // [layers, heads, 145, 145]
    REQUIRE(out.attentions.size() == std::size_t(at.shape.at(0)));
    const std::size_t at_stride = std::size_t(at.shape.at(1) * at.shape.at(2) * at.shape.at(3));
    for (std::size_t l = 0; l < out.attentions.size(); ++l) {
        INFO("attention " << l);
        CHECK(test::max_abs_diff(out.attentions[l], at.values, l * at_stride) < tol);
    }
}

}  // namespace

TEST_CASE("tiny model: logits, hidden states and attentions match transformers (float)") {
    const auto m = vit::load_model(test::data(tiny));
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    CHECK(m.config().num_labels() == 10);
    CHECK(m.config().labels.at(8) == "hen");
    for (const auto& stem : test::image_stems()) check_tiny_image(m, ref, stem, 1e-5);
}

TEST_CASE("tiny model: the double instantiation matches to 1e-6") {
    const auto m = vit::basic_model<double>::load(test::data(tiny));
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    for (const auto& stem : test::image_stems()) check_tiny_image(m, ref, stem, 1e-6);
}

TEST_CASE("a batch gives the single-image results, bit for bit") {
    const auto m = vit::load_model(test::data(tiny));
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    std::vector<test::ref_tensor> imgs;
    for (const auto& stem : test::image_stems()) imgs.push_back(ref.get(stem + ".resized_u8"));
    // 5 images on 2 threads: two rounds of one image per thread (each in its
    // own workspace), then the fifth on both threads together.
    vit::workspace<float> ws(2);
    vit::forward_options opt;
    opt.output_hidden_states = opt.output_attentions = true;
    const auto batch = m.forward(test::pixels_from_refs<float>(imgs), opt, &ws);
    REQUIRE(batch.logits.rows() == 5);
    const auto batch_ref = ref.get("batch.logits_fp32");
    CHECK(test::max_abs_diff(batch.logits, batch_ref.values) < 1e-5);
    const Eigen::Index heads = m.config().num_attention_heads;
    for (std::size_t i = 0; i < imgs.size(); ++i) {
        const auto single = m.forward(test::pixels_from_refs<float>({imgs[i]}), opt, &ws);
        INFO("image " << i);
        const auto n = Eigen::Index(i);
        CHECK(batch.logits.row(n) == single.logits.row(0));
        CHECK(batch.last_hidden_state.middleRows(n * 145, 145) == single.last_hidden_state);
        REQUIRE(batch.hidden_states.size() == single.hidden_states.size());
        for (std::size_t l = 0; l < single.hidden_states.size(); ++l)
            CHECK(batch.hidden_states[l].middleRows(n * 145, 145) == single.hidden_states[l]);
        REQUIRE(batch.attentions.size() == single.attentions.size());
        for (std::size_t l = 0; l < single.attentions.size(); ++l)
            CHECK(batch.attentions[l].middleRows(n * heads * 145, heads * 145) == single.attentions[l]);
    }
}

TEST_CASE("a batch's profile counts each stage once per call") {
    // One image per thread runs the stages side by side: the profile keeps
    // wall time (the lanes' average), not the sum over threads.
    const auto m = vit::load_model(test::data(tiny));
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    std::vector<test::ref_tensor> imgs;
    for (const auto& stem : test::image_stems()) imgs.push_back(ref.get(stem + ".resized_u8"));
    imgs.resize(4);
    vit::workspace<float> ws(2);
    vit::profile prof;
    vit::forward_options opt;
    opt.profile = &prof;
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(test::pixels_from_refs<float>(imgs), opt, &ws);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(prof.calls == 1);
    for (const auto& s : vit::profile::stages()) {
        INFO("stage " << s.name);
        CHECK(prof.*s.seconds > 0);
    }
    CHECK(prof.total() <= wall);
}

TEST_CASE("profile::stages lists every stage once; add and total go through it") {
    vit::profile p;
    double power = 1;
    for (const auto& s : vit::profile::stages()) {
        CHECK(p.*s.seconds == 0);  // not listed twice
        p.*s.seconds = power;
        power *= 2;
    }
    // Every member got a distinct power of two: none was left out.
    const double members[] = {p.embeddings, p.layer_norm, p.qkv,    p.attention,
                              p.attention_output, p.mlp_up, p.mlp_down, p.head};
    double sum = 0;
    for (const double v : members) {
        CHECK(v > 0);
        sum += v;
    }
    CHECK(sum == 255);
    CHECK(p.total() == 255);
    vit::profile q;
    q.add(p, 0.5);
    q.add(p, 0.5);
    CHECK(q.total() == 255);
    CHECK(q.mlp_down == p.mlp_down);
}

TEST_CASE("backbone checkpoint: last_hidden_state and pooler_output") {
    const auto m = vit::load_model(test::data("vit-tiny-features/model"));
    REQUIRE(m.config().arch == vit::architecture::backbone);
    REQUIRE(m.has_pooler());
    const test::reference ref(test::data("vit-tiny-features/reference.safetensors"));
    for (const std::string stem : {"coco_cats", "chelsea", "camera_gray"}) {
        INFO("image " << stem);
        const auto out = m.forward(test::pixels_from_refs<float>({ref.get(stem + ".resized_u8")}));
        CHECK(out.logits.size() == 0);
        CHECK(test::max_abs_diff(out.last_hidden_state, ref.get(stem + ".last_hidden_state").values) < 1e-5);
        CHECK(test::max_abs_diff(out.pooler_output, ref.get(stem + ".pooler_output").values) < 1e-5);
    }
}

TEST_CASE("without last_hidden_state the CLS outputs are bit for bit the same") {
    // The last layer then runs its MLP for the CLS tokens only: rows are
    // independent after attention, so nothing the caller gets may change.
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    std::vector<test::ref_tensor> imgs;
    for (const auto& stem : test::image_stems()) imgs.push_back(ref.get(stem + ".resized_u8"));
    const auto px = test::pixels_from_refs<float>(imgs);
    vit::forward_options cls_only;
    cls_only.output_last_hidden_state = false;
    // Bit for bit on the AVX-512 kernels; the portable ones (Eigen) may round
    // differently on fewer rows.
    const bool exact = vit::detail::cpu().avx512;
    SECTION("float32, bf16 and int8, on 1 and 2 threads")
    for (const auto mode : {vit::precision::f32, vit::precision::bf16, vit::precision::int8}) {
        vit::load_options lo;
        lo.compute = mode;
        const auto m = vit::load_model(test::data(tiny), lo);
        for (const int threads : {1, 2}) {
            INFO("mode " << int(mode) << ", " << threads << " threads");
            vit::workspace<float> ws(threads);
            const auto all = m.forward(px, {}, &ws);
            const auto cls = m.forward(px, cls_only, &ws);
            CHECK(cls.last_hidden_state.size() == 0);
            CHECK(all.last_hidden_state.rows() == 5 * 145);
            if (exact) {
                CHECK(cls.logits == all.logits);
                CHECK(cls.cls_embedding == all.cls_embedding);
            } else {
                CHECK((cls.logits - all.logits).cwiseAbs().maxCoeff() < 1e-5f);
                CHECK((cls.cls_embedding - all.cls_embedding).cwiseAbs().maxCoeff() < 1e-5f);
            }
            // Asking for hidden states or attentions needs every token: all as usual.
            vit::forward_options with_states = cls_only;
            with_states.output_hidden_states = true;
            const auto hs = m.forward(px, with_states, &ws);
            CHECK(hs.logits == all.logits);
            CHECK(hs.hidden_states.back().rows() == 5 * 145);
        }
    }
    SECTION("backbone: pooler_output") {
        const auto m = vit::load_model(test::data("vit-tiny-features/model"));
        const test::reference fref(test::data("vit-tiny-features/reference.safetensors"));
        const auto one = test::pixels_from_refs<float>({fref.get("coco_cats.resized_u8")});
        const auto cls = m.forward(one, cls_only);
        const auto all = m.forward(one);
        if (exact)
            CHECK(cls.pooler_output == all.pooler_output);
        else
            CHECK((cls.pooler_output - all.pooler_output).cwiseAbs().maxCoeff() < 1e-5f);
        CHECK(test::max_abs_diff(cls.pooler_output, fref.get("coco_cats.pooler_output").values) < 1e-5);
    }
    SECTION("double: the products may round differently on fewer rows") {
        const auto m = vit::basic_model<double>::load(test::data(tiny));
        const auto pd = test::pixels_from_refs<double>(imgs);
        vit::forward_options o;
        o.output_last_hidden_state = false;
        CHECK((m.forward(pd, o).logits - m.forward(pd).logits).cwiseAbs().maxCoeff() < 1e-12);
    }
}

TEST_CASE("other resolutions interpolate the position embeddings as transformers does") {
    const auto m = vit::load_model(test::data(tiny));
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto img = ref.get("coco_cats.resized_u8_448x320");
    REQUIRE(img.shape == std::vector<std::int64_t>{320, 448, 3});
    const auto out = m.forward(test::pixels_from_refs<float>({img}));
    CHECK(out.tokens == 1 + 10 * 14);
    CHECK(test::max_abs_diff(out.logits, ref.get("coco_cats.logits_interpolated_448x320").values) < 1e-5);
}

TEST_CASE("forward refuses input of the wrong shape") {
    const auto m = vit::load_model(test::data(tiny));
    CHECK_THROWS_WITH(m.forward(vit::pixel_values<float>(1, 3, 100, 384)),
                      Catch::Contains("100") && Catch::Contains("patch size 32"));
    CHECK_THROWS_WITH(m.forward(vit::pixel_values<float>(1, 1, 384, 384)), Catch::Contains("1 channels"));
    CHECK_THROWS_WITH(m.forward(vit::pixel_values<float>()), Catch::Contains("empty batch"));
}

TEST_CASE("top_k is the softmax's best, best first") {
    const std::vector<float> logits = {0.f, 2.f, 1.f};
    const auto p = vit::top_k(logits.data(), 3, 2, {"a", "b", "c"});
    REQUIRE(p.size() == 2);
    const double z = 1 + std::exp(2.0) + std::exp(1.0);
    CHECK(p[0].label == "b");
    CHECK(p[0].score == Approx(std::exp(2.0) / z).epsilon(1e-12));
    CHECK(p[1].index == 2);
}

// classify on a batch gives each image its own list: the one classify(path)
// gives it alone, whose best label is transformers' (reference.json).
TEST_CASE("classify of a batch: one list per image, each its own classify's", "[classify]") {
    for (const std::string fixture : {"vit-tiny-random", "dinov2-tiny-cls"}) {
        INFO(fixture);
        const auto m = vit::load_model(test::data(fixture + "/model"));
        const auto tops = nlohmann::json::parse(std::ifstream(test::data(fixture + "/reference.json")));
        std::vector<std::string> paths;
        std::vector<vit::image> images;
        for (const char* name : {"coco_cats.png", "chelsea.png", "coffee.jpg", "camera_gray.png"}) {
            paths.push_back(test::data(std::string("images/") + name));
            images.push_back(vit::load_image(paths.back()));
        }
        const auto batch = m.classify(vit::make_pixel_values<float>(images, m.preprocessing()), 3);
        REQUIRE(batch.size() == paths.size());
        std::set<std::string> best;
        for (std::size_t i = 0; i < paths.size(); ++i) {
            INFO(paths[i]);
            const std::vector<vit::prediction> single = m.classify(paths[i], 3);
            REQUIRE(batch[i].size() == 3);
            REQUIRE(single.size() == 3);
            for (std::size_t r = 0; r < 3; ++r) {
                CHECK(batch[i][r].index == single[r].index);
                CHECK(batch[i][r].label == single[r].label);
                CHECK(batch[i][r].score == single[r].score);
            }
            const std::string stem = paths[i].substr(paths[i].rfind('/') + 1, paths[i].rfind('.') - paths[i].rfind('/') - 1);
            CHECK(single[0].label == tops.at("images").at(stem).at("top5").at(0).at(0).get<std::string>());
            best.insert(single[0].label);
        }
        // The images are told apart: not every image got image 0's list.
        CHECK(best.size() > 1);
    }
}
