// The CLIP and SigLIP text towers and zero-shot scores against transformers'
// float64 references (tests/data/{clip,siglip}-text-tiny, tests/data/TEXT.md),
// with this library's own tokenizer ids.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>
#include <vit/text.hpp>

#include "helpers.hpp"

namespace {

nlohmann::json reference_json(const std::string& fixture) {
    nlohmann::json j;
    std::ifstream(test::data(fixture + "/reference.json")) >> j;
    return j;
}

std::string key(const char* kind, std::size_t i, const std::string& what) {
    char k[32];
    std::snprintf(k, sizeof k, "%s.%03u.", kind, unsigned(i));
    return k + what;
}

std::vector<std::int64_t> int_row(const vit::detail::tensor_store& s, const std::string& name) {
    const auto* e = s.find(name);
    REQUIRE(e);
    REQUIRE(e->tensor.type == vit::detail::dtype::i64);
    std::vector<std::int64_t> v(std::size_t(e->tensor.numel()));
    std::memcpy(v.data(), e->tensor.data, v.size() * 8);
    return v;
}

// Every prompt's last_hidden_state, pooler_output and text_embeds (and SigLIP's
// pooler_output_nomask) within tol, from the model's own tokenizer ids.
template <class T>
void check_text_tower(const std::string& fixture, double tol) {
    const auto ref_store = vit::detail::read_safetensors(test::data(fixture + "/reference.safetensors"));
    const test::reference ref(test::data(fixture + "/reference.safetensors"));
    const auto prompts = reference_json(fixture).at("prompts").get<std::vector<std::string>>();
    const auto m = vit::basic_text_model<T>::load(test::data(fixture + "/model"));
    const vit::token_batch tb = m.encode(prompts);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        CAPTURE(i);
        REQUIRE(tb.input_ids[i] == int_row(ref_store, key("text", i, "input_ids")));
        REQUIRE(tb.attention_mask[i] == int_row(ref_store, key("text", i, "attention_mask")));
    }
    const vit::text_output<T> out = m.forward(tb);
    REQUIRE(out.batch == int(prompts.size()));
    const std::size_t Tk = std::size_t(out.tokens), H = std::size_t(m.hidden_size());
    double worst[3] = {0, 0, 0};
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        worst[0] = std::max(worst[0], test::max_abs_diff(out.last_hidden_state.middleRows(Eigen::Index(i * Tk), Eigen::Index(Tk)),
                                                         ref.get(key("text", i, "last_hidden_state")).values));
        worst[1] = std::max(worst[1], test::max_abs_diff(out.pooler_output.row(Eigen::Index(i)),
                                                         ref.get(key("text", i, "pooler_output")).values));
        worst[2] = std::max(worst[2], test::max_abs_diff(out.text_embeds.row(Eigen::Index(i)),
                                                         ref.get(key("text", i, "text_embeds")).values));
    }
    INFO(fixture << " last_hidden_state " << worst[0] << " pooler_output " << worst[1] << " text_embeds " << worst[2]);
    CHECK(worst[0] < tol);
    CHECK(worst[1] < tol);
    CHECK(worst[2] < tol);
    CHECK(out.last_hidden_state.cols() == Eigen::Index(H));
    if (ref.has(key("text", 0, "pooler_output_nomask"))) {
        vit::token_batch nomask = tb;
        nomask.attention_mask.clear();  // every key seen, as a call with input_ids alone
        const vit::text_output<T> o = m.forward(nomask);
        double w = 0;
        for (std::size_t i = 0; i < prompts.size(); ++i)
            w = std::max(w, test::max_abs_diff(o.pooler_output.row(Eigen::Index(i)),
                                               ref.get(key("text", i, "pooler_output_nomask")).values));
        INFO("pooler_output_nomask " << w);
        CHECK(w < tol);
        CHECK(w == Approx(w));
    }
}

// zeroshot.probs within 1e-5, logits_per_image within 1e-4, from the image
// files through the real image path and the labels through the template.
template <class T>
void check_zero_shot(const std::string& fixture) {
    const test::reference ref(test::data(fixture + "/reference.safetensors"));
    const auto ref_store = vit::detail::read_safetensors(test::data(fixture + "/reference.safetensors"));
    const nlohmann::json zs = reference_json(fixture).at("zeroshot");
    const auto labels = zs.at("labels").get<std::vector<std::string>>();
    const auto m = vit::basic_zero_shot_model<T>::load(test::data(fixture + "/model"));
    CHECK(m.logit_scale() == Approx(zs.at("logit_scale").get<double>()).epsilon(1e-6));
    const vit::matrix<T> le = m.label_embeddings(labels, zs.at("hypothesis_template").get<std::string>());
    CHECK(test::max_abs_diff(le, ref.get("zeroshot.text_embeds").values) < 1e-5);
    const test::ref_tensor logits = ref.get("zeroshot.logits_per_image"), probs = ref.get("zeroshot.probs");
    const auto images = reference_json(fixture).at("images").get<std::vector<std::string>>();
    REQUIRE(images.size() == test::image_stems().size());
    double wl = 0, wp = 0;
    for (std::size_t i = 0; i < images.size(); ++i) {
        const std::string file = images[i] == "coffee" ? "coffee.jpg" : images[i] + ".png";
        const auto px = vit::make_pixel_values<T>({vit::load_image(test::data("images/" + file))},
                                                  m.image().preprocessing());
        const vit::zero_shot_scores<T> s = m.scores(px, labels);
        REQUIRE(s.probs.cols() == Eigen::Index(labels.size()));
        wl = std::max(wl, test::max_abs_diff(s.logits_per_image, logits.values, i * labels.size()));
        wp = std::max(wp, test::max_abs_diff(s.probs, probs.values, i * labels.size()));
        // classify: the same probabilities, best first.
        const auto best = m.classify(test::data("images/" + file), labels, 3);
        REQUIRE(best.size() == 3);
        CHECK(best[0].label == zs.at("top_label_per_image").at(i).get<std::string>());
        CHECK(best[0].score == Approx(double(s.probs.row(0).maxCoeff())));
        CHECK(best[0].score >= best[1].score);
    }
    INFO(fixture << " logits " << wl << " probs " << wp);
    CHECK(wl < 1e-4);
    CHECK(wp < 1e-5);
}

// A batch's rows equal each text run alone. SigLIP pads every text to 64:
// bit for bit. CLIP pads a text alone to its own length (the causal mask
// keeps the padding out): bit for bit on the fused float32 attention, whose
// sums do not depend on the key count; Eigen's portable attention (double,
// CPUs without AVX-512) picks other product kernels for a few keys, so there
// the rows agree to rounding.
template <class T>
void check_batch_equals_single(const std::string& fixture) {
    const auto prompts = reference_json(fixture).at("prompts").get<std::vector<std::string>>();
    const auto m = vit::basic_text_model<T>::load(test::data(fixture + "/model"));
    const vit::matrix<T> all = m.embed(prompts);
    const bool exact = fixture.rfind("siglip", 0) == 0 ||
                       (std::is_same<T, float>::value &&
                        vit::detail::attention_available<float>(vit::detail::attention_kernel::f32));
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        CAPTURE(i);
        const vit::matrix<T> one = m.embed({prompts[i]});
        REQUIRE(one.rows() == 1);
        if (exact)
            CHECK(one.row(0) == all.row(Eigen::Index(i)));
        else
            CHECK((one.row(0) - all.row(Eigen::Index(i))).cwiseAbs().maxCoeff() < (sizeof(T) == 8 ? 1e-13 : 1e-5));
    }
}

double lowest_cosine(const vit::matrix<float>& a, const vit::matrix<float>& b) {
    double worst = 1;
    for (Eigen::Index i = 0; i < a.rows(); ++i) {
        const double c = double(a.row(i).dot(b.row(i))) / (double(a.row(i).norm()) * double(b.row(i).norm()));
        worst = std::min(worst, c);
    }
    return worst;
}

void check_precisions(const std::string& fixture) {
    const auto prompts = reference_json(fixture).at("prompts").get<std::vector<std::string>>();
    const std::string dir = test::data(fixture + "/model");
    const vit::matrix<float> f32 = vit::load_text_model(dir).embed(prompts);
    vit::load_options o;
    o.compute = vit::precision::bf16;
    const double bf16 = lowest_cosine(f32, vit::load_text_model(dir, o).embed(prompts));
    o.compute = vit::precision::int8;
    const double int8 = lowest_cosine(f32, vit::load_text_model(dir, o).embed(prompts));
    INFO(fixture << " bf16 cosine " << bf16 << " int8 cosine " << int8);
    CHECK(bf16 >= 0.999);
    CHECK(int8 >= 0.99);
}

// A copy of a fixture's model folder to break.
std::string copy_model(const std::string& fixture) {
    const std::string dir = test::tmp_dir() + "/" + fixture;
    std::filesystem::remove_all(dir);
    std::filesystem::copy(test::data(fixture + "/model"), dir, std::filesystem::copy_options::recursive);
    return dir;
}

template <class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const vit::error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("CLIP text tower: hidden states, pooler, text_embeds within 1e-5 (float, double)", "[text]") {
    check_text_tower<float>("clip-text-tiny", 1e-5);
    check_text_tower<double>("clip-text-tiny", 1e-5);
}

TEST_CASE("SigLIP text tower: hidden states, pooler, text_embeds within 1e-5 (float, double)",
          "[text][sentencepiece]") {
    check_text_tower<float>("siglip-text-tiny", 1e-5);
    check_text_tower<double>("siglip-text-tiny", 1e-5);
}

TEST_CASE("CLIP zero-shot: logits and probabilities of the fixture images", "[text]") {
    check_zero_shot<float>("clip-text-tiny");
    check_zero_shot<double>("clip-text-tiny");
}

TEST_CASE("SigLIP zero-shot: logits and probabilities of the fixture images", "[text][sentencepiece]") {
    check_zero_shot<float>("siglip-text-tiny");
    check_zero_shot<double>("siglip-text-tiny");
}

TEST_CASE("text towers: a batch's rows equal each text alone", "[text][sentencepiece]") {
    check_batch_equals_single<float>("clip-text-tiny");
    check_batch_equals_single<double>("clip-text-tiny");
    check_batch_equals_single<float>("siglip-text-tiny");
    check_batch_equals_single<double>("siglip-text-tiny");
}

TEST_CASE("text towers in bf16 and int8 stay close to float32", "[text][sentencepiece]") {
    check_precisions("clip-text-tiny");
    check_precisions("siglip-text-tiny");
}

TEST_CASE("text towers: sizes, and a text longer than the context truncated", "[text]") {
    const auto m = vit::load_text_model(test::data("clip-text-tiny/model"));
    CHECK(m.hidden_size() == 32);
    CHECK(m.embedding_size() == 32);
    CHECK(m.context_length() == 77);
    CHECK(std::string(m.family()) == "CLIP");
    std::string long_text;
    for (int i = 0; i < 100; ++i) long_text += "cat ";
    const vit::token_batch tb = m.encode({long_text, "a dog"});
    CHECK(tb.input_ids[0].size() == 77);
    CHECK(tb.input_ids[0].back() == 49407);
    CHECK(m.embed({long_text}).rows() == 1);
}

TEST_CASE("text errors: no text tower, missing tokenizer, bad weights, bad masks", "[text][hostile]") {
    using Catch::Matchers::Contains;
    const std::string vit_dir = test::data("vit-tiny-random/model");
    std::string e = error_of([&] { vit::load_text_model(vit_dir); });
    CHECK_THAT(e, Contains(vit_dir) && Contains("no text tower"));
    // clip-tiny holds the text tower's weights but no tokenizer files.
    e = error_of([&] { vit::load_zero_shot_model(test::data("clip-tiny/model")); });
    CHECK_THAT(e, Contains("clip-tiny/model") && Contains("no CLIP tokenizer"));

    // CLIP without its tokenizer files.
    std::string dir = copy_model("clip-text-tiny");
    for (const char* f : {"tokenizer.json", "vocab.json", "merges.txt"}) std::filesystem::remove(dir + "/" + f);
    e = error_of([&] { vit::load_text_model(dir); });
    CHECK_THAT(e, Contains(dir) && Contains("tokenizer.json is missing"));

    // Weights that do not fit the config, and a truncated file.
    dir = copy_model("clip-text-tiny");
    nlohmann::json cfg;
    std::ifstream(dir + "/config.json") >> cfg;
    cfg["text_config"]["intermediate_size"] = 60;
    std::ofstream(dir + "/config.json") << cfg.dump();
    e = error_of([&] { vit::load_text_model(dir); });
    CHECK_THAT(e, Contains("model.safetensors: tensor 'text_model.encoder.layers.0.mlp.fc1.") &&
                      Contains("shape [64], expected [60]"));
    dir = copy_model("clip-text-tiny");
    std::filesystem::resize_file(dir + "/model.safetensors", std::filesystem::file_size(dir + "/model.safetensors") / 2);
    e = error_of([&] { vit::load_text_model(dir); });
    CHECK_THAT(e, Contains("model.safetensors"));

    const auto m = vit::load_text_model(test::data("clip-text-tiny/model"));
    vit::token_batch tb = m.encode({"a photo of a cat", "a dog"});
    vit::token_batch bad = tb;
    bad.attention_mask[1] = {1, 0, 1, 0, 0, 0, 0};
    bad.attention_mask[1].resize(tb.input_ids[1].size(), 0);
    CHECK_THAT(error_of([&] { m.forward(bad); }), Contains("text 1") && Contains("not right-padded"));
    bad = tb;
    bad.input_ids[0][1] = 49408;
    CHECK_THAT(error_of([&] { m.forward(bad); }), Contains("outside the vocabulary"));
    bad = tb;
    bad.input_ids[1].pop_back();
    CHECK_THAT(error_of([&] { m.forward(bad); }), Contains("pad the batch"));
    bad.input_ids.assign(1, std::vector<std::int64_t>(78, 320));
    bad.attention_mask.clear();
    CHECK_THAT(error_of([&] { m.forward(bad); }), Contains("more than the text tower's 77 positions"));

    // A CLIP label sentence past 77 tokens: transformers' pipeline does not
    // truncate it (its model would fail), so neither do we.
    const auto z = vit::load_zero_shot_model(test::data("clip-text-tiny/model"));
    std::string long_label;
    for (int i = 0; i < 80; ++i) long_label += "cat ";
    CHECK_THAT(error_of([&] { z.label_embeddings({"dog", long_label}); }),
               Contains("label 1") && Contains("more than the text tower's 77"));
}

TEST_CASE("zero-shot from towers already loaded: shared, the same scores", "[text]") {
    using Catch::Matchers::Contains;
    const std::string dir = test::data("clip-text-tiny/model");
    const auto image = std::make_shared<const vit::model>(vit::load_model(dir));
    const auto text = std::make_shared<const vit::text_model>(vit::load_text_model(dir));
    const auto shared = vit::zero_shot_model::from(image, text, dir);
    CHECK(&shared.image() == image.get());
    CHECK(&shared.text() == text.get());
    const auto loaded = vit::load_zero_shot_model(dir);
    const std::vector<std::string> labels = {"a cat", "a dog", "a plane"};
    const auto px = vit::make_pixel_values<float>({vit::load_image(test::data("images/coffee.jpg"))},
                                                  image->preprocessing());
    const vit::zero_shot_scores<float> a = shared.scores(px, labels), b = loaded.scores(px, labels);
    CHECK(a.logits_per_image == b.logits_per_image);
    CHECK(a.probs == b.probs);

    CHECK_THAT(error_of([&] { vit::zero_shot_model::from(nullptr, text, dir); }),
               Contains(dir) && Contains("needs both an image and a text model"));
    // An image tower whose embedding does not match the text tower's.
    const auto other = std::make_shared<const vit::model>(vit::load_model(test::data("vit-tiny-random/model")));
    CHECK_THAT(error_of([&] { vit::zero_shot_model::from(other, text, "mixed"); }),
               Contains("mixed: the image embedding has"));
}

#ifdef VIT_ZERO_SHOT_EXAMPLE
#include <cstdio>
#include <sstream>
TEST_CASE("examples/zero_shot: the README's program prints transformers' probabilities", "[text]") {
    const nlohmann::json zs = reference_json("clip-text-tiny").at("zeroshot");
    const auto labels = zs.at("labels").get<std::vector<std::string>>();
    std::string cmd = "'" + std::string(VIT_ZERO_SHOT_EXAMPLE) + "' '" + test::data("clip-text-tiny/model") + "' '" +
                      test::data("images/coffee.jpg") + "'";
    for (const auto& l : labels) cmd += " '" + l + "'";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    REQUIRE(pclose(p) == 0);
    INFO(out);
    // coffee is image 3 of the reference.
    const test::ref_tensor probs = test::reference(test::data("clip-text-tiny/reference.safetensors")).get("zeroshot.probs");
    std::istringstream lines(out);
    std::string line;
    std::size_t n = 0;
    double last = 2;
    for (; std::getline(lines, line); ++n) {
        const auto sep = line.find("  ");
        REQUIRE(sep != std::string::npos);
        const double score = std::stod(line.substr(0, sep));
        const auto it = std::find(labels.begin(), labels.end(), line.substr(sep + 2));
        REQUIRE(it != labels.end());
        CHECK(std::abs(score - probs.values.at(3 * labels.size() + std::size_t(it - labels.begin()))) < 1e-5);
        CHECK(score <= last);
        last = score;
    }
    CHECK(n == labels.size());
    CHECK(out.substr(out.find("  ") + 2, 15) == "a cup of coffee");
}
#endif

TEST_CASE("CLIP text: a legacy eos_token_id and a CLIPTextModelWithProjection config change nothing", "[text]") {
    const std::vector<std::string> texts = {"a photo of a cat", "<|endoftext|> early", "", "two dogs"};
    const vit::matrix<float> want = vit::load_text_model(test::data("clip-text-tiny/model")).embed(texts);
    // The hub's old configs say eos_token_id 2 (id 2 is '#'): the pooling never searches for it.
    std::string dir = copy_model("clip-text-tiny");
    nlohmann::json cfg;
    std::ifstream(dir + "/config.json") >> cfg;
    cfg["text_config"]["eos_token_id"] = 2;
    cfg["text_config"]["bos_token_id"] = 0;
    std::ofstream(dir + "/config.json") << cfg.dump();
    CHECK(vit::load_text_model(dir).embed(texts) == want);
    // The text tower's config alone, as CLIPTextModelWithProjection saves it.
    nlohmann::json text = cfg["text_config"];
    text["architectures"] = {"CLIPTextModelWithProjection"};
    std::ofstream(dir + "/config.json") << text.dump();
    const auto t = vit::load_text_model(dir);
    CHECK(t.embedding_size() == 32);
    CHECK(t.embed(texts) == want);
    // CLIPTextModel: no projection, text_embeds = pooler_output.
    text["architectures"] = {"CLIPTextModel"};
    std::ofstream(dir + "/config.json") << text.dump();
    const auto p = vit::load_text_model(dir);
    const vit::text_output<float> out = p.forward(p.encode(texts));
    CHECK(out.text_embeds == out.pooler_output);
    // A vision tower alone.
    nlohmann::json vision = cfg["vision_config"];
    vision["architectures"] = {"CLIPVisionModelWithProjection"};
    std::ofstream(dir + "/config.json") << vision.dump();
    CHECK_THAT(error_of([&] { vit::load_text_model(dir); }), Catch::Matchers::Contains("no text tower"));
}
