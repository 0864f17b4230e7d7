// similarity: the cosine similarity of two images' embeddings, the smallest
// use of a DINOv2, CLIP or SigLIP checkpoint (README, "The ViT family").
//
//   similarity MODEL_DIR a.jpg b.jpg
#include <iostream>

#include <vit/vit.hpp>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: similarity MODEL_DIR IMAGE_A IMAGE_B\n";
        return 2;
    }
    try {
        const vit::model m = vit::load_model(argv[1]);
        const auto px = vit::make_pixel_values<float>({vit::load_image(argv[2]), vit::load_image(argv[3])},
                                                      m.preprocessing());
        const vit::matrix<float> e = m.embedding(m.forward(px));  // [2, m.embedding_size()]
        std::cout << m.embedding_kind() << " cosine " << e.row(0).dot(e.row(1)) / (e.row(0).norm() * e.row(1).norm())
                  << "\n";
    } catch (const vit::error& e) {
        std::cerr << "similarity: " << e.what() << "\n";
        return 1;
    }
}
