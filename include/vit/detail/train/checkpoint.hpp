// A backbone plus a trained head, written as the hub lays out a classifier:
// config.json with the family's *ForImageClassification and the labels,
// preprocessor_config.json, and model.safetensors holding the backbone's
// tensors under the classifier's names (base_model_prefix + the backbone's)
// and classifier.weight / classifier.bias in float32.
#pragma once

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "../../config.hpp"
#include "../../error.hpp"
#include "../io/checkpoint.hpp"
#include "../io/safetensors.hpp"
#include "features.hpp"
#include "logistic.hpp"

namespace vit {

namespace detail::train {

// transformers' base_model_prefix of the family's classifier.
inline std::string base_prefix(model_family f) {
    switch (f) {
        case model_family::vit: return "vit.";
        case model_family::dinov2: return "dinov2.";
        case model_family::dinov2_registers: return "dinov2_with_registers.";
        default: break;
    }
    classifier_architecture(f);  // throws, naming the family
    return "";
}

inline bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

inline void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    if (!out) throw error(path + ": cannot write");
}

// Removes a folder tree unless disarmed: no half-written output stays behind.
class scratch_dir {
public:
    explicit scratch_dir(std::string p) : path_(std::move(p)) {}
    ~scratch_dir() {
        if (path_.empty()) return;
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    void keep() { path_.clear(); }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;

private:
    std::string path_;
};

}  // namespace detail::train

// Refuses an output folder that exists, before any work is spent on it.
inline void check_output_free(const std::string& out) {
    std::error_code ec;
    if (std::filesystem::exists(out, ec)) throw error(out + ": exists; remove it or choose another output folder");
    const std::filesystem::path parent = std::filesystem::absolute(out, ec).parent_path();
    if (!std::filesystem::is_directory(parent, ec)) throw error(out + ": its parent folder " + parent.string() + " does not exist");
}

// Writes OUT: the checkpoint folder at `model_dir` with `head` as its
// classifier and `labels` as id2label, plus `extra` files (name -> bytes). It
// is written under a temporary name beside OUT and renamed when complete; OUT
// must not exist.
inline void save_classifier(const std::string& model_dir, const std::vector<std::string>& labels, const linear_head& head,
                            const std::string& out, const std::map<std::string, std::string>& extra = {}) {
    namespace fs = std::filesystem;
    check_output_free(out);
    const std::string cfg_path = model_dir + "/config.json";
    nlohmann::json cfg = detail::read_json_file(cfg_path);
    const config c = parse_config(cfg, cfg_path);
    const std::string arch = classifier_architecture(c.family);
    const std::string prefix = detail::train::base_prefix(c.family);
    const int hidden = c.hidden_size, width = reads_patch_mean(c.family) ? 2 * hidden : hidden;
    const Eigen::Index k = Eigen::Index(labels.size());
    if (head.weight.rows() != k || head.bias.size() != k || head.weight.cols() != width)
        throw error(out + ": the head is [" + std::to_string(head.weight.rows()) + ", " +
                    std::to_string(head.weight.cols()) + "] for " + std::to_string(labels.size()) +
                    " labels; the model's classifier needs [" + std::to_string(k) + ", " + std::to_string(width) + "]");
    {
        std::map<std::string, int> seen;
        for (const auto& l : labels)
            if (seen[l]++) throw error(out + ": label '" + detail::escape_for_message(l) + "' appears twice");
    }

    const detail::tensor_store store = detail::read_checkpoint(model_dir);
    std::vector<detail::tensor_blob> tensors;
    for (const auto& kv : store.all()) {
        std::string name = kv.first;
        if (!detail::train::starts_with(name, prefix)) name = prefix + name;
        const std::string inner = name.substr(prefix.size());
        // The old head goes; so does ViTModel's pooler, which ViTForImageClassification has not.
        if (detail::train::starts_with(kv.first, "classifier.") || detail::train::starts_with(inner, "pooler.")) continue;
        const detail::tensor_ref& t = kv.second.tensor;
        tensors.push_back({name, t.type, t.shape, std::vector<unsigned char>(t.data, t.data + t.nbytes)});
    }
    detail::tensor_blob w{"classifier.weight", detail::dtype::f32, {k, width}, {}};
    detail::tensor_blob b{"classifier.bias", detail::dtype::f32, {k}, {}};
    w.bytes.resize(std::size_t(k) * std::size_t(width) * 4);
    b.bytes.resize(std::size_t(k) * 4);
    for (Eigen::Index i = 0; i < k; ++i) {
        for (Eigen::Index j = 0; j < width; ++j) {
            const float v = float(head.weight(i, j));
            std::memcpy(&w.bytes[(std::size_t(i) * std::size_t(width) + std::size_t(j)) * 4], &v, 4);
        }
        const float v = float(head.bias(i));
        std::memcpy(&b.bytes[std::size_t(i) * 4], &v, 4);
    }
    tensors.push_back(std::move(w));
    tensors.push_back(std::move(b));

    cfg["architectures"] = nlohmann::json::array({arch});
    if (!cfg.contains("model_type")) cfg["model_type"] = "vit";
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (Eigen::Index i = 0; i < k; ++i) {
        id2label[std::to_string(i)] = labels[std::size_t(i)];
        label2id[labels[std::size_t(i)]] = i;
    }
    cfg["id2label"] = id2label;
    cfg["label2id"] = label2id;
    cfg["num_labels"] = k;

    const fs::path target = fs::absolute(out);
    const std::string tmp =
        (target.parent_path() / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (!fs::create_directory(tmp, ec)) throw error(tmp + ": cannot create the folder: " + ec.message());
    detail::train::scratch_dir guard(tmp);
    detail::train::write_file(tmp + "/config.json", cfg.dump(2) + "\n");
    if (fs::exists(model_dir + "/preprocessor_config.json")) {
        fs::copy_file(model_dir + "/preprocessor_config.json", tmp + "/preprocessor_config.json", ec);
        if (ec) throw error(tmp + "/preprocessor_config.json: cannot copy: " + ec.message());
    }
    detail::write_safetensors(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
    for (const auto& kv : extra) detail::train::write_file(tmp + "/" + kv.first, kv.second);
    load_config(tmp + "/config.json");  // what we wrote reads back
    if (fs::exists(out, ec)) throw error(out + ": appeared while the head was written; left it alone");
    fs::rename(tmp, out, ec);
    if (ec) throw error(out + ": cannot rename " + tmp + " into place: " + ec.message());
    guard.keep();
}

}  // namespace vit
