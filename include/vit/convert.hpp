// Converting a checkpoint folder into the file vit loads fastest: one
// model.safetensors in F32, F16, BF16, or int8 weights with per-channel scales.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/io/checkpoint.hpp"
#include "detail/cpu/packed_linear_int8.hpp"
#include "detail/io/safetensors.hpp"
#include "detail/models/vit/names.hpp"
#include "error.hpp"

namespace vit {

enum class file_dtype { f32, f16, bf16, int8 };

inline file_dtype parse_file_dtype(const std::string& s) {
    if (s == "f32") return file_dtype::f32;
    if (s == "f16") return file_dtype::f16;
    if (s == "bf16") return file_dtype::bf16;
    if (s == "int8") return file_dtype::int8;
    throw error("dtype '" + s + "' is not one of f32, f16, bf16, int8");
}

namespace detail {

// The int8 file quantizes the encoder's Linear weights (the bulk of the
// parameters and of the work); embeddings, LayerNorms, the classifier and
// the pooler stay float.
inline bool quantized_in_int8(const std::string& name, const tensor_ref& t) {
    return t.shape.size() == 2 && vit_names::is_encoder_linear_weight(name);
}

inline std::vector<float> floats_of(const tensor_ref& t) {
    std::vector<float> v(static_cast<std::size_t>(t.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = element_as<float>(t, i);
    return v;
}

}  // namespace detail

// Reads any checkpoint folder vit loads (safetensors, sharded, pytorch_model.bin)
// and writes DST/model.safetensors in `to`, with config.json and
// preprocessor_config.json copied. Tensor names are kept as they are.
// int8: each encoder Linear weight [out, in] becomes I8 values q with
// w ~= q * scale[out], scale = max|w[out, :]| / 127, stored as NAME_scale
// ("...dense.weight_scale", F32 [out]) beside it.
inline void convert_checkpoint(const std::string& src, const std::string& dst, file_dtype to) {
    namespace fs = std::filesystem;
    if (fs::exists(dst + "/model.safetensors") && fs::equivalent(src, dst))
        throw error(dst + ": the destination is the source folder");
    load_config(src + "/config.json");  // refuse what the loader would refuse, before writing anything
    const detail::tensor_store store = detail::read_checkpoint(src);
    std::error_code ec;
    fs::create_directories(dst, ec);
    if (ec) throw error(dst + ": cannot create the folder: " + ec.message());
    for (const char* f : {"config.json", "preprocessor_config.json"}) {
        if (!fs::exists(src + "/" + f)) continue;
        fs::copy_file(src + "/" + f, dst + "/" + f, fs::copy_options::overwrite_existing, ec);
        if (ec) throw error(dst + "/" + f + ": cannot copy: " + ec.message());
    }
    using detail::dtype;
    std::vector<detail::tensor_blob> out;
    for (const auto& kv : store.all()) {
        const std::string& name = kv.first;
        const detail::tensor_ref& t = kv.second.tensor;
        const bool is_float = t.type == dtype::f32 || t.type == dtype::f16 || t.type == dtype::bf16 || t.type == dtype::f64;
        if (!is_float) {  // kept as it is (e.g. an int8 file converted again)
            out.push_back({name, t.type, t.shape, std::vector<unsigned char>(t.data, t.data + t.nbytes)});
            continue;
        }
        const std::vector<float> v = detail::floats_of(t);
        if (to == file_dtype::int8 && detail::quantized_in_int8(name, t)) {
            std::vector<std::int8_t> q;
            std::vector<float> scales;
            detail::packed_linear_int8::quantize(v.data(), t.shape[0], t.shape[1], q, scales);
            out.push_back({name, dtype::i8, t.shape, std::vector<unsigned char>(q.begin(), q.end())});
            std::vector<unsigned char> sb(scales.size() * 4);
            std::memcpy(sb.data(), scales.data(), sb.size());
            out.push_back({name + "_scale", dtype::f32, {t.shape[0]}, std::move(sb)});
            continue;
        }
        detail::tensor_blob b{name, dtype::f32, t.shape, {}};
        if (to == file_dtype::f16 || to == file_dtype::bf16) {
            b.type = to == file_dtype::f16 ? dtype::f16 : dtype::bf16;
            b.bytes.resize(v.size() * 2);
            for (std::size_t i = 0; i < v.size(); ++i) {
                const std::uint16_t h = to == file_dtype::f16 ? detail::float_to_half(v[i]) : detail::float_to_bf16(v[i]);
                std::memcpy(&b.bytes[i * 2], &h, 2);
            }
        } else {
            b.bytes.resize(v.size() * 4);
            std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
        }
        out.push_back(std::move(b));
    }
    const char* names[] = {"F32", "F16", "BF16", "INT8"};
    detail::write_safetensors(dst + "/model.safetensors", out,
                              {{"format", "pt"}, {"converted_by", "vit-convert"}, {"vit_dtype", names[int(to)]}});
}

}  // namespace vit
