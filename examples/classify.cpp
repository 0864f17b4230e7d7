// classify: the five most probable labels of an image, the README's first
// C++ program ("Use it from C++").
//
//   classify [MODEL_DIR [IMAGE]]
#include <iostream>
#include <vit/vit.hpp>

int main(int argc, char** argv) {
    const char* folder = argc > 1 ? argv[1] : "vit-large-patch32-384";  // a checkpoint folder
    const char* image = argc > 2 ? argv[2] : "cat.jpg";
    const vit::model m = vit::load_model(folder);
    for (const vit::prediction& p : m.classify(image, 5))
        std::cout << p.score << "  " << p.label << "\n";  // 0.93  Egyptian cat ...
}
