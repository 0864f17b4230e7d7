// SigLIP's tokenizer: transformers' SiglipTokenizer over the SentencePiece
// Unigram model in spiece.model (nmt_nfkc normalisation inside the model).
//   "▁" + text -> lower case outside special tokens -> split at added tokens
//   -> per chunk: ASCII punctuation removed, whitespace collapsed, stripped,
//   encoded as "<unk>" + chunk with add_dummy_prefix off, "<unk>"'s pieces
//   dropped -> a lone leading "▁" before a special token dropped.
// The library runs the model (it is the reference implementation).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../error.hpp"
#include "files.hpp"
#include "unicode.hpp"
#include "utf8.hpp"

#ifdef VIT_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace vit::detail::text {

#ifdef VIT_HAVE_SENTENCEPIECE
constexpr bool has_sentencepiece = true;
#else
constexpr bool has_sentencepiece = false;
#endif

class siglip_tokenizer {
public:
    explicit siglip_tokenizer(const std::string& folder) {
        if (!has_sentencepiece)
            throw error(folder + ": the SigLIP tokenizer needs sentencepiece: build with libsentencepiece-dev and "
                                 "link vit::text");
        if (!has_unicode_tables)
            throw error(folder + ": the SigLIP tokenizer needs utf8proc (Unicode tables): build with "
                                 "libutf8proc-dev and link vit::text");
        const std::string model_file = join_path(folder, "spiece.model");
        if (!is_regular_file(model_file)) throw error(folder + ": no SigLIP tokenizer: spiece.model is missing");
        const std::string config_file = join_path(folder, "tokenizer_config.json");
        const nlohmann::json config = read_json_if_present(config_file);
        load_model(model_file);

        const auto content = [&](const char* key, const char* fallback) {
            const std::string c = token_content(config, key, config_file);
            return c.empty() ? std::string(fallback) : c;
        };
        const std::string eos = content("eos_token", "</s>"), unk = content("unk_token", "<unk>"),
                          pad = content("pad_token", "</s>");
        added_ = added_tokens_of_config(config, config_file);
        // SiglipTokenizer makes eos, unk and pad AddedTokens that strip both neighbours.
        for (const std::string& s : {eos, unk, pad}) {
            const std::u32string c = decode_utf8(s, config_file);
            if (!find_added(c)) added_.push_back({c, piece_id(s), false, true, true});
            special_.push_back(c);
        }
        if (config.is_object() && config.contains("additional_special_tokens") &&
            config.at("additional_special_tokens").is_array())
            for (const nlohmann::json& t : config.at("additional_special_tokens")) {
                const std::string s = t.is_string() ? t.get<std::string>() : string_field(t, "content");
                if (s.empty()) continue;
                const std::u32string c = decode_utf8(s, config_file);
                if (!find_added(c)) added_.push_back({c, piece_id(s), false, false, false});
                special_.push_back(c);
            }
        eos_ = find_added(decode_utf8(eos, config_file))->id;
        pad_ = find_added(decode_utf8(pad, config_file))->id;
        unk_ = decode_utf8(unk, config_file);
        do_lower_case_ = bool_field(config, "do_lower_case", true);
        max_length_ = model_max_length(config, 64);
        unk_pieces_ = encode(unk).size();
    }

    std::int64_t eos_id() const { return eos_; }
    std::int64_t pad_id() const { return pad_; }
    int max_length() const { return max_length_; }

    // The ids of `text` without the final </s>.
    std::vector<std::int64_t> content_ids(const std::string& text, const std::string& what) const {
        const std::u32string raw = decode_utf8(text, what);
        std::u32string s = U"\u2581";
        for (const char32_t c : raw) s.push_back(c == 0x2581 ? U' ' : c);
        if (do_lower_case_) s = lower_outside_specials(s);

        std::vector<segment> parts = split_on_added(s, added_, [](const added_token&) { return true; });
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (!parts[i].token) continue;
            if (parts[i].token->rstrip && i + 1 < parts.size() && !parts[i + 1].token) lstrip(parts[i + 1].text);
            if (parts[i].token->lstrip && i > 0 && !parts[i - 1].token) rstrip(parts[i - 1].text);
        }
        struct piece {
            std::string text;
            const added_token* token;
        };
        std::vector<piece> pieces;
        for (const segment& p : parts) {
            if (p.token) {
                pieces.push_back({{}, p.token});
            } else if (!p.text.empty()) {
                std::vector<std::string> got = encode(encode_utf8(unk_ + canonicalize(p.text)));
                for (std::size_t k = got.size() >= unk_pieces_ ? unk_pieces_ : 0; k < got.size(); ++k)
                    pieces.push_back({std::move(got[k]), nullptr});
            }
        }
        if (pieces.size() > 1 && !pieces[0].token && pieces[0].text == "\xe2\x96\x81" && pieces[1].token &&
            is_special(pieces[1].token->content))
            pieces.erase(pieces.begin());
        std::vector<std::int64_t> ids;
        ids.reserve(pieces.size());
        for (const piece& p : pieces) ids.push_back(p.token ? p.token->id : piece_id(p.text));
        return ids;
    }

private:
#ifdef VIT_HAVE_SENTENCEPIECE
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
#endif
    std::vector<added_token> added_;
    std::vector<std::u32string> special_;
    std::u32string unk_;
    std::size_t unk_pieces_ = 0;
    std::int64_t eos_ = 1, pad_ = 1;
    bool do_lower_case_ = true;
    int max_length_ = 64;

    const added_token* find_added(const std::u32string& c) const {
        for (const added_token& t : added_)
            if (t.content == c) return &t;
        return nullptr;
    }

    bool is_special(const std::u32string& c) const {
        for (const std::u32string& s : special_)
            if (s == c) return true;
        return false;
    }

#ifdef VIT_HAVE_SENTENCEPIECE
    void load_model(const std::string& file) {
        const mapped_file f(file);
        std::string proto(reinterpret_cast<const char*>(f.data()), f.size());
        // As SiglipTokenizer.get_spm_processor: normalizer_spec (field 3) merged
        // with {add_dummy_prefix (field 3): false}; protobuf merges a repeated
        // message field into the first, so appending it is that MergeFrom.
        proto.append("\x1a\x02\x18\x00", 4);
        sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
        const auto status = sp_->LoadFromSerializedProto(proto);
        if (!status.ok()) throw error(file + ": not a SentencePiece model: " + status.ToString());
    }

    std::vector<std::string> encode(const std::string& s) const {
        std::vector<std::string> pieces;
        const auto status = sp_->Encode(s, &pieces);
        if (!status.ok()) throw error("SigLIP tokenizer: SentencePiece failed: " + status.ToString());
        return pieces;
    }

    std::int64_t piece_id(const std::string& piece) const { return sp_->PieceToId(piece); }
#else
    void load_model(const std::string&) {}
    std::vector<std::string> encode(const std::string&) const { return {}; }
    std::int64_t piece_id(const std::string&) const { return 0; }
#endif

    // Python's str.lower on each character outside the special tokens.
    std::u32string lower_outside_specials(const std::u32string& s) const {
        std::u32string out;
        out.reserve(s.size());
        for (std::size_t i = 0; i < s.size();) {
            const std::u32string* hit = nullptr;
            for (const std::u32string& t : special_)
                if (!t.empty() && s.compare(i, t.size(), t) == 0) {
                    hit = &t;
                    break;
                }
            if (hit) {
                out += *hit;
                i += hit->size();
            } else {
                append_lower(out, s[i++]);
            }
        }
        return out;
    }

    static void lstrip(std::u32string& s) {
        std::size_t i = 0;
        while (i < s.size() && is_python_space(s[i])) ++i;
        s.erase(0, i);
    }

    static void rstrip(std::u32string& s) {
        while (!s.empty() && is_python_space(s.back())) s.pop_back();
    }

    // big_vision's canonicalize_text: string.punctuation removed, whitespace
    // runs to one space, stripped.
    static std::u32string canonicalize(const std::u32string& s) {
        std::u32string out;
        out.reserve(s.size());
        for (const char32_t c : s) {
            if (c < 0x80 && c > 0x20 && c != 0x7f && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
                !(c >= '0' && c <= '9'))
                continue;  // ASCII punctuation: the printable non-alphanumerics
            if (is_python_space(c)) {
                if (out.empty() || out.back() != U' ') out.push_back(U' ');
            } else {
                out.push_back(c);
            }
        }
        lstrip(out);
        rstrip(out);
        return out;
    }
};

}  // namespace vit::detail::text
