// vit-classify: label images with a ViT checkpoint, as transformers would.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <vit/text.hpp>
#include <vit/vit.hpp>

#include "common/cli.hpp"
#include "common/feature_source.hpp"
#include "common/hub.hpp"
#include "common/labels.hpp"
#include "common/rollout.hpp"
#include "inputs.hpp"
#include "common/parts.hpp"

namespace {

const char* usage = R"(usage: vit-classify [options] IMAGE...
       vit-classify --label L [--label L ...] [options] IMAGE...
       vit-classify --features --text T [--text T ...] [options]

Labels images with a Vision Transformer checkpoint and prints the most
probable classes, with the scores transformers' pipeline would give. With a
CLIP or SigLIP checkpoint (both towers and the tokenizer files), labels
written on the command line score images zero-shot, and texts give their
embeddings.

IMAGE      an image file (JPEG, PNG, GIF, BMP, TGA, PNM), a folder (its images,
           sorted by path), or - to read paths from standard input, one a line

options:
  --model M          checkpoint folder, or a hub id such as google/vit-large-patch32-384
                     found in the local Hugging Face cache ($HF_HUB_CACHE, else
                     $HF_HOME/hub, else ~/.cache/huggingface/hub).
                     Default: $VIT_MODEL, else google/vit-large-patch32-384
  --top-k K          how many labels per image (default 5)
  --json             one JSON object per line per image:
                     {"image": ..., "predictions": [{"label", "index", "score"}, ...]}
  --logits           with --json or --output: add "logits", every raw logit
  --features         print the image embedding as JSON instead of labels, its
                     "kind" the output it is: CLIP's image_embeds, else the
                     pooler_output (DINOv2, SigLIP, a ViTModel with a pooler),
                     else the cls_embedding (the CLS token after the final
                     LayerNorm); works without a classifier
  --normalize        with --features: L2-normalised vectors (a dot product is
                     then the cosine similarity, as retrieval uses)
  --attention-map F  write F (PNG): where the model looks (attention rollout over
                     all layers) as a heat map over the image; one image only
  --save-input F     write F (PNG): the RGB image the model sees, after EXIF
                     orientation and resizing; one image only
  --size WxH         run at another resolution (multiples of the patch size), with
                     position embeddings interpolated as transformers does
  --batch N          images per forward pass (default 8)
  --threads N        threads (default: all cores)
  --dtype D          how the encoder computes: f32 (default), bf16 or int8
                     (int8 quantizes a float checkpoint at load; see README)

zero-shot labels and texts (CLIP, SigLIP):
  --label L          a label to score each image against (repeatable); the
                     scores are the zero-shot pipeline's: CLIP a softmax over
                     the labels, SigLIP a sigmoid per label. Every label is
                     printed, best first, unless --top-k is given; --logits
                     adds the image's logits_per_image in label order
  --labels-file F    labels from F, one a line (surrounding blanks stripped,
                     blank lines skipped), after any --label. A label given
                     twice is an error (it would split CLIP's softmax)
  --template T       the sentence each label is put in, at its {}
                     (default: "This is a photo of {}.")
  --text T           with --features: print T's text embedding (repeatable), as
                     {"text", "kind": "text_embeds", "features"}: projected, not
                     normalised unless --normalize. No images are read. A text
                     longer than the model's context (CLIP 77 tokens, SigLIP
                     64) is truncated as transformers truncates it
  --tokens           with --text: add "input_ids", the text's token ids

inputs and outputs for large runs (see docs/scale.md):
  --files-from F     read image paths from F, one a line (- for standard input)
  -0                 names in --files-from lists and on standard input are
                     separated by NUL bytes (find -print0), not lines
  --recursive        folders: their subfolders' images too
  --shard I/N        take only the inputs whose path (as given) hashes to I
                     modulo N (FNV-1a 64, then fmix64), so the split does not
                     depend on the order of the list. Without it, a Slurm
                     array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT)
                     or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with
                     --shard-count) chooses
  --shard-count N    the number of shards, for JOB_COMPLETION_INDEX, and over
                     SLURM_ARRAY_TASK_COUNT (give it when rerunning single
                     array tasks)
  --output DIR       write DIR/part-IIIII-of-NNNNN.jsonl: the --json objects, one
                     per input, failures as {"image", "error"}; committed every
                     --chunk images, atomically, so a killed task leaves whole
                     records. With --features the embeddings go to
                     part-IIIII-of-NNNNN.npy (float32 [n, hidden]) and each JSON
                     object says its "row"; DIR/features.json names the model
                     (and a fingerprint of its files), and a later run into DIR
                     with another checkpoint or input size is an error
  --resume           continue a part file: skip the inputs already recorded
  --chunk N          images per committed chunk with --output (default 64),
                     rounded up to whole batches
  --version          print the version and build features
  --help             this text

Exit status: 0 when every image was labelled, 1 when any failed (each failure
is reported with the image's name), 2 on a usage error (a --label or --text
not valid UTF-8 included), 3 on a fatal error (the model missing or bad, a
vision-only model or one without its tokenizer files asked for text, an input
list, the labels file or the output unusable; when it happens before any
work, no part file is created).

examples:
  vit-classify --model google/vit-large-patch32-384 cat.jpg
  vit-classify --model ./vit-large-patch32-384 --json --top-k 3 photos/
  find photos -name '*.jpg' | vit-classify --json -
  vit-classify --features --model google/vit-large-patch32-384-in21k cat.jpg
  vit-classify --attention-map where.png cat.jpg
  vit-classify --files-from list.txt --shard 0/4 --output out/ --resume
  vit-classify --model openai/clip-vit-base-patch32 --label cat --label dog cat.jpg
  vit-classify --model google/siglip-base-patch16-224 --labels-file labels.txt --json photos/
  vit-classify --model openai/clip-vit-base-patch32 --features --text "a photo of a cat"
)";

struct options {
    std::string model;
    int top_k = 5;
    bool top_k_given = false;
    bool json = false, logits = false, features = false, normalize = false;
    std::string attention_map, save_input;
    int width = 0, height = 0;
    int batch = 8;
    int threads = 0;
    vit::precision dtype = vit::precision::f32;
    inputs::sources inputs;
    inputs::shard shard;
    std::string output;
    bool resume = false;
    int chunk = 64;
    std::vector<std::string> texts;          // --text
    bool tokens = false;
    std::vector<std::string> labels;         // --label, in order
    std::string labels_file;
    std::string hypothesis_template = "This is a photo of {}.";
    bool template_given = false;
    bool zero_shot() const { return !labels.empty() || !labels_file.empty(); }
};

constexpr const char* program = "vit-classify";

options parse_args(int argc, char** argv) {
    options o;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) cli::usage_error(program, std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    bool only_files = false;
    std::string shard_flag, shard_count;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (only_files || a == "-" || a.empty() || a[0] != '-') {
            o.inputs.args.push_back(a);
        } else if (a == "--") {
            only_files = true;
        } else if (a == "--help" || a == "-h") {
            std::cout << usage;
            std::exit(0);
        } else if (a == "--version") {
            std::cout << "vit-classify " << VIT_VERSION_STRING << " (JPEG: " << vit::jpeg_decoder()
                      << ", matrix kernels: " << vit::cpu_kernels() << ")\n";
            std::exit(0);
        } else if (a == "--model") {
            o.model = value(i);
        } else if (a == "--top-k") {
            o.top_k = cli::parse_int(program, a, value(i), 1, 1000000);
            o.top_k_given = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--logits") {
            o.logits = true;
        } else if (a == "--features") {
            o.features = true;
        } else if (a == "--normalize") {
            o.normalize = true;
        } else if (a == "--attention-map") {
            o.attention_map = value(i);
        } else if (a == "--save-input") {
            o.save_input = value(i);
        } else if (a == "--size") {
            const std::string v = value(i);
            const auto x = v.find('x');
            if (x == std::string::npos) cli::usage_error(program, "--size takes WIDTHxHEIGHT, e.g. 448x320; got '" + v + "'");
            o.width = cli::parse_int(program, "--size", v.substr(0, x), 1, 16384);
            o.height = cli::parse_int(program, "--size", v.substr(x + 1), 1, 16384);
        } else if (a == "--batch") {
            o.batch = cli::parse_int(program, a, value(i), 1, 4096);
        } else if (a == "--threads") {
            o.threads = cli::parse_int(program, a, value(i), 1, 1024);
        } else if (a == "--dtype") {
            const std::string v = value(i);
            if (v == "f32") o.dtype = vit::precision::f32;
            else if (v == "bf16") o.dtype = vit::precision::bf16;
            else if (v == "int8") o.dtype = vit::precision::int8;
            else cli::usage_error(program, "--dtype takes f32, bf16 or int8, got '" + v + "'");
        } else if (a == "--files-from") {
            o.inputs.files_from.push_back(value(i));
        } else if (a == "-0") {
            o.inputs.nul_separated = true;
        } else if (a == "--recursive") {
            o.inputs.recursive = true;
        } else if (a == "--shard") {
            shard_flag = value(i);
        } else if (a == "--shard-count") {
            shard_count = value(i);
        } else if (a == "--output") {
            o.output = value(i);
            if (o.output.empty()) cli::usage_error(program, "--output needs a folder");
        } else if (a == "--resume") {
            o.resume = true;
        } else if (a == "--chunk") {
            o.chunk = cli::parse_int(program, a, value(i), 1, 1000000);
        } else if (a == "--text") {
            o.texts.push_back(value(i));
        } else if (a == "--tokens") {
            o.tokens = true;
        } else if (a == "--label") {
            o.labels.push_back(value(i));
        } else if (a == "--labels-file") {
            o.labels_file = value(i);
            if (o.labels_file.empty()) cli::usage_error(program, "--labels-file needs a file");
        } else if (a == "--template") {
            o.hypothesis_template = value(i);
            o.template_given = true;
        } else {
            cli::usage_error(program, "unknown option '" + a + "'");
        }
    }
    try {
        for (std::size_t i = 0; i < o.texts.size(); ++i) labels::check_utf8(o.texts[i], "--text " + std::to_string(i + 1));
        if (!o.labels.empty()) {
            std::vector<std::string> names;
            for (std::size_t i = 0; i < o.labels.size(); ++i) names.push_back("--label " + std::to_string(i + 1));
            labels::check_labels(o.labels, names);
        }
        if (o.template_given) labels::check_template(o.hypothesis_template, "--template");
    } catch (const vit::error& e) {
        cli::usage_error(program, e.what());
    }
    if (!o.texts.empty()) {
        if (!o.features) cli::usage_error(program, "--text goes with --features (it prints the text's embedding)");
        if (!o.inputs.args.empty() || !o.inputs.files_from.empty())
            cli::usage_error(program, "--text reads no images; embed texts and images in separate runs");
        if (o.zero_shot()) cli::usage_error(program, "--text does not go with --label or --labels-file");
        if (!o.output.empty() || !o.attention_map.empty() || !o.save_input.empty())
            cli::usage_error(program, "--text prints to standard output; --output, --attention-map and --save-input take images");
    } else if (o.inputs.args.empty() && o.inputs.files_from.empty()) {
        cli::usage_error(program, "no image given");
    }
    if (o.tokens && o.texts.empty()) cli::usage_error(program, "--tokens goes with --text");
    if (o.zero_shot() && o.features) cli::usage_error(program, "--label and --labels-file score labels; they do not go with --features");
    if (o.template_given && !o.zero_shot()) cli::usage_error(program, "--template goes with --label or --labels-file");
    if (o.logits && !o.json && o.output.empty()) cli::usage_error(program, "--logits goes with --json or --output");
    if (o.resume && o.output.empty()) cli::usage_error(program, "--resume goes with --output");
    if (o.normalize && !o.features) cli::usage_error(program, "--normalize goes with --features");
    if (!o.output.empty() && (!o.attention_map.empty() || !o.save_input.empty()))
        cli::usage_error(program, "--attention-map and --save-input take one image; they do not go with --output");
    try {
        o.shard = inputs::choose_shard(shard_flag, shard_count, inputs::getenv_string);
    } catch (const std::invalid_argument& e) {
        cli::usage_error(program, e.what());
    }
    if (o.model.empty()) {
        const char* env = std::getenv("VIT_MODEL");
        o.model = env && *env ? env : "google/vit-large-patch32-384";
    }
    if (o.threads == 0) o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    return o;
}

// A one-line bar on a terminal's stderr: redrawn in place, cleared at the end.
class progress {
public:
    progress(std::size_t total, bool on) : total_(total), on_(on), start_(std::chrono::steady_clock::now()) {}
    void update(std::size_t done) const {
        if (!on_) return;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const int width = 30, filled = int(width * done / std::max<std::size_t>(total_, 1));
        std::fprintf(stderr, "\r[%s%s] %zu/%zu images, %.1f images/s ", std::string(std::size_t(filled), '#').c_str(),
                     std::string(std::size_t(width - filled), '.').c_str(), done, total_, secs > 0 ? double(done) / secs : 0.0);
        std::fflush(stderr);
    }
    ~progress() {
        if (on_) std::fprintf(stderr, "\r\033[K");
    }

private:
    std::size_t total_;
    bool on_;
    std::chrono::steady_clock::time_point start_;
};

// Jet-like colour for t in [0, 1].
void heat_colour(double t, double rgb[3]) {
    auto clamp01 = [](double v) { return std::min(1.0, std::max(0.0, v)); };
    rgb[0] = clamp01(1.5 - std::abs(4 * t - 3));
    rgb[1] = clamp01(1.5 - std::abs(4 * t - 2));
    rgb[2] = clamp01(1.5 - std::abs(4 * t - 1));
}

void write_attention_map(const vit::image& img, const std::vector<double>& grid, int gh, int gw, const std::string& path) {
    const double lo = *std::min_element(grid.begin(), grid.end()), hi = *std::max_element(grid.begin(), grid.end());
    vit::image out = img;
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            // Bilinear upsampling of the patch grid to the image, cell centres aligned.
            const double gy = std::min(std::max((y + 0.5) * gh / img.height - 0.5, 0.0), gh - 1.0);
            const double gx = std::min(std::max((x + 0.5) * gw / img.width - 0.5, 0.0), gw - 1.0);
            const int y0 = int(gy), x0 = int(gx), y1 = std::min(y0 + 1, gh - 1), x1 = std::min(x0 + 1, gw - 1);
            const double fy = gy - y0, fx = gx - x0;
            auto at = [&](int r, int c) { return grid[std::size_t(r) * gw + c]; };
            const double v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
            const double t = hi > lo ? (v - lo) / (hi - lo) : 0.0;
            double rgb[3];
            heat_colour(t, rgb);
            const double alpha = 0.25 + 0.45 * t;  // strong where attention is high
            std::uint8_t* p = &out.rgb[(std::size_t(y) * img.width + x) * 3];
            for (int c = 0; c < 3; ++c) p[c] = std::uint8_t(std::lround((1 - alpha) * p[c] + alpha * 255.0 * rgb[c]));
        }
    vit::save_png(out, path);
}

// v / |v| (a zero vector stays zero), the sum in double.
void l2_normalize(std::vector<float>& v) {
    double ss = 0;
    for (float x : v) ss += double(x) * double(x);
    if (ss > 0)
        for (float& x : v) x = float(double(x) / std::sqrt(ss));
}

nlohmann::json to_json_array(const float* v, Eigen::Index n) {
    nlohmann::json a = nlohmann::json::array();
    for (Eigen::Index i = 0; i < n; ++i) a.push_back(v[i]);
    return a;
}

}  // namespace

// The exit statuses the usage text promises.
enum exit_status { all_labelled = 0, some_failed = 1, fatal = 3 };

// What a run needs before its first image: the model (with zero-shot labels,
// both towers and the labels' embeddings) and this shard's inputs. A failure
// here is fatal, and comes before any part file is created.
struct run_setup {
    std::string dir;
    std::optional<vit::model> classifier;       // without labels
    std::optional<vit::zero_shot_model> zero_shot;  // with labels
    std::vector<std::string> labels;             // zero-shot: --label, then --labels-file
    vit::matrix<float> label_embeds;             // [labels, P]
    vit::preprocess_config pre;
    std::vector<std::string> files;  // this shard's, in the order given

    const vit::model& model() const { return zero_shot ? zero_shot->image() : *classifier; }
};

vit::load_options load_opts(const options& opt) {
    vit::load_options lo;
    lo.compute = opt.dtype;
    lo.threads = opt.threads;
    return lo;
}

// The labels of --label and --labels-file, checked together.
std::vector<std::string> gather_labels(const options& opt) {
    labels::label_list all;
    for (std::size_t i = 0; i < opt.labels.size(); ++i) {
        all.labels.push_back(opt.labels[i]);
        all.names.push_back("--label " + std::to_string(i + 1));
    }
    if (!opt.labels_file.empty()) {
        labels::label_list f = labels::read_labels_file(opt.labels_file);
        all.labels.insert(all.labels.end(), f.labels.begin(), f.labels.end());
        all.names.insert(all.names.end(), f.names.begin(), f.names.end());
    }
    labels::check_labels(all.labels, all.names);
    return all.labels;
}

run_setup setup(const options& opt) {
    run_setup r;
    r.dir = hub::resolve_model(opt.model);
    if (opt.zero_shot()) {
        r.labels = gather_labels(opt);
        r.zero_shot.emplace(vit::load_zero_shot_model(r.dir, load_opts(opt)));
        r.label_embeds = r.zero_shot->label_embeddings(r.labels, opt.hypothesis_template);
    } else {
        r.classifier.emplace(vit::load_model(r.dir, load_opts(opt)));
    }
    r.pre = r.model().preprocessing();
    if (opt.width) {
        r.pre.width = opt.width;
        r.pre.height = opt.height;
        r.pre.do_resize = true;
    }
    const vit::config& c = r.model().config();
    if (!opt.features && !opt.zero_shot() && c.arch != vit::architecture::image_classification)
        throw vit::error(r.dir + ": a " + (c.architecture_name.empty() ? std::string("backbone") : c.architecture_name) +
                         " checkpoint has no classifier; use --features for its embeddings, or --label for zero-shot "
                         "labels (CLIP, SigLIP)");
    const std::vector<std::string> all = inputs::expand(opt.inputs);
    if (all.empty()) throw vit::error("no images found in the given inputs");
    for (const auto& f : all)
        if (opt.shard.takes(f)) r.files.push_back(f);
    const bool single_only = !opt.attention_map.empty() || !opt.save_input.empty();
    if (single_only && r.files.size() != 1)
        throw vit::error("--attention-map and --save-input take exactly one image, got " + std::to_string(r.files.size()));
    return r;
}

// With --output: the part files, the inputs they already record, and the
// chunk being gathered.
class part_output {
public:
    part_output(const options& opt, std::size_t feature_width) : opt_(opt), width_(feature_width) {
        std::error_code ec;
        std::filesystem::create_directories(opt.output, ec);
        if (ec) throw vit::error(opt.output + ": cannot create the output folder: " + ec.message());
        const std::string name = parts::part_name(opt.shard.index, opt.shard.count, "jsonl");
        parts::check_shard_count(opt.output, opt.shard.count);
        json_.emplace(opt.output, name, opt.resume);
        std::istringstream in(json_->committed());
        std::string line;
        std::size_t rows = 0, n = 0;
        while (std::getline(in, line)) {
            ++n;
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
                done_.insert(j.at("image").get<std::string>());
                if (j.contains("error")) ++failed_;
                else if (j.contains(opt.features ? "kind" : "predictions") == false)
                    throw vit::error(opt.features ? "it holds labels, and this run asks for --features"
                                                  : "it holds features, and this run asks for labels");
                if (j.contains("row") && j.at("row").get<std::size_t>() != rows++)
                    throw vit::error("its rows are not numbered in order");
            } catch (const std::exception& e) {
                throw vit::error(opt.output + "/" + name + ": line " + std::to_string(n) + " is not a record of vit-classify: " + e.what());
            }
        }
        if (opt.features)
            npy_.emplace(opt.output, parts::part_name(opt.shard.index, opt.shard.count, "npy"), feature_width, rows, opt.resume);
        name_ = name;
    }

    bool recorded(const std::string& image) const { return done_.count(image) != 0; }
    std::size_t failed() const { return failed_; }

    // A record for the next chunk; with features, its row of embeddings.
    void add(nlohmann::json record, const float* features = nullptr) {
        if (features) {
            record["row"] = npy_->rows() + rows_.size() / width_;
            rows_.insert(rows_.end(), features, features + width_);
        }
        if (record.contains("error")) ++failed_;
        chunk_ += record.dump() + "\n";
        ++pending_;
    }

    // Commits the chunk when it is full (or when `last`), rows first: a record
    // is visible only once its row is on disk. For the progress line: `done`
    // of `total` inputs are recorded, `fresh` of them by this run in `secs`.
    void maybe_commit(bool last, std::size_t done, std::size_t total, std::size_t fresh, double secs) {
        if (pending_ == 0 || (!last && pending_ < std::size_t(opt_.chunk))) return;
        if (npy_) npy_->append(rows_.data(), rows_.size() / width_);
        json_->commit(chunk_);
        chunk_.clear();
        rows_.clear();
        pending_ = 0;
        if (!::isatty(STDERR_FILENO))
            std::fprintf(stderr, "vit-classify: %s: %zu/%zu images, %zu failed, %.2f images/s\n", name_.c_str(), done, total,
                         failed_, secs > 0 ? double(fresh) / secs : 0.0);
    }

private:
    const options& opt_;
    std::optional<parts::jsonl_part> json_;
    std::optional<parts::npy_part> npy_;
    std::string name_;
    std::unordered_set<std::string> done_;
    std::size_t width_, failed_ = 0, pending_ = 0;
    std::string chunk_;
    std::vector<float> rows_;
};

// --features --output: DIR/features.json written, or checked against this
// run, before any part is opened, so a run of another model or input size
// leaves the folder as it was.
void record_source(const options& opt, const run_setup& r) {
    std::error_code ec;
    std::filesystem::create_directories(opt.output, ec);
    if (ec) throw vit::error(opt.output + ": cannot create the output folder: " + ec.message());
    feature_source::source s;
    s.model = opt.model;
    s.fingerprint = feature_source::checkpoint_fingerprint(r.dir);
    s.kind = r.model().embedding_kind();
    s.width = std::uint64_t(r.model().embedding_size());
    s.height = r.pre.height;
    s.image_width = r.pre.width;
    feature_source::record(opt.output, s);
}

// --text: each text's text_embeds, one JSON object a line, batch by batch.
int embed_texts(const options& opt) {
    try {
        const vit::text_model tm = vit::load_text_model(hub::resolve_model(opt.model), load_opts(opt));
        vit::text_forward_options fo;
        fo.output_last_hidden_state = false;
        for (std::size_t b0 = 0; b0 < opt.texts.size(); b0 += std::size_t(opt.batch)) {
            const std::size_t b1 = std::min(opt.texts.size(), b0 + std::size_t(opt.batch));
            const std::vector<std::string> batch(opt.texts.begin() + std::ptrdiff_t(b0), opt.texts.begin() + std::ptrdiff_t(b1));
            const vit::token_batch tokens = tm.encode(batch);
            const vit::text_output<float> out = tm.forward(tokens, fo);
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const auto row = out.text_embeds.row(Eigen::Index(i));
                std::vector<float> v(row.data(), row.data() + row.size());
                if (opt.normalize) l2_normalize(v);
                nlohmann::json j{{"text", batch[i]}, {"kind", "text_embeds"}};
                if (opt.normalize) j["normalized"] = true;
                if (opt.tokens) {  // the text's own ids: the padding the batch needed left out
                    nlohmann::json ids = nlohmann::json::array();
                    for (std::size_t t = 0; t < tokens.input_ids[i].size(); ++t)
                        if (tokens.attention_mask[i][t]) ids.push_back(tokens.input_ids[i][t]);
                    j["input_ids"] = std::move(ids);
                }
                j["features"] = to_json_array(v.data(), Eigen::Index(v.size()));
                std::cout << j.dump() << "\n";
            }
            std::cout.flush();
        }
        return all_labelled;
    } catch (const std::exception& e) {
        std::cerr << "vit-classify: " << e.what() << "\n";
        return fatal;
    }
}

int main(int argc, char** argv) {
    const options opt = parse_args(argc, argv);
    if (!opt.texts.empty()) return embed_texts(opt);
    std::optional<run_setup> run;
    std::optional<part_output> parts_out;
    try {
        run.emplace(setup(opt));
        if (!opt.output.empty()) {
            if (opt.features) record_source(opt, *run);
            parts_out.emplace(opt, std::size_t(run->model().embedding_size()));
        }
    } catch (const std::exception& e) {
        std::cerr << "vit-classify: " << e.what() << "\n";
        return fatal;
    }
    const vit::model& model = run->model();
    const vit::config& cfg = model.config();
    const vit::preprocess_config& pre = run->pre;
    const std::vector<std::string>& files = run->files;
    try {
        std::vector<std::string> todo;
        for (const auto& f : files)
            if (!parts_out || !parts_out->recorded(f)) todo.push_back(f);
        const std::size_t already = files.size() - todo.size();

        vit::workspace<float> ws(opt.threads);
        const std::size_t batches = (todo.size() + std::size_t(opt.batch) - 1) / std::size_t(opt.batch);
        progress bar(todo.size(), batches > 1 && ::isatty(STDERR_FILENO));
        const auto start = std::chrono::steady_clock::now();
        bool any_failed = parts_out && parts_out->failed() > 0;
        for (std::size_t b0 = 0; b0 < todo.size(); b0 += std::size_t(opt.batch)) {
            const std::size_t b1 = std::min(todo.size(), b0 + std::size_t(opt.batch));
            std::vector<vit::image> images;
            std::vector<std::string> errors(b1 - b0);
            for (std::size_t i = b0; i < b1; ++i) {
                try {
                    images.push_back(vit::load_image(todo[i]));
                } catch (const vit::error& e) {
                    errors[i - b0] = e.what();
                }
            }
            vit::output<float> out;
            vit::zero_shot_scores<float> zs;
            if (!images.empty()) {
                vit::forward_options fo;
                fo.output_attentions = !opt.attention_map.empty();
                fo.output_last_hidden_state = false;  // labels need the CLS token only
                out = model.forward(vit::make_pixel_values<float>(images, pre), fo, &ws);
                if (!opt.save_input.empty()) vit::save_png(vit::prepare_image(images[0], pre), opt.save_input);
                if (!opt.attention_map.empty())
                    write_attention_map(images[0], rollout::attention_rollout(out, cfg.num_attention_heads),
                                        pre.height / cfg.patch_size, pre.width / cfg.patch_size, opt.attention_map);
                if (run->zero_shot) zs = run->zero_shot->scores(model.embedding(out), run->label_embeds);
            }
            std::size_t row = 0;
            for (std::size_t i = b0; i < b1; ++i) {
                const std::string& err = errors[i - b0];
                if (!err.empty()) {
                    any_failed = true;
                    const nlohmann::json j{{"image", todo[i]}, {"error", err}};
                    if (parts_out) parts_out->add(j);
                    else if (opt.json) std::cout << j.dump() << "\n";
                    else std::cerr << "vit-classify: " << err << "\n";
                    continue;
                }
                const Eigen::Index r = Eigen::Index(row++);
                if (opt.features) {
                    std::vector<float> v(model.embedding(out).row(r).data(),
                                         model.embedding(out).row(r).data() + model.embedding_size());
                    if (opt.normalize) l2_normalize(v);
                    nlohmann::json j{{"image", todo[i]}, {"kind", model.embedding_kind()}};
                    if (opt.normalize) j["normalized"] = true;
                    if (parts_out) {
                        parts_out->add(j, v.data());
                    } else {
                        j["features"] = to_json_array(v.data(), Eigen::Index(v.size()));
                        std::cout << j.dump() << "\n";
                    }
                    continue;
                }
                // Zero-shot: the probs of the labels given, all of them unless --top-k says.
                const vit::matrix<float>& logits = run->zero_shot ? zs.logits_per_image : out.logits;
                const auto preds = run->zero_shot
                                       ? labels::ranked(zs.probs.row(r).data(), int(zs.probs.cols()),
                                                        opt.top_k_given ? opt.top_k : 0, run->labels)
                                       : vit::top_k(out.logits.row(r).data(), cfg.num_labels(), opt.top_k, cfg.labels);
                if (opt.json || parts_out) {
                    nlohmann::json j = {{"image", todo[i]}, {"predictions", nlohmann::json::array()}};
                    for (const auto& p : preds)
                        j["predictions"].push_back({{"label", p.label}, {"index", p.index}, {"score", p.score}});
                    if (opt.logits) j["logits"] = to_json_array(logits.row(r).data(), logits.cols());
                    if (parts_out) parts_out->add(j);
                    else std::cout << j.dump() << "\n";
                } else {
                    std::cout << todo[i] << "\n";
                    for (const auto& p : preds) {
                        char score[32];
                        std::snprintf(score, sizeof score, "%7.4f", p.score);
                        std::cout << "  " << score << "  " << p.label << "\n";
                    }
                }
            }
            std::cout.flush();
            if (parts_out)
                parts_out->maybe_commit(b1 == todo.size(), already + b1, files.size(), b1,
                                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            bar.update(b1);
        }
        return any_failed ? some_failed : all_labelled;
    } catch (const std::exception& e) {
        std::cerr << "vit-classify: " << e.what() << "\n";
        return fatal;
    }
}
