// A checkpoint's image-processor settings (preprocessor_config.json). Read
// with JSON only: the model needs them, the image decoders are elsewhere.
#pragma once

#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "detail/escape.hpp"
#include "detail/json.hpp"
#include "error.hpp"
#include "image_types.hpp"

namespace vit {

// How `size` sets the resized image's size.
enum class size_rule {
    exact,          // width x height
    shortest_edge,  // the short side becomes `shortest_edge`, the long one int(s * long / short)
};

// The preprocessing settings of a checkpoint (preprocessor_config.json).
// Defaults are google/vit-large-patch32-384's.
struct preprocess_config {
    bool do_resize = true;
    int width = 384, height = 384;  // size_rule::exact (for shortest_edge, both hold the edge)
    size_rule size_mode = size_rule::exact;
    int shortest_edge = 0;  // size_rule::shortest_edge
    resample filter = resample::bilinear;
    bool do_center_crop = false;
    int crop_width = 0, crop_height = 0;
    // The DINOv2 / CLIP / SigLIP / DeiT processors rescale in double, round to
    // float32, then normalise in float32 with float32 mean and std; the ViT
    // path (false) rounds once from double, as the ViT references do.
    bool float32_normalize = false;
    bool do_rescale = true;
    double rescale_factor = 1.0 / 255;
    bool do_normalize = true;
    std::array<double, 3> mean{0.5, 0.5, 0.5}, std{0.5, 0.5, 0.5};
};

namespace detail {

// What an image processor class's rules are, from the families' rooms: a
// listed class (or its ...Fast twin) normalises in float32 and may read an
// integer `size` as a shortest edge; others follow ViTImageProcessor.
struct processor_rules {
    bool float32_normalize = false;
    bool int_size_is_shortest_edge = false;
};
inline processor_rules processor_of(const std::string& type) {
    processor_rules r;
    for_each_family([&](auto f) {
        for (const processor_rule& p : decltype(f)::processors())
            if (type == p.name || type == std::string(p.name) + "Fast")
                r = {true, p.int_size_is_shortest_edge};
    });
    return r;
}

}  // namespace detail

// Reads DIR/preprocessor_config.json; an absent file gives the defaults.
// `size` may be an int (a square, or for CLIP a shortest edge),
// {"height", "width"}, {"shortest_edge"} or [height, width]; `crop_size` an
// int (square) or {"height", "width"}.
inline preprocess_config load_preprocess_config(const std::string& model_dir) {
    preprocess_config cfg;
    const std::filesystem::path path = std::filesystem::path(model_dir) / "preprocessor_config.json";
    const std::string file = path.string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (ec) throw error(file + ": cannot check for the file: " + ec.message());
        return cfg;
    }
    // Read as config.json is: a regular file, size- and depth-limited.
    const nlohmann::json j = detail::read_json_file(file);
    if (!j.is_object()) throw error(file + ": expected a JSON object, got " + j.type_name());

    using namespace detail;
    std::string type;
    for (const char* key : {"image_processor_type", "feature_extractor_type"})
        if (type.empty() && j.contains(key) && j.at(key).is_string()) type = j.at(key).get<std::string>();
    const processor_rules rules = processor_of(type);
    cfg.float32_normalize = rules.float32_normalize;
    if (j.contains("do_resize")) cfg.do_resize = json_bool(j.at("do_resize"), file, "do_resize");
    if (j.contains("size")) {
        const nlohmann::json& s = j.at("size");
        if (s.is_number_integer() && rules.int_size_is_shortest_edge) {
            cfg.shortest_edge = cfg.width = cfg.height = json_positive_int(s, file, "size");
            cfg.size_mode = size_rule::shortest_edge;
        } else if (s.is_number_integer()) {
            cfg.width = cfg.height = json_positive_int(s, file, "size");
        } else if (s.is_object() && s.contains("height") && s.contains("width")) {
            cfg.height = json_positive_int(s.at("height"), file, "size.height");
            cfg.width = json_positive_int(s.at("width"), file, "size.width");
        } else if (s.is_object() && s.contains("shortest_edge")) {
            cfg.shortest_edge = cfg.width = cfg.height =
                json_positive_int(s.at("shortest_edge"), file, "size.shortest_edge");
            cfg.size_mode = size_rule::shortest_edge;
        } else if (s.is_array() && s.size() == 2) {
            cfg.height = json_positive_int(s.at(0), file, "size[0]");
            cfg.width = json_positive_int(s.at(1), file, "size[1]");
        } else {
            throw error(file + ": key 'size': expected an integer, {\"height\", \"width\"} or {\"shortest_edge\"}, got " +
                        (s.is_object() ? escape_for_message(s.dump()) : json_type(s)));
        }
    }
    if (j.contains("do_center_crop")) cfg.do_center_crop = json_bool(j.at("do_center_crop"), file, "do_center_crop");
    if (cfg.do_center_crop) {
        if (!j.contains("crop_size")) throw error(file + ": 'do_center_crop' is true but there is no 'crop_size'");
        const nlohmann::json& s = j.at("crop_size");
        if (s.is_number_integer()) {
            cfg.crop_width = cfg.crop_height = json_positive_int(s, file, "crop_size");
        } else if (s.is_object() && s.contains("height") && s.contains("width")) {
            cfg.crop_height = json_positive_int(s.at("height"), file, "crop_size.height");
            cfg.crop_width = json_positive_int(s.at("width"), file, "crop_size.width");
        } else {
            throw error(file + ": key 'crop_size': expected an integer or {\"height\", \"width\"}, got " +
                        (s.is_object() ? escape_for_message(s.dump()) : json_type(s)));
        }
    }
    if (j.contains("resample")) {
        const nlohmann::json& r = j.at("resample");
        if (!r.is_number_integer() || r.get<long long>() < 0 || r.get<long long>() > 5)
            throw error(file + ": key 'resample': expected a PIL filter number 0..5, got " +
                        (r.is_number() ? r.dump() : json_type(r)));
        cfg.filter = resample(r.get<int>());
    }
    if (j.contains("do_rescale")) cfg.do_rescale = json_bool(j.at("do_rescale"), file, "do_rescale");
    if (j.contains("rescale_factor")) cfg.rescale_factor = json_number(j.at("rescale_factor"), file, "rescale_factor");
    if (j.contains("do_normalize")) cfg.do_normalize = json_bool(j.at("do_normalize"), file, "do_normalize");
    if (j.contains("image_mean")) cfg.mean = json_triple(j.at("image_mean"), file, "image_mean");
    if (j.contains("image_std")) cfg.std = json_triple(j.at("image_std"), file, "image_std");
    for (double s : cfg.std)
        if (s == 0.0) throw error(file + ": key 'image_std': a standard deviation of 0 would divide by zero");
    return cfg;
}

}  // namespace vit
