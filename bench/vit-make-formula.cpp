// vit-make-formula DIR: writes the full-size ViT-L/32-384 checkpoint whose
// weights come from the formula in tests/data/FIXTURES.md (1.2 GB), to
// benchmark and test with a real-size model without downloading one.
#include <iostream>
#include <string>

#include <vit/vit.hpp>

#include "../tools/formula.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: vit-make-formula CONFIG_JSON OUT_DIR\n"
                     "  e.g. vit-make-formula tests/data/vit-large-formula/config.json /tmp/vit-large\n";
        return 2;
    }
    try {
        const std::string config = argv[1], dir = argv[2];
        const vit::config c = vit::load_config(config);
        if (std::system(("mkdir -p '" + dir + "' && cp '" + config + "' '" + dir + "/config.json'").c_str()) != 0)
            throw vit::error(dir + ": cannot create the folder");
        vit::detail::write_safetensors(dir + "/model.safetensors", formula::make_tensors(c));
        std::cout << "wrote " << dir << "/model.safetensors\n";
    } catch (const vit::error& e) {
        std::cerr << "vit-make-formula: " << e.what() << "\n";
        return 1;
    }
}
