// vit-search as a user runs it: the ranking against cosine similarities
// computed here from first principles (long double, from vit-classify's JSON
// features or the rows the test wrote), --top-k past the collection, FAISS,
// and the errors.
#ifdef VIT_SEARCH
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cli.hpp"
#include "helpers.hpp"
#include "tmp_dir.hpp"

namespace {

namespace fs = std::filesystem;

std::string q(const std::string& s) { return "'" + s + "'"; }

// vit-search with `args`; stdout, with stderr appended after a marker line.
test::run_result search(const std::string& args) {
    return test::run_shell("'" + std::string(VIT_SEARCH) + "' " + args + " 2>&1");
}
test::run_result search_json(const std::string& args) {
    return test::run_shell("'" + std::string(VIT_SEARCH) + "' " + args + " 2>/dev/null");
}
[[maybe_unused]] test::run_result search_out(const std::string& args, const std::string& err_file) {
    return test::run_shell("'" + std::string(VIT_SEARCH) + "' " + args + " 2>" + q(err_file));
}

// An image's embedding as vit-classify --features prints it.
std::vector<long double> features(const std::string& model, const std::string& image, std::string* kind = nullptr) {
    const auto r = test::run("--features --model " + q(model) + " " + q(image));
    REQUIRE(r.status == 0);
    const auto j = test::json_lines(r.out).at(0);
    if (kind) *kind = j.at("kind").get<std::string>();
    std::vector<long double> v;
    for (const auto& x : j.at("features")) v.push_back(x.get<double>());
    return v;
}

long double cosine(const std::vector<long double>& a, const std::vector<long double>& b) {
    long double d = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    return d / std::sqrt(na * nb);
}

struct ranked {
    std::string image;
    long double score;
};

std::vector<ranked> rank(const std::map<std::string, std::vector<long double>>& rows, const std::vector<long double>& query) {
    std::vector<ranked> out;
    for (const auto& kv : rows) out.push_back({kv.first, cosine(kv.second, query)});
    std::stable_sort(out.begin(), out.end(), [](const ranked& a, const ranked& b) { return a.score > b.score; });
    return out;
}

// The --json lines against the expected ranking: same images in the same order, scores within 1e-5.
void check_ranking(const std::string& out, const std::vector<ranked>& want, std::size_t k) {
    const auto got = test::json_lines(out);
    REQUIRE(got.size() == std::min(k, want.size()));
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("rank " << i + 1);
        CHECK(got[i].at("image").get<std::string>() == want[i].image);
        CHECK(std::abs(got[i].at("score").get<double>() - double(want[i].score)) < 1e-5);
    }
}

// A float32 .npy as NumPy's format 1.0 writes it.
void write_npy(const std::string& path, const std::vector<float>& data, std::size_t rows, std::size_t width) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " + std::to_string(width) + "), }";
    const std::size_t total = ((10 + dict.size() + 1 + 63) / 64) * 64;
    dict.resize(total - 10 - 1, ' ');
    dict += '\n';
    std::ofstream f(path, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {char(dict.size() & 0xff), char(dict.size() >> 8)};
    f.write(len, 2);
    f << dict;
    f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * 4));
}

// A synthetic features folder: `nparts` parts of random rows of `width`, the
// records out of row order, a failed image's record, and an uncommitted row
// at the end of each .npy (no record refers to it). Returns image -> row.
std::map<std::string, std::vector<long double>> synthetic(const std::string& dir, const std::string& kind, std::size_t width,
                                                          int nparts, int rows_per_part) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::mt19937 rng(42);
    std::normal_distribution<float> g;
    std::map<std::string, std::vector<long double>> all;
    for (int p = 0; p < nparts; ++p) {
        char part[64];
        std::snprintf(part, sizeof part, "/part-%05d-of-%05d", p, nparts);
        const std::string stem = dir + part;
        std::vector<float> data;
        std::vector<std::string> lines;
        for (int r = 0; r <= rows_per_part; ++r) {  // one more: the uncommitted row
            std::vector<long double> row;
            for (std::size_t j = 0; j < width; ++j) {
                data.push_back(g(rng) * float(1 + r % 3));  // norms differ: cosine, not dot
                row.push_back(data.back());
            }
            if (r == rows_per_part) break;
            const std::string image = "img/p" + std::to_string(p) + "/" + std::to_string(r) + (r % 7 == 0 ? " \"q\"\\.png" : ".jpg");
            lines.push_back(nlohmann::json{{"image", image}, {"kind", kind}, {"row", r}}.dump());
            all[image] = row;
        }
        lines.push_back(nlohmann::json{{"image", "broken.jpg"}, {"error", "broken.jpg: not an image"}}.dump());
        std::shuffle(lines.begin(), lines.end(), rng);
        std::ofstream js(stem + ".jsonl");
        for (const auto& l : lines) js << l << "\n";
        write_npy(stem + ".npy", data, std::size_t(rows_per_part) + 1, width);
    }
    return all;
}

const std::string clip = test::data("clip-tiny/model");
const std::string images = test::data("images");

}  // namespace

TEST_CASE("vit-search ranks a vit-classify --features run by cosine", "[search][cli]") {
    const std::string dir = test::tmp_dir() + "/index";
    fs::remove_all(dir);
    REQUIRE(test::run("--features --model " + q(clip) + " --output " + q(dir) + " " + q(images)).status == 0);
    std::map<std::string, std::vector<long double>> rows;
    for (const auto& e : fs::directory_iterator(images)) rows[e.path().string()] = features(clip, e.path().string());
    // vit-classify lists a folder's files by their path as given.
    std::map<std::string, std::vector<long double>> named;
    for (const auto& kv : rows) named[images + "/" + fs::path(kv.first).filename().string()] = kv.second;
    const std::string query = images + "/coffee.jpg";
    const auto want = rank(named, features(clip, query));
    const auto r = search_json("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --json --top-k 3 --exact");
    REQUIRE(r.status == 0);
    check_ranking(r.out, want, 3);
    CHECK(test::json_lines(r.out).at(0).at("image") == query);  // itself first, at cosine 1
    SECTION("--top-k past the collection gives all of it") {
        const auto all = search_json("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --json --top-k 1000");
        REQUIRE(all.status == 0);
        check_ranking(all.out, want, 1000);
    }
    SECTION("the table") {
        const auto t = search("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --exact");
        REQUIRE(t.status == 0);
        CHECK(t.out.find("    1   1.00000  " + query) != std::string::npos);
        CHECK(t.out.find("exact search over 5 images in 1 part") != std::string::npos);
    }
}

TEST_CASE("vit-search streams many parts, skipping failures and uncommitted rows", "[search][cli]") {
    std::string kind;
    const std::string query = images + "/chelsea.png";
    const auto qv = features(clip, query, &kind);
    const std::string dir = test::tmp_dir() + "/index";
    const auto all = synthetic(dir, kind, qv.size(), 3, 200);
    const auto want = rank(all, qv);
    const auto r = search_json("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --json --top-k 25");
    REQUIRE(r.status == 0);
    check_ranking(r.out, want, 25);
    const auto every = search_json("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --json --top-k 100000");
    check_ranking(every.out, want, 100000);
    CHECK(test::json_lines(every.out).size() == 600);
}

TEST_CASE("vit-search errors name the problem", "[search][cli][hostile]") {
    const std::string tmp = test::tmp_dir();
    const std::string query = images + "/coffee.jpg";
    auto fails = [&](const std::string& args, int status, const std::string& says) {
        const auto r = search(args);
        INFO(r.out);
        CHECK(r.status == status);
        CHECK(r.out.find(says) != std::string::npos);
    };
    SECTION("usage") {
        fails("--index " + q(tmp) + " --model " + q(clip), 2, "give a query: --text Q or --image P");
        fails("--index " + q(tmp) + " --model " + q(clip) + " --image " + q(query) + " --text cat", 2, "either --text or --image, not both");
        fails("--model " + q(clip) + " --image " + q(query), 2, "--index DIR is required");
        fails("--index " + q(tmp) + " --model " + q(clip) + " --image " + q(query) + " --top-k 0", 2, "--top-k takes a number");
    }
    SECTION("a missing index folder") {
        fails("--index " + q(tmp + "/nowhere") + " --model " + q(clip) + " --image " + q(query), 3, tmp + "/nowhere: no such folder");
    }
    SECTION("a labels run is not an index") {
        const std::string dir = tmp + "/labels";
        fs::remove_all(dir);
        REQUIRE(test::run("--model " + q(test::data("vit-tiny-random/model")) + " --output " + q(dir) + " " + q(query)).status == 0);
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, "it holds labels, not features");
    }
    SECTION("a truncated or corrupt .npy part") {
        std::string kind;
        const auto qv = features(clip, query, &kind);
        const std::string dir = tmp + "/cut";
        synthetic(dir, kind, qv.size(), 2, 50);
        const std::string npy = dir + "/part-00001-of-00002.npy";
        fs::resize_file(npy, fs::file_size(npy) - 4 * qv.size() * 3);
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, npy + ": truncated: its header says 51 rows");
        fs::resize_file(npy, 40);
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, npy + ": its .npy header is cut short");
        std::ofstream(npy, std::ios::binary) << "not numpy at all";
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, npy + ": not a .npy file");
        fs::remove(npy);
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, npy + ": missing");
    }
    SECTION("rows the .npy does not have") {
        std::string kind;
        const auto qv = features(clip, query, &kind);
        const std::string dir = tmp + "/short";
        synthetic(dir, kind, qv.size(), 1, 10);
        std::ofstream(dir + "/part-00000-of-00001.jsonl", std::ios::app) << nlohmann::json{{"image", "x.jpg"}, {"kind", kind}, {"row", 30}}.dump() << "\n";
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3, "refers to row 30");
    }
    SECTION("an index of another model: other kind, other width") {
        const std::string dir = tmp + "/siglip";
        fs::remove_all(dir);
        REQUIRE(test::run("--features --model " + q(test::data("siglip-tiny/model")) + " --output " + q(dir) + " " + q(query)).status == 0);
        // features.json names the model that made them.
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query), 3,
              "is another checkpoint (fnv1a64:");
        // Without it (--any-model, or a folder from before it), the kind and
        // width still tell: SigLIP's pooler_output (64) against CLIP's image_embeds (32).
        fails("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query) + " --any-model", 3,
              "holds pooler_output embeddings, and");
        // DINOv2's pooler_output has 48 values, SigLIP's 64.
        fs::remove(dir + "/features.json");
        fails("--index " + q(dir) + " --model " + q(test::data("dinov2-tiny/model")) + " --image " + q(query), 3,
              "its embeddings have 64 values, and " + test::data("dinov2-tiny/model") + " on " + query + " gives 48");
    }
}

TEST_CASE("features.json keeps one checkpoint's features apart from another's", "[search][cli][hostile]") {
    const std::string tmp = test::tmp_dir();
    const std::string query = images + "/coffee.jpg";
    const std::string dir = tmp + "/one-model";
    fs::remove_all(dir);
    REQUIRE(test::run("--features --model " + q(clip) + " --output " + q(dir) + " " + q(query)).status == 0);
    nlohmann::json made;
    std::ifstream(dir + "/features.json") >> made;
    CHECK(made.at("model") == clip);
    CHECK(made.at("kind") == "image_embeds");
    CHECK(made.at("width") == 32);
    CHECK(made.at("image_size") == nlohmann::json{224, 224});

    // A copy of the checkpoint in another folder: the same files, so the same model.
    const std::string copy = tmp + "/clip-copy", other = tmp + "/clip-other";
    for (const std::string& d : {copy, other}) {
        fs::remove_all(d);
        fs::copy(clip, d, fs::copy_options::recursive);
    }
    CHECK(search_json("--index " + q(dir) + " --model " + q(copy) + " --image " + q(query)).status == 0);
    // The same architecture and width with one weight changed: another checkpoint.
    {
        std::fstream f(other + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-3, std::ios::end);
        f.put('\x41');
    }
    auto r = search("--index " + q(dir) + " --model " + q(other) + " --image " + q(query));
    INFO(r.out);
    CHECK(r.status == 3);
    CHECK(r.out.find(dir + "/features.json: the images were embedded by " + clip) != std::string::npos);
    CHECK(r.out.find("the query's model " + other + " is another checkpoint") != std::string::npos);
    CHECK(search_json("--index " + q(dir) + " --model " + q(other) + " --image " + q(query) + " --any-model").status == 0);

    // vit-classify into that folder with the other checkpoint, or at another
    // input size: refused before any part is touched.
    const auto part = dir + "/part-00000-of-00001.jsonl";
    const auto before = fs::file_size(part);
    r = test::run("--features --model " + q(other) + " --output " + q(dir) + " --resume " + q(query) + " 2>&1");
    CHECK(r.status == 3);
    CHECK(r.out.find(dir + "/features.json: the folder holds the features of another run: the checkpoint " + other) !=
          std::string::npos);
    r = test::run("--features --model " + q(clip) + " --size 256x256 --output " + q(dir) + " --resume " + q(query) + " 2>&1");
    CHECK(r.status == 3);
    CHECK(r.out.find("resizes images to 256x256, the folder's embeddings were made at 224x224") != std::string::npos);
    CHECK(fs::file_size(part) == before);
    // The same model again (from the copy) resumes; so do two shards of one run.
    CHECK(test::run("--features --model " + q(copy) + " --output " + q(dir) + " --resume " + q(query)).status == 0);
    const std::string sharded = tmp + "/sharded";
    fs::remove_all(sharded);
    CHECK(test::run("--features --model " + q(clip) + " --output " + q(sharded) + " --shard 0/2 " + q(images)).status == 0);
    CHECK(test::run("--features --model " + q(clip) + " --output " + q(sharded) + " --shard 1/2 " + q(images)).status == 0);

    // A folder from before features.json: searched, with a note that the model is unchecked.
    fs::remove(dir + "/features.json");
    r = search("--index " + q(dir) + " --model " + q(other) + " --image " + q(query));
    CHECK(r.status == 0);
    CHECK(r.out.find("has no features.json") != std::string::npos);
    // A damaged one is an error naming it.
    std::ofstream(dir + "/features.json") << "{\"model\": 1}";
    r = search("--index " + q(dir) + " --model " + q(clip) + " --image " + q(query));
    CHECK(r.status == 3);
    CHECK(r.out.find(dir + "/features.json: not a features record of vit-classify") != std::string::npos);
}

// A shell word for any string.
std::string shell_word(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

TEST_CASE("vit-search --text ranks images as transformers' embeddings do", "[search][cli][text]") {
    // The ranking by the cosine of the fixture's text_embeds (transformers,
    // float64) with its image_embeds; vit-search computes both itself.
    for (const char* family : {"clip", "siglip"}) {
        const std::string fixture = std::string(family) + "-text-tiny";
        const std::string model = test::data(fixture + "/model");
        const test::reference ref(test::data(fixture + "/reference.safetensors"));
        const nlohmann::json info = nlohmann::json::parse(test::slurp(test::data(fixture + "/reference.json")));
        const std::map<std::string, std::string> file = {{"coco_cats", "coco_cats.png"}, {"chelsea", "chelsea.png"},
                                                         {"camera_gray", "camera_gray.png"}, {"coffee", "coffee.jpg"},
                                                         {"tiny_7x5", "tiny_7x5.png"}};
        std::map<std::string, std::vector<long double>> image_embeds;
        for (std::size_t i = 0; i < info.at("images").size(); ++i) {
            char name[64];
            std::snprintf(name, sizeof name, "image.%03zu.image_embeds", i);
            const auto v = ref.get(name).values;
            image_embeds[images + "/" + file.at(info.at("images").at(i).get<std::string>())] = {v.begin(), v.end()};
        }
        const std::string dir = test::tmp_dir() + "/" + family;
        fs::remove_all(dir);
        REQUIRE(test::run("--features --model " + q(model) + " --output " + q(dir) + " " + q(images)).status == 0);
        int checked = 0;
        for (std::size_t p = 0; p < info.at("prompts").size(); ++p) {
            const std::string prompt = info.at("prompts").at(p).get<std::string>();
            if (prompt.empty()) continue;
            char name[64];
            std::snprintf(name, sizeof name, "text.%03zu.text_embeds", p);
            const auto t = ref.get(name).values;
            const auto want = rank(image_embeds, {t.begin(), t.end()});
            bool near_tie = false;  // an order decided below the fixture's float32 rounding is not a test
            for (std::size_t i = 0; i + 1 < want.size(); ++i) near_tie |= want[i].score - want[i + 1].score < 1e-4;
            if (near_tie) continue;
            INFO(family << " prompt " << p << ": " << prompt);
            const auto r = search_json("--index " + q(dir) + " --model " + q(model) + " --text " + shell_word(prompt) + " --json");
            REQUIRE(r.status == 0);
            const auto got = test::json_lines(r.out);
            REQUIRE(got.size() == want.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                CHECK(got[i].at("image").get<std::string>() == want[i].image);
                CHECK(std::abs(got[i].at("score").get<double>() - double(want[i].score)) < 2e-5);
            }
            ++checked;
        }
        INFO(family);
        CHECK(checked >= 30);
    }
}

TEST_CASE("vit-search --text errors", "[search][cli][text][hostile]") {
    const std::string dir = test::tmp_dir() + "/index";
    fs::remove_all(dir);
    const std::string vit_tiny = test::data("vit-tiny-random/model");
    REQUIRE(test::run("--features --model " + q(vit_tiny) + " --output " + q(dir) + " " + q(images)).status == 0);
    const auto r = search("--index " + q(dir) + " --model " + q(vit_tiny) + " --text 'a cat'");
    CHECK(r.status == 3);
    CHECK(r.out.find(vit_tiny + ": no text tower: config.json's model_type is 'vit'") != std::string::npos);
    // SigLIP's text embedding against an index of CLIP image_embeds.
    const std::string clip_dir = test::tmp_dir() + "/clip";
    fs::remove_all(clip_dir);
    REQUIRE(test::run("--features --model " + q(test::data("clip-text-tiny/model")) + " --output " + q(clip_dir) + " " + q(images)).status == 0);
    const auto s = search("--index " + q(clip_dir) + " --model " + q(test::data("siglip-text-tiny/model")) + " --text 'a cat' --any-model");
    CHECK(s.status == 3);
    CHECK(s.out.find("holds image_embeds embeddings, and " + test::data("siglip-text-tiny/model") + " on the text gives pooler_output") !=
          std::string::npos);
}

#ifdef VIT_SEARCH_FAISS
TEST_CASE("vit-search builds and queries a FAISS index", "[search][cli][faiss]") {
    std::string kind;
    const std::string query = images + "/chelsea.png";
    const auto qv = features(clip, query, &kind);
    const std::string dir = test::tmp_dir() + "/index";
    const auto want = rank(synthetic(dir, kind, qv.size(), 3, 200), qv);
    const std::string base = "--index " + q(dir) + " --model " + q(clip) + " --image " + q(query);
    const std::string err = test::tmp_dir() + "/stderr";
    SECTION("Flat, the default for few images: the same as exact search") {
        REQUIRE(search("--index " + q(dir) + " --build-faiss").status == 0);
        for (const char* f : {"search.faiss", "search.faiss.ids", "search.faiss.json"}) CHECK(fs::exists(dir + "/" + f));
        const auto r = search_out(base + " --json --top-k 25", err);
        REQUIRE(r.status == 0);
        CHECK(test::slurp(err).find("faiss Flat search over 600 images in 3 parts") != std::string::npos);
        check_ranking(r.out, want, 25);
        const auto all = search_out(base + " --json --top-k 1000", err);
        check_ranking(all.out, want, 1000);
        const auto exact = search_out(base + " --json --top-k 25 --exact", err);
        CHECK(test::slurp(err).find("exact search over 600 images") != std::string::npos);
        CHECK(exact.out.size() > 0);
        SECTION("a stale index is refused") {
            std::ofstream(dir + "/part-00000-of-00003.jsonl", std::ios::app) << "\n";
            const auto s = search(base);
            CHECK(s.status == 3);
            CHECK(s.out.find("the parts changed since it was built") != std::string::npos);
        }
    }
    SECTION("IVF with every list probed finds the exact top 10") {
        REQUIRE(search("--index " + q(dir) + " --build-faiss --faiss IVF4,Flat --faiss-params nprobe=4").status == 0);
        const auto r = search_out(base + " --json --top-k 10", err);
        REQUIRE(r.status == 0);
        CHECK(test::slurp(err).find("faiss IVF4,Flat (nprobe=4) search") != std::string::npos);
        check_ranking(r.out, want, 10);
    }
    SECTION("a bad spec") {
        const auto r = search("--index " + q(dir) + " --build-faiss --faiss NoSuchIndex");
        CHECK(r.status == 3);
        CHECK(r.out.find("--faiss NoSuchIndex: faiss:") != std::string::npos);
    }
}
#endif

#endif  // VIT_SEARCH
