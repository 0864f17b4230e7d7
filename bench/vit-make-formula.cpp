// vit-make-formula CONFIG_JSON OUT_DIR: writes a full-size checkpoint of the
// config's family whose weights come from the formula (tools/formula.hpp;
// ViT-L/32-384's is the one in tests/data/FIXTURES.md), to benchmark and test
// real-size models without downloading one. A preprocessor_config.json beside
// the config is copied too.
#include <filesystem>
#include <iostream>
#include <string>

#include <vit/vit.hpp>

#include "../tools/formula.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: vit-make-formula CONFIG_JSON OUT_DIR\n"
                     "  e.g. vit-make-formula tests/data/vit-large-formula/config.json /tmp/vit-large\n"
                     "       vit-make-formula bench/formula/dinov2-large/config.json /tmp/dinov2-large\n";
        return 2;
    }
    namespace fs = std::filesystem;
    try {
        const fs::path config = argv[1], dir = argv[2];
        const nlohmann::json j = vit::detail::read_json_file(config.string());
        const bool text_only = formula::text_only(j);
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) throw vit::error(dir.string() + ": cannot create the folder: " + ec.message());
        const auto copy = [&](const fs::path& from, const char* name) {
            fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing, ec);
            if (ec) throw vit::error(from.string() + ": cannot copy to " + (dir / name).string() + ": " + ec.message());
        };
        copy(config, "config.json");
        for (const char* f : {"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                              "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model"})
            if (fs::exists(config.parent_path() / f)) copy(config.parent_path() / f, f);
        std::vector<formula::tensor_spec> specs;
        std::string what = "text tower";
        if (!text_only) {
            const vit::config c = vit::load_config(config.string());
            specs = formula::hub_tensors(c);
            what = vit::family_name(c.family);
        }
        for (auto& t : formula::hub_text_tensors(j, config.string())) specs.push_back(std::move(t));
        formula::sort_by_name(specs);
        vit::detail::write_safetensors((dir / "model.safetensors").string(), formula::make_tensors(specs));
        std::cout << "wrote " << (dir / "model.safetensors").string() << " (" << what << ")\n";
    } catch (const vit::error& e) {
        std::cerr << "vit-make-formula: " << e.what() << "\n";
        return 1;
    }
}
