// A checkpoint's tensors as a model reads them at load.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "tensor_store.hpp"
#include "../index.hpp"

namespace vit::detail {

// Reads a checkpoint's tensors by their canonical names (the model family's
// table maps them to the file's), checking presence, shape and dtype.
class weight_source {
public:
    using name_map = std::function<std::string(const std::string&)>;
    weight_source(const tensor_store& store, std::string where, name_map names)
        : store_(store), where_(std::move(where)), names_(std::move(names)) {}

    // The name the file uses for a canonical name.
    std::string file_name(const std::string& canonical) const { return names_(canonical); }

    bool has(const std::string& canonical) const { return store_.contains(file_name(canonical)); }
    const std::string& where() const { return where_; }
    const tensor_store& store() const { return store_; }

    // The tensor's dtype; f32 for a missing tensor (read() then names it).
    dtype dtype_of(const std::string& canonical) const {
        const tensor_store::entry* e = store_.find(file_name(canonical));
        return e ? e->tensor.type : dtype::f32;
    }

    // A tensor's values as T without a copy when the file already holds them
    // as T (aligned), else converted into `owned`.
    template <class T>
    struct view {
        const T* data = nullptr;
        std::vector<T> owned;
        const tensor_ref* source = nullptr;
    };
    template <class T>
    view<T> read_view(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        view<T> v;
        v.source = &t;
        const bool same = (t.type == dtype::f32 && std::is_same<T, float>::value) ||
                          (t.type == dtype::f64 && std::is_same<T, double>::value);
        if (same && reinterpret_cast<std::uintptr_t>(t.data) % alignof(T) == 0) {
            v.data = reinterpret_cast<const T*>(t.data);
        } else {
            v.owned = read<T>(canonical, shape);
            v.data = v.owned.data();
        }
        return v;
    }
    // Done with a tensor: its file pages may leave memory (see tensor_store::release).
    void release(const tensor_ref* t) const {
        if (t) store_.release(*t);
    }

    // An I8 tensor's values, after checking presence and shape.
    std::vector<std::int8_t> read_int8(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        if (t.type != dtype::i8)
            throw error(find_or_throw(canonical).file + ": tensor '" + file_name(canonical) + "': dtype " +
                        dtype_name(t.type) + ", expected I8");
        std::vector<std::int8_t> out(t.nbytes);
        std::memcpy(out.data(), t.data, t.nbytes);
        return out;
    }

    // The tensor's values as T, after checking presence, dtype and shape.
    template <class T>
    std::vector<T> read(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_ref& t = checked(canonical, shape);
        if (t.type != dtype::f32 && t.type != dtype::f16 && t.type != dtype::bf16 && t.type != dtype::f64)
            throw error(find_or_throw(canonical).file + ": tensor '" + file_name(canonical) + "': dtype " +
                        dtype_name(t.type) + ", expected F32, F16, BF16 or F64");
        std::vector<T> out(static_cast<std::size_t>(t.numel()));
        if (t.type == dtype::f32 && std::is_same<T, float>::value) {
            std::memcpy(out.data(), t.data, t.nbytes);
        } else {
            for (std::size_t i = 0; i < out.size(); ++i) out[i] = element_as<T>(t, i);
        }
        return out;
    }

private:
    const tensor_store::entry& find_or_throw(const std::string& canonical) const {
        const tensor_store::entry* e = store_.find(file_name(canonical));
        if (!e) throw error(where_ + ": tensor '" + file_name(canonical) + "' is missing");
        return *e;
    }
    const tensor_ref& checked(const std::string& canonical, const std::vector<index_t>& shape) const {
        const tensor_store::entry& e = find_or_throw(canonical);
        if (e.tensor.shape != shape)
            throw error(e.file + ": tensor '" + file_name(canonical) + "': shape " + shape_string(e.tensor.shape) +
                        ", expected " + shape_string(shape));
        return e.tensor;
    }

    const tensor_store& store_;
    std::string where_;
    name_map names_;
};

}  // namespace vit::detail
