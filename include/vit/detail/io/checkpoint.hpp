// Finds and reads a checkpoint folder's weights, whatever files the hub gave.
#pragma once

#include <string>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "../../error.hpp"
#include "../escape.hpp"
#include "../json.hpp"
#include "pytorch.hpp"
#include "safetensors.hpp"
#include "tensor_store.hpp"

namespace vit::detail {

inline bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Reads an index file ({"weight_map": {tensor: shard file}}) and every shard
// it names, checking that each listed tensor is in its shard.
template <class ReadShard>
tensor_store read_sharded(const std::string& dir, const std::string& index_name, ReadShard read_shard) {
    const std::string index_path = dir + "/" + index_name;
    const nlohmann::json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
        throw error(index_path + ": no 'weight_map' object");
    const auto& map = index.at("weight_map");
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = map.begin(); it != map.end(); ++it) {
        if (!it.value().is_string())
            throw error(index_path + ": weight_map entry '" + escape_for_message(it.key()) + "' is not a file name");
        const std::string shard = it.value().get<std::string>();
        // A shard is a plain file name in the same folder: anything else could
        // make a downloaded index read files elsewhere on the machine. Every
        // message about the shard names it: it must not need escaping.
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == ".." ||
            !is_printable_utf8(shard))
            throw error(index_path + ": shard name '" + escape_for_message(shard) +
                        "' is not a file name in the checkpoint folder");
        by_shard[shard].push_back(it.key());
    }
    tensor_store all;
    for (const auto& kv : by_shard) {
        tensor_store part = read_shard(dir + "/" + kv.first);
        for (const auto& name : kv.second)
            if (!part.contains(name))
                throw error(dir + "/" + kv.first + ": tensor '" + escape_for_message(name) + "' listed in " + index_name +
                            " is not in the shard");
        all.merge(std::move(part));
    }
    return all;
}

// The weight files of a hub checkpoint folder, in the order transformers
// prefers them: safetensors first, then PyTorch pickles.
inline tensor_store read_checkpoint(const std::string& dir) {
    if (file_exists(dir + "/model.safetensors")) return read_safetensors(dir + "/model.safetensors");
    if (file_exists(dir + "/model.safetensors.index.json"))
        return read_sharded(dir, "model.safetensors.index.json", [](const std::string& p) { return read_safetensors(p); });
    if (file_exists(dir + "/pytorch_model.bin")) return read_pytorch_checkpoint(dir + "/pytorch_model.bin");
    if (file_exists(dir + "/pytorch_model.bin.index.json"))
        return read_sharded(dir, "pytorch_model.bin.index.json",
                            [](const std::string& p) { return read_pytorch_checkpoint(p); });
    throw error(dir + ": no weights found (model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                      "pytorch_model.bin.index.json)");
}

}  // namespace vit::detail
