// vit::tokenizer: the text side of CLIP and SigLIP checkpoints, tokenized as
// transformers tokenizes them (CLIPTokenizerFast, SiglipTokenizer).
//
//   const vit::tokenizer tok("clip-vit-base-patch32");   // a checkpoint folder
//   vit::token_batch b = tok.encode({"a photo of a cat", "a dog"});
//   // b.input_ids[i], b.attention_mask[i]: padded as the pipelines pad
//
// A tokenizer is immutable once loaded: encode() is const and may run on
// several threads at once; copies share the loaded vocabulary.
// Needs the vit::text CMake target (utf8proc, and sentencepiece for SigLIP);
// without a library the tokenizer that needs it throws a vit::error naming it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detail/text/clip.hpp"
#include "detail/text/files.hpp"
#include "detail/text/siglip.hpp"
#include "error.hpp"

namespace vit {

enum class text_padding {
    none,        // each row as long as its text
    longest,     // to the longest row of the batch (padding=True)
    max_length,  // to max_length (padding="max_length")
};

struct text_options {
    text_padding padding = text_padding::longest;
    bool truncation = true;  // cut to max_length, keeping the special tokens
    int max_length = 0;      // 0: tokenizer_config.json's model_max_length (CLIP 77, SigLIP 64)
};

// Token ids and attention masks, one row per text (int64, as the models take them).
struct token_batch {
    std::vector<std::vector<std::int64_t>> input_ids;
    std::vector<std::vector<std::int64_t>> attention_mask;
};

class tokenizer {
public:
    enum class kind { clip, siglip };

    // Reads the tokenizer files of a checkpoint folder: CLIP's tokenizer.json
    // (or vocab.json + merges.txt), SigLIP's spiece.model; the kind comes from
    // tokenizer_config.json, config.json or, failing both, the files present.
    explicit tokenizer(const std::string& folder) : kind_(detect(folder)) {
        if (kind_ == kind::clip)
            clip_ = std::make_shared<const detail::text::clip_tokenizer>(folder);
        else
            siglip_ = std::make_shared<const detail::text::siglip_tokenizer>(folder);
    }

    kind type() const { return kind_; }
    int model_max_length() const { return clip_ ? clip_->max_length() : siglip_->max_length(); }
    std::int64_t pad_id() const { return clip_ ? clip_->pad_id() : siglip_->pad_id(); }

    // The options the zero-shot pipeline and the fixtures use for a batch of
    // texts: CLIP pads to the longest text and truncates to 77; SigLIP pads
    // and truncates to 64, the length it was trained at.
    text_options default_options() const {
        text_options o;
        o.padding = kind_ == kind::clip ? text_padding::longest : text_padding::max_length;
        o.max_length = model_max_length();
        return o;
    }

    // One text's ids with the special tokens, untruncated and unpadded.
    // Throws vit::error on invalid UTF-8.
    std::vector<std::int64_t> ids(const std::string& text) const {
        return with_specials(content_ids(text, "text"), std::size_t(-1));
    }

    token_batch encode(const std::vector<std::string>& texts) const { return encode(texts, default_options()); }

    // Longer texts are truncated as transformers truncates (the content is
    // cut, the special tokens kept) when options.truncation is set.
    token_batch encode(const std::vector<std::string>& texts, const text_options& options) const {
        const std::size_t specials = kind_ == kind::clip ? 2 : 1;
        const int max_length = options.max_length > 0 ? options.max_length : model_max_length();
        if ((options.truncation || options.padding == text_padding::max_length) && std::size_t(max_length) < specials)
            throw error("tokenizer: max_length " + std::to_string(max_length) + " leaves no room for the " +
                        std::to_string(specials) + " special token(s)");
        token_batch b;
        b.input_ids.reserve(texts.size());
        for (std::size_t i = 0; i < texts.size(); ++i)
            b.input_ids.push_back(with_specials(content_ids(texts[i], "text " + std::to_string(i)),
                                                options.truncation ? std::size_t(max_length) - specials
                                                                   : std::size_t(-1)));
        std::size_t width = 0;
        if (options.padding == text_padding::longest)
            for (const auto& r : b.input_ids) width = std::max(width, r.size());
        else if (options.padding == text_padding::max_length)
            width = std::size_t(max_length);
        const std::int64_t pad = pad_id();
        b.attention_mask.reserve(texts.size());
        for (auto& r : b.input_ids) {
            std::vector<std::int64_t> mask(r.size(), 1);
            if (r.size() < width) {
                mask.resize(width, 0);
                r.resize(width, pad);
            }
            b.attention_mask.push_back(std::move(mask));
        }
        return b;
    }

private:
    kind kind_;
    std::shared_ptr<const detail::text::clip_tokenizer> clip_;
    std::shared_ptr<const detail::text::siglip_tokenizer> siglip_;

    std::vector<std::int64_t> content_ids(const std::string& text, const std::string& what) const {
        return clip_ ? clip_->content_ids(text, what) : siglip_->content_ids(text, what);
    }

    // CLIP: <|startoftext|> ids <|endoftext|>; SigLIP: ids </s> (unless the
    // ids already end with </s>). `room` caps the content first.
    std::vector<std::int64_t> with_specials(std::vector<std::int64_t> ids, std::size_t room) const {
        if (ids.size() > room) ids.resize(room);
        if (clip_) {
            ids.insert(ids.begin(), clip_->bos_id());
            ids.push_back(clip_->eos_id());
        } else if (ids.empty() || ids.back() != siglip_->eos_id()) {
            ids.push_back(siglip_->eos_id());
        }
        return ids;
    }

    static kind detect(const std::string& folder) {
        using namespace detail::text;
        if (!is_directory(folder)) throw error(folder + ": not a checkpoint folder (no such directory)");
        const std::string cls = string_field(read_json_if_present(join_path(folder, "tokenizer_config.json")),
                                             "tokenizer_class");
        if (cls.rfind("CLIPTokenizer", 0) == 0) return kind::clip;
        if (cls.rfind("SiglipTokenizer", 0) == 0) return kind::siglip;
        if (!cls.empty())
            throw error(folder + ": tokenizer_config.json: tokenizer_class '" + detail::escape_for_message(cls) +
                        "' is not supported (CLIPTokenizer and SiglipTokenizer are)");
        const std::string type = string_field(read_json_if_present(join_path(folder, "config.json")), "model_type");
        if (type == "clip" || type == "clip_text_model") return kind::clip;
        if (type == "siglip" || type == "siglip_text_model") return kind::siglip;
        if (is_regular_file(join_path(folder, "spiece.model"))) return kind::siglip;
        if (is_regular_file(join_path(folder, "tokenizer.json")) || is_regular_file(join_path(folder, "vocab.json")))
            return kind::clip;
        throw error(folder + ": no tokenizer files: expected tokenizer.json or vocab.json + merges.txt (CLIP), "
                             "or spiece.model (SigLIP)");
    }
};

}  // namespace vit
