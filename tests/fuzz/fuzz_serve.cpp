// libFuzzer target: vit-serve's request decoding (apps/vit-serve/protocol.hpp),
// the code that sees every HTTP body before the model does. The first byte
// picks what the rest is:
//   0  an Open Inference Protocol v2 JSON body (no Inference-Header-Content-Length;
//      image, pixel_values or text input)
//   1  OIP with the binary-data extension: two more bytes, little-endian, are
//      the header length; the body follows
//   2  a raw image for the HuggingFace routes
//   3  the HuggingFace JSON form (zero-shot calls with candidate_labels too)
//   4  base64 text, decoded and then encoded and decoded again
// Bad input must come out as vit::error and nothing else: any other
// exception escaping, a crash, a leak or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include <vit/error.hpp>

#include "protocol.hpp"

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void check_images(const serve::decoded_request& r) {
    for (const vit::image& img : r.images)
        check(img.width > 0 && img.height > 0 &&
              img.rgb.size() == std::size_t(img.width) * std::size_t(img.height) * 3);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned mode = data[0] % 5;
    std::size_t skip = 1;
    std::size_t header_len = std::string::npos;
    if (mode == 1) {
        if (size < 3) return 0;
        header_len = std::size_t(data[1]) | std::size_t(data[2]) << 8;
        skip = 3;
    }
    const std::string body(reinterpret_cast<const char*>(data) + skip, size - skip);
    try {
        switch (mode) {
        case 0:
        case 1: {
            const serve::decoded_request r = serve::decode_infer(body, header_len);
            check(r.n > 0);
            if (r.c) {
                check(r.images.empty() && r.c == 3 && r.h > 0 && r.w > 0);
                check(r.pixels.size() == std::size_t(r.n) * 3 * std::size_t(r.h) * std::size_t(r.w));
            } else if (r.want_text_embeds) {
                check(r.images.empty() && r.pixels.empty() && r.texts.size() == std::size_t(r.n));
                check(r.texts.size() <= serve::max_texts);
                for (const auto& t : r.texts) check(t.size() <= serve::max_text_bytes && labels::invalid_utf8_at(t) == std::string::npos);
            } else {
                check(r.pixels.empty() && r.images.size() == std::size_t(r.n));
            }
            check(r.classification >= 0);
            check_images(r);
            break;
        }
        case 2:
        case 3: {
            const serve::decoded_request r = serve::decode_hf(body, mode == 3);
            check(r.n == 1 && r.images.size() == 1 && r.pixels.empty() && r.top_k >= 1);
            check(r.candidate_labels.size() <= serve::max_texts);
            for (const auto& t : r.candidate_labels)
                check(!t.empty() && t.size() <= serve::max_text_bytes && labels::invalid_utf8_at(t) == std::string::npos);
            check_images(r);
            break;
        }
        default: {
            const std::string bytes = serve::b64decode(body);
            const std::string text = serve::b64encode(bytes);
            check(text.size() % 4 == 0 && text.size() / 4 * 3 >= bytes.size());
            check(serve::b64decode(text) == bytes);
            break;
        }
        }
    } catch (const vit::error&) {
    }
    return 0;
}
