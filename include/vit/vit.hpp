// vit: Vision Transformer inference. Include this one header.
//
//   vit::model m = vit::load_model("vit-large-patch32-384");   // a hub checkpoint folder
//   for (const auto& p : m.classify("cat.jpg", 5)) std::cout << p.score << " " << p.label << "\n";
//
// <vit/model.hpp> alone is the model without image decoding (target
// vit::core: Eigen and nlohmann_json only), for callers that bring
// pixel_values themselves.
#pragma once

#include "build_info.hpp"
#include "config.hpp"
#include "convert.hpp"
#include "error.hpp"
#include "image.hpp"
#include "model.hpp"
#include "text.hpp"
#include "version.hpp"
