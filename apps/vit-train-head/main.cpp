// vit-train-head: a linear probe. Computes a model's classifier features of
// labelled images, trains a multinomial logistic regression head on them and
// writes a classifier checkpoint folder (vit, vit-serve and transformers load it).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <vit/train.hpp>
#include <vit/vit.hpp>

#include "common/hub.hpp"
#include "common/parts.hpp"

namespace {

const char* usage = R"(usage: vit-train-head --model M --train DIR --output OUT [options]

Trains a linear classifier (multinomial logistic regression) on a model's
features of your labelled images and writes OUT, a checkpoint folder that
vit-classify, vit-serve and transformers' AutoModelForImageClassification load.

data:
  --train DIR          one folder per class (ImageFolder layout): DIR/<class>/<image>;
                       classes are the folder names, sorted
  --train-list F       instead of --train: lines "path<TAB>label"
  --val DIR            validation images, laid out as --train (its classes must be
                       among --train's)
  --val-list F         validation images as a path<TAB>label list
  --val-fraction F     instead: move a fraction F (0 < F < 1) of each class to
                       validation, chosen by a hash of the path (deterministic)

model and features:
  --model M            checkpoint folder or hub id (ViT, DeiT, DINOv2, DINOv2 with
                       registers); the features are what the family's classifier
                       reads: ViT/DeiT the CLS token after the final LayerNorm,
                       DINOv2 that CLS followed by the mean of the patch tokens
  --features-cache DIR keep the features in DIR (part-*.npy + part-*.jsonl, as
                       vit-classify --output writes them); a second run reads them
                       back and computes only the images it lacks
  --dtype D            f32 (default), bf16 or int8: how the encoder computes
  --batch N            images per forward pass (default 16)
  --threads N          threads (default: all cores)

training (mean cross-entropy + (l2 / 2) * ||W||^2, bias not penalised, in
double, L-BFGS to a gradient norm <= 1e-6):
  --l2 L               the penalty (default 1e-3)
  --l2-grid            choose l2 from 1e1, 1e0, ..., 1e-6 by validation accuracy
                       (ties go to the larger l2); needs validation images
  --refit              with --l2-grid: train the final head on train + validation
  --max-iterations N   L-BFGS iterations at most (default 20000)

output:
  --output OUT         the checkpoint folder (must not exist); written under a
                       temporary name and renamed when complete. Holds config.json,
                       preprocessor_config.json, model.safetensors, training.json
                       (the fit and the accuracies) and confusion.png
  --help               this text

Exit status: 0 done, 2 usage error, 3 error (bad data, model, output); on an
error OUT is not created. Unreadable images are named on stderr and in
training.json, and skipped.
)";

constexpr int usage_status = 2, fatal = 3;

[[noreturn]] void usage_error(const std::string& msg) {
    std::cerr << "vit-train-head: " << msg << "\n(vit-train-head --help for the options)\n";
    std::exit(usage_status);
}

struct options {
    std::string model, train, train_list, val, val_list, output, cache;
    double val_fraction = 0, l2 = 1e-3;
    bool l2_grid = false, refit = false, l2_given = false;
    int max_iterations = 20000, batch = 16, threads = 0;
    vit::precision dtype = vit::precision::f32;
    std::string dtype_name = "f32";
};

double parse_double(const std::string& opt, const std::string& v, double lo, double hi) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !(d >= lo && d <= hi))
        usage_error(opt + " takes a number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got '" + v + "'");
    return d;
}

int parse_int(const std::string& opt, const std::string& v, int lo, int hi) {
    const double d = parse_double(opt, v, lo, hi);
    if (d != std::floor(d)) usage_error(opt + " takes a whole number, got '" + v + "'");
    return int(d);
}

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            std::exit(0);
        } else if (a == "--model") o.model = value();
        else if (a == "--train") o.train = value();
        else if (a == "--train-list") o.train_list = value();
        else if (a == "--val") o.val = value();
        else if (a == "--val-list") o.val_list = value();
        else if (a == "--val-fraction") o.val_fraction = parse_double(a, value(), 1e-9, 1 - 1e-9);
        else if (a == "--output") o.output = value();
        else if (a == "--features-cache") o.cache = value();
        else if (a == "--l2") o.l2 = parse_double(a, value(), 0, 1e6), o.l2_given = true;
        else if (a == "--l2-grid") o.l2_grid = true;
        else if (a == "--refit") o.refit = true;
        else if (a == "--max-iterations") o.max_iterations = parse_int(a, value(), 1, 100000000);
        else if (a == "--batch") o.batch = parse_int(a, value(), 1, 4096);
        else if (a == "--threads") o.threads = parse_int(a, value(), 1, 1024);
        else if (a == "--dtype") {
            o.dtype_name = value();
            if (o.dtype_name == "f32") o.dtype = vit::precision::f32;
            else if (o.dtype_name == "bf16") o.dtype = vit::precision::bf16;
            else if (o.dtype_name == "int8") o.dtype = vit::precision::int8;
            else usage_error("--dtype takes f32, bf16 or int8, got '" + o.dtype_name + "'");
        } else
            usage_error("unknown option '" + a + "'");
    }
    if (o.model.empty()) usage_error("--model is required");
    if (o.train.empty() == o.train_list.empty()) usage_error("give one of --train DIR and --train-list F");
    if (o.output.empty()) usage_error("--output is required");
    const int vals = !o.val.empty() + !o.val_list.empty() + (o.val_fraction > 0);
    if (vals > 1) usage_error("give at most one of --val, --val-list and --val-fraction");
    if (o.l2_grid && o.l2_given) usage_error("give --l2 or --l2-grid, not both");
    if (o.l2_grid && vals == 0) usage_error("--l2-grid chooses by validation accuracy: give --val, --val-list or --val-fraction");
    if (o.refit && !o.l2_grid) usage_error("--refit goes with --l2-grid");
    return o;
}

void say(const std::string& s) { std::cerr << "vit-train-head: " << s << "\n"; }

std::string fmt(double v, const char* f = "%.4g") {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// The features of every image, from the cache where it has them.
struct feature_table {
    std::map<std::string, std::vector<float>> rows;
    std::map<std::string, std::string> failed;
};

class feature_cache {
public:
    feature_cache(const std::string& dir, const nlohmann::json& identity, std::size_t width) : dir_(dir), width_(width) {
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (!fs::is_directory(dir)) throw vit::error(dir + ": cannot create the features cache folder: " + ec.message());
        const std::string id_path = dir + "/features.json";
        if (fs::exists(id_path)) {
            std::ifstream in(id_path);
            nlohmann::json have;
            try {
                in >> have;
            } catch (const std::exception&) {
                throw vit::error(id_path + ": not valid JSON; remove the cache folder");
            }
            if (have != identity)
                throw vit::error(dir + ": holds the features of another model or dtype (" + have.dump() +
                                 "); give another --features-cache folder");
        } else {
            std::ofstream out(id_path);
            out << identity.dump() << "\n";
            if (!out) throw vit::error(id_path + ": cannot write");
        }
        json_.emplace(dir, parts::part_name(0, 1, "jsonl"), true);
        std::size_t rows = 0;
        std::istringstream in(json_->committed());
        std::string line;
        std::vector<std::pair<std::string, std::size_t>> at;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            const nlohmann::json j = nlohmann::json::parse(line);
            const std::string image = j.at("image").get<std::string>();
            if (j.contains("error")) table_.failed[image] = j.at("error").get<std::string>();
            if (j.contains("row")) {
                const std::size_t r = j.at("row").get<std::size_t>();
                if (r != rows++) throw vit::error(dir + ": its JSON part's rows are not in order; remove the cache folder");
                at.emplace_back(image, r);
            }
        }
        npy_.emplace(dir, parts::part_name(0, 1, "npy"), width, rows, true);
        if (rows > 0) {
            const std::string npy = dir + "/" + parts::part_name(0, 1, "npy");
            std::ifstream f(npy, std::ios::binary);
            f.seekg(std::streamoff(parts::npy_part::header_size));
            std::vector<float> all(rows * width);
            f.read(reinterpret_cast<char*>(all.data()), std::streamsize(all.size() * 4));
            if (!f) throw vit::error(npy + ": cannot read its rows");
            for (const auto& p : at)
                table_.rows[p.first].assign(all.begin() + std::ptrdiff_t(p.second * width),
                                            all.begin() + std::ptrdiff_t((p.second + 1) * width));
        }
    }

    feature_table& table() { return table_; }

    // Rows first, then the records that name them (the part format's order).
    void add(const vit::image_features& f) {
        std::string chunk;
        std::size_t row = npy_->rows();
        if (f.rows.rows() > 0) npy_->append(f.rows.data(), std::size_t(f.rows.rows()));
        for (std::size_t i = 0; i < f.images.size(); ++i) {
            chunk += nlohmann::json{{"image", f.images[i]}, {"row", row + i}}.dump() + "\n";
            table_.rows[f.images[i]].assign(f.rows.row(Eigen::Index(i)).data(),
                                           f.rows.row(Eigen::Index(i)).data() + width_);
        }
        for (const auto& e : f.failed) {
            chunk += nlohmann::json{{"image", e.first}, {"error", e.second}}.dump() + "\n";
            table_.failed[e.first] = e.second;
        }
        json_->commit(chunk);
    }

private:
    std::string dir_;
    std::size_t width_;
    std::optional<parts::jsonl_part> json_;
    std::optional<parts::npy_part> npy_;
    feature_table table_;
};

nlohmann::json evaluation_json(const vit::head_evaluation& e) {
    return {{"images", e.images},
            {"accuracy", e.accuracy},
            {"precision", e.precision},
            {"recall", e.recall},
            {"confusion", e.confusion}};
}

struct split {
    vit::matrix_d x;
    std::vector<int> y;
};

split gather(const vit::image_dataset& d, const feature_table& t, std::size_t width) {
    split s;
    std::vector<const std::vector<float>*> rows;
    for (const auto& im : d.images) {
        const auto it = t.rows.find(im.path);
        if (it == t.rows.end()) continue;  // skipped: unreadable
        rows.push_back(&it->second);
        s.y.push_back(im.label);
    }
    s.x.resize(Eigen::Index(rows.size()), Eigen::Index(width));
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < width; ++j) s.x(Eigen::Index(i), Eigen::Index(j)) = (*rows[i])[j];
    return s;
}

int run(const options& o) {
    using clock = std::chrono::steady_clock;
    vit::check_output_free(o.output);
    vit::image_dataset train = o.train.empty() ? vit::read_image_list(o.train_list) : vit::read_image_folder(o.train);
    vit::image_dataset val;
    bool has_val = false;
    if (!o.val.empty() || !o.val_list.empty()) {
        val = vit::relabel(o.val.empty() ? vit::read_image_list(o.val_list, 1) : vit::read_image_folder(o.val, 1), train.classes,
                           "--train");
        has_val = true;
    } else if (o.val_fraction > 0) {
        auto p = vit::split_dataset(train, o.val_fraction);
        train = std::move(p.first);
        val = std::move(p.second);
        has_val = !val.images.empty();
    }
    const std::string model_dir = hub::resolve_model(o.model);
    {
        const vit::config c = vit::load_config(model_dir + "/config.json");
        vit::classifier_architecture(c.family);  // an unsupported family stops here, before the images
    }
    vit::load_options lo;
    lo.compute = o.dtype;
    lo.threads = o.threads;
    const vit::model model = vit::model::load(model_dir, lo);
    const std::size_t width = std::size_t(vit::classifier_input_size(model));
    say(std::to_string(train.images.size()) + " training and " + std::to_string(val.images.size()) +
        " validation images in " + std::to_string(train.classes.size()) + " classes; features: " +
        vit::classifier_input_kind(model) + " [" + std::to_string(width) + "]");

    // Features: every image once, from the cache where it has them.
    std::vector<std::string> paths;
    {
        std::set<std::string> seen;
        for (const auto* d : {&train, &val})
            for (const auto& im : d->images)
                if (seen.insert(im.path).second) paths.push_back(im.path);
    }
    std::optional<feature_cache> cache;
    feature_table memory;
    if (!o.cache.empty()) {
        const nlohmann::json identity = {{"model", std::filesystem::absolute(model_dir).lexically_normal().string()},
                                         {"dtype", o.dtype_name},
                                         {"kind", vit::classifier_input_kind(model)},
                                         {"width", width}};
        cache.emplace(o.cache, identity, width);
    }
    feature_table& table = cache ? cache->table() : memory;
    std::vector<std::string> todo;
    for (const auto& p : paths)
        if (!table.rows.count(p) && !table.failed.count(p)) todo.push_back(p);
    if (cache && todo.size() < paths.size())
        say("features cache " + o.cache + ": " + std::to_string(paths.size() - todo.size()) + " of " +
            std::to_string(paths.size()) + " images already there");
    const auto t_features = clock::now();
    {
        vit::workspace<float> ws(o.threads);
        const std::size_t chunk = std::size_t(o.batch) * 16;
        for (std::size_t i = 0; i < todo.size(); i += chunk) {
            const std::vector<std::string> part(todo.begin() + std::ptrdiff_t(i),
                                                todo.begin() + std::ptrdiff_t(std::min(todo.size(), i + chunk)));
            vit::image_features f = vit::compute_features(model, part, o.batch, ws);
            for (const auto& e : f.failed) say("skipped " + e.first + ": " + e.second);
            if (cache) cache->add(f);
            else {
                for (std::size_t r = 0; r < f.images.size(); ++r)
                    table.rows[f.images[r]].assign(f.rows.row(Eigen::Index(r)).data(),
                                                   f.rows.row(Eigen::Index(r)).data() + width);
                for (const auto& e : f.failed) table.failed[e.first] = e.second;
            }
            const double s = std::chrono::duration<double>(clock::now() - t_features).count();
            const std::size_t done = std::min(todo.size(), i + chunk);
            say("features " + std::to_string(done) + "/" + std::to_string(todo.size()) + " images, " +
                fmt(double(done) / std::max(s, 1e-9), "%.1f") + " images/s");
        }
    }
    const double feature_seconds = std::chrono::duration<double>(clock::now() - t_features).count();
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& p : paths)
        if (table.failed.count(p)) {
            if (std::find(todo.begin(), todo.end(), p) == todo.end()) say("skipped " + p + ": " + table.failed.at(p));
            skipped.push_back({{"image", p}, {"error", table.failed.at(p)}});
        }

    split tr = gather(train, table, width), va = gather(val, table, width);
    std::vector<std::size_t> train_counts(train.classes.size(), 0), val_counts(train.classes.size(), 0);
    for (int y : tr.y) ++train_counts[std::size_t(y)];
    for (int y : va.y) ++val_counts[std::size_t(y)];
    for (std::size_t c = 0; c < train.classes.size(); ++c)
        if (train_counts[c] == 0)
            throw vit::error(train.source + ": class '" + train.classes[c] + "' has no readable training image");
    has_val = has_val && !va.y.empty();
    if (o.l2_grid && !has_val) throw vit::error("--l2-grid: no readable validation image");

    // Training.
    const auto t_train = clock::now();
    vit::head_options ho;
    ho.threads = o.threads;
    ho.max_iterations = o.max_iterations;
    const int k = int(train.classes.size());
    vit::head_fit fit;
    nlohmann::json grid = nlohmann::json::array();
    if (o.l2_grid) {
        std::optional<vit::head_fit> best;
        double best_acc = -1;
        const vit::linear_head* warm = nullptr;
        vit::head_fit last;
        for (int e = 1; e >= -6; --e) {  // large to small: each warm-starts the next
            ho.l2 = std::pow(10.0, e);
            last = vit::train_head(tr.x, tr.y, k, ho, warm);
            warm = &last.head;
            const double acc = vit::evaluate_head(va.x, va.y, last.head).accuracy;
            say("l2 " + fmt(ho.l2) + ": validation accuracy " + fmt(acc) + ", objective " + fmt(last.objective, "%.10g") +
                ", " + std::to_string(last.iterations) + " iterations");
            grid.push_back({{"l2", ho.l2},
                            {"validation_accuracy", acc},
                            {"objective", last.objective},
                            {"gradient_norm", last.gradient_norm},
                            {"iterations", last.iterations}});
            if (acc > best_acc) best_acc = acc, best = last;  // strictly better: ties keep the larger l2
        }
        fit = *best;
        if (o.refit) {
            ho.l2 = fit.l2;
            split all;
            all.x.resize(tr.x.rows() + va.x.rows(), tr.x.cols());
            all.x << tr.x, va.x;
            all.y = tr.y;
            all.y.insert(all.y.end(), va.y.begin(), va.y.end());
            fit = vit::train_head(all.x, all.y, k, ho, &fit.head);
        }
    } else {
        ho.l2 = o.l2;
        fit = vit::train_head(tr.x, tr.y, k, ho);
    }
    const double train_seconds = std::chrono::duration<double>(clock::now() - t_train).count();
    if (!fit.converged)
        say("warning: stopped at a gradient norm of " + fmt(fit.gradient_norm) + " after " +
            std::to_string(fit.iterations) + " iterations (above 1e-6)");
    const vit::head_evaluation ev_train = vit::evaluate_head(tr.x, tr.y, fit.head);
    std::optional<vit::head_evaluation> ev_val;
    if (has_val) ev_val = vit::evaluate_head(va.x, va.y, fit.head);
    say("l2 " + fmt(fit.l2) + ": objective " + fmt(fit.objective, "%.10g") + ", gradient norm " + fmt(fit.gradient_norm, "%.2e") +
        ", " + std::to_string(fit.iterations) + " iterations, " + fmt(train_seconds, "%.2f") + " s; train accuracy " +
        fmt(ev_train.accuracy) + (ev_val ? ", validation accuracy " + fmt(ev_val->accuracy) : std::string()));

    nlohmann::json report = {
        {"model", o.model},
        {"architecture", vit::classifier_architecture(model.config().family)},
        {"features", {{"kind", vit::classifier_input_kind(model)}, {"size", width}, {"dtype", o.dtype_name}}},
        {"classes", train.classes},
        {"objective_definition", "mean cross-entropy + (l2 / 2) * ||W||^2 (bias not penalised), in double"},
        {"l2", fit.l2},
        {"objective", fit.objective},
        {"gradient_norm", fit.gradient_norm},
        {"gradient_tolerance", ho.gradient_tolerance},
        {"converged", fit.converged},
        {"iterations", fit.iterations},
        {"refit_on_train_and_validation", o.refit},
        {"train", evaluation_json(ev_train)},
        {"validation", ev_val ? evaluation_json(*ev_val) : nlohmann::json(nullptr)},
        {"images_per_class", {{"train", train_counts}, {"validation", val_counts}}},
        {"skipped", skipped},
        {"seconds", {{"features", feature_seconds}, {"training", train_seconds}}},
    };
    if (o.l2_grid) report["l2_grid"] = grid;
    const vit::head_evaluation& shown = ev_val ? *ev_val : ev_train;
    const std::vector<unsigned char> png = vit::confusion_png(
        shown, train.classes,
        std::string(ev_val ? "VALIDATION" : "TRAINING") + " ACCURACY " + fmt(100 * shown.accuracy, "%.1f") + "% (" +
            std::to_string(shown.images) + " IMAGES)");
    vit::save_classifier(model_dir, train.classes, fit.head, o.output,
                         {{"training.json", report.dump(2) + "\n"}, {"confusion.png", std::string(png.begin(), png.end())}});
    say("wrote " + o.output);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse_args(argc, argv);
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::cerr << "vit-train-head: " << e.what() << "\n";
        return fatal;
    }
}
