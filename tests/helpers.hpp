// Shared by the tests: fixture paths, reference tensors, pixels from fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <vit/detail/io/safetensors.hpp>
#include <vit/image.hpp>
#include <vit/model.hpp>

#include "tmp_dir.hpp"

namespace test {

inline std::string data(const std::string& rel) { return std::string(VIT_TEST_DATA) + "/" + rel; }

// A reference tensor as doubles, with its shape.
struct ref_tensor {
    std::vector<std::int64_t> shape;
    std::vector<double> values;
    std::vector<std::uint8_t> bytes;  // for U8 tensors
};

class reference {
public:
    explicit reference(const std::string& path) : store_(vit::detail::read_safetensors(path)) {}
    ref_tensor get(const std::string& name) const {
        const auto* e = store_.find(name);
        if (!e) throw std::runtime_error("reference has no tensor '" + name + "'");
        ref_tensor r;
        r.shape = e->tensor.shape;
        if (e->tensor.type == vit::detail::dtype::u8) {
            r.bytes.assign(e->tensor.data, e->tensor.data + e->tensor.nbytes);
        } else {
            for (std::int64_t i = 0; i < e->tensor.numel(); ++i)
                r.values.push_back(vit::detail::element_as<double>(e->tensor, std::size_t(i)));
        }
        return r;
    }
    bool has(const std::string& name) const { return store_.contains(name); }

private:
    vit::detail::tensor_store store_;
};

// transformers' normalisation of a uint8 HWC image (mean = std = 0.5), in double.
template <class T>
void fill_pixels(const std::vector<std::uint8_t>& hwc, int h, int w, T* chw) {
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const double v = double(hwc[(std::size_t(y) * w + x) * 3 + c]) / 255.0;
                chw[(std::size_t(c) * h + y) * w + x] = T((v - 0.5) / 0.5);
            }
}

template <class T>
vit::pixel_values<T> pixels_from_refs(const std::vector<ref_tensor>& imgs) {
    const int h = int(imgs.at(0).shape.at(0)), w = int(imgs.at(0).shape.at(1));
    vit::pixel_values<T> px(int(imgs.size()), 3, h, w);
    for (std::size_t i = 0; i < imgs.size(); ++i) fill_pixels(imgs[i].bytes, h, w, px.image(int(i)));
    return px;
}

template <class Mat>
double max_abs_diff(const Mat& m, const std::vector<double>& ref, std::size_t offset = 0) {
    double worst = 0;
    for (Eigen::Index i = 0; i < m.size(); ++i)
        worst = std::max(worst, std::abs(double(m.data()[i]) - ref.at(offset + std::size_t(i))));
    return worst;
}

// The offset of the first byte of `msg` that a message must not hold (a
// control character, C1 included, or a byte outside valid UTF-8), or npos.
// Written apart from vit::detail::escape_for_message, to check it.
inline std::size_t first_bad_byte(const std::string& msg) {
    for (std::size_t i = 0; i < msg.size();) {
        const unsigned char c = static_cast<unsigned char>(msg[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > msg.size()) return i;
        std::uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (std::size_t k = 1; k < len; ++k) {
            const unsigned char b = static_cast<unsigned char>(msg[i + k]);
            if ((b >> 6) != 2) return i;
            cp = cp << 6 | (b & 0x3fu);
        }
        static const std::uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < shortest[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return i;
        i += len;
    }
    return std::string::npos;
}

inline const std::vector<std::string>& image_stems() {
    static const std::vector<std::string> stems = {"coco_cats", "chelsea", "camera_gray", "coffee", "tiny_7x5"};
    return stems;
}

}  // namespace test
