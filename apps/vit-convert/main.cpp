// vit-convert: any checkpoint folder vit reads -> one model.safetensors in the
// chosen dtype; --compare reports what a conversion cost on real images.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <vit/convert.hpp>
#include <vit/vit.hpp>

namespace {

const char* usage = R"(usage: vit-convert SRC DST [--dtype f32|f16|bf16|int8]
       vit-convert --compare SRC DST IMAGE...

Converts the checkpoint folder SRC (model.safetensors, a sharded index, or the
hub's pytorch_model.bin) into DST: config.json, preprocessor_config.json and one
model.safetensors in the requested dtype (default f32). int8 stores each encoder
Linear weight as I8 with per-output-channel scales (NAME.weight_scale, F32);
the other tensors stay F32. No Python needed.

--compare runs both models on the images and prints, per image and overall,
the largest absolute logit difference and whether the top-1 label agrees.

examples:
  vit-convert vit-large-patch32-384 vit-large-bf16 --dtype bf16
  vit-convert --compare vit-large-patch32-384 vit-large-bf16 cat.jpg dog.png
)";

int compare(const std::string& a, const std::string& b, const std::vector<std::string>& images) {
    const vit::model ma = vit::load_model(a), mb = vit::load_model(b);
    if (ma.config().arch != vit::architecture::image_classification || mb.config().num_labels() != ma.config().num_labels())
        throw vit::error("--compare needs two classifiers with the same labels");
    vit::workspace<float> ws(2);
    double worst = 0;
    int agree = 0;
    for (const auto& path : images) {
        const std::vector<vit::image> img = {vit::load_image(path)};
        const auto la = ma.forward(vit::make_pixel_values<float>(img, ma.preprocessing()), {}, &ws).logits;
        const auto lb = mb.forward(vit::make_pixel_values<float>(img, mb.preprocessing()), {}, &ws).logits;
        Eigen::Index ta, tb;
        la.row(0).maxCoeff(&ta);
        lb.row(0).maxCoeff(&tb);
        const double d = (la - lb).cwiseAbs().maxCoeff();
        worst = std::max(worst, d);
        agree += ta == tb;
        std::printf("%s: largest logit difference %.3g, top-1 %s (%s / %s)\n", path.c_str(), d,
                    ta == tb ? "same" : "DIFFERENT", ma.config().labels[std::size_t(ta)].c_str(),
                    mb.config().labels[std::size_t(tb)].c_str());
    }
    std::printf("overall: largest logit difference %.3g, top-1 agreement %d/%zu\n", worst, agree, images.size());
    return agree == int(images.size()) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
            std::cout << usage;
            return 0;
        }
        if (!args.empty() && args[0] == "--compare") {
            if (args.size() < 4) {
                std::cerr << usage;
                return 2;
            }
            return compare(args[1], args[2], std::vector<std::string>(args.begin() + 3, args.end()));
        }
        std::string dtype = "f32";
        std::vector<std::string> pos;
        for (std::size_t i = 0; i < args.size(); ++i) {
            if (args[i] == "--dtype" && i + 1 < args.size()) dtype = args[++i];
            else if (!args[i].empty() && args[i][0] == '-') {
                std::cerr << "vit-convert: unknown option '" << args[i] << "'\n" << usage;
                return 2;
            } else pos.push_back(args[i]);
        }
        if (pos.size() != 2) {
            std::cerr << usage;
            return 2;
        }
        vit::convert_checkpoint(pos[0], pos[1], vit::parse_file_dtype(dtype));
        std::cout << "wrote " << pos[1] << "/model.safetensors (" << dtype << ")\n";
        return 0;
    } catch (const vit::error& e) {
        std::cerr << "vit-convert: " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "vit-convert: " << e.what() << "\n";
        return 1;
    }
}
