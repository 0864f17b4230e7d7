// Labelled image sets: an ImageFolder tree (one folder per class), a
// path<TAB>label list, and a deterministic train / validation split.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../escape.hpp"

namespace vit {

struct labelled_image {
    std::string path;
    int label = 0;  // index into image_dataset::classes
};

struct image_dataset {
    std::vector<std::string> classes;  // sorted names; the label of class i is i
    std::vector<labelled_image> images;
    std::string source;  // the folder or list it came from, for messages

    std::vector<std::size_t> counts() const {
        std::vector<std::size_t> n(classes.size(), 0);
        for (const auto& im : images) ++n[std::size_t(im.label)];
        return n;
    }
};

namespace detail::train {

inline bool has_image_extension(const std::filesystem::path& p) {
    std::string e = p.extension().string();
    for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (const char* x : {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tga", ".pnm", ".ppm", ".pgm", ".pbm"})
        if (e == x) return true;
    return false;
}

inline void check_class_count(const image_dataset& d, const std::string& what, std::size_t least) {
    if (d.classes.size() < least || d.classes.empty())
        throw error(d.source + ": " + std::to_string(d.classes.size()) + " " + what +
                    (d.classes.empty() ? "" : " ('" + escape_for_message(d.classes[0]) + "')") +
                    "; a classifier needs at least 2 classes");
}

// FNV-1a 64 finished with MurmurHash3's fmix64: a split that depends only on the path.
inline std::uint64_t path_hash(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

}  // namespace detail::train

// DIR/<class>/<image>: classes are the sub-folders' names, sorted; images the
// files with an image extension in each (not recursive), sorted by path.
// Fewer than min_classes classes is an error (a validation set may have one).
inline image_dataset read_image_folder(const std::string& dir, std::size_t min_classes = 2) {
    namespace fs = std::filesystem;
    std::error_code ec;
    image_dataset d;
    d.source = dir;
    if (!fs::is_directory(dir, ec)) throw error(dir + ": no such folder");
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (!name.empty() && name[0] != '.' && e.is_directory()) d.classes.push_back(name);
    }
    if (ec) throw error(dir + ": cannot list the folder: " + ec.message());
    std::sort(d.classes.begin(), d.classes.end());
    detail::train::check_class_count(d, "class folder" + std::string(d.classes.size() == 1 ? "" : "s"), min_classes);
    for (std::size_t c = 0; c < d.classes.size(); ++c) {
        const std::string sub = dir + "/" + d.classes[c];
        std::vector<std::string> files;
        for (const auto& e : fs::directory_iterator(sub, ec)) {
            const std::string name = e.path().filename().string();
            if (!name.empty() && name[0] != '.' && !e.is_directory() && detail::train::has_image_extension(e.path()))
                files.push_back(e.path().string());
        }
        if (ec) throw error(sub + ": cannot list the folder: " + ec.message());
        if (files.empty())
            throw error(sub + ": an empty class folder (no .jpg, .jpeg, .png, .gif, .bmp, .tga or .pnm files)");
        std::sort(files.begin(), files.end());
        for (auto& f : files) d.images.push_back({std::move(f), int(c)});
    }
    return d;
}

// A list of "path<TAB>label" lines (paths as given, relative to the current
// folder); classes are the distinct labels, sorted. Empty lines are skipped.
inline image_dataset read_image_list(const std::string& file, std::size_t min_classes = 2) {
    std::ifstream in(file);
    if (!in) throw error(file + ": cannot open the list");
    image_dataset d;
    d.source = file;
    std::vector<std::pair<std::string, std::string>> rows;
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const std::size_t tab = line.rfind('\t');
        if (tab == std::string::npos || tab == 0 || tab + 1 == line.size())
            throw error(file + ":" + std::to_string(n) + ": expected path<TAB>label, got '" +
                        detail::escape_for_message(line, 200) + "'");
        rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
    }
    std::map<std::string, int> index;
    for (const auto& r : rows) index.emplace(r.second, 0);
    for (const auto& kv : index) d.classes.push_back(kv.first);
    detail::train::check_class_count(d, "label" + std::string(d.classes.size() == 1 ? "" : "s"), min_classes);
    for (std::size_t c = 0; c < d.classes.size(); ++c) index[d.classes[c]] = int(c);
    for (auto& r : rows) d.images.push_back({std::move(r.first), index.at(r.second)});
    return d;
}

// The same images labelled by `classes` (a training set's): a class of d
// that is not among them is an error.
inline image_dataset relabel(const image_dataset& d, const std::vector<std::string>& classes, const std::string& other) {
    std::map<std::string, int> index;
    for (std::size_t c = 0; c < classes.size(); ++c) index[classes[c]] = int(c);
    std::vector<int> map(d.classes.size());
    for (std::size_t c = 0; c < d.classes.size(); ++c) {
        const auto it = index.find(d.classes[c]);
        if (it == index.end())
            throw error(d.source + ": class '" + detail::escape_for_message(d.classes[c]) + "' is not among " + other +
                        "'s classes");
        map[c] = it->second;
    }
    image_dataset out;
    out.classes = classes;
    out.source = d.source;
    for (const auto& im : d.images) out.images.push_back({im.path, map[std::size_t(im.label)]});
    return out;
}

// Moves about `fraction` of each class to a validation set, chosen by a hash
// of the path (so the same whatever the order or the other images); every
// class keeps at least one training image.
inline std::pair<image_dataset, image_dataset> split_dataset(const image_dataset& d, double fraction) {
    if (!(fraction > 0 && fraction < 1)) throw error("the validation fraction must be between 0 and 1");
    image_dataset train, val;
    train.classes = val.classes = d.classes;
    train.source = d.source;
    val.source = d.source + " (validation split)";
    for (std::size_t c = 0; c < d.classes.size(); ++c) {
        std::vector<std::pair<std::uint64_t, const labelled_image*>> members;
        for (const auto& im : d.images)
            if (im.label == int(c)) members.emplace_back(detail::train::path_hash(im.path), &im);
        std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first < b.first : a.second->path < b.second->path;
        });
        std::size_t nval = std::size_t(std::llround(fraction * double(members.size())));
        nval = std::min(nval, members.size() - std::min<std::size_t>(members.size(), 1));
        std::vector<const labelled_image*> v, t;
        for (std::size_t i = 0; i < members.size(); ++i) (i < nval ? v : t).push_back(members[i].second);
        auto by_path = [](const labelled_image* a, const labelled_image* b) { return a->path < b->path; };
        std::sort(v.begin(), v.end(), by_path);
        std::sort(t.begin(), t.end(), by_path);
        for (auto* p : t) train.images.push_back(*p);
        for (auto* p : v) val.images.push_back(*p);
    }
    return {std::move(train), std::move(val)};
}

}  // namespace vit
