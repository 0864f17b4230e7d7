// Finds a hub id such as google/vit-large-patch32-384 in the local Hugging Face
// cache, laid out as huggingface_hub writes it:
//   <cache>/models--ORG--NAME/refs/main        (the snapshot's commit hash)
//   <cache>/models--ORG--NAME/snapshots/<hash>/config.json, ...
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <vit/error.hpp>

namespace hub {

inline std::string cache_dir() {
    if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
    if (const char* h = std::getenv("HF_HOME"); h && *h) return std::string(h) + "/hub";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.cache/huggingface/hub";
}

inline bool looks_like_hub_id(const std::string& id) {
    const auto slash = id.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == id.size() || id.find('/', slash + 1) != std::string::npos)
        return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/')) return false;
    return id[0] != '.' && id.find("..") == std::string::npos;
}

inline std::string how_to_download(const std::string& id) {
    const std::string name = id.substr(id.find('/') + 1);
    std::string s = "Download it with huggingface_hub's command line tool:\n"
                    "  huggingface-cli download " + id + " config.json preprocessor_config.json pytorch_model.bin\n"
                    "or into a folder with curl, then pass --model " + name + ":\n"
                    "  mkdir -p " + name + " && cd " + name + "\n";
    for (const char* f : {"config.json", "preprocessor_config.json", "pytorch_model.bin"})
        s += std::string("  curl -LO https://huggingface.co/") + id + "/resolve/main/" + f + "\n";
    return s;
}

// A folder as given, or the cached snapshot of a hub id.
inline std::string resolve_model(const std::string& model) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(model, ec)) return model;
    if (!looks_like_hub_id(model))
        throw vit::error("model '" + model + "': no such folder (and not a hub id like google/vit-large-patch32-384)");
    const std::string cache = cache_dir();
    std::string repo = model;
    repo.replace(repo.find('/'), 1, "--");
    const std::string repo_dir = cache + "/models--" + repo;
    std::ifstream ref(repo_dir + "/refs/main");
    std::string hash;
    if (ref && std::getline(ref, hash)) {
        while (!hash.empty() && std::isspace(static_cast<unsigned char>(hash.back()))) hash.pop_back();
        const std::string snap = repo_dir + "/snapshots/" + hash;
        if (!hash.empty() && hash.find('/') == std::string::npos && fs::is_regular_file(snap + "/config.json", ec))
            return snap;
    }
    throw vit::error("model '" + model + "' not found: not a folder, and not in the Hugging Face cache (" + cache +
                     ").\n" + how_to_download(model));
}

}  // namespace hub
