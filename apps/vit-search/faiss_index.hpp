// A FAISS index of a features folder (built with libfaiss, VIT_HAVE_FAISS):
//   DIR/search.faiss       the index, inner product on L2-normalised rows (= cosine);
//                          a plain faiss file, faiss.read_index opens it
//   DIR/search.faiss.json  what it was built from: spec, kind, dimension, count,
//                          and each part's size, to refuse a stale index
//   DIR/search.faiss.ids   id -> image: line i (from 0) is id i's image, a JSON string
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>
#include <nlohmann/json.hpp>
#include <vit/error.hpp>

#include "common/feature_parts.hpp"
#include "exact.hpp"

namespace search {

inline std::string faiss_path(const std::string& dir) { return dir + "/search.faiss"; }

inline bool have_faiss_index(const std::string& dir) {
    struct stat st {};
    return ::stat(faiss_path(dir).c_str(), &st) == 0;
}

// Each part's file sizes: an index built from other parts is stale.
inline nlohmann::json parts_fingerprint(const std::string& dir) {
    nlohmann::json fp = nlohmann::json::object();
    for (const auto& f : feature_parts::list_parts(dir)) {
        struct stat a {}, b {};
        const bool has_npy = ::stat(f.npy.c_str(), &b) == 0;
        if (::stat(f.jsonl.c_str(), &a) != 0) throw parts::sys_error(f.jsonl, "cannot stat");
        const std::string name = f.jsonl.substr(dir.size() + 1);
        fp[name] = {std::uint64_t(a.st_size), has_npy ? std::uint64_t(b.st_size) : 0};
    }
    return fp;
}

// The spec when none is given: exact (Flat) for small collections, else an
// inverted file of the power of two at or above sqrt(n) lists, an eighth of
// them probed (BENCHMARKS.md, "Search").
inline std::string default_faiss_spec(std::size_t n) {
    if (n < 50000) return "Flat";
    std::size_t nlist = 1;
    while (nlist * nlist < n) nlist *= 2;
    return "IVF" + std::to_string(nlist) + ",Flat";
}
inline std::string default_faiss_params(const std::string& spec) {
    if (spec.rfind("IVF", 0) == 0) {
        const std::size_t lists = std::strtoul(spec.c_str() + 3, nullptr, 10);
        return "nprobe=" + std::to_string(std::max<std::size_t>(1, lists / 8));
    }
    return spec.rfind("HNSW", 0) == 0 ? "efSearch=128" : "";
}

template <class F>
auto faiss_call(const std::string& what, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const faiss::FaissException& e) {
        throw vit::error(what + ": faiss: " + e.msg);
    }
}

inline void write_text_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw parts::sys_error(path, "cannot write");
}

struct build_report {
    std::size_t images = 0;
    std::string spec, params;
    double train_seconds = 0, add_seconds = 0;
};

// Builds DIR/search.faiss from the parts. `params` (faiss ParameterSpace, such
// as "nprobe=64") are stored in the index, so Python's faiss searches alike.
inline build_report build_faiss(const std::string& dir, std::string spec, std::string params) {
    using clock = std::chrono::steady_clock;
    const auto files = feature_parts::list_parts(dir);
    const nlohmann::json fingerprint = parts_fingerprint(dir);
    // First pass: count, kind, width.
    std::size_t n = 0, width = 0;
    std::string kind;
    for (const auto& f : files) {
        const feature_parts::part p(f);
        if (p.records.images == 0) continue;
        if (kind.empty()) {
            kind = p.records.kind;
            width = p.rows.width();
        }
        check_part(p, kind, width, files.front().jsonl);
        n += p.records.images;
    }
    if (n == 0) throw vit::error(dir + ": holds no embeddings to index");
    if (spec.empty()) spec = default_faiss_spec(n);
    if (params.empty()) params = default_faiss_params(spec);
    const std::string tmp = faiss_path(dir) + ".tmp";
    std::unique_ptr<faiss::Index> index(faiss_call("--faiss " + spec, [&] {
        return faiss::index_factory(int(width), spec.c_str(), faiss::METRIC_INNER_PRODUCT);
    }));
    build_report rep{n, spec, params, 0, 0};
    // Training on evenly spaced rows (all of them when there are few).
    const auto t0 = clock::now();
    if (!index->is_trained) {
        const std::size_t want = std::min<std::size_t>(n, 160000), step = (n + want - 1) / want;
        std::vector<float> sample;
        std::size_t seen = 0;
        for (const auto& f : files) {
            const feature_parts::part p(f);
            for (std::size_t r = 0; r < p.records.image_of_row.size(); ++r)
                if (!p.records.image_of_row[r].empty() && seen++ % step == 0)
                    sample.insert(sample.end(), p.rows.row(r), p.rows.row(r) + width);
        }
        const std::size_t m = sample.size() / width;
        faiss::fvec_renorm_L2(width, m, sample.data());
        faiss_call("training " + spec + " on " + std::to_string(m) + " rows", [&] { index->train(faiss::Index::idx_t(m), sample.data()); });
    }
    rep.train_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    // Adding every row, part by part, normalised in blocks; ids in that order.
    const auto t1 = clock::now();
    std::string ids;
    std::vector<float> block;
    for (const auto& f : files) {
        const feature_parts::part p(f);
        const auto& names = p.records.image_of_row;
        for (std::size_t r = 0; r < names.size(); ++r) {
            if (names[r].empty()) continue;
            block.insert(block.end(), p.rows.row(r), p.rows.row(r) + width);
            ids += nlohmann::json(names[r]).dump() + "\n";
            if (block.size() >= 65536 * width || r + 1 == names.size()) {
                const std::size_t m = block.size() / width;
                faiss::fvec_renorm_L2(width, m, block.data());
                faiss_call("adding to " + spec, [&] { index->add(faiss::Index::idx_t(m), block.data()); });
                block.clear();
            }
        }
    }
    if (!block.empty()) {
        const std::size_t m = block.size() / width;
        faiss::fvec_renorm_L2(width, m, block.data());
        faiss_call("adding to " + spec, [&] { index->add(faiss::Index::idx_t(m), block.data()); });
    }
    rep.add_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    if (!params.empty())
        faiss_call("--faiss-params " + params, [&] { faiss::ParameterSpace().set_index_parameters(index.get(), params.c_str()); });
    // The three files under temporary names, then renamed, the index last: a
    // query sees a whole index or none.
    const nlohmann::json meta = {{"spec", spec},          {"params", params}, {"kind", kind},
                                 {"dimension", width},    {"count", n},       {"metric", "inner product on L2-normalised rows"},
                                 {"parts", fingerprint}};
    write_text_file(faiss_path(dir) + ".json.tmp", meta.dump(1) + "\n");
    write_text_file(faiss_path(dir) + ".ids.tmp", ids);
    faiss_call("writing " + tmp, [&] { faiss::write_index(index.get(), tmp.c_str()); });
    for (const char* ext : {".json", ".ids", ""})
        if (std::rename((faiss_path(dir) + ext + ".tmp").c_str(), (faiss_path(dir) + ext).c_str()) != 0)
            throw parts::sys_error(faiss_path(dir) + ext, "cannot rename into place");
    return rep;
}

// DIR/search.faiss opened for queries, checked against the query's kind and width.
class faiss_searcher {
public:
    faiss_searcher(const std::string& dir, const std::string& kind, std::size_t width, const std::string& query_from)
        : path_(faiss_path(dir)) {
        nlohmann::json meta;
        try {
            meta = nlohmann::json::parse(std::ifstream(path_ + ".json"));
        } catch (const std::exception& e) {
            throw vit::error(path_ + ".json: unreadable (" + e.what() + "); rebuild the index with --build-faiss");
        }
        const std::string ikind = meta.at("kind").get<std::string>();
        const std::size_t dim = meta.at("dimension").get<std::size_t>();
        if (ikind != kind)
            throw vit::error(path_ + ": indexes " + ikind + " embeddings, and " + query_from + " gives " + kind +
                             "; index the images with the same model as the query");
        if (dim != width)
            throw vit::error(path_ + ": indexes embeddings of " + std::to_string(dim) + " values, and " + query_from + " gives " +
                             std::to_string(width) + "; index the images with the same model as the query");
        if (meta.at("parts") != parts_fingerprint(dir))
            throw vit::error(path_ + ": the parts changed since it was built; rebuild it with --build-faiss, or search with --exact");
        index_.reset(faiss_call(path_, [&] {
            try {
                return faiss::read_index(path_.c_str(), faiss::IO_FLAG_MMAP);  // inverted lists mapped, not read
            } catch (const faiss::FaissException&) {
                return faiss::read_index(path_.c_str(), faiss::IO_FLAG_READ_ONLY);
            }
        }));
        if (std::size_t(index_->d) != dim || std::size_t(index_->ntotal) != meta.at("count").get<std::size_t>())
            throw vit::error(path_ + ": does not match " + path_ + ".json; rebuild it with --build-faiss");
        std::ifstream ids(path_ + ".ids", std::ios::binary);
        ids_.assign(std::istreambuf_iterator<char>(ids), std::istreambuf_iterator<char>());
        line_start_.push_back(0);
        for (std::size_t i = ids_.find('\n'); i != std::string::npos; i = ids_.find('\n', i + 1)) line_start_.push_back(i + 1);
        if (line_start_.size() != std::size_t(index_->ntotal) + 1)
            throw vit::error(path_ + ".ids: holds " + std::to_string(line_start_.size() - 1) + " ids for an index of " +
                             std::to_string(index_->ntotal) + "; rebuild it with --build-faiss");
        params_ = meta.at("params").get<std::string>();
        st_ = stats{std::size_t(index_->ntotal), meta.at("parts").size(), "faiss " + meta.at("spec").get<std::string>()};
    }

    // faiss ParameterSpace settings for the next searches ("nprobe=16").
    void set_params(const std::string& params) {
        faiss_call("--faiss-params " + params, [&] { faiss::ParameterSpace().set_index_parameters(index_.get(), params.c_str()); });
        params_ = params;
    }

    std::vector<hit> search(const std::vector<float>& query, std::size_t k) const {
        std::vector<float> q = query;
        faiss::fvec_renorm_L2(q.size(), 1, q.data());
        const std::size_t kk = std::min<std::size_t>(k, std::size_t(index_->ntotal));
        std::vector<float> dist(kk);
        std::vector<faiss::Index::idx_t> label(kk);
        faiss_call(path_, [&] { index_->search(1, q.data(), faiss::Index::idx_t(kk), dist.data(), label.data()); });
        std::vector<hit> out;
        for (std::size_t i = 0; i < kk; ++i) {
            if (label[i] < 0) continue;  // fewer than k found (an IVF's probed lists held fewer)
            const std::size_t id = std::size_t(label[i]);
            out.push_back({nlohmann::json::parse(ids_.substr(line_start_[id], line_start_[id + 1] - line_start_[id])).get<std::string>(),
                           double(dist[i])});
        }
        return out;
    }

    stats info() const {
        stats s = st_;
        if (!params_.empty()) s.method += " (" + params_ + ")";
        return s;
    }

private:
    std::string path_;
    std::unique_ptr<faiss::Index> index_;
    std::string ids_;
    std::vector<std::size_t> line_start_;
    std::string params_;
    stats st_;
};

// Searches DIR/search.faiss: the k nearest by cosine, best first.
inline std::vector<hit> faiss_search(const std::string& dir, const std::vector<float>& query, std::size_t k, const std::string& kind,
                                     const std::string& query_from, const std::string& params, stats& st) {
    faiss_searcher s(dir, kind, query.size(), query_from);
    if (!params.empty()) s.set_params(params);
    st = s.info();
    return s.search(query, k);
}

}  // namespace search
