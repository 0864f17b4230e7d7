// vit-search's benchmark (BENCHMARKS.md, "Search"): a synthetic collection of
// random L2-normalised float32 rows in vit-classify's --features part format,
// exact search's query time, and for each FAISS spec its build time, query
// time and recall@10 against exact search.
//
//   search-bench DIR [--rows 1000000] [--width 512] [--parts 16] [--queries 21]
//                [--spec "IVF4096,Flat:nprobe=16,nprobe=64,nprobe=256"]...
//
// DIR is created (about rows * width * 4 bytes) when it holds no parts; keep
// it out of the repository (/tmp). Queries come in two sets: random unit
// vectors (the hard case: every row is about as far), and collection rows
// with noise of the same norm added (a near-duplicate search).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/feature_parts.hpp"
#include "common/parts.hpp"
#include "vit-search/exact.hpp"
#ifdef VIT_HAVE_FAISS
#include "vit-search/faiss_index.hpp"
#endif

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void normalize(float* v, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += double(v[i]) * v[i];
    const double r = 1 / std::sqrt(s);
    for (std::size_t i = 0; i < n; ++i) v[i] = float(v[i] * r);
}

std::string image_name(std::size_t i) {
    char b[32];
    std::snprintf(b, sizeof b, "img/%08zu.jpg", i);
    return b;
}

// The collection: `parts` parts, row i of the whole in part i % parts.
void generate(const std::string& dir, std::size_t rows, std::size_t width, std::size_t nparts) {
    std::filesystem::create_directories(dir);
    std::mt19937_64 rng(12345);
    std::normal_distribution<float> g;
    for (std::size_t p = 0; p < nparts; ++p) {
        const std::string name = parts::part_name(p, nparts, "npy");
        parts::npy_part npy(dir, name, width, 0, false);
        std::ofstream js(dir + "/" + parts::part_name(p, nparts, "jsonl"), std::ios::binary);
        std::vector<float> block;
        std::size_t row = 0;
        for (std::size_t i = p; i < rows; i += nparts) {
            std::vector<float> v(width);
            for (auto& x : v) x = g(rng);
            normalize(v.data(), width);
            block.insert(block.end(), v.begin(), v.end());
            js << "{\"image\":\"" << image_name(i) << "\",\"kind\":\"image_embeds\",\"normalized\":true,\"row\":" << row++ << "}\n";
            if (block.size() >= 8192 * width) {
                npy.append(block.data(), block.size() / width);
                block.clear();
            }
        }
        npy.append(block.data(), block.size() / width);
        std::fprintf(stderr, "generated %s\n", name.c_str());
    }
}

// A row of the collection, read back from its part.
std::vector<float> row_of(const std::string& dir, std::size_t i, std::size_t nparts) {
    const feature_parts::mapped_rows r(dir + "/" + parts::part_name(i % nparts, nparts, "npy"));
    if (i / nparts >= r.rows()) throw vit::error(dir + ": holds fewer rows than --rows says");
    const float* p = r.row(i / nparts);
    return std::vector<float>(p, p + r.width());
}

double recall(const std::vector<search::hit>& got, const std::vector<search::hit>& truth) {
    std::set<std::string> t;
    for (const auto& h : truth) t.insert(h.image);
    std::size_t n = 0;
    for (const auto& h : got) n += t.count(h.image);
    return truth.empty() ? 1 : double(n) / double(truth.size());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: search-bench DIR [--rows N] [--width D] [--parts P] [--queries Q] [--spec SPEC:PARAMS,PARAMS]...\n");
        return 2;
    }
    const std::string dir = argv[1];
    std::size_t rows = 1000000, width = 512, nparts = 16, nq = 21;
    std::vector<std::string> specs;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--rows") rows = std::stoul(v);
        else if (a == "--width") width = std::stoul(v);
        else if (a == "--parts") nparts = std::stoul(v);
        else if (a == "--queries") nq = std::stoul(v);
        else if (a == "--spec") specs.push_back(v);
        else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (specs.empty()) specs = {"IVF4096,Flat:nprobe=16,nprobe=64,nprobe=256", "IVF1024,Flat:nprobe=16,nprobe=64"};
    std::error_code ec;
    if (!std::filesystem::exists(dir + "/" + parts::part_name(0, nparts, "jsonl"), ec)) {
        const auto t = clock_type::now();
        generate(dir, rows, width, nparts);
        std::printf("generated %zu x %zu in %zu parts: %.1f s\n", rows, width, nparts, seconds_since(t));
    }
    // The queries: random unit vectors, then noisy copies of random rows.
    std::mt19937_64 rng(777);
    std::normal_distribution<float> g;
    std::vector<std::vector<float>> queries;
    std::vector<std::string> query_set;
    for (std::size_t q = 0; q < 2 * nq; ++q) {
        std::vector<float> v(width);
        for (auto& x : v) x = g(rng);
        normalize(v.data(), width);
        if (q >= nq) {
            const std::vector<float> r = row_of(dir, std::size_t(rng() % rows), nparts);
            for (std::size_t j = 0; j < width; ++j) v[j] += r[j];
            normalize(v.data(), width);
        }
        queries.push_back(v);
        query_set.push_back(q < nq ? "random" : "near-duplicate");
    }
    // Exact search: the truth, and its time per query (a cold first query dropped).
    std::vector<std::vector<search::hit>> truth;
    std::vector<double> t_exact;
    search::stats st;
    for (std::size_t q = 0; q < queries.size(); ++q) {
        const auto t = clock_type::now();
        truth.push_back(search::exact_search(dir, queries[q], 10, "image_embeds", "query", st));
        if (q > 0) t_exact.push_back(seconds_since(t));
    }
    std::printf("exact: %zu images, query median %.3f s (min %.3f, max %.3f) over %zu queries\n", st.images, median(t_exact),
                *std::min_element(t_exact.begin(), t_exact.end()), *std::max_element(t_exact.begin(), t_exact.end()), t_exact.size());
    std::fflush(stdout);
#ifdef VIT_HAVE_FAISS
    for (const std::string& s : specs) {
        const auto colon = s.find(':');
        const std::string spec = s.substr(0, colon);
        std::vector<std::string> params;
        for (std::size_t b = colon == std::string::npos ? s.size() : colon + 1; b < s.size();) {
            const std::size_t e = std::min(s.find(',', b), s.size());
            params.push_back(s.substr(b, e - b));
            b = e + 1;
        }
        if (params.empty()) params.push_back("");
        const auto t = clock_type::now();
        const search::build_report rep = search::build_faiss(dir, spec, params.front());
        std::printf("%s: built in %.1f s (train %.1f s, add %.1f s), file %.0f MB\n", spec.c_str(), seconds_since(t), rep.train_seconds,
                    rep.add_seconds, double(std::filesystem::file_size(search::faiss_path(dir))) / 1e6);
        const auto t_open = clock_type::now();
        search::faiss_searcher searcher(dir, "image_embeds", width, "query");
        std::printf("%s: opened in %.3f s\n", spec.c_str(), seconds_since(t_open));
        for (const std::string& p : params) {
            if (!p.empty()) searcher.set_params(p);
            for (const char* set : {"random", "near-duplicate"}) {
                std::vector<double> times, recalls;
                for (std::size_t q = 0; q < queries.size(); ++q) {
                    if (query_set[q] != set) continue;
                    const auto tq = clock_type::now();
                    const auto hits = searcher.search(queries[q], 10);
                    times.push_back(seconds_since(tq));
                    recalls.push_back(recall(hits, truth[q]));
                }
                double mean = 0;
                for (double r : recalls) mean += r / double(recalls.size());
                std::printf("%s %s, %s queries: recall@10 %.3f, query median %.2f ms\n", spec.c_str(), p.c_str(), set, mean,
                            1e3 * median(times));
            }
            std::fflush(stdout);
        }
    }
    std::filesystem::remove(search::faiss_path(dir));
#endif
    return 0;
}
