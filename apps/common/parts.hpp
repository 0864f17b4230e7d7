// vit-classify --output: a task's part files, committed a chunk at a time so
// that a task killed at any instant leaves whole records only.
//
// The JSON Lines part is double-buffered: the visible file V and a hidden spare
// S one chunk behind it. A commit appends the missing chunks to S, syncs it,
// and swaps the names (link V to T, rename S over V, rename T to S), so V is
// always a complete file and every record is written twice, not rewritten per
// chunk. The .npy part is appended in place; its header's row count is raised
// after the rows are synced, and the JSON records, committed last, say which
// rows exist.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vit/error.hpp>

namespace parts {

inline std::string part_name(std::uint64_t index, std::uint64_t count, const char* ext) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "part-%05llu-of-%05llu.%s", static_cast<unsigned long long>(index),
                  static_cast<unsigned long long>(count), ext);
    return buf;
}

// Parts of another shard count in DIR mean a task chose its shard wrongly
// (a rerun of one Slurm array task without --shard-count, say): its share
// would overlap theirs.
inline void check_shard_count(const std::string& dir, std::uint64_t count) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        unsigned long long index = 0, theirs = 0;
        if (std::sscanf(n.c_str(), "part-%5llu-of-%5llu.", &index, &theirs) == 2 && theirs != count)
            throw vit::error(dir + ": holds " + n + ", the part of a run with another shard count than " + std::to_string(count) +
                             "; give --shard-count N with the count of that run, or another --output folder");
    }
    if (ec) throw vit::error(dir + ": cannot list the output folder: " + ec.message());
}

inline vit::error sys_error(const std::string& path, const std::string& what) {
    return vit::error(path + ": " + what + ": " + std::strerror(errno));
}

// An open file descriptor, closed when it goes.
class fd {
public:
    fd() = default;
    explicit fd(int f) : f_(f) {}
    fd(fd&& o) noexcept : f_(o.f_) { o.f_ = -1; }
    fd& operator=(fd&& o) noexcept {
        std::swap(f_, o.f_);
        return *this;
    }
    fd(const fd&) = delete;
    fd& operator=(const fd&) = delete;
    ~fd() {
        if (f_ >= 0) ::close(f_);
    }
    int get() const { return f_; }

private:
    int f_ = -1;
};

inline fd open_file(const std::string& path, int flags) {
    const int f = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (f < 0) throw sys_error(path, "cannot open");
    return fd(f);
}

// Writes all n bytes: at offset `at`, or at the end (O_APPEND) when at < 0.
inline void write_all(int f, const char* p, std::size_t n, const std::string& path, off_t at = -1) {
    while (n > 0) {
        const ssize_t w = at < 0 ? ::write(f, p, n) : ::pwrite(f, p, n, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw sys_error(path, "write failed");
        p += w;
        n -= std::size_t(w);
        if (at >= 0) at += w;
    }
}

inline std::string read_all(int f, const std::string& path) {
    std::string s;
    char buf[1 << 16];
    for (;;) {
        const ssize_t r = ::read(f, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw sys_error(path, "read failed");
        if (r == 0) return s;
        s.append(buf, std::size_t(r));
    }
}

inline void sync(int f, const std::string& path) {
    if (::fdatasync(f) != 0) throw sys_error(path, "cannot sync");
}

inline void sync_dir(const std::string& dir) {
    const fd d = open_file(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(d.get()) != 0) throw sys_error(dir, "cannot sync the folder");
}

// A JSON Lines part file that grows by whole chunks.
class jsonl_part {
public:
    // Opens DIR/NAME, creating it empty; with resume an existing file's
    // records are kept (committed() returns them), without it an existing
    // file is an error. A lock keeps a second task off the same part.
    jsonl_part(const std::string& dir, const std::string& name, bool resume)
        : dir_(dir), visible_(dir + "/" + name), spare_(dir + "/." + name + ".spare"), link_(dir + "/." + name + ".prev") {
        lock_ = open_file(dir + "/." + name + ".lock", O_RDWR | O_CREAT);
        if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0)
            throw vit::error(visible_ + ": another task is writing this part (its lock is held)");
        std::remove(link_.c_str());
        std::remove(spare_.c_str());
        struct stat st {};
        if (::stat(visible_.c_str(), &st) == 0) {
            if (!resume)
                throw vit::error(visible_ + ": exists from an earlier run; pass --resume to continue it, or remove it");
            visible_fd_ = open_file(visible_, O_RDWR | O_APPEND);
            committed_ = read_all(visible_fd_.get(), visible_);
            if (!committed_.empty() && committed_.back() != '\n')
                throw vit::error(visible_ + ": does not end in a whole record; it was not written by vit-classify");
        } else {
            visible_fd_ = open_file(visible_, O_RDWR | O_APPEND | O_CREAT | O_EXCL);  // empty: zero records, whole
        }
        spare_fd_ = open_file(spare_, O_RDWR | O_APPEND | O_CREAT | O_TRUNC);
        write_all(spare_fd_.get(), committed_.data(), committed_.size(), spare_);
        sync_dir(dir_);
    }

    // The file's text when it was opened.
    const std::string& committed() const { return committed_; }

    // Makes `chunk` (whole lines) part of the visible file, atomically.
    void commit(const std::string& chunk) {
        if (chunk.empty()) return;
        write_all(spare_fd_.get(), behind_.data(), behind_.size(), spare_);
        write_all(spare_fd_.get(), chunk.data(), chunk.size(), spare_);
        sync(spare_fd_.get(), spare_);
        if (::link(visible_.c_str(), link_.c_str()) != 0) throw sys_error(link_, "cannot link");
        if (::rename(spare_.c_str(), visible_.c_str()) != 0) throw sys_error(visible_, "cannot rename into place");
        if (::rename(link_.c_str(), spare_.c_str()) != 0) throw sys_error(spare_, "cannot rename");
        sync_dir(dir_);
        std::swap(visible_fd_, spare_fd_);
        behind_ = chunk;
    }

    ~jsonl_part() {
        // The spare's only use is the next commit.
        if (spare_fd_.get() >= 0) std::remove(spare_.c_str());
    }

    jsonl_part(const jsonl_part&) = delete;
    jsonl_part& operator=(const jsonl_part&) = delete;

private:
    std::string dir_, visible_, spare_, link_;
    fd lock_, visible_fd_, spare_fd_;
    std::string committed_;
    std::string behind_;  // the last chunk, which the spare still lacks
};

// A float32 [rows, width] .npy file (NumPy format 1.0) that grows by rows.
class npy_part {
public:
    static constexpr std::size_t header_size = 128;

    // Opens or creates DIR/NAME holding `rows` rows of `width` (rows > 0 only
    // when resuming: the rows the JSON part refers to; any after them, from a
    // chunk that was not committed, are dropped).
    npy_part(const std::string& dir, const std::string& name, std::size_t width, std::size_t rows, bool resume)
        : path_(dir + "/" + name), width_(width), rows_(rows) {
        struct stat st {};
        const bool exists = ::stat(path_.c_str(), &st) == 0;
        if (exists && !resume)
            throw vit::error(path_ + ": exists from an earlier run; pass --resume to continue it, or remove it");
        if (!exists && rows > 0) throw vit::error(path_ + ": missing, yet the JSON part refers to " + std::to_string(rows) + " of its rows");
        f_ = open_file(path_, O_RDWR | O_CREAT);
        if (exists) {
            char got[header_size] = {};
            const std::string prefix = header(0).substr(0, header(0).find('(') + 1);
            if (::pread(f_.get(), got, header_size, 0) != ssize_t(header_size) || std::string(got, prefix.size()) != prefix)
                throw vit::error(path_ + ": not a float32 .npy part written by vit-classify");
            unsigned long long n = 0, w = 0;
            if (std::sscanf(got + prefix.size(), "%llu, %llu)", &n, &w) != 2 || w != width)
                throw vit::error(path_ + ": its rows are not " + std::to_string(width) + " wide (another model?)");
            if (n < rows || std::uint64_t(st.st_size) < header_size + rows * width * 4)
                throw vit::error(path_ + ": holds fewer rows than the JSON part refers to (" + std::to_string(rows) + ")");
        }
        write_header();
        if (::ftruncate(f_.get(), off_t(header_size + rows_ * width_ * 4)) != 0) throw sys_error(path_, "cannot truncate");
        sync(f_.get(), path_);
    }

    std::size_t rows() const { return rows_; }

    // Appends n rows, syncs them, then counts them in the header.
    void append(const float* data, std::size_t n) {
        if (n == 0) return;
        write_all(f_.get(), reinterpret_cast<const char*>(data), n * width_ * 4, path_, off_t(header_size + rows_ * width_ * 4));
        sync(f_.get(), path_);
        rows_ += n;
        write_header();
        sync(f_.get(), path_);
    }

private:
    std::string header(std::size_t rows) const {
        std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                           std::to_string(width_) + "), }";
        std::string h = std::string("\x93NUMPY\x01\x00", 8);
        const std::size_t len = header_size - 10;
        h += char(len & 0xff);
        h += char(len >> 8);
        dict.resize(len - 1, ' ');
        return h + dict + "\n";
    }
    void write_header() {
        const std::string h = header(rows_);
        write_all(f_.get(), h.data(), h.size(), path_, 0);
    }

    std::string path_;
    std::size_t width_, rows_;
    fd f_;
};

}  // namespace parts
