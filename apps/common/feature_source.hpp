// What embedded a `vit-classify --features --output DIR` folder, kept in
// DIR/features.json: the model as given, a fingerprint of its checkpoint, the
// embedding's kind and width, and the input size. Every task of a run writes
// or checks it, so a resumed or sharded run cannot mix two models'
// embeddings, and vit-search refuses a query from another checkpoint (the
// scores between two models' embeddings mean nothing).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <vit/error.hpp>

namespace feature_source {

struct source {
    std::string model;        // as given: a hub id or a folder (for messages only)
    std::string fingerprint;  // checkpoint_fingerprint() of its folder
    std::string kind;         // the records' "kind"
    std::uint64_t width = 0;  // values per embedding
    int height = 0, image_width = 0;  // the input size the images were resized to

    nlohmann::json to_json() const {
        return {{"model", model}, {"fingerprint", fingerprint}, {"kind", kind}, {"width", width},
                {"image_size", {height, image_width}}};
    }
};

inline std::string file_name(const std::string& dir) { return dir + "/features.json"; }

namespace detail {

struct fnv1a {
    std::uint64_t h = 0xcbf29ce484222325ull;
    void add(const void* p, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    }
    void add(const std::string& s) {
        add(s.data(), s.size());
        add("\0", 1);
    }
};

// A file's name and size, and its first and last MiB (all of it when smaller).
inline void add_file(fnv1a& h, const std::string& dir, const std::string& name) {
    const std::string path = dir + "/" + name;
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw vit::error(path + ": cannot read it to fingerprint the checkpoint");
    const std::uint64_t size = std::uint64_t(f.tellg());
    h.add(name);
    h.add(&size, sizeof size);
    const std::uint64_t mib = std::uint64_t(1) << 20;
    std::vector<char> buf;
    auto span = [&](std::uint64_t from, std::uint64_t n) {
        buf.resize(std::size_t(n));
        f.seekg(std::streamoff(from));
        if (n && !f.read(buf.data(), std::streamsize(n))) throw vit::error(path + ": cannot read it to fingerprint the checkpoint");
        h.add(buf.data(), buf.size());
    };
    if (size <= 2 * mib) {
        span(0, size);
    } else {
        span(0, mib);
        span(size - mib, mib);
    }
}

inline bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace detail

// A checkpoint folder's fingerprint: FNV-1a 64 over config.json and the
// weight files the loader reads (name, size, first and last MiB of each).
// Two folders with the same files agree wherever they are; another
// checkpoint, a fine-tune or a converted copy differs.
inline std::string checkpoint_fingerprint(const std::string& dir) {
    detail::fnv1a h;
    detail::add_file(h, dir, "config.json");
    std::vector<std::string> weights;
    for (const char* index : {"model.safetensors.index.json", "pytorch_model.bin.index.json"}) {
        const std::string single = std::string(index).substr(0, std::strlen(index) - std::strlen(".index.json"));
        if (detail::exists(dir + "/" + single)) {
            weights.push_back(single);
            break;
        }
        if (!detail::exists(dir + "/" + index)) continue;
        weights.push_back(index);
        std::set<std::string> shards;
        try {
            std::ifstream f(dir + "/" + index);
            for (const auto& kv : nlohmann::json::parse(f).at("weight_map").items()) shards.insert(kv.value().get<std::string>());
        } catch (const std::exception& e) {
            throw vit::error(dir + "/" + index + ": " + e.what());
        }
        weights.insert(weights.end(), shards.begin(), shards.end());
        break;
    }
    for (const auto& w : weights) detail::add_file(h, dir, w);
    char hex[32];
    std::snprintf(hex, sizeof hex, "fnv1a64:%016llx", static_cast<unsigned long long>(h.h));
    return hex;
}

// DIR/features.json, when the folder has one (folders written before it
// existed do not).
inline std::optional<source> read(const std::string& dir) {
    const std::string path = file_name(dir);
    if (!detail::exists(path)) return std::nullopt;
    try {
        std::ifstream f(path);
        const nlohmann::json j = nlohmann::json::parse(f);
        source s;
        s.model = j.at("model").get<std::string>();
        s.fingerprint = j.at("fingerprint").get<std::string>();
        s.kind = j.at("kind").get<std::string>();
        s.width = j.at("width").get<std::uint64_t>();
        s.height = j.at("image_size").at(0).get<int>();
        s.image_width = j.at("image_size").at(1).get<int>();
        return s;
    } catch (const std::exception& e) {
        throw vit::error(path + ": not a features record of vit-classify: " + e.what());
    }
}

// Writes DIR/features.json, or checks the one there against `s`. The file
// appears whole (linked from a complete temporary file), so tasks of one
// sharded run starting together each see either no file or all of it.
inline void record(const std::string& dir, const source& s) {
    const std::string path = file_name(dir);
    if (!detail::exists(path)) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);  // tasks on other nodes of a shared folder may share a pid
        const std::string tmp = dir + "/.features.json." + host + "." + std::to_string(::getpid());
        {
            std::ofstream f(tmp, std::ios::trunc);
            f << s.to_json().dump(2) << "\n";
            if (!f.flush()) throw vit::error(tmp + ": cannot write it");
        }
        const int linked = ::link(tmp.c_str(), path.c_str());
        const int err = errno;
        ::unlink(tmp.c_str());
        if (linked == 0) return;
        if (err != EEXIST) throw vit::error(path + ": cannot create it: " + std::strerror(err));
    }
    const source have = *read(dir);
    std::string differs;
    if (have.fingerprint != s.fingerprint)
        differs = "the checkpoint " + s.model + " (" + s.fingerprint + ") is another than " + have.model + " (" +
                  have.fingerprint + ")";
    else if (have.kind != s.kind || have.width != s.width)
        differs = "this run gives " + s.kind + " [" + std::to_string(s.width) + "], the folder holds " + have.kind + " [" +
                  std::to_string(have.width) + "]";
    else if (have.height != s.height || have.image_width != s.image_width)
        differs = "this run resizes images to " + std::to_string(s.height) + "x" + std::to_string(s.image_width) +
                  ", the folder's embeddings were made at " + std::to_string(have.height) + "x" + std::to_string(have.image_width);
    if (!differs.empty())
        throw vit::error(path + ": the folder holds the features of another run: " + differs +
                         "; give another --output folder");
}

}  // namespace feature_source
