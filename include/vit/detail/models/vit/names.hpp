// The one table of ViT tensor names: what a checkpoint holds, under the
// classic hub names and transformers 5's, used by the loader and vit-convert
// (and, through vit_family::block, the formula checkpoints).
#pragma once

#include <cstdint>
#include <string>
#include <vector>


namespace vit::detail::vit_names {

// An encoder layer's parts, by their classic names (after "encoder.layer.N.")
// and transformers 5's (after "layers.N.").
struct renamed {
    const char* classic;
    const char* v5;
};
inline constexpr renamed layer_parts[] = {
    {"layernorm_before", "layernorm_before"},          {"layernorm_after", "layernorm_after"},
    {"attention.attention.query", "attention.q_proj"}, {"attention.attention.key", "attention.k_proj"},
    {"attention.attention.value", "attention.v_proj"}, {"attention.output.dense", "attention.o_proj"},
    {"intermediate.dense", "mlp.fc1"},                 {"output.dense", "mlp.fc2"}};

// The canonical name of an encoder layer's part: the classic hub name without
// the "vit." prefix, e.g. layer(3, "output.dense") = "encoder.layer.3.output.dense".
inline std::string layer(std::int64_t l, const std::string& part) {
    return "encoder.layer." + std::to_string(l) + "." + part;
}

// Whether a file's tensor name is one of the encoder's Linear weights (the
// bulk of the parameters: what the int8 file quantizes), in either naming.
inline bool is_encoder_linear_weight(const std::string& name) {
    for (const renamed& r : layer_parts) {
        if (std::string(r.classic).rfind("layernorm", 0) == 0) continue;
        for (const char* part : {r.classic, r.v5}) {
            const std::string tail = "." + std::string(part) + ".weight";
            if (name.size() > tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
                (name.find("encoder.layer.") != std::string::npos || name.find("layers.") != std::string::npos))
                return true;
        }
    }
    return false;
}

// Maps canonical names to a file's: the hub's ("vit." prefixed), a
// backbone's (unprefixed) or transformers 5's (layers.N.*), told apart by
// which of them the file holds.
class file_names {
public:
    template <class Contains>
    explicit file_names(Contains&& contains) {
        prefix_ = contains("vit.embeddings.cls_token") || contains("vit.embeddings.position_embeddings") ? "vit." : "";
        v5_ = contains(prefix_ + "layers.0.layernorm_before.weight") &&
              !contains(prefix_ + "encoder.layer.0.layernorm_before.weight");
    }

    std::string operator()(const std::string& canonical) const {
        if (canonical.rfind("classifier.", 0) == 0) return canonical;
        if (!v5_ || canonical.rfind("encoder.layer.", 0) != 0) return prefix_ + canonical;
        // encoder.layer.N.REST -> layers.N.REST'
        const std::string rest = canonical.substr(14);
        const std::size_t dot = rest.find('.');
        const std::string n = rest.substr(0, dot), tail = rest.substr(dot + 1);
        for (const renamed& r : layer_parts) {
            const std::string from = std::string(r.classic) + ".";
            if (tail.rfind(from, 0) == 0) return prefix_ + "layers." + n + "." + r.v5 + tail.substr(from.size() - 1);
        }
        return prefix_ + "layers." + n + "." + tail;
    }

private:
    std::string prefix_;
    bool v5_ = false;
};

}  // namespace vit::detail::vit_names
