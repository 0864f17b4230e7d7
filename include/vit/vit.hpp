// vit: Vision Transformer inference. Include this one header.
//
//   vit::model m = vit::load_model("vit-large-patch32-384");   // a hub checkpoint folder
//   for (const auto& p : m.classify("cat.jpg", 5)) std::cout << p.score << " " << p.label << "\n";
#pragma once

#include "config.hpp"
#include "error.hpp"
#include "image.hpp"
#include "convert.hpp"
#include "model.hpp"
#include "version.hpp"
