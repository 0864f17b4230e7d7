// Reading a `vit-classify --features --output DIR` folder back: its parts in
// name order, each part's image names by row (from the JSON Lines part) and
// its float32 rows memory-mapped from the .npy part, one part at a time, so
// a collection larger than memory streams through.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <vit/detail/io/mapped_file.hpp>
#include <vit/error.hpp>

#include "common/parts.hpp"

namespace feature_parts {

// The shape of a float32, C-order, two-dimensional .npy file, and where its rows start.
struct npy_shape {
    std::uint64_t rows = 0, width = 0, data_offset = 0;
};

// Reads the header of a NumPy format 1.x/2.x/3.x file: only '<f4' [rows, width] in C order.
inline npy_shape read_npy_header(const unsigned char* file, std::uint64_t file_size, const std::string& path) {
    if (file_size < 10 || std::string(reinterpret_cast<const char*>(file), 6) != "\x93NUMPY")
        throw vit::error(path + ": not a .npy file (no \\x93NUMPY magic)");
    const int major = file[6];
    std::uint64_t len = 0, start = 0;
    if (major == 1) {
        len = file[8] | (std::uint64_t(file[9]) << 8);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (file_size < 12) throw vit::error(path + ": its .npy header is cut short or too long");
        len = file[8] | (std::uint64_t(file[9]) << 8) | (std::uint64_t(file[10]) << 16) | (std::uint64_t(file[11]) << 24);
        start = 12;
    } else {
        throw vit::error(path + ": .npy format version " + std::to_string(major) + " is not one NumPy writes (1, 2 or 3)");
    }
    if (len > 65536 || start + len > file_size) throw vit::error(path + ": its .npy header is cut short or too long");
    const std::string h(reinterpret_cast<const char*>(file) + start, std::size_t(len));
    auto field = [&](const char* key) -> std::string {
        const auto k = h.find(std::string("'") + key + "'");
        if (k == std::string::npos) throw vit::error(path + ": its .npy header has no '" + key + "'");
        const auto colon = h.find(':', k);
        if (colon == std::string::npos) throw vit::error(path + ": its .npy header is malformed at '" + key + "'");
        std::size_t b = colon + 1;
        while (b < h.size() && h[b] == ' ') ++b;
        const std::size_t e = h[b] == '(' ? h.find(')', b) + 1 : h.find_first_of(",}", b);
        if (e == std::string::npos || e == 0 || e > h.size()) throw vit::error(path + ": its .npy header is malformed at '" + key + "'");
        return h.substr(b, e - b);
    };
    if (field("descr") != "'<f4'")
        throw vit::error(path + ": holds " + field("descr") + " values; a features part holds float32 ('<f4')");
    if (field("fortran_order") != "False") throw vit::error(path + ": is in Fortran order; a features part is in C order");
    unsigned long long n = 0, w = 0;
    char tail = 0;
    const std::string shape = field("shape");
    if (std::sscanf(shape.c_str(), "(%llu, %llu%c", &n, &w, &tail) != 3 || tail != ')' || w == 0)
        throw vit::error(path + ": shape " + shape + " is not [rows, width]");
    npy_shape s{n, w, start + len};
    if (s.data_offset % 4 != 0) throw vit::error(path + ": its rows do not start at a multiple of 4 bytes");
    if (w > (std::numeric_limits<std::uint64_t>::max() / 4) / std::max<std::uint64_t>(n, 1) ||
        file_size - s.data_offset < n * w * 4)
        throw vit::error(path + ": truncated: its header says " + std::to_string(n) + " rows of " + std::to_string(w) +
                         " float32, the file holds " + std::to_string((file_size - s.data_offset) / 4 / w) + " whole rows");
    return s;
}

// One part of the folder: the names of the two files.
struct part_files {
    std::string jsonl, npy;
};

// The parts of a features folder, sorted by name. An empty or missing folder,
// or one with label parts only, is an error naming the folder.
inline std::vector<part_files> list_parts(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw vit::error(dir + ": no such folder (give the --output folder of vit-classify --features)");
    std::vector<part_files> out;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("part-", 0) != 0 || e.path().extension() != ".jsonl") continue;
        const std::string stem = dir + "/" + n.substr(0, n.size() - 6);
        out.push_back({stem + ".jsonl", stem + ".npy"});
    }
    if (ec) throw vit::error(dir + ": cannot list the folder: " + ec.message());
    if (out.empty()) throw vit::error(dir + ": holds no part-*.jsonl files; it is not the --output folder of vit-classify --features");
    std::sort(out.begin(), out.end(), [](const part_files& a, const part_files& b) { return a.jsonl < b.jsonl; });
    return out;
}

// The JSON Lines part: each row's image (empty: no record refers to that row,
// as after a task killed between writing rows and committing their records).
struct part_records {
    std::vector<std::string> image_of_row;
    std::string kind;  // the records' "kind" (all the same)
    std::size_t images = 0;  // records with a row
};

// A record as vit-classify writes it, {"image":"...","kind":"...","row":N},
// without a JSON parser (a million records take seconds in one). Only lines
// without backslashes (so every quote delimits a string) and with exactly
// those keys; anything else returns false, for the JSON parser to judge.
inline bool fast_record(const std::string& line, part_records& r) {
    if (line.find('\\') != std::string::npos || line.size() < 2 || line.front() != '{' || line.back() != '}') return false;
    std::string image, kind;
    long long row = -1;
    std::size_t i = 1;
    for (;;) {
        if (i >= line.size() || line[i] != '"') return false;
        const std::size_t ke = line.find('"', i + 1);
        if (ke == std::string::npos || ke + 1 >= line.size() || line[ke + 1] != ':') return false;
        const std::string key = line.substr(i + 1, ke - i - 1);
        i = ke + 2;
        if (key == "image" || key == "kind") {
            if (i >= line.size() || line[i] != '"') return false;
            const std::size_t ve = line.find('"', i + 1);
            if (ve == std::string::npos) return false;
            (key == "image" ? image : kind) = line.substr(i + 1, ve - i - 1);
            i = ve + 1;
        } else if (key == "row") {
            std::size_t e = i;
            while (e < line.size() && e - i < 15 && line[e] >= '0' && line[e] <= '9') ++e;
            if (e == i || (line[i] == '0' && e > i + 1)) return false;
            row = std::stoll(line.substr(i, e - i));
            i = e;
        } else if (key == "normalized" && line.compare(i, 4, "true") == 0) {
            i += 4;
        } else {
            return false;
        }
        if (i >= line.size()) return false;
        if (line[i] == '}') break;
        if (line[i] != ',') return false;
        ++i;
    }
    if (i + 1 != line.size() || image.empty() || kind.empty() || row < 0 || row > (1LL << 40)) return false;
    if (r.kind.empty()) r.kind = kind;
    if (kind != r.kind) return false;
    if (std::size_t(row) >= r.image_of_row.size()) r.image_of_row.resize(std::size_t(row) + 1);
    if (!r.image_of_row[std::size_t(row)].empty()) return false;
    r.image_of_row[std::size_t(row)] = std::move(image);
    ++r.images;
    return true;
}

inline part_records read_records(const std::string& path) {
    const parts::fd f = parts::open_file(path, O_RDONLY);
    const std::string text = parts::read_all(f.get(), path);
    part_records r;
    std::istringstream in(text);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty()) continue;
        if (fast_record(line, r)) continue;
        try {
            const nlohmann::json j = nlohmann::json::parse(line);
            if (j.contains("error")) continue;  // an image that failed: no row
            if (!j.contains("kind"))
                throw vit::error("it holds labels, not features; index a vit-classify --features --output run");
            const std::string kind = j.at("kind").get<std::string>();
            if (r.kind.empty()) r.kind = kind;
            else if (kind != r.kind) throw vit::error("its records mix the kinds " + r.kind + " and " + kind);
            const std::size_t row = j.at("row").get<std::size_t>();
            if (row > (std::size_t(1) << 40)) throw vit::error("row " + std::to_string(row) + " is out of range");
            if (row >= r.image_of_row.size()) r.image_of_row.resize(row + 1);
            if (!r.image_of_row[row].empty()) throw vit::error("two records refer to row " + std::to_string(row));
            r.image_of_row[row] = j.at("image").get<std::string>();
            if (r.image_of_row[row].empty()) throw vit::error("a record's image is empty");
            ++r.images;
        } catch (const std::exception& e) {
            throw vit::error(path + ": line " + std::to_string(n) + " is not a features record of vit-classify: " + e.what());
        }
    }
    return r;
}

// A part's rows, memory-mapped read-only for as long as it lives.
class mapped_rows {
public:
    // An empty path: no rows.
    explicit mapped_rows(const std::string& path) : path_(path) {
        if (path.empty()) return;
        file_ = vit::detail::mapped_file(path);
        shape_ = read_npy_header(file_.data(), file_.size(), path);
        if (shape_.rows > 0)  // read once, front to back
            ::madvise(const_cast<unsigned char*>(file_.data()), file_.size(), MADV_SEQUENTIAL);
    }

    std::size_t rows() const { return std::size_t(shape_.rows); }
    std::size_t width() const { return std::size_t(shape_.width); }
    const float* row(std::size_t r) const {
        return reinterpret_cast<const float*>(file_.data() + shape_.data_offset) + r * shape_.width;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    vit::detail::mapped_file file_;
    npy_shape shape_;
};

// A part ready to scan: its records checked against its rows.
struct part {
    part_files files;
    part_records records;
    mapped_rows rows;

    explicit part(const part_files& f) : files(f), records(read_records(f.jsonl)), rows(open_rows(f, records)) {
        if (records.image_of_row.size() > rows.rows())
            throw vit::error(f.jsonl + ": refers to row " + std::to_string(records.image_of_row.size() - 1) + ", and " + f.npy +
                             " holds " + std::to_string(rows.rows()) + " rows (truncated?)");
    }

private:
    // No .npy is fine for a part whose inputs all failed (no rows).
    static std::string open_rows(const part_files& f, const part_records& r) {
        struct stat st {};
        if (::stat(f.npy.c_str(), &st) == 0) return f.npy;
        if (r.images > 0) throw vit::error(f.npy + ": missing, and " + f.jsonl + " refers to " + std::to_string(r.images) + " of its rows");
        return "";
    }
};

}  // namespace feature_parts
