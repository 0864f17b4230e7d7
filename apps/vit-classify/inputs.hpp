// vit-classify's inputs: the list of images a run takes, and the shard of it
// this task takes when many tasks split one list.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <vit/error.hpp>

namespace inputs {

inline bool is_image_name(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    for (const char* e : {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tga", ".pnm", ".ppm", ".pgm", ".webp"})
        if (ext == e) return true;
    return false;
}

// Names from a stream, one a line (or NUL-separated); empty names are skipped.
inline void read_names(std::istream& in, bool nul_separated, std::vector<std::string>& out) {
    std::string name;
    while (std::getline(in, name, nul_separated ? '\0' : '\n')) {
        if (!nul_separated && !name.empty() && name.back() == '\r') name.pop_back();
        if (!name.empty()) out.push_back(name);
    }
}

// The image files of a folder sorted by path, its subfolders' too when recursive.
inline std::vector<std::string> list_folder(const std::string& dir, bool recursive) {
    namespace fs = std::filesystem;
    std::vector<std::string> files;
    std::error_code ec;
    auto take = [&](const fs::directory_entry& e) {
        std::error_code fec;
        if (e.is_regular_file(fec) && is_image_name(e.path())) files.push_back(e.path().string());
    };
    if (recursive) {
        fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
        for (; !ec && it != end; it.increment(ec)) take(*it);
    } else {
        fs::directory_iterator it(dir, ec), end;
        for (; !ec && it != end; it.increment(ec)) take(*it);
    }
    if (ec) throw vit::error(dir + ": cannot list the folder: " + ec.message());
    std::sort(files.begin(), files.end());
    return files;
}

struct sources {
    std::vector<std::string> args;        // files, folders, "-" for names on stdin
    std::vector<std::string> files_from;  // lists of names ("-": stdin)
    bool nul_separated = false;           // -0: lists and stdin are NUL-separated
    bool recursive = false;
};

// Files as given, folders as their image files sorted by path, lists as the
// names they hold, in the order given.
inline std::vector<std::string> expand(const sources& s) {
    std::vector<std::string> out;
    auto read_list = [&](const std::string& f) {
        if (f == "-") return read_names(std::cin, s.nul_separated, out);
        std::ifstream in(f, std::ios::binary);
        if (!in) throw vit::error(f + ": cannot read the list of images (--files-from)");
        read_names(in, s.nul_separated, out);
        if (in.bad()) throw vit::error(f + ": read error in the list of images (--files-from)");
    };
    for (const auto& f : s.files_from) read_list(f);
    for (const auto& a : s.args) {
        std::error_code ec;
        if (a == "-") read_list("-");
        else if (std::filesystem::is_directory(a, ec)) {
            const auto files = list_folder(a, s.recursive);
            out.insert(out.end(), files.begin(), files.end());
        } else out.push_back(a);
    }
    return out;
}

// FNV-1a 64 of the path, finished with MurmurHash3's fmix64: stable across
// runs, machines and list orders. The finisher matters because FNV-1a's low
// bits, which "mod N" reads, see only the low bits of each byte (mod 2 is the
// parity of the odd bytes).
inline std::uint64_t path_hash(const std::string& s) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb93e1a85ec53ull;
    h ^= h >> 33;
    return h;
}

struct shard {
    std::uint64_t index = 0, count = 1;
    bool takes(const std::string& path) const { return path_hash(path) % count == index; }
};

constexpr std::uint64_t max_shards = 99999;  // part-IIIII-of-NNNNN

// A whole decimal number from lo to hi, or nothing.
inline std::optional<std::uint64_t> parse_count(const std::string& v, std::uint64_t lo, std::uint64_t hi) {
    if (v.empty() || v.size() > 12) return std::nullopt;
    std::uint64_t x = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        x = x * 10 + std::uint64_t(c - '0');
    }
    if (x < lo || x > hi) return std::nullopt;
    return x;
}

// The shard: --shard I/N when given; else a Slurm array task
// (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, or of --shard-count); else
// a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with --shard-count N; else
// the whole list. Throws std::invalid_argument with the
// usage error's text.
inline shard choose_shard(const std::string& flag, const std::string& shard_count,
                          const std::function<std::optional<std::string>(const char*)>& env) {
    auto bad = [](const std::string& m) -> std::invalid_argument { return std::invalid_argument(m); };
    std::optional<std::uint64_t> count;
    if (!shard_count.empty()) {
        count = parse_count(shard_count, 1, max_shards);
        if (!count) throw bad("--shard-count takes a number from 1 to 99999, got '" + shard_count + "'");
    }
    auto check = [&](std::uint64_t index, std::uint64_t n, const std::string& what) {
        if (index >= n)
            throw bad(what + " gives shard " + std::to_string(index) + " of " + std::to_string(n) +
                      ": the index must be below the count");
        return shard{index, n};
    };
    if (!flag.empty()) {
        const auto slash = flag.find('/');
        const auto i = slash == std::string::npos ? std::nullopt : parse_count(flag.substr(0, slash), 0, max_shards);
        const auto n = slash == std::string::npos ? std::nullopt : parse_count(flag.substr(slash + 1), 1, max_shards);
        if (!i || !n) throw bad("--shard takes I/N, e.g. 0/4 (N from 1 to 99999), got '" + flag + "'");
        if (count) throw bad("--shard I/N already gives the count; --shard-count goes with an array index from the environment");
        return check(*i, *n, "--shard " + flag);
    }
    if (const auto id = env("SLURM_ARRAY_TASK_ID")) {
        // The task id as is, not less SLURM_ARRAY_TASK_MIN: a rerun of one
        // task (--array=7) must keep its shard, and its COUNT is then 1.
        const auto task = parse_count(*id, 0, max_shards);
        if (!task) throw bad("SLURM_ARRAY_TASK_ID='" + *id + "' is not a valid array index");
        std::uint64_t n = 0;
        if (count) {
            n = *count;
        } else {
            const auto v = env("SLURM_ARRAY_TASK_COUNT");
            const auto c = v ? parse_count(*v, 1, max_shards) : std::nullopt;
            if (!c) throw bad("SLURM_ARRAY_TASK_COUNT='" + (v ? *v : "") + "' is not a valid count; give --shard-count N");
            n = *c;
        }
        if (*task >= n)
            throw bad("SLURM_ARRAY_TASK_ID=" + *id + " is not below the shard count " + std::to_string(n) +
                      ": number the array from 0 (--array=0-" + std::to_string(n - 1) +
                      "), and when rerunning some of its tasks give --shard-count N, the whole array's size");
        return check(*task, n, "SLURM_ARRAY_TASK_ID");
    }
    if (const auto v = env("JOB_COMPLETION_INDEX")) {
        const auto index = parse_count(*v, 0, max_shards);
        if (!index) throw bad("JOB_COMPLETION_INDEX='" + *v + "' is not a valid index");
        if (!count) throw bad("JOB_COMPLETION_INDEX is set: give --shard-count N, the Job's completions");
        return check(*index, *count, "JOB_COMPLETION_INDEX");
    }
    if (count) throw bad("--shard-count needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment");
    return shard{};
}

inline std::optional<std::string> getenv_string(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    return std::string(v);
}

}  // namespace inputs
