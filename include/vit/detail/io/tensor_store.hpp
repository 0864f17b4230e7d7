// Tensors read from checkpoint files, by name, before the model takes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>

#include "../../error.hpp"
#include "../escape.hpp"
#include "../float_formats.hpp"

namespace vit::detail {

enum class dtype { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };

inline std::size_t dtype_size(dtype t) {
    switch (t) {
        case dtype::f64: case dtype::i64: return 8;
        case dtype::f32: case dtype::i32: return 4;
        case dtype::f16: case dtype::bf16: case dtype::i16: return 2;
        case dtype::i8: case dtype::u8: case dtype::boolean: return 1;
    }
    return 0;
}

// Names as safetensors spells them.
inline const char* dtype_name(dtype t) {
    switch (t) {
        case dtype::f64: return "F64";
        case dtype::f32: return "F32";
        case dtype::f16: return "F16";
        case dtype::bf16: return "BF16";
        case dtype::i64: return "I64";
        case dtype::i32: return "I32";
        case dtype::i16: return "I16";
        case dtype::i8: return "I8";
        case dtype::u8: return "U8";
        case dtype::boolean: return "BOOL";
    }
    return "?";
}

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ",";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

// One tensor, contiguous and row-major, pointing into memory that its
// tensor_store keeps alive. `data` may be unaligned: read it with memcpy.
struct tensor_ref {
    dtype type = dtype::f32;
    std::vector<std::int64_t> shape;
    const unsigned char* data = nullptr;
    std::size_t nbytes = 0;

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

// Reads element i of a floating-point tensor as T.
template <class T>
inline T element_as(const tensor_ref& t, std::size_t i) {
    const unsigned char* p = t.data + i * dtype_size(t.type);
    switch (t.type) {
        case dtype::f32: { float v; std::memcpy(&v, p, 4); return T(v); }
        case dtype::f64: { double v; std::memcpy(&v, p, 8); return T(v); }
        case dtype::f16: { std::uint16_t v; std::memcpy(&v, p, 2); return T(half_to_float(v)); }
        case dtype::bf16: { std::uint16_t v; std::memcpy(&v, p, 2); return T(bf16_to_float(v)); }
        default: throw error(std::string("tensor of dtype ") + dtype_name(t.type) + " read as floating point");
    }
}

// All tensors of a checkpoint (possibly several files), with the memory they
// live in. Names are unique across files.
class tensor_store {
public:
    struct entry {
        tensor_ref tensor;
        std::string file;  // the file it came from, for error messages
    };

    void add(const std::string& name, tensor_ref t, const std::string& file) {
        auto it = tensors_.find(name);
        if (it != tensors_.end())
            throw error(file + ": tensor '" + escape_for_message(name) + "' appears twice (also in " + it->second.file +
                        ")");
        tensors_.emplace(name, entry{std::move(t), file});
    }
    // Registers memory that is a read-only file mapping (page-aligned, as
    // mmap returns it): release() may drop its pages, which the kernel reads
    // back from the file if touched again.
    void add_mapped_range(const unsigned char* p, std::size_t n) { mapped_.push_back({p, n}); }
    // Fills the page tables of every mapped range in one call per range
    // instead of a page fault per
    // 4 KiB as the weights are first read, which costs seconds on a VM. For
    // weights read in place for a while (background packing); the pages then
    // count as resident until released. Kernels before 5.14 lack
    // MADV_POPULATE_READ: they just fault later.
    void populate() const {
#ifdef MADV_POPULATE_READ
        for (const auto& r : mapped_)
            if (r.second) ::madvise(const_cast<unsigned char*>(r.first), r.second, MADV_POPULATE_READ);
#endif
    }
    // The loader is done with `t` (its weights are packed elsewhere): drop its
    // file pages from this process's memory, so that a model's peak memory
    // is its packed weights rather than those plus the whole file.
    void release(const tensor_ref& t) const {
        for (const auto& r : mapped_) {
            if (t.data < r.first || t.data + t.nbytes > r.first + r.second) continue;
            const std::uintptr_t page = 4096;
            const std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(t.data) + page - 1) / page * page;
            const std::uintptr_t e = (reinterpret_cast<std::uintptr_t>(t.data) + t.nbytes) / page * page;
            if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
            return;
        }
    }
    // Keeps `owner` (a mapping, a decoded buffer) alive as long as the store.
    void keep(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }
    // Adopts a buffer and returns where its bytes now live.
    const unsigned char* own(std::vector<unsigned char> bytes) {
        auto buf = std::make_shared<std::vector<unsigned char>>(std::move(bytes));
        const unsigned char* p = buf->data();
        owners_.push_back(std::move(buf));
        return p;
    }
    // Moves every tensor and owner of `other` into this store.
    void merge(tensor_store&& other) {
        for (auto& kv : other.tensors_) add(kv.first, std::move(kv.second.tensor), kv.second.file);
        for (auto& o : other.owners_) owners_.push_back(std::move(o));
        mapped_.insert(mapped_.end(), other.mapped_.begin(), other.mapped_.end());
        other.tensors_.clear();
        other.owners_.clear();
    }

    const entry* find(const std::string& name) const {
        auto it = tensors_.find(name);
        return it == tensors_.end() ? nullptr : &it->second;
    }
    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    const std::map<std::string, entry>& all() const { return tensors_; }
    std::size_t size() const { return tensors_.size(); }

private:
    std::map<std::string, entry> tensors_;
    std::vector<std::shared_ptr<const void>> owners_;
    std::vector<std::pair<const unsigned char*, std::size_t>> mapped_;
};

}  // namespace vit::detail
