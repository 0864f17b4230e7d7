#include <iostream>

#include <vit/vit.hpp>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: consumer MODEL_DIR IMAGE\n";
        return 2;
    }
    try {
        const vit::model m = vit::load_model(argv[1]);
        for (const auto& p : m.classify(argv[2], 1)) std::cout << p.label << "\n";
    } catch (const vit::error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
