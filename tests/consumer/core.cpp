// Built against vit::core, which brings no stb or libjpeg: the model on
// pixel_values made here from the fixture's Pillow-resized pixels.
#include <iostream>
#include <string>

#include <vit/detail/io/safetensors.hpp>
#include <vit/model.hpp>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: consumer MODEL_DIR REFERENCE_SAFETENSORS\n";
        return 2;
    }
    try {
        const vit::model m = vit::load_model(argv[1]);
        const vit::detail::tensor_store ref = vit::detail::read_safetensors(argv[2]);
        const auto* e = ref.find("coco_cats.resized_u8");  // uint8 [H, W, 3]
        if (!e) throw vit::error(std::string(argv[2]) + ": no coco_cats.resized_u8");
        const vit::detail::tensor_ref& u8 = e->tensor;
        const int h = int(u8.shape.at(0)), w = int(u8.shape.at(1));
        const vit::preprocess_config& p = m.preprocessing();
        vit::pixel_values<float> px(1, 3, h, w);
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < h * w; ++i)
                px.data[std::size_t(c) * h * w + i] =
                    float((u8.data[std::size_t(i) * 3 + c] * p.rescale_factor - p.mean[c]) / p.std[c]);
        std::cout << m.classify(px, 1).at(0).at(0).label << "\n";  // image 0's best
    } catch (const vit::error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
