// zero_shot: an image's labels by a CLIP or SigLIP checkpoint, labels given
// as words (no training: the text tower embeds "This is a photo of {}.").
// The README's "Zero-shot labels in C++".
//
//   zero_shot MODEL_DIR IMAGE LABEL...
#include <iostream>
#include <string>
#include <vector>

#include <vit/vit.hpp>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: zero_shot MODEL_DIR IMAGE LABEL...\n";
        return 2;
    }
    const std::vector<std::string> labels(argv + 3, argv + argc);
    const vit::zero_shot_model m = vit::load_zero_shot_model(argv[1]);  // e.g. clip-vit-base-patch32
    for (const vit::prediction& p : m.classify(argv[2], labels))
        std::cout << p.score << "  " << p.label << "\n";  // best first
}
