// Built against vit::core, which brings no stb: nothing here may need it.
#include <iostream>
#include <string>

#include <vit/config.hpp>
#include <vit/error.hpp>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: consumer MODEL_DIR\n";
        return 2;
    }
    try {
        const vit::config cfg = vit::load_config(std::string(argv[1]) + "/config.json");
        std::cout << cfg.labels.at(8) << "\n";
    } catch (const vit::error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
