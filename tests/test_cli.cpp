// vit-classify as a user runs it: a real process, its output and exit status.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "cli.hpp"
#include "helpers.hpp"

namespace {

using test::json_lines;
using test::run;
using test::slurp;

const std::string tiny = test::data("vit-tiny-random/model");

}  // namespace

TEST_CASE("vit-classify --json --logits on coco_cats matches the reference") {
    const auto r = run("--model '" + tiny + "' --json --logits --top-k 3 '" + test::data("images/coco_cats.png") + "'");
    REQUIRE(r.status == 0);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == 1);
    const auto& j = lines[0];
    CHECK(j.at("image") == test::data("images/coco_cats.png"));
    REQUIRE(j.at("predictions").size() == 3);
    CHECK(j.at("predictions").at(0).at("label") == "hen");
    CHECK(j.at("predictions").at(0).at("index") == 8);
    CHECK(j.at("predictions").at(0).at("score").get<double>() == Approx(0.2046315).margin(1e-5));
    // The image path resizes with Pillow's exact arithmetic, so the pixels are
    // the reference's and the logits agree to float32 inference accuracy.
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto want = ref.get("coco_cats.logits").values;
    const auto& got = j.at("logits");
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got.at(i).get<double>() - want[i]) < 1e-5);
}

TEST_CASE("vit-classify: a folder with a corrupt file reports it and goes on") {
    const std::string dir = test::tmp_dir() + "/cli-folder";
    REQUIRE(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "' && cp '" + test::data("images") + "'/* '" + dir +
                         "/' && printf 'not an image' > '" + dir + "/broken.jpg'")
                            .c_str()) == 0);
    const auto r = run("--model '" + tiny + "' --json --batch 2 '" + dir + "'");
    CHECK(r.status == 1);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == 6);
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto tops = nlohmann::json::parse(slurp(test::data("vit-tiny-random/reference.json")));
    for (const auto& j : lines) {
        const std::string image = j.at("image");
        INFO(image);
        if (image.find("broken.jpg") != std::string::npos) {
            CHECK(j.at("error").get<std::string>().find("broken.jpg") != std::string::npos);
            continue;
        }
        const std::string stem = image.substr(image.rfind('/') + 1, image.rfind('.') - image.rfind('/') - 1);
        CHECK(j.at("predictions").at(0).at("label") == tops.at("images").at(stem).at("top5").at(0).at(0));
    }
    // sorted by name
    CHECK(lines[0].at("image").get<std::string>().find("broken.jpg") != std::string::npos);
}

TEST_CASE("vit-classify: hub ids resolve through the Hugging Face cache") {
    const std::string home = test::tmp_dir() + "/hf-home";
    const std::string repo = home + "/hub/models--acme--vit-tiny";
    REQUIRE(std::system(("rm -rf '" + home + "' && mkdir -p '" + repo + "/refs' '" + repo + "/snapshots/0123abc' && cp '" +
                         tiny + "'/* '" + repo + "/snapshots/0123abc/' && printf '0123abc' > '" + repo + "/refs/main'")
                            .c_str()) == 0);
    const std::string env = "HF_HUB_CACHE= HF_HOME='" + home + "'";
    const auto r = run("--model acme/vit-tiny --json '" + test::data("images/chelsea.png") + "'", env);
    CHECK(r.status == 0);
    CHECK(r.out.find("great white shark") != std::string::npos);

    const auto missing = run("--model acme/other '" + test::data("images/chelsea.png") + "' 2>&1", env);
    CHECK(missing.status == 3);
    CHECK(missing.out.find("huggingface-cli download acme/other") != std::string::npos);
    CHECK(missing.out.find("/acme/other/resolve/main/config.json") != std::string::npos);

    const auto from_env = run("--json '" + test::data("images/chelsea.png") + "'", env + " VIT_MODEL=acme/vit-tiny");
    CHECK(from_env.status == 0);
}

TEST_CASE("vit-classify --features on a backbone matches pooler_output") {
    const auto r = run("--model '" + test::data("vit-tiny-features/model") + "' --features '" +
                       test::data("images/coco_cats.png") + "'");
    REQUIRE(r.status == 0);
    const auto j = json_lines(r.out).at(0);
    CHECK(j.at("kind") == "pooler_output");
    const test::reference ref(test::data("vit-tiny-features/reference.safetensors"));
    const auto want = ref.get("coco_cats.pooler_output").values;
    REQUIRE(j.at("features").size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(j.at("features").at(i).get<double>() - want[i]) < 1e-5);
}

TEST_CASE("vit-classify --attention-map writes a heat map of the image's size") {
    const std::string out = test::tmp_dir() + "/attention.png";
    std::remove(out.c_str());
    const auto r = run("--model '" + tiny + "' --attention-map '" + out + "' '" + test::data("images/chelsea.png") + "'");
    REQUIRE(r.status == 0);
    const vit::image map = vit::load_image(out), img = vit::load_image(test::data("images/chelsea.png"));
    REQUIRE(map.width == img.width);
    REQUIRE(map.height == img.height);
    // Every pixel is tinted (alpha >= 0.25), and more where attention is high:
    // the map differs from the image, and not uniformly.
    std::size_t changed = 0;
    double lo = 1e9, hi = -1e9;
    for (std::size_t i = 0; i < img.rgb.size(); i += 3) {
        double d = 0;
        for (int c = 0; c < 3; ++c) d += std::abs(double(map.rgb[i + std::size_t(c)]) - img.rgb[i + std::size_t(c)]);
        changed += d > 0;
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    CHECK(changed > img.rgb.size() / 3 / 2);
    CHECK(hi > lo + 100);
}

TEST_CASE("vit-classify: --save-input writes the pixels the model sees") {
    const std::string out = test::tmp_dir() + "/input.png";
    const auto r = run("--model '" + tiny + "' --save-input '" + out + "' '" + test::data("images/coffee.jpg") + "'");
    REQUIRE(r.status == 0);
    const vit::image seen = vit::load_image(out);
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const auto want = ref.get("coffee.resized_u8").bytes;
    REQUIRE(seen.rgb.size() == want.size());
    std::size_t differing = 0;
    for (std::size_t i = 0; i < want.size(); ++i) differing += seen.rgb[i] != want[i];
    if (std::string(vit::jpeg_decoder()) == "libjpeg-turbo") CHECK(differing == 0);
    else WARN("stb_image JPEG decoding: " << differing << " bytes differ from Pillow's");
}

TEST_CASE("vit-classify: usage errors and bad files") {
    CHECK(run("--model '" + tiny + "' 2>/dev/null").status == 2);
    CHECK(run("--top-k zero x.png 2>/dev/null").status == 2);
    const auto missing = run("--model '" + tiny + "' /nonexistent.png 2>&1");
    CHECK(missing.status == 1);
    CHECK(missing.out.find("/nonexistent.png") != std::string::npos);
    const auto help = run("--help");
    CHECK(help.status == 0);
    CHECK(help.out.find("--attention-map") != std::string::npos);
}

TEST_CASE("vit-classify: a progress bar on a terminal, none in a pipe") {
    const std::string dir = test::tmp_dir() + "/cli-progress";
    REQUIRE(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "' && cp '" + test::data("images") + "'/*.png '" + dir + "/'").c_str()) == 0);
    const std::string args = "--model '" + tiny + "' --batch 1 '" + dir + "'";
    // script(1) runs the command on a pseudo-terminal and copies what it shows.
    const std::string tty_log = dir + "/tty.log";
    const std::string cmd = "script -qec \"'" + std::string(VIT_CLASSIFY) + "' " + args + " >/dev/null\" '" + tty_log + "' >/dev/null 2>&1";
    if (std::system("command -v script >/dev/null 2>&1") == 0) {
        REQUIRE(std::system(cmd.c_str()) == 0);
        CHECK(slurp(tty_log).find("images/s") != std::string::npos);
    } else {
        FAIL("script(1) from util-linux/bsdutils is needed for this test");
    }
    const auto piped = run(args + " 2>&1");
    CHECK(piped.status == 0);
    CHECK(piped.out.find("images/s") == std::string::npos);
}

namespace {

std::vector<double> unit(std::vector<double> v) {
    double ss = 0;
    for (double x : v) ss += x * x;
    for (double& x : v) x /= std::sqrt(ss);
    return v;
}

}  // namespace

TEST_CASE("vit-classify --features --normalize on CLIP: unit image_embeds of transformers'") {
    const auto r = run("--model '" + test::data("clip-tiny/model") + "' --features --normalize '" +
                       test::data("images/coco_cats.png") + "' '" + test::data("images/coffee.jpg") + "'");
    REQUIRE(r.status == 0);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == 2);
    const test::reference ref(test::data("clip-tiny/reference.safetensors"));
    for (std::size_t k = 0; k < 2; ++k) {
        const auto& j = lines[k];
        const std::string stem = k == 0 ? "coco_cats" : "coffee";
        INFO(stem);
        CHECK(j.at("kind") == "image_embeds");
        CHECK(j.at("normalized") == true);
        const auto raw = ref.get(stem + ".image_embeds").values;
        const std::vector<double> want = unit(std::vector<double>(raw.begin(), raw.end()));
        REQUIRE(j.at("features").size() == want.size());
        double norm = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
            const double x = j.at("features").at(i).get<double>();
            norm += x * x;
            CHECK(std::abs(x - want[i]) < 1e-5);
        }
        CHECK(std::abs(std::sqrt(norm) - 1) < 1e-6);
    }
}

TEST_CASE("vit-classify --normalize without --features is a usage error") {
    const auto r = run("--model '" + tiny + "' --normalize '" + test::data("images/coco_cats.png") + "' 2>&1");
    CHECK(r.status == 2);
    CHECK(r.out.find("--normalize goes with --features") != std::string::npos);
}

#ifdef VIT_SIMILARITY
TEST_CASE("examples/similarity: the cosine of transformers' DINOv2 pooler outputs") {
    const auto r = test::run_shell("'" + std::string(VIT_SIMILARITY) + "' '" + test::data("dinov2-tiny/model") + "' '" +
                                   test::data("images/coco_cats.png") + "' '" + test::data("images/chelsea.png") + "'");
    REQUIRE(r.status == 0);
    const test::reference ref(test::data("dinov2-tiny/reference.safetensors"));
    const auto a = ref.get("coco_cats.pooler_output").values, b = ref.get("chelsea.pooler_output").values;
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
    const double want = ab / std::sqrt(aa * bb);
    INFO(r.out);
    REQUIRE(r.out.rfind("pooler_output cosine ", 0) == 0);
    CHECK(std::abs(std::stod(r.out.substr(21)) - want) < 1e-5);
}
#endif

#ifdef VIT_CLASSIFY_EXAMPLE
TEST_CASE("examples/classify: the README's program prints transformers' top 5") {
    const auto r = test::run_shell("'" + std::string(VIT_CLASSIFY_EXAMPLE) + "' '" + tiny + "' '" +
                                   test::data("images/coco_cats.png") + "'");
    REQUIRE(r.status == 0);
    INFO(r.out);
    const auto top5 = nlohmann::json::parse(slurp(test::data("vit-tiny-random/reference.json")))
                          .at("images").at("coco_cats").at("top5");
    std::istringstream lines(r.out);
    std::string line;
    std::size_t n = 0;
    for (; std::getline(lines, line); ++n) {
        REQUIRE(n < top5.size());
        const auto sep = line.find("  ");
        REQUIRE(sep != std::string::npos);
        CHECK(std::abs(std::stod(line.substr(0, sep)) - top5.at(n).at(1).get<double>()) < 1e-5);
        CHECK(line.substr(sep + 2) == top5.at(n).at(0).get<std::string>());
    }
    CHECK(n == 5);
}
#endif

// ---- zero-shot labels and text embeddings (CLIP, SigLIP): vit-classify
// --label / --labels-file / --text against transformers' references
// (tests/data/TEXT.md: zeroshot.*, text.NNN.*).

namespace {

std::string sh_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::string image_file(const std::string& stem) {
    return test::data("images/" + stem + (stem == "coffee" ? ".jpg" : ".png"));
}

// The five images with the reference's labels, as vit-classify --json --logits
// prints them; checked against zeroshot.probs (1e-5) and logits_per_image (1e-4).
void check_zero_shot(const std::string& fixture, const std::string& label_args) {
    const auto refj = nlohmann::json::parse(slurp(test::data(fixture + "/reference.json")));
    const auto labels = refj.at("zeroshot").at("labels").get<std::vector<std::string>>();
    std::string files;
    for (const auto& stem : test::image_stems()) files += " " + sh_quote(image_file(stem));
    const auto r = run("--model '" + test::data(fixture + "/model") + "' --json --logits " + label_args + files);
    REQUIRE(r.status == 0);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == test::image_stems().size());
    const test::reference ref(test::data(fixture + "/reference.safetensors"));
    const auto probs = ref.get("zeroshot.probs").values, logits = ref.get("zeroshot.logits_per_image").values;
    const std::size_t L = labels.size();
    for (std::size_t k = 0; k < lines.size(); ++k) {
        INFO(fixture << " " << test::image_stems()[k]);
        const auto& j = lines[k];
        CHECK(j.at("image") == image_file(test::image_stems()[k]));
        const auto& preds = j.at("predictions");
        REQUIRE(preds.size() == L);  // every label without --top-k
        CHECK(preds.at(0).at("label") == refj.at("zeroshot").at("top_label_per_image").at(k));
        for (std::size_t i = 0; i < L; ++i) {
            const auto& p = preds.at(i);
            const std::size_t idx = p.at("index").get<std::size_t>();
            REQUIRE(idx < L);
            CHECK(p.at("label") == labels[idx]);
            CHECK(std::abs(p.at("score").get<double>() - probs[k * L + idx]) < 1e-5);
            if (i > 0) CHECK(p.at("score").get<double>() <= preds.at(i - 1).at("score").get<double>());
        }
        REQUIRE(j.at("logits").size() == L);  // label order
        for (std::size_t i = 0; i < L; ++i) CHECK(std::abs(j.at("logits").at(i).get<double>() - logits[k * L + i]) < 1e-4);
    }
}

std::string label_flags(const std::string& fixture) {
    const auto refj = nlohmann::json::parse(slurp(test::data(fixture + "/reference.json")));
    std::string args;
    for (const auto& l : refj.at("zeroshot").at("labels")) args += " --label " + sh_quote(l.get<std::string>());
    return args;
}

// An int64 vector of the reference (test::reference reads floats only).
std::vector<std::int64_t> int64s(const vit::detail::tensor_store& store, const std::string& name) {
    const auto* e = store.find(name);
    REQUIRE(e);
    REQUIRE(e->tensor.type == vit::detail::dtype::i64);
    std::vector<std::int64_t> out(std::size_t(e->tensor.numel()));
    std::memcpy(out.data(), e->tensor.data, out.size() * 8);
    return out;
}

// Every prompt of the fixture through --features --text --tokens: its
// text_embeds (1e-5) and the ids of its unpadded tokens.
void check_text_embeds(const std::string& fixture, bool normalize) {
    const auto prompts = nlohmann::json::parse(slurp(test::data(fixture + "/reference.json"))).at("prompts");
    std::string args;
    for (const auto& p : prompts) args += " --text " + sh_quote(p.get<std::string>());
    const auto r = run("--model '" + test::data(fixture + "/model") + "' --features --tokens --batch 7" +
                       (normalize ? " --normalize" : "") + args);
    REQUIRE(r.status == 0);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == prompts.size());
    const test::reference ref(test::data(fixture + "/reference.safetensors"));
    const auto store = vit::detail::read_safetensors(test::data(fixture + "/reference.safetensors"));
    for (std::size_t k = 0; k < lines.size(); ++k) {
        char stem[32];
        std::snprintf(stem, sizeof stem, "text.%03u.", unsigned(k));
        INFO(fixture << " prompt " << k << ": " << prompts.at(k));
        const auto& j = lines[k];
        CHECK(j.at("text") == prompts.at(k));
        CHECK(j.at("kind") == "text_embeds");
        CHECK(j.contains("normalized") == normalize);
        const auto raw = ref.get(std::string(stem) + "text_embeds").values;
        const std::vector<double> want = normalize ? unit(std::vector<double>(raw.begin(), raw.end())) : raw;
        REQUIRE(j.at("features").size() == want.size());
        for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(j.at("features").at(i).get<double>() - want[i]) < 1e-5);
        const auto ids = int64s(store, std::string(stem) + "input_ids"), mask = int64s(store, std::string(stem) + "attention_mask");
        std::vector<std::int64_t> want_ids;
        for (std::size_t t = 0; t < ids.size(); ++t)
            if (mask[t] != 0) want_ids.push_back(ids[t]);
        CHECK(j.at("input_ids").get<std::vector<std::int64_t>>() == want_ids);
    }
}

}  // namespace

TEST_CASE("vit-classify --label on CLIP: transformers' zero-shot probs and logits", "[text]") {
    check_zero_shot("clip-text-tiny", label_flags("clip-text-tiny"));
}

TEST_CASE("vit-classify --label on SigLIP: transformers' zero-shot probs and logits", "[text][sentencepiece]") {
    check_zero_shot("siglip-text-tiny", label_flags("siglip-text-tiny"));
}

TEST_CASE("vit-classify --labels-file: one a line, blanks skipped, as --label", "[text]") {
    const auto labels = nlohmann::json::parse(slurp(test::data("clip-text-tiny/reference.json"))).at("zeroshot").at("labels");
    // A byte order mark, CRLF, blank and whitespace-only lines, blanks around labels.
    std::string text = "\xEF\xBB\xBF";
    for (std::size_t i = 0; i < labels.size(); ++i)
        text += (i % 2 ? "  " : "") + labels[i].get<std::string>() + (i % 3 == 0 ? " \r\n\r\n" : "\n \t\n");
    const std::string file = test::tmp_dir() + "/labels.txt";
    std::ofstream(file, std::ios::binary) << text;
    // The first labels by --label, the rest from the file.
    std::string first;
    for (std::size_t i = 0; i < 2; ++i) first += " --label " + sh_quote(labels[i].get<std::string>());
    std::string rest;
    for (std::size_t i = 2; i < labels.size(); ++i) rest += labels[i].get<std::string>() + "\n";
    const std::string rest_file = test::tmp_dir() + "/rest.txt";
    std::ofstream(rest_file, std::ios::binary) << rest;
    check_zero_shot("clip-text-tiny", "--labels-file '" + file + "'");
    check_zero_shot("clip-text-tiny", first + " --labels-file '" + rest_file + "'");
}

TEST_CASE("vit-classify --template: the pipeline's sentences give its scores", "[text]") {
    // "{}" with the sentences themselves as labels: the same text the default
    // template makes of the labels, so the same reference scores.
    const auto zs = nlohmann::json::parse(slurp(test::data("clip-text-tiny/reference.json"))).at("zeroshot");
    const test::reference ref(test::data("clip-text-tiny/reference.safetensors"));
    const auto probs = ref.get("zeroshot.probs").values;
    std::string args = " --template '{}'";
    for (const auto& s : zs.at("sequences")) args += " --label " + sh_quote(s.get<std::string>());
    const auto r = run("--model '" + test::data("clip-text-tiny/model") + "' --json --top-k 3" + args + " " +
                       sh_quote(image_file("chelsea")));
    REQUIRE(r.status == 0);
    const auto j = json_lines(r.out).at(0);
    REQUIRE(j.at("predictions").size() == 3);  // --top-k limits the labels
    const std::size_t L = zs.at("labels").size();
    for (const auto& p : j.at("predictions"))
        CHECK(std::abs(p.at("score").get<double>() - probs[1 * L + p.at("index").get<std::size_t>()]) < 1e-5);
}

TEST_CASE("vit-classify --features --text on CLIP: transformers' text_embeds and ids", "[text]") {
    check_text_embeds("clip-text-tiny", false);
    check_text_embeds("clip-text-tiny", true);
}

TEST_CASE("vit-classify --features --text on SigLIP: transformers' text_embeds and ids", "[text][sentencepiece]") {
    check_text_embeds("siglip-text-tiny", false);
}

TEST_CASE("vit-classify: zero-shot and text errors are clear", "[text]") {
    const std::string clip = test::data("clip-text-tiny/model"), cats = sh_quote(image_file("coco_cats"));
    auto fails = [](const std::string& args, int status, const std::vector<std::string>& said) {
        const auto r = run(args + " 2>&1");
        INFO(args << "\n" << r.out);
        CHECK(r.status == status);
        for (const auto& s : said) CHECK(r.out.find(s) != std::string::npos);
    };
    // Text asked of a vision-only checkpoint, and of a CLIP one without its tokenizer files.
    fails("--model '" + tiny + "' --label cat --label dog " + cats, 3, {tiny});
    fails("--model '" + tiny + "' --features --text 'a cat'", 3, {tiny});
    const std::string bare = test::tmp_dir() + "/clip-no-tokenizer";
    REQUIRE(std::system(("rm -rf '" + bare + "' && mkdir -p '" + bare + "' && cp '" + clip + "'/*.json '" + clip +
                         "'/model.safetensors '" + bare + "/' && rm '" + bare + "/tokenizer.json' '" + bare + "/vocab.json'")
                            .c_str()) == 0);
    fails("--model '" + bare + "' --label cat " + cats, 3, {bare, "tokenizer"});
    fails("--model '" + bare + "' --features --text cat", 3, {bare, "tokenizer"});
    // Not UTF-8: in --text, --label, a labels file.
    fails("--model '" + clip + "' --features --text ok --text \"$(printf 'caf\\351')\"", 2, {"--text 2", "UTF-8"});
    fails("--model '" + clip + "' --label \"$(printf '\\377')\" " + cats, 2, {"--label 1", "UTF-8"});
    const std::string bad = test::tmp_dir() + "/bad-labels.txt";
    std::ofstream(bad, std::ios::binary) << "cat\ndog\nca\xC3(t\n";
    fails("--model '" + clip + "' --labels-file '" + bad + "' " + cats, 3, {bad + ":3", "UTF-8"});
    // Empty label lists, empty and repeated labels.
    const std::string empty = test::tmp_dir() + "/empty-labels.txt";
    std::ofstream(empty, std::ios::binary) << "\n  \n\t\n";
    fails("--model '" + clip + "' --labels-file '" + empty + "' " + cats, 3, {empty, "no labels"});
    fails("--model '" + clip + "' --labels-file /nonexistent/labels.txt " + cats, 3, {"/nonexistent/labels.txt"});
    fails("--model '" + clip + "' --label '' " + cats, 2, {"--label 1", "empty"});
    fails("--model '" + clip + "' --label cat --label dog --label cat " + cats, 2, {"--label 3", "'cat'", "twice"});
    // Flags that do not go together.
    fails("--model '" + clip + "' --text cat", 2, {"--text goes with --features"});
    fails("--model '" + clip + "' --features --text cat " + cats, 2, {"--text reads no images"});
    fails("--model '" + clip + "' --tokens " + cats, 2, {"--tokens goes with --text"});
    fails("--model '" + clip + "' --features --label cat " + cats, 2, {"--features"});
    fails("--model '" + clip + "' --template 'a {}' " + cats, 2, {"--template goes with --label"});
    fails("--model '" + clip + "' --label cat --template 'a photo' " + cats, 2, {"--template", "{}"});
    // A CLIP checkpoint has no classifier: labels or --features, says the message.
    fails("--model '" + clip + "' " + cats, 3, {"--label"});
}
