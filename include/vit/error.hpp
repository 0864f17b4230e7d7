// vit: the one exception type the library throws.
#pragma once

#include <stdexcept>
#include <string>

namespace vit {

// Every failure the library reports is a vit::error. Its message names the
// file (or tensor, or option) and what is wrong with it, e.g.
//   "model.safetensors: tensor 'vit.layernorm.weight': shape [512], expected [1024]"
class error : public std::runtime_error {
public:
    explicit error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace vit
