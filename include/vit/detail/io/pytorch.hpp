// Reads the zip checkpoints that torch.save writes (PyTorch >= 1.6):
//   <archive>/data.pkl     the pickled object, usually a state dict
//   <archive>/data/<key>   the raw bytes of each storage
//   <archive>/byteorder    "little" (absent in old files, which are little-endian)
//   <archive>/version, .format_version, .storage_alignment, ...
// The pickle goes through the restricted unpickler (nothing is imported or
// called); tensors whose layout is contiguous point straight into the
// archive, the others (transposed or strided views) are copied once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../escape.hpp"
#include "mapped_file.hpp"
#include "pickle.hpp"
#include "tensor_store.hpp"
#include "zip.hpp"

namespace vit::detail {

namespace pytorch_impl {

struct resolved_storage {
    const unsigned char* data = nullptr;
    std::uint64_t numel = 0;  // as the persistent id says; the entry holds at least that
};

// Builds one named tensor from its view description.
inline tensor_ref materialize(const std::string& file, const std::string& name, const ptensor& t,
                              const pstorage& s, const resolved_storage& rs, std::uint64_t& copy_budget,
                              tensor_store& store) {
    auto fail = [&](const std::string& what) {
        return error(file + ": tensor '" + escape_for_message(name) + "': " + what);
    };
    const std::uint64_t es = dtype_size(s.type);
    const std::uint64_t offset = static_cast<std::uint64_t>(t.offset);
    std::uint64_t numel = 1;
    for (auto d : t.shape) {
        if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel))
            throw fail("size " + shape_string(t.shape) + " overflows");
    }
    tensor_ref ref;
    ref.type = s.type;
    ref.shape = t.shape;
    if (numel == 0) {
        if (offset > rs.numel)
            throw fail("storage offset " + std::to_string(offset) + " is past the end of storage '" +
                       escape_for_message(s.key) + "' (" + std::to_string(rs.numel) + " elements)");
        ref.data = rs.data + offset * es;
        ref.nbytes = 0;
        return ref;
    }
    // The last element the view touches must lie inside the storage.
    std::uint64_t last = offset;
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
        std::uint64_t step = 0;
        if (__builtin_mul_overflow(static_cast<std::uint64_t>(t.shape[i] - 1), static_cast<std::uint64_t>(t.stride[i]),
                                   &step) ||
            __builtin_add_overflow(last, step, &last))
            throw fail("size " + shape_string(t.shape) + " with stride " + shape_string(t.stride) + " overflows");
    }
    if (last >= rs.numel)
        throw fail("size " + shape_string(t.shape) + " with stride " + shape_string(t.stride) + " at offset " +
                   std::to_string(offset) + " reaches element " + std::to_string(last) + ", but storage '" +
                   escape_for_message(s.key) + "' holds only " + std::to_string(rs.numel) + " elements");
    const std::uint64_t nbytes = numel * es;  // cannot overflow: numel <= last + 1 or stride 0 (checked below)

    bool contiguous = true;
    std::uint64_t expect = 1;
    for (std::size_t i = t.shape.size(); i-- > 0;) {
        if (t.shape[i] != 1 && static_cast<std::uint64_t>(t.stride[i]) != expect) contiguous = false;
        expect *= static_cast<std::uint64_t>(t.shape[i]);
    }
    if (contiguous) {
        ref.data = rs.data + offset * es;
        ref.nbytes = static_cast<std::size_t>(nbytes);
        return ref;
    }

    // A view with zero strides can name far more elements than its storage
    // holds; copying it must not turn a small file into a huge allocation.
    if (numel > std::numeric_limits<std::uint64_t>::max() / es || nbytes > copy_budget)
        throw fail("non-contiguous view of " + std::to_string(numel) + " elements would copy more than the " +
                   "checkpoint's own size");
    copy_budget -= nbytes;
    std::vector<unsigned char> out(static_cast<std::size_t>(nbytes));
    const std::size_t rank = t.shape.size();
    const std::int64_t inner = t.shape[rank - 1];
    const std::int64_t inner_stride = t.stride[rank - 1];
    std::vector<std::int64_t> idx(rank, 0);
    unsigned char* dst = out.data();
    std::uint64_t src = offset;  // element index of the current row's start
    for (;;) {
        if (inner_stride == 1) {
            std::memcpy(dst, rs.data + src * es, static_cast<std::size_t>(inner) * es);
            dst += static_cast<std::size_t>(inner) * es;
        } else {
            for (std::int64_t j = 0; j < inner; ++j) {
                std::memcpy(dst, rs.data + (src + static_cast<std::uint64_t>(j * inner_stride)) * es, es);
                dst += es;
            }
        }
        std::size_t d = rank - 1;
        while (d-- > 0) {
            src += static_cast<std::uint64_t>(t.stride[d]);
            if (++idx[d] < t.shape[d]) break;
            src -= static_cast<std::uint64_t>(t.stride[d] * t.shape[d]);
            idx[d] = 0;
        }
        if (d == static_cast<std::size_t>(-1)) break;
    }
    ref.data = store.own(std::move(out));
    ref.nbytes = static_cast<std::size_t>(nbytes);
    return ref;
}

}  // namespace pytorch_impl

// Reads a torch.save zip archive held in memory. `owner` keeps `data` alive
// as long as the returned store; `name` starts every error message.
inline tensor_store read_pytorch_checkpoint(std::shared_ptr<const void> owner, const unsigned char* data,
                                            std::size_t size, const std::string& name,
                                            const pickle_limits& limits = {}) {
    auto fail = [&](const std::string& what) { return error(name + ": " + what); };
    if (size >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5)
        throw fail("a legacy torch.save file (a bare pickle, PyTorch < 1.6); only the zip format is supported: "
                   "load and save it again with a recent PyTorch, or convert it to safetensors");
    const zip_archive zip(data, size, name);

    // The archive's folder name is free (torch uses the file's stem); its
    // data.pkl tells where the rest is.
    std::string prefix;
    int found = 0;
    for (const auto& e : zip.entries()) {
        const std::string& n = e.name;
        const std::string tail = "/data.pkl";
        if (n.size() > tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0 &&
            n.find('/') == n.size() - tail.size()) {
            prefix = n.substr(0, n.size() - tail.size() + 1);
            ++found;
        }
    }
    if (found == 0) throw fail("no <archive>/data.pkl entry: not a torch.save checkpoint");
    if (found > 1) throw fail("several <archive>/data.pkl entries: not a torch.save checkpoint");

    if (const zip_entry* bo = zip.find(prefix + "byteorder")) {
        zip.verify_crc(*bo);
        const std::string order(reinterpret_cast<const char*>(zip.stored_data(*bo)), static_cast<std::size_t>(bo->size));
        if (order != "little")
            throw fail("byteorder is '" + escape_for_message(order) + "'; only little-endian checkpoints are supported");
    }

    const zip_entry& pkl = *zip.find(prefix + "data.pkl");
    zip.verify_crc(pkl);
    unpickler up(zip.stored_data(pkl), static_cast<std::size_t>(pkl.size), name + ": data.pkl", limits);
    const unpickler::ref root = up.load();

    // Every storage the pickle names must be there, as torch.load insists.
    std::vector<pytorch_impl::resolved_storage> storages;
    std::unordered_map<std::string, dtype> key_types;
    for (const pstorage& s : up.storages()) {
        const std::string what = "storage '" + escape_for_message(s.key) + "': ";
        auto seen = key_types.emplace(s.key, s.type);
        if (!seen.second && seen.first->second != s.type)
            throw fail(what + "referenced as both " + dtype_name(seen.first->second) + " and " + dtype_name(s.type));
        const zip_entry* e = zip.find(prefix + "data/" + s.key);
        if (!e) throw fail(what + "no entry '" + escape_for_message(prefix + "data/" + s.key) + "' in the archive");
        const std::uint64_t es = dtype_size(s.type);
        const auto numel = static_cast<std::uint64_t>(s.numel);
        if (numel > e->size / es)
            throw fail(what + "entry holds " + std::to_string(e->size) + " bytes, fewer than " + std::to_string(numel) +
                       " " + dtype_name(s.type) + " elements need");
        storages.push_back({zip.stored_data(*e), numel});
    }

    const pobject& top = up.at(root);
    if (top.kind != pkind::dict)
        throw fail("data.pkl holds " + std::string(unpickler::kind_name(top.kind)) +
                   ", expected a dict of tensors (a state dict)");
    // Training checkpoints wrap the state dict: {"state_dict": {...}, "epoch": ...}.
    unpickler::ref dict = root;
    for (const char* key : {"state_dict", "model"}) {
        unpickler::ref v = 0;
        if (up.dict_get(root, key, v) && up.at(v).kind == pkind::dict) {
            dict = v;
            break;
        }
    }

    // A dict keeps the last value set for a key.
    std::map<std::string, unpickler::ref> named;
    const auto& items = up.items(dict);
    for (std::size_t k = 0; k + 1 < items.size(); k += 2)
        if (up.at(items[k]).kind == pkind::string) named[up.text(items[k])] = items[k + 1];

    tensor_store store;
    std::uint64_t copy_budget = size;
    for (const auto& kv : named) {
        if (up.at(kv.second).kind != pkind::tensor) continue;  // e.g. _metadata, epoch counters
        const ptensor& t = up.tensor_of(kv.second);
        tensor_ref ref = pytorch_impl::materialize(name, kv.first, t, up.storages()[t.storage], storages[t.storage],
                                                   copy_budget, store);
        store.add(kv.first, std::move(ref), name);
    }
    if (store.size() == 0) throw fail("data.pkl holds no tensors");
    store.keep(std::move(owner));
    return store;
}

// Reads a torch.save zip archive from a file, mapped rather than read.
inline tensor_store read_pytorch_checkpoint(const std::string& path, const pickle_limits& limits = {}) {
    auto file = std::make_shared<mapped_file>(path);
    const unsigned char* p = file->data();
    const std::size_t n = file->size();
    tensor_store store = read_pytorch_checkpoint(std::move(file), p, n, path, limits);
    store.add_mapped_range(p, n);
    return store;
}

}  // namespace vit::detail
