// vit-classify as a user runs it: a real process, its output and exit status.
#include <catch2/catch.hpp>

#include <cstdio>
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
