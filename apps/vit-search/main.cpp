// vit-search: rank the images of a vit-classify --features run by cosine
// similarity to a query image (or text), exactly or through a FAISS index.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <vit/vit.hpp>

#include "common/cli.hpp"
#include "common/feature_source.hpp"
#include "common/hub.hpp"
#include "exact.hpp"
#ifdef VIT_HAVE_FAISS
#include "faiss_index.hpp"
#endif

namespace {

const char* usage = R"(usage: vit-search --index DIR --model M (--image P | --text Q) [options]
       vit-search --index DIR --build-faiss [--faiss SPEC] [--faiss-params P]

Ranks the images of a `vit-classify --features --output DIR` run by cosine
similarity to a query, best first. The query is embedded by the model that
embedded the images: --image by its image tower (the same kind of embedding
as the index), --text by the text tower of a CLIP or SigLIP checkpoint (CLIP's
text_embeds live in the space of its image_embeds, SigLIP's in that of its
pooler_output).

  --index DIR        the --output folder of vit-classify --features (its
                     part-*.jsonl and part-*.npy files)
  --model M          checkpoint folder or hub id in the local Hugging Face cache
                     (default: $VIT_MODEL)
  --image P          query by an image file
  --text Q           query by a sentence
  --top-k K          how many images (default 10; all of them when fewer)
  --json             one JSON object per line, best first: {"image", "score"}
  --exact            search every embedding even when DIR/search.faiss exists
  --any-model        search even when M is another checkpoint than the one
                     DIR/features.json names (a converted copy of it, say);
                     without it that is an error, as the scores would mean
                     nothing
  --threads N        threads for the query's forward pass (default: all cores)

FAISS (when this program was built with libfaiss):
  --build-faiss      write DIR/search.faiss (an inner-product index of the
                     L2-normalised embeddings, which Python's faiss reads too),
                     DIR/search.faiss.ids (id -> image, JSON strings, one a line)
                     and DIR/search.faiss.json (what it was built from). Queries
                     then use it, and say so on stderr
  --faiss SPEC       with --build-faiss: a faiss index_factory string, such as
                     IVF4096,Flat or HNSW32,Flat (default: Flat below 50,000
                     images, else IVFn,Flat with n the power of two at or above
                     sqrt(images), and nprobe=n/8)
  --faiss-params P   faiss search parameters, such as nprobe=64 or efSearch=128:
                     stored in the index with --build-faiss, or for one query

Exit status: 0 on success, 2 on a usage error, 3 on any other error (the
index, model or query unusable), with a message naming what is wrong.

examples:
  vit-classify --features --model openai/clip-vit-base-patch32 --output emb/ photos/
  vit-search --index emb/ --model openai/clip-vit-base-patch32 --text "a dog on a beach"
  vit-search --index emb/ --model openai/clip-vit-base-patch32 --image query.jpg --top-k 5 --json
  vit-search --index emb/ --build-faiss
)";

struct options {
    std::string index, model, image, text, faiss_spec, faiss_params;
    bool text_given = false, json = false, exact = false, build = false, any_model = false;
    int top_k = 10, threads = 0;
};

constexpr const char* program = "vit-search";

options parse_args(int argc, char** argv) {
    options o;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) cli::usage_error(program, std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            std::exit(0);
        } else if (a == "--version") {
            std::cout << "vit-search " << VIT_VERSION_STRING << " (FAISS: "
#ifdef VIT_HAVE_FAISS
                      << "yes"
#else
                      << "no"
#endif
                      << ", matrix kernels: " << vit::cpu_kernels() << ")\n";
            std::exit(0);
        } else if (a == "--index") {
            o.index = value(i);
        } else if (a == "--model") {
            o.model = value(i);
        } else if (a == "--image") {
            o.image = value(i);
        } else if (a == "--text") {
            o.text = value(i);
            o.text_given = true;
        } else if (a == "--top-k") {
            o.top_k = cli::parse_int(program, a, value(i), 1, 100000000);
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--exact") {
            o.exact = true;
        } else if (a == "--any-model") {
            o.any_model = true;
        } else if (a == "--threads") {
            o.threads = cli::parse_int(program, a, value(i), 1, 1024);
        } else if (a == "--build-faiss") {
            o.build = true;
        } else if (a == "--faiss") {
            o.faiss_spec = value(i);
        } else if (a == "--faiss-params") {
            o.faiss_params = value(i);
        } else {
            cli::usage_error(program, "unknown option '" + a + "'");
        }
    }
    if (o.index.empty()) cli::usage_error(program, "--index DIR is required (the --output folder of vit-classify --features)");
    const bool query = !o.image.empty() || o.text_given;
    if (o.build) {
        if (query) cli::usage_error(program, "--build-faiss builds the index only; query in another run");
    } else {
        if (!o.faiss_spec.empty()) cli::usage_error(program, "--faiss SPEC goes with --build-faiss");
        if (o.image.empty() == !o.text_given)
            cli::usage_error(program, o.text_given ? "give either --text or --image, not both" : "give a query: --text Q or --image P");
        if (o.model.empty()) {
            const char* env = std::getenv("VIT_MODEL");
            if (!env || !*env) cli::usage_error(program, "--model M is required to embed the query (the model that embedded the images)");
            o.model = env;
        }
    }
    if (o.threads == 0) o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    return o;
}

// The query's embedding and what it is (the kind vit-classify records).
struct query {
    std::vector<float> embedding;
    std::string kind, from;
};

query image_query(const options& o, const std::string& dir) {
    vit::load_options lo;
    lo.threads = o.threads;
    const vit::model model = vit::load_model(dir, lo);
    const std::vector<vit::image> images{vit::load_image(o.image)};
    vit::forward_options fo;
    fo.output_last_hidden_state = false;
    vit::workspace<float> ws(o.threads);
    const vit::output<float> out = model.forward(vit::make_pixel_values<float>(images, model.preprocessing()), fo, &ws);
    const auto& e = model.embedding(out);
    return {std::vector<float>(e.row(0).data(), e.row(0).data() + model.embedding_size()), model.embedding_kind(),
            dir + " on " + o.image};
}

query text_query(const options& o, const std::string& dir) {
    vit::load_options lo;
    lo.threads = o.threads;
    const vit::text_model model = vit::load_text_model(dir, lo);  // a vision-only checkpoint: "no text tower"
    const vit::matrix<float> e = model.embed({o.text});
    // The image embedding the text embedding is compared with: CLIP projects
    // both towers into one space (image_embeds); SigLIP's text head output
    // meets the vision tower's pooler_output.
    const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
    const std::string type = cfg.value("model_type", "");
    const std::string kind = type.rfind("siglip", 0) == 0 ? "pooler_output" : "image_embeds";
    return {std::vector<float>(e.row(0).data(), e.row(0).data() + e.cols()), kind, dir + " on the text"};
}

// The query's checkpoint against the one DIR/features.json says embedded the images.
void check_model(const options& o, const std::string& dir) {
    const std::optional<feature_source::source> s = feature_source::read(o.index);
    if (!s) {
        std::fprintf(stderr, "vit-search: %s has no features.json (a folder from before vit-classify wrote one): "
                             "the query's model is not checked against the images'\n", o.index.c_str());
        return;
    }
    if (o.any_model) return;
    const std::string fp = feature_source::checkpoint_fingerprint(dir);
    if (fp != s->fingerprint)
        throw vit::error(feature_source::file_name(o.index) + ": the images were embedded by " + s->model + " (" +
                         s->fingerprint + "), and the query's model " + o.model + " is another checkpoint (" + fp +
                         "): scores across two models mean nothing; give --model " + s->model +
                         ", or --any-model to search anyway");
}

void print(const options& o, const std::vector<search::hit>& hits) {
    if (o.json) {
        for (const auto& h : hits) std::cout << nlohmann::json{{"image", h.image}, {"score", h.score}}.dump() << "\n";
        return;
    }
    std::printf("%5s  %8s  %s\n", "rank", "score", "image");
    int rank = 0;
    for (const auto& h : hits) std::printf("%5d  %8.5f  %s\n", ++rank, h.score, h.image.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse_args(argc, argv);
    using clock = std::chrono::steady_clock;
    try {
        if (o.build) {
#ifdef VIT_HAVE_FAISS
            const auto r = search::build_faiss(o.index, o.faiss_spec, o.faiss_params);
            std::fprintf(stderr, "vit-search: wrote %s (%s%s%s) over %zu images: trained in %.2f s, added in %.2f s\n",
                         search::faiss_path(o.index).c_str(), r.spec.c_str(), r.params.empty() ? "" : ", ", r.params.c_str(), r.images,
                         r.train_seconds, r.add_seconds);
            return 0;
#else
            throw vit::error("--build-faiss: this vit-search was built without FAISS (install libfaiss-dev and rebuild)");
#endif
        }
        const std::string dir = hub::resolve_model(o.model);
        check_model(o, dir);
        const query q = o.text_given ? text_query(o, dir) : image_query(o, dir);
        const auto t0 = clock::now();
        search::stats st;
        std::vector<search::hit> hits;
        bool use_faiss = false;
#ifdef VIT_HAVE_FAISS
        use_faiss = !o.exact && search::have_faiss_index(o.index);
        if (use_faiss) hits = search::faiss_search(o.index, q.embedding, std::size_t(o.top_k), q.kind, q.from, o.faiss_params, st);
#else
        struct stat sb {};
        if (!o.exact && ::stat((o.index + "/search.faiss").c_str(), &sb) == 0)
            std::fprintf(stderr, "vit-search: %s/search.faiss ignored: this vit-search was built without FAISS\n", o.index.c_str());
#endif
        if (!use_faiss) hits = search::exact_search(o.index, q.embedding, std::size_t(o.top_k), q.kind, q.from, st);
        const double secs = std::chrono::duration<double>(clock::now() - t0).count();
        print(o, hits);
        std::fprintf(stderr, "vit-search: %s search over %zu images in %zu part%s: %.3f s\n", st.method.c_str(), st.images, st.parts,
                     st.parts == 1 ? "" : "s", secs);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "vit-search: " << e.what() << "\n";
        return 3;
    }
}
