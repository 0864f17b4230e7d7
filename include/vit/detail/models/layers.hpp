// Reading nn's layers from a checkpoint: the tensors are looked up, checked
// and converted here, and handed to the layers (nn/ knows no files).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../../config.hpp"
#include "../../error.hpp"
#include "../../options.hpp"
#include "../index.hpp"
#include "../io/weight_source.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "family.hpp"

namespace vit::detail {

// The product epilogue's activation for a config's hidden_act.
inline activation to_activation(hidden_act a) {
    switch (a) {
        case hidden_act::gelu: return activation::gelu_erf;
        case hidden_act::gelu_tanh: return activation::gelu_tanh;
        case hidden_act::relu: return activation::relu;
        case hidden_act::quick_gelu: return activation::quick_gelu;
    }
    return activation::none;
}

template <class T>
layer_norm<T> load_layer_norm(const weight_source& w, const std::string& name, index_t hidden, double eps) {
    std::vector<T> weight = w.read<T>(name + ".weight", {hidden});
    return layer_norm<T>(std::move(weight), w.read<T>(name + ".bias", {hidden}), eps);
}

// nn.Linear, or several stacked into one (query|key|value): a weight
// [out, in] and a bias [out] (zeros when the checkpoint has none), computed in
// the chosen precision. An int8 checkpoint (tensor `NAME.weight` of dtype I8 with
// per-output-channel scales `NAME.weight_scale` [out], as vit-convert writes)
// runs in int8 whatever is asked.
struct linear_spec {
    std::vector<std::string> names;   // one per stacked part
    index_t out = 0, in = 0;          // of each part
    std::vector<index_t> file_shape;  // when the file's shape is not [out, in] (a conv's [out, C, P, P])
    bool has_bias = true;
};

// defer: float32 weights that the file holds as float32 stay there, to be
// packed later (linear::pack_deferred), when the CPU can run them so.
template <class T>
linear<T> load_linear(const weight_source& src, const linear_spec& s, precision want, bool defer = false) {
    const index_t parts = index_t(s.names.size()), rows = parts * s.out;
    const std::vector<index_t> shape = s.file_shape.empty() ? std::vector<index_t>{s.out, s.in} : s.file_shape;
    // One object, built in place and returned by name on every path: GCC 12
    // for aarch64 reports a false -Wmaybe-uninitialized when a std::variant
    // holding an int8 product is moved.
    linear<T> layer;
    for (const auto& n : s.names) {
        const std::vector<T> b = s.has_bias ? src.read<T>(n + ".bias", {s.out}) : std::vector<T>(std::size_t(s.out), T(0));
        layer.bias.insert(layer.bias.end(), b.begin(), b.end());
    }
    std::size_t int8_parts = 0;
    for (const auto& n : s.names) int8_parts += src.dtype_of(n + ".weight") == dtype::i8;
    if (int8_parts != 0 && int8_parts != s.names.size())
        throw error(src.where() + ": tensor '" + src.file_name(s.names[0] + ".weight") +
                    "': int8 and float weights mixed in one layer");
    if (int8_parts) {
        std::vector<std::int8_t> w8;
        std::vector<float> scales;
        for (const auto& n : s.names) {
            const auto q = src.read_int8(n + ".weight", shape);
            w8.insert(w8.end(), q.begin(), q.end());
            const auto sc = src.read<float>(n + ".weight_scale", {s.out});
            scales.insert(scales.end(), sc.begin(), sc.end());
        }
        if constexpr (std::is_same<T, float>::value) {
            layer.product.template emplace<packed_linear_int8>(w8.data(), scales.data(), rows, s.in);
        } else {
            std::vector<T> deq(w8.size());
            for (std::size_t i = 0; i < deq.size(); ++i) deq[i] = T(w8[i]) * T(scales[i / std::size_t(s.in)]);
            layer.product.template emplace<packed_linear<T>>(deq.data(), rows, s.in);
        }
        return layer;
    }
    const precision mode = std::is_same<T, float>::value ? want : precision::f32;
    std::vector<typename weight_source::template view<T>> views;
    for (const auto& n : s.names) views.push_back(src.read_view<T>(n + ".weight", shape));
    const index_t out = s.out, in = s.in;
    if constexpr (std::is_same<T, float>::value) {
        bool in_file = true;
        for (const auto& v : views) in_file = in_file && v.owned.empty();
        if (defer && mode == precision::f32 && in_file && s.file_shape.empty() && linear<T>::can_defer()) {
            typename linear<T>::file_weights f;
            f.part_out = out;
            f.in = in;
            std::vector<const tensor_ref*> sources;
            for (const auto& v : views) {
                f.parts.push_back(v.data);
                sources.push_back(v.source);
            }
            const tensor_store* store = &src.store();
            f.release = [store, sources] {
                for (const tensor_ref* t : sources) store->release(*t);
            };
            layer.set_deferred(std::move(f));
            return layer;
        }
    }
    auto row = [&views, out, in](index_t j) { return views[std::size_t(j / out)].data + (j % out) * in; };
    if (mode == precision::f32) {
        layer.product.template emplace<packed_linear<T>>(row, rows, in);
    } else if constexpr (std::is_same<T, float>::value) {
        if (mode == precision::bf16) {
            std::vector<float> weight(std::size_t(rows * in));
            for (index_t j = 0; j < rows; ++j) std::copy(row(j), row(j) + in, weight.data() + j * in);
            layer.product.template emplace<packed_linear_bf16>(weight.data(), rows, in);
        } else {  // int8, quantized at load as vit-convert would, straight from the file's rows
            std::vector<std::int8_t> w8;
            std::vector<float> scales;
            packed_linear_int8::quantize_rows(row, rows, in, w8, scales);
            layer.product.template emplace<packed_linear_int8>(w8.data(), scales.data(), rows, in);
        }
    }
    for (const auto& v : views) src.release(v.source);
    return layer;
}

// A family's tensor_part (a linear of weight [out, in], or a conv's [out, C, P, P]).
template <class T>
linear<T> load_linear(const weight_source& w, const tensor_part& p, precision want) {
    index_t in = 1;
    for (std::size_t d = 1; d < p.shape.size(); ++d) in *= p.shape[d];
    const std::vector<index_t> file_shape = p.shape.size() > 2 ? p.shape : std::vector<index_t>{};
    return load_linear<T>(w, linear_spec{{p.name}, p.shape.at(0), in, file_shape, p.bias}, want);
}

template <class T>
layer_norm<T> load_layer_norm(const weight_source& w, const tensor_part& p, double eps) {
    return load_layer_norm<T>(w, p.name, p.shape.at(0), eps);
}

}  // namespace vit::detail
