// vit/train.hpp and vit-train-head: the classifier's features against the
// fixtures' own classifiers, the optimiser against first principles, the
// checkpoint against transformers' names, vit-classify on the result, bad data.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <stb_image_write.h>
#include <vit/train.hpp>

#ifdef VIT_TRAIN_HEAD  // with the programs: vit-classify runs on OUT
#include "cli.hpp"
#endif
#include "helpers.hpp"
#include "tmp_dir.hpp"

namespace fs = std::filesystem;

namespace {

#ifdef VIT_TRAIN_HEAD
// The tensors of a checkpoint folder as name -> shape.
std::map<std::string, std::vector<std::int64_t>> tensor_shapes(const std::string& dir) {
    std::map<std::string, std::vector<std::int64_t>> out;
    const vit::detail::tensor_store s = vit::detail::read_checkpoint(dir);
    for (const auto& kv : s.all()) out[kv.first] = kv.second.tensor.shape;
    return out;
}
#endif

std::vector<float> tensor_floats(const std::string& dir, const std::string& name) {
    const vit::detail::tensor_store s = vit::detail::read_checkpoint(dir);
    const vit::detail::tensor_ref& t = s.all().at(name).tensor;
    std::vector<float> v(std::size_t(t.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = vit::detail::element_as<float>(t, i);
    return v;
}

// The first `count` UCI digits as 8-bit gray PNGs in DIR/<class>/NNNN.png
// (levels 0..16 scaled by 255 / 16, as tests/data/digits/README.md says).
void write_digits(const std::string& dir, int count) {
    FILE* p = ::popen(("gzip -dc '" + test::data("digits/digits.csv.gz") + "'").c_str(), "r");
    REQUIRE(p != nullptr);
    std::string text;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    REQUIRE(::pclose(p) == 0);
    std::istringstream in(text);
    std::string line;
    for (int i = 0; i < count && std::getline(in, line); ++i) {
        std::vector<double> v;
        std::istringstream ls(line);
        std::string cell;
        while (std::getline(ls, cell, ',')) v.push_back(std::stod(cell));
        REQUIRE(v.size() == 65);
        unsigned char px[64];
        for (int j = 0; j < 64; ++j) px[j] = (unsigned char)std::floor(v[std::size_t(j)] * 255 / 16 + 0.5);
        const std::string cls = dir + "/" + std::to_string(int(v[64]));
        fs::create_directories(cls);
        char name[16];
        std::snprintf(name, sizeof name, "/%04d.png", i);
        REQUIRE(stbi_write_png((cls + name).c_str(), 8, 8, 1, px, 8));
    }
}

// The gradient of mean cross-entropy + (l2 / 2) ||W||^2, by the textbook formula, straight loops.
double gradient_norm(const vit::matrix_d& x, const std::vector<int>& y, const vit::linear_head& h, double l2) {
    const Eigen::Index n = x.rows(), f = x.cols(), k = h.bias.size();
    vit::matrix_d gw = l2 * h.weight;
    Eigen::VectorXd gb = Eigen::VectorXd::Zero(k);
    for (Eigen::Index i = 0; i < n; ++i) {
        std::vector<long double> z(static_cast<std::size_t>(k));
        long double mx = -1e300L, s = 0;
        for (Eigen::Index c = 0; c < k; ++c) {
            z[std::size_t(c)] = h.bias(c);
            for (Eigen::Index j = 0; j < f; ++j) z[std::size_t(c)] += (long double)h.weight(c, j) * x(i, j);
            mx = std::max(mx, z[std::size_t(c)]);
        }
        for (auto& v : z) s += (v = std::exp(v - mx));
        for (Eigen::Index c = 0; c < k; ++c) {
            const double d = double(z[std::size_t(c)] / s) - (y[std::size_t(i)] == c ? 1 : 0);
            gb(c) += d / double(n);
            for (Eigen::Index j = 0; j < f; ++j) gw(c, j) += d * x(i, j) / double(n);
        }
    }
    return std::sqrt(gw.squaredNorm() + gb.squaredNorm());
}

}  // namespace

TEST_CASE("classifier input: features @ the fixture's classifier = its logits", "[train]") {
    for (const char* name : {"vit-tiny-random", "dinov2-tiny-cls"}) {
        INFO(name);
        const std::string dir = test::data(std::string(name) + "/model");
        const vit::model m = vit::model::load(dir);
        std::vector<vit::image> imgs;
        for (const char* f : {"images/coco_cats.png", "images/chelsea.png", "images/coffee.jpg"})
            imgs.push_back(vit::load_image(test::data(f)));
        const auto px = vit::make_pixel_values<float>(imgs, m.preprocessing());
        const vit::output<float> out = m.forward(px, vit::classifier_input_options(m));
        const vit::matrix<float> x = vit::classifier_input(m, out);
        const int width = vit::classifier_input_size(m);
        CHECK(width == (std::string(name) == "dinov2-tiny-cls" ? 2 : 1) * m.config().hidden_size);
        REQUIRE(x.cols() == width);
        const std::vector<float> w = tensor_floats(dir, "classifier.weight"), b = tensor_floats(dir, "classifier.bias");
        const int k = m.config().num_labels();
        REQUIRE(w.size() == std::size_t(k) * std::size_t(width));
        for (int i = 0; i < 3; ++i)
            for (int c = 0; c < k; ++c) {
                double z = b[std::size_t(c)];
                for (int j = 0; j < width; ++j) z += double(w[std::size_t(c) * std::size_t(width) + std::size_t(j)]) * x(i, j);
                CHECK(std::abs(z - out.logits(i, c)) <= 1e-5 * (1 + std::abs(z)));
            }
    }
}

TEST_CASE("train_head: the gradient at its answer is zero by the textbook formula; threads do not matter", "[train]") {
    // Overlapping Gaussian classes: a proper optimum, not a separable blow-up.
    const int n = 700, f = 12, k = 4;
    vit::matrix_d x(n, f);
    std::vector<int> y(n);
    std::uint64_t s = 42;
    auto uniform = [&] {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return double(s >> 11) / double(1ull << 53);
    };
    for (int i = 0; i < n; ++i) {
        y[std::size_t(i)] = i % k;
        for (int j = 0; j < f; ++j)
            x(i, j) = (j == y[std::size_t(i)] ? 1.5 : 0) + std::sqrt(-2 * std::log(uniform() + 1e-300)) * std::cos(6.283185307179586 * uniform());
    }
    for (double l2 : {1e-1, 1e-3, 0.0}) {
        INFO("l2 " << l2);
        vit::head_options o;
        o.l2 = l2;
        o.threads = 1;
        const vit::head_fit a = vit::train_head(x, y, k, o);
        CHECK(a.converged);
        CHECK(a.gradient_norm <= 1e-6);
        CHECK(gradient_norm(x, y, a.head, l2) <= 1.5e-6);
        o.threads = 2;
        const vit::head_fit b = vit::train_head(x, y, k, o);
        CHECK(a.head.weight == b.head.weight);
        CHECK(a.head.bias == b.head.bias);
        CHECK(a.objective == b.objective);
    }
    CHECK_THROWS_WITH(vit::train_head(x, std::vector<int>(n, 0), 1, {}), Catch::Contains("at least 2"));
    CHECK_THROWS_WITH(vit::train_head(x, std::vector<int>(n, 7), k, {}), Catch::Contains("label 7"));
}

TEST_CASE("datasets: ImageFolder, lists, the split, and their errors", "[train]") {
    const std::string d = test::tmp_dir();
    fs::remove_all(d);
    write_digits(d + "/digits", 120);
    const vit::image_dataset ds = vit::read_image_folder(d + "/digits");
    REQUIRE(ds.classes.size() == 10);
    CHECK(ds.classes.front() == "0");
    CHECK(ds.images.size() == 120);
    const auto sp = vit::split_dataset(ds, 0.25);
    const auto sp2 = vit::split_dataset(ds, 0.25);
    CHECK(sp.first.images.size() + sp.second.images.size() == 120);
    CHECK(sp.second.images.size() >= 20);
    CHECK(sp.second.images.size() <= 40);
    for (std::size_t i = 0; i < sp.second.images.size(); ++i) CHECK(sp.second.images[i].path == sp2.second.images[i].path);
    for (std::size_t c : sp.first.counts()) CHECK(c >= 1);

    {
        std::ofstream l(d + "/list.tsv");
        l << d << "/digits/0/0000.png\tzero\n" << d << "/digits/1/0001.png\tone\n\n";
    }
    const vit::image_dataset li = vit::read_image_list(d + "/list.tsv");
    CHECK(li.classes == std::vector<std::string>{"one", "zero"});
    CHECK(li.images.at(0).label == 1);
    {
        std::ofstream l(d + "/bad.tsv");
        l << "a.png zero\n";
    }
    CHECK_THROWS_WITH(vit::read_image_list(d + "/bad.tsv"), Catch::Contains("bad.tsv:1: expected path<TAB>label"));
    CHECK_THROWS_WITH(vit::read_image_folder(d + "/nowhere"), Catch::Contains("nowhere: no such folder"));
    fs::create_directories(d + "/one/only");
    fs::copy_file(d + "/digits/0/0000.png", d + "/one/only/a.png");
    CHECK_THROWS_WITH(vit::read_image_folder(d + "/one"), Catch::Contains("1 class folder ('only')") && Catch::Contains("at least 2"));
    fs::create_directories(d + "/one/empty");
    CHECK_THROWS_WITH(vit::read_image_folder(d + "/one"), Catch::Contains("empty: an empty class folder"));
    CHECK_THROWS_WITH(vit::relabel(li, {"one", "two"}, "--train"), Catch::Contains("class 'zero' is not among --train's classes"));
}

#ifdef VIT_TRAIN_HEAD

namespace {

test::run_result train(const std::string& args, const std::string& err) {
    return test::run_shell("'" + std::string(VIT_TRAIN_HEAD) + "' " + args + " 2>'" + err + "'");
}

// Every row of the features cache, by image.
std::map<std::string, std::vector<float>> cached_features(const std::string& cache) {
    std::map<std::string, std::size_t> rows;
    for (const auto& j : test::json_lines(test::slurp(cache + "/part-00000-of-00001.jsonl")))
        if (j.contains("row")) rows[j.at("image").get<std::string>()] = j.at("row").get<std::size_t>();
    const std::string npy = test::slurp(cache + "/part-00000-of-00001.npy");
    const std::size_t open = npy.find('('), comma = npy.find(',', open);
    const std::size_t n = std::stoul(npy.substr(open + 1)), w = std::stoul(npy.substr(comma + 1));
    REQUIRE(npy.size() >= 128 + n * w * 4);
    std::map<std::string, std::vector<float>> out;
    for (const auto& kv : rows) {
        std::vector<float> v(w);
        std::memcpy(v.data(), npy.data() + 128 + kv.second * w * 4, w * 4);
        out[kv.first] = v;
    }
    return out;
}

}  // namespace

TEST_CASE("vit-train-head: OUT is the family's classifier; vit-classify's logits are features @ W.T + b",
          "[train][cli]") {
    const std::string d = test::tmp_dir();
    fs::remove_all(d);
    write_digits(d + "/digits", 200);
    // model, the classifier checkpoint whose names OUT must have
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"vit-tiny-random", "vit-tiny-random"},   // a ViTForImageClassification backbone
        {"vit-tiny-features", "vit-tiny-random"}, // a ViTModel with a pooler
        {"dinov2-tiny-cls", "dinov2-tiny-cls"},
    };
    for (const auto& c : cases) {
        INFO(c.first);
        const std::string model = test::data(c.first + "/model"), like = test::data(c.second + "/model");
        const std::string out = d + "/out-" + c.first, cache = d + "/cache-" + c.first, err = d + "/err.txt";
        const auto r = train("--model '" + model + "' --train '" + d + "/digits' --val-fraction 0.2 --output '" + out +
                                 "' --features-cache '" + cache + "' --threads 2 --batch 8",
                             err);
        INFO(test::slurp(err));
        REQUIRE(r.status == 0);

        // config.json: the classifier's architecture and our labels.
        const nlohmann::json cfg = nlohmann::json::parse(test::slurp(out + "/config.json"));
        const nlohmann::json want = nlohmann::json::parse(test::slurp(like + "/config.json"));
        CHECK(cfg.at("architectures") == want.at("architectures"));
        CHECK(cfg.at("model_type") == want.at("model_type"));
        CHECK(cfg.at("num_labels") == 10);
        for (int i = 0; i < 10; ++i) {
            CHECK(cfg.at("id2label").at(std::to_string(i)) == std::to_string(i));
            CHECK(cfg.at("label2id").at(std::to_string(i)) == i);
        }
        CHECK(fs::exists(out + "/preprocessor_config.json"));

        // Tensor names: exactly those of a transformers classifier of the family.
        const auto got = tensor_shapes(out), names = tensor_shapes(like);
        std::set<std::string> a, b;
        for (const auto& kv : got) a.insert(kv.first);
        for (const auto& kv : names) b.insert(kv.first);
        CHECK(a == b);
        const vit::model m = vit::model::load(out);
        const int width = vit::classifier_input_size(m);
        CHECK(got.at("classifier.weight") == std::vector<std::int64_t>{10, width});
        CHECK(got.at("classifier.bias") == std::vector<std::int64_t>{10});
        if (c.first == c.second)  // the backbone is the input's, tensor for tensor
            for (const auto& kv : got)
                if (kv.first.rfind("classifier.", 0) != 0)
                    CHECK(tensor_floats(out, kv.first) == tensor_floats(model, kv.first));

        // training.json and the picture
        const nlohmann::json rep = nlohmann::json::parse(test::slurp(out + "/training.json"));
        CHECK(rep.at("gradient_norm").get<double>() <= 1e-6);
        CHECK(rep.at("converged") == true);
        CHECK(rep.at("l2") == 1e-3);
        CHECK(rep.at("validation").at("confusion").size() == 10);
        CHECK(rep.at("train").at("precision").size() == 10);
        CHECK(rep.at("train").at("recall").size() == 10);
        CHECK(rep.at("images_per_class").at("train").size() == 10);
        CHECK(rep.at("skipped").empty());
        int pw = 0, ph = 0, pc = 0;
        unsigned char* png = stbi_load((out + "/confusion.png").c_str(), &pw, &ph, &pc, 3);
        CHECK(png != nullptr);
        CHECK(pw > 300);
        stbi_image_free(png);

        // vit-classify on OUT: logits = cached features @ W.T + b, the same predictions.
        const std::vector<float> w = tensor_floats(out, "classifier.weight"), bias = tensor_floats(out, "classifier.bias");
        const auto feats = cached_features(cache);
        REQUIRE(feats.size() == 200);
        const auto run = test::run("--model '" + out + "' --json --logits --top-k 1 --batch 4 '" + d + "/digits/3' '" + d +
                                   "/digits/7'");
        REQUIRE(run.status == 0);
        const auto lines = test::json_lines(run.out);
        REQUIRE(lines.size() >= 30);
        for (const auto& j : lines) {
            const std::vector<float>& x = feats.at(j.at("image").get<std::string>());
            const auto logits = j.at("logits").get<std::vector<double>>();
            REQUIRE(logits.size() == 10);
            int best = 0;
            double best_z = -1e300;
            for (int k = 0; k < 10; ++k) {
                double z = bias[std::size_t(k)];
                for (int i = 0; i < width; ++i) z += double(w[std::size_t(k * width + i)]) * x[std::size_t(i)];
                CHECK(std::abs(z - logits[std::size_t(k)]) <= 1e-4);
                if (z > best_z) best_z = z, best = k;
            }
            CHECK(j.at("predictions").at(0).at("index") == best);
        }

        // A second run reads the cache back: no image computed again, the same head bit for bit.
        const auto r2 = train("--model '" + model + "' --train '" + d + "/digits' --val-fraction 0.2 --output '" + out +
                                  "-again' --features-cache '" + cache + "' --threads 1",
                              err);
        REQUIRE(r2.status == 0);
        CHECK_THAT(test::slurp(err), Catch::Contains("200 of 200 images already there"));
        CHECK(tensor_floats(out + "-again", "classifier.weight") == w);
    }
}

TEST_CASE("vit-train-head: bad data stops with a clear error and no OUT; a corrupt image is skipped",
          "[train][cli]") {
    const std::string d = test::tmp_dir();
    fs::remove_all(d);
    write_digits(d + "/digits", 60);
    const std::string model = " --model '" + test::data("vit-tiny-random/model") + "' --threads 2";
    const std::string err = d + "/err.txt";
    auto fails = [&](const std::string& args, const std::string& message, std::string out = "") {
        INFO(args);
        const bool exists = !out.empty();
        if (out.empty()) out = d + "/out";
        const auto r = train(args + model + " --output '" + out + "'", err);
        CHECK(r.status == 3);
        CHECK_THAT(test::slurp(err), Catch::Contains(message));
        CHECK(fs::exists(out) == exists);
        for (const auto& e : fs::directory_iterator(d)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
    };
    fails("--train '" + d + "/missing'", "missing: no such folder");
    fs::create_directories(d + "/one/5");
    fs::copy_file(d + "/digits/5/0005.png", d + "/one/5/0005.png");
    fails("--train '" + d + "/one'", "1 class folder ('5'); a classifier needs at least 2 classes");
    fs::create_directories(d + "/withempty");
    fs::copy(d + "/digits", d + "/withempty", fs::copy_options::recursive);
    fs::create_directories(d + "/withempty/99");
    fails("--train '" + d + "/withempty'", "withempty/99: an empty class folder");
    fs::create_directories(d + "/val/cat");
    fs::copy_file(d + "/digits/5/0005.png", d + "/val/cat/x.png");
    fails("--train '" + d + "/digits' --val '" + d + "/val'", "class 'cat' is not among --train's classes");
    fs::create_directories(d + "/exists");
    fails("--train '" + d + "/digits'", "exists; remove it", d + "/exists");

    // A corrupt image: named, recorded, skipped.
    fs::copy(d + "/digits", d + "/corrupt", fs::copy_options::recursive);
    {
        std::ofstream f(d + "/corrupt/4/broken.png", std::ios::binary);
        f << "\x89PNG\r\n\x1a\nnot really";
    }
    const auto r = train("--train '" + d + "/corrupt'" + model + " --output '" + d + "/ok'", err);
    INFO(test::slurp(err));
    REQUIRE(r.status == 0);
    CHECK_THAT(test::slurp(err), Catch::Contains("skipped " + d + "/corrupt/4/broken.png"));
    const nlohmann::json rep = nlohmann::json::parse(test::slurp(d + "/ok/training.json"));
    REQUIRE(rep.at("skipped").size() == 1);
    CHECK(rep.at("skipped").at(0).at("image") == d + "/corrupt/4/broken.png");
    CHECK(rep.at("train").at("images") == 60);
}

#endif
