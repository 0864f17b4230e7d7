// Open Inference Protocol v2 request decoding and response encoding, kept
// apart from the HTTP layer so the fuzz target can drive it without sockets.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <vit/detail/json.hpp>
#include <vit/error.hpp>
#include <vit/image.hpp>

#include "common/labels.hpp"

namespace serve {

// Limits on text in a request (README, vit-serve): texts in an OIP `text`
// input, labels in a zero-shot call, and bytes in each (a text past the
// model's context is truncated as transformers truncates; these only bound
// the work a request can ask for).
constexpr std::size_t max_texts = 256;
constexpr std::size_t max_text_bytes = 4096;

// One decoded input batch: either images (decoded, not yet preprocessed) or
// ready pixel values [n, 3, h, w].
struct decoded_request {
    std::string id;
    std::vector<vit::image> images;
    std::vector<float> pixels;
    int n = 0, c = 0, h = 0, w = 0;
    bool want_logits = true, want_embeddings = true;
    int classification = 0;     // K for the classification extension, 0 = off
    bool classify_logits = false;  // which output the K applies to
    bool binary_out = false;
    int top_k = 5;              // HF route
    bool top_k_given = false;
    std::vector<std::string> texts;  // OIP input "text"
    bool want_text_embeds = false;
    // HF zero-shot call: the labels (checked) and the template.
    std::vector<std::string> candidate_labels;
    std::string hypothesis_template = "This is a photo of {}.";
    bool zero_shot() const { return !candidate_labels.empty(); }
};

// A text of a request: a string, at most max_text_bytes, valid UTF-8.
inline void check_text(const std::string& t, const std::string& what) {
    if (t.size() > max_text_bytes)
        throw vit::error(what + " is " + std::to_string(t.size()) + " bytes, over the limit of " + std::to_string(max_text_bytes));
    labels::check_utf8(t, what);
}

// candidate_labels as HF clients send them: a JSON array of strings, or one
// comma-separated string (huggingface_hub before 0.22; split as transformers
// splits it). Throws naming the problem.
inline std::vector<std::string> parse_candidate_labels(const nlohmann::json& v) {
    std::vector<std::string> out;
    if (v.is_string()) {
        out = labels::split_commas(v.get<std::string>());
    } else if (v.is_array()) {
        if (v.size() > max_texts)
            throw vit::error("candidate_labels has " + std::to_string(v.size()) + " labels, over the limit of " + std::to_string(max_texts));
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_string()) throw vit::error("candidate_labels[" + std::to_string(i) + "] is not a string");
            out.push_back(v[i].get<std::string>());
        }
    } else {
        throw vit::error("candidate_labels must be an array of strings or a comma-separated string");
    }
    if (out.empty()) throw vit::error("candidate_labels is empty: zero-shot classification needs at least one label");
    if (out.size() > max_texts)
        throw vit::error("candidate_labels has " + std::to_string(out.size()) + " labels, over the limit of " + std::to_string(max_texts));
    std::vector<std::string> names;
    for (std::size_t i = 0; i < out.size(); ++i) {
        names.push_back("candidate_labels[" + std::to_string(i) + "]");
        check_text(out[i], names.back());
    }
    labels::check_labels(out, names);
    return out;
}

inline std::string b64decode(const std::string& s) {
    static const auto table = [] {
        std::array<int, 256> t{};
        t.fill(-1);
        const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = i;
        return t;
    }();
    std::string out;
    out.reserve(s.size() / 4 * 3);
    int val = 0, bits = 0;
    std::size_t pad = 0;
    for (char ch : s) {
        if (ch == '=') { ++pad; continue; }
        if (ch == '\n' || ch == '\r') continue;
        if (pad) throw vit::error("bad base64: data after padding");
        const int d = table[static_cast<unsigned char>(ch)];
        if (d < 0) throw vit::error("bad base64: unexpected character");
        // Only the low bits + 6 bits are still to be written out: masking
        // keeps the int from overflowing (undefined) on long input.
        val = ((val << 6) | d) & 0xFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(char((val >> bits) & 0xFF));
        }
    }
    if (pad > 2 || bits >= 6) throw vit::error("bad base64: truncated");
    return out;
}

inline std::string b64encode(const std::string& in) {
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int val = 0, bits = -6;
    for (unsigned char c : in) {
        val = ((val << 8) + c) & 0xFFFF;  // as in b64decode: no int overflow
        bits += 8;
        while (bits >= 0) { out.push_back(a[(val >> bits) & 0x3F]); bits -= 6; }
    }
    if (bits > -6) out.push_back(a[((val << 8) >> (bits + 8)) & 0x3F]);
    while (out.size() % 4) out.push_back('=');
    return out;
}

// A JSON integer in [lo, hi] (|lo|, |hi| <= 2^53), or a float within it
// (truncated): vit::detail::json_int, naming the request's field.
inline std::int64_t get_int(const nlohmann::json& v, const char* what, std::int64_t lo, std::int64_t hi) {
    return vit::detail::json_int(v, "request", what, lo, hi, true);
}

inline vit::image decode_one(const std::string& bytes, const std::string& name) {
    if (bytes.empty()) throw vit::error(name + ": empty image");
    return vit::decode_image(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), name);
}

// The n elements of a binary BYTES tensor: each a 4-byte little-endian
// length, then that many bytes, filling the data exactly.
inline std::vector<std::string> split_binary_bytes(const std::string& raw, std::size_t n) {
    std::vector<std::string> out;
    std::size_t p = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (raw.size() - p < 4) throw vit::error("binary BYTES element truncated");
        std::uint32_t len = 0;
        for (int b = 3; b >= 0; --b) len = (len << 8) | static_cast<unsigned char>(raw[p + std::size_t(b)]);
        p += 4;
        if (len > raw.size() - p) throw vit::error("binary BYTES element truncated");
        out.push_back(raw.substr(p, len));
        p += len;
    }
    if (p != raw.size()) throw vit::error("binary data longer than its elements");
    return out;
}

// POST /v2/models/NAME/infer. `body` is the whole body; `header_len` the
// Inference-Header-Content-Length (npos when absent: all JSON).
inline decoded_request decode_infer(const std::string& body, std::size_t header_len) {
    const bool binary = header_len != std::string::npos;
    if (binary && header_len > body.size()) throw vit::error("Inference-Header-Content-Length exceeds the body");
    const std::size_t jlen = binary ? header_len : body.size();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(body.begin(), body.begin() + std::ptrdiff_t(jlen));
    } catch (const nlohmann::json::exception& e) {
        throw vit::error(std::string("malformed JSON: ") + e.what());
    }
    decoded_request r;
    try {
        if (!j.is_object()) throw vit::error("the request must be a JSON object");
        if (j.contains("id")) r.id = j.at("id").get<std::string>();
        const auto& inputs = j.at("inputs");
        if (!inputs.is_array() || inputs.size() != 1) throw vit::error("exactly one input, image, pixel_values or text");
        std::size_t offset = jlen;
        const auto& in = inputs.at(0);
        const std::string name = in.at("name").get<std::string>();
        const std::string dtype = in.at("datatype").get<std::string>();
        if (!in.at("shape").is_array()) throw vit::error("bad shape");
        std::vector<std::int64_t> shape;
        for (const auto& d : in.at("shape")) shape.push_back(get_int(d, "shape dimensions", 1, 1 << 20));
        std::string raw;
        bool has_raw = false;
        if (in.contains("parameters") && in.at("parameters").contains("binary_data_size")) {
            if (!binary) throw vit::error("binary_data_size without Inference-Header-Content-Length");
            const auto size = std::uint64_t(get_int(in.at("parameters").at("binary_data_size"), "binary_data_size", 0, std::int64_t(1) << 53));
            if (size > body.size() - offset) throw vit::error("binary_data_size exceeds the body");
            raw = body.substr(offset, std::size_t(size));
            offset += std::size_t(size);
            has_raw = true;
        }
        if (name == "image") {
            if (dtype != "BYTES" || shape.size() != 1) throw vit::error("image is BYTES [N]");
            const std::size_t n = std::size_t(shape[0]);
            if (n > 1024) throw vit::error("too many images in one request");
            if (has_raw) {
                const std::vector<std::string> elements = split_binary_bytes(raw, n);
                for (std::size_t i = 0; i < n; ++i)
                    r.images.push_back(decode_one(elements[i], "image " + std::to_string(i)));
            } else {
                const auto& data = in.at("data");
                if (!data.is_array() || data.size() != n) throw vit::error("image data does not match its shape");
                for (std::size_t i = 0; i < n; ++i)
                    r.images.push_back(decode_one(b64decode(data.at(i).get<std::string>()), "image " + std::to_string(i)));
            }
            r.n = int(n);
        } else if (name == "pixel_values") {
            if (dtype != "FP32" || shape.size() != 4 || shape[1] != 3) throw vit::error("pixel_values is FP32 [N, 3, H, W]");
            if (shape[0] > 1024 || shape[2] > 4096 || shape[3] > 4096) throw vit::error("pixel_values too large");
            const std::size_t count = std::size_t(shape[0] * shape[1] * shape[2] * shape[3]);
            // The caps above still allow 200 GB: the shape is held against the
            // data actually sent (4 bytes a value, or at least 1 of JSON)
            // before anything is allocated.
            if (has_raw && raw.size() != count * 4) throw vit::error("binary pixel_values size does not match its shape");
            if (!has_raw && count > jlen) throw vit::error("pixel_values shape is larger than the data sent");
            r.pixels.resize(count);
            if (has_raw) {
                std::memcpy(r.pixels.data(), raw.data(), raw.size());
            } else {
                const auto& data = in.at("data");
                if (!data.is_array()) throw vit::error("pixel_values data must be an array");
                std::size_t k = 0;
                // Accept the flat and the nested form, as KServe does; no
                // deeper than the shape, or "[[[[...": a recursion per level.
                std::function<void(const nlohmann::json&, std::size_t)> walk = [&](const nlohmann::json& v, std::size_t depth) {
                    if (v.is_array()) {
                        if (depth == shape.size()) throw vit::error("pixel_values data nested deeper than its shape");
                        for (const auto& e : v) walk(e, depth + 1);
                    } else {
                        if (k >= count) throw vit::error("pixel_values data longer than its shape");
                        r.pixels[k++] = v.get<float>();
                    }
                };
                walk(data, 0);
                if (k != count) throw vit::error("pixel_values data shorter than its shape");
            }
            r.n = int(shape[0]);
            r.c = 3;
            r.h = int(shape[2]);
            r.w = int(shape[3]);
        } else if (name == "text") {
            if (dtype != "BYTES" || shape.size() != 1) throw vit::error("text is BYTES [N]");
            const std::size_t n = std::size_t(shape[0]);
            if (n > max_texts) throw vit::error("text: " + std::to_string(n) + " texts, over the limit of " + std::to_string(max_texts));
            auto take = [&](std::string t, std::size_t i) {
                check_text(t, "text " + std::to_string(i));
                r.texts.push_back(std::move(t));
            };
            if (has_raw) {
                std::vector<std::string> elements = split_binary_bytes(raw, n);
                for (std::size_t i = 0; i < n; ++i) take(std::move(elements[i]), i);
            } else {
                const auto& data = in.at("data");
                if (!data.is_array() || data.size() != n) throw vit::error("text data does not match its shape");
                for (std::size_t i = 0; i < n; ++i) {
                    if (!data.at(i).is_string()) throw vit::error("text " + std::to_string(i) + " is not a string");
                    take(data.at(i).get<std::string>(), i);
                }
            }
            r.n = int(n);
            r.want_logits = r.want_embeddings = false;
            r.want_text_embeds = true;
        } else {
            throw vit::error("unknown input '" + name + "' (image, pixel_values or text)");
        }
        if (j.contains("parameters") && j.at("parameters").contains("binary_data_output"))
            r.binary_out = j.at("parameters").at("binary_data_output").get<bool>();
        if (j.contains("outputs")) {
            r.want_logits = r.want_embeddings = r.want_text_embeds = false;
            const bool text = name == "text";
            for (const auto& o : j.at("outputs")) {
                const std::string on = o.at("name").get<std::string>();
                bool* want = on == "logits" ? &r.want_logits
                             : on == "embeddings" ? &r.want_embeddings
                             : on == "text_embeds" ? &r.want_text_embeds
                                                   : nullptr;
                if (!want) throw vit::error("unknown output '" + on + "' (logits, embeddings or text_embeds)");
                if (text != (on == "text_embeds"))
                    throw vit::error(text ? "the text input gives the output text_embeds only, not '" + on + "'"
                                          : std::string("text_embeds is the output of the text input"));
                *want = true;
                if (o.contains("parameters")) {
                    const auto& p = o.at("parameters");
                    if (p.contains("classification")) {
                        r.classification = int(get_int(p.at("classification"), "classification", 1, INT32_MAX));
                        r.classify_logits = on == "logits";
                    }
                    if (p.contains("binary_data")) r.binary_out = p.at("binary_data").get<bool>() || r.binary_out;
                }
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw vit::error(std::string("malformed request: ") + e.what());
    }
    return r;
}

// POST / and /predict: a raw image, or {"inputs": "<base64>", "parameters":
// {"top_k": K}}. With candidate_labels, the zero-shot call in the forms HF
// clients send it:
//   {"inputs": "<base64>", "parameters": {"candidate_labels": [...], "hypothesis_template": T}}
//   {"inputs": {"image": "<base64>"}, "parameters": {"candidate_labels": [...]}}
//   {"image": "<base64>", "parameters": {"candidate_labels": "a,b,c"}}  (huggingface_hub < 0.22)
// candidate_labels may also sit in the "inputs" object, as the task's spec
// once had it.
inline decoded_request decode_hf(const std::string& body, bool is_json) {
    decoded_request r;
    r.want_embeddings = false;
    if (!is_json) {
        r.images.push_back(decode_one(body, "body"));
        r.n = 1;
        return r;
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
        throw vit::error(std::string("malformed JSON: ") + e.what());
    }
    try {
        if (!j.is_object()) throw vit::error("the request must be a JSON object");
        static const nlohmann::json no_params = nlohmann::json::object();
        const nlohmann::json& params = j.contains("parameters") ? j.at("parameters") : no_params;
        if (!params.is_object()) throw vit::error("parameters must be a JSON object");
        const nlohmann::json* labels = params.contains("candidate_labels") ? &params.at("candidate_labels") : nullptr;
        std::string image;
        if (j.contains("inputs") && j.at("inputs").is_object()) {
            const auto& in = j.at("inputs");
            if (!in.contains("image")) throw vit::error("inputs is an object without \"image\"");
            image = in.at("image").get<std::string>();
            if (!labels && in.contains("candidate_labels")) labels = &in.at("candidate_labels");
            if (!labels) throw vit::error("no candidate_labels: an {\"inputs\": {\"image\"}} request is a zero-shot call");
        } else if (j.contains("inputs")) {
            image = j.at("inputs").get<std::string>();
        } else if (j.contains("image")) {
            image = j.at("image").get<std::string>();
        } else {
            throw vit::error("no inputs: send {\"inputs\": \"<base64 image>\"}");
        }
        if (labels) r.candidate_labels = parse_candidate_labels(*labels);
        if (params.contains("hypothesis_template") && !params.at("hypothesis_template").is_null()) {
            if (!labels) throw vit::error("hypothesis_template goes with candidate_labels");
            if (!params.at("hypothesis_template").is_string()) throw vit::error("hypothesis_template must be a string");
            r.hypothesis_template = params.at("hypothesis_template").get<std::string>();
            check_text(r.hypothesis_template, "hypothesis_template");
            labels::check_template(r.hypothesis_template, "hypothesis_template");
        }
        if (params.contains("top_k") && !params.at("top_k").is_null()) {
            r.top_k = int(get_int(params.at("top_k"), "top_k", 1, INT32_MAX));
            r.top_k_given = true;
        }
        r.images.push_back(decode_one(b64decode(image), "inputs"));
    } catch (const nlohmann::json::exception& e) {
        throw vit::error(std::string("malformed request: ") + e.what());
    }
    r.n = 1;
    return r;
}

}  // namespace serve
