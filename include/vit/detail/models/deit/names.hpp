// DeiT's tensor names (DeiTForImageClassificationWithTeacher): ViT's
// encoder names under "deit.", two tokens, two classifiers.
#pragma once

#include <string>

namespace vit::detail::deit_names {

inline const char* distillation_token = "embeddings.distillation_token";
inline const char* cls_classifier = "cls_classifier";
inline const char* distillation_classifier = "distillation_classifier";
inline const char* base_prefix = "deit.";

template <class Contains>
std::string prefix(Contains&& contains) {
    return contains("deit.embeddings.cls_token") ? base_prefix : "";
}

}  // namespace vit::detail::deit_names
