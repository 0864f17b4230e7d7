// CLIP's tokenizer: byte-level BPE as CLIPTokenizerFast (the `tokenizers`
// crate) runs it from tokenizer.json, or from vocab.json + merges.txt.
//   added tokens split out -> NFC, whitespace runs to " ", lower case ->
//   pieces ('s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+) ->
//   bytes as bytes_to_unicode symbols, "</w>" on the last -> merges by rank.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../error.hpp"
#include "files.hpp"
#include "unicode.hpp"
#include "utf8.hpp"

namespace vit::detail::text {

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others
// for U+0100 upwards in byte order.
inline char32_t byte_symbol(unsigned b) {
    const auto printable = [](unsigned c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174; };
    if (printable(b)) return char32_t(b);
    unsigned n = 0;
    for (unsigned c = 0; c < b; ++c)
        if (!printable(c)) ++n;
    return char32_t(256 + n);
}

class clip_tokenizer {
public:
    explicit clip_tokenizer(const std::string& folder) {
        if (!has_unicode_tables)
            throw error(folder + ": the CLIP tokenizer needs utf8proc (Unicode tables): build with libutf8proc-dev "
                                 "and link vit::text");
        const std::string config_file = join_path(folder, "tokenizer_config.json");
        const nlohmann::json config = read_json_if_present(config_file);
        const std::string json_file = join_path(folder, "tokenizer.json");
        if (is_regular_file(json_file)) {
            load_tokenizer_json(json_file);
        } else {
            const std::string vocab_file = join_path(folder, "vocab.json"), merges_file = join_path(folder, "merges.txt");
            const bool v = is_regular_file(vocab_file), m = is_regular_file(merges_file);
            if (!v || !m)
                throw error(folder + ": no CLIP tokenizer: tokenizer.json is missing, and so is " +
                            (v ? "merges.txt" : m ? "vocab.json" : "vocab.json + merges.txt"));
            load_vocab_merges(vocab_file, merges_file, config, config_file);
        }
        const std::string bos = token_content(config, "bos_token", config_file);
        const std::string eos = token_content(config, "eos_token", config_file);
        const std::string pad = token_content(config, "pad_token", config_file);
        if (bos_ < 0) bos_ = id_of(bos.empty() ? "<|startoftext|>" : bos, config_file);
        if (eos_ < 0) eos_ = id_of(eos.empty() ? "<|endoftext|>" : eos, config_file);
        pad_ = pad.empty() ? eos_ : id_of(pad, config_file);
        max_length_ = model_max_length(config, 77);
        for (unsigned b = 0; b < 256; ++b) {
            std::string s;
            append_utf8(s, byte_symbol(b));
            byte_id_[b] = find(s);
            byte_end_id_[b] = find(s + suffix_);
        }
    }

    std::int64_t bos_id() const { return bos_; }
    std::int64_t eos_id() const { return eos_; }
    std::int64_t pad_id() const { return pad_; }
    int max_length() const { return max_length_; }

    // The ids of `text` without <|startoftext|> / <|endoftext|> around it.
    std::vector<std::int64_t> content_ids(const std::string& text, const std::string& what) const {
        std::vector<std::int64_t> ids;
        const std::u32string s = decode_utf8(text, what);
        for (const segment& raw : split_on_added(s, added_, [](const added_token& t) { return !t.normalized; })) {
            if (raw.token) {
                ids.push_back(raw.token->id);
                continue;
            }
            const std::u32string norm = normalize(raw.text);
            for (const segment& seg : split_on_added(norm, added_, [](const added_token& t) { return t.normalized; })) {
                if (seg.token)
                    ids.push_back(seg.token->id);
                else
                    pieces(seg.text, ids);
            }
        }
        return ids;
    }

private:
    std::unordered_map<std::string, std::int32_t> vocab_;
    // (left id << 32 | right id) -> (rank, merged id)
    std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;
    std::vector<added_token> added_;
    std::string suffix_ = "</w>";
    std::int32_t unk_ = -1;
    std::int32_t byte_id_[256] = {}, byte_end_id_[256] = {};
    std::int64_t bos_ = -1, eos_ = -1, pad_ = -1;
    int max_length_ = 77;

    std::int32_t find(const std::string& token) const {
        const auto it = vocab_.find(token);
        return it == vocab_.end() ? -1 : it->second;
    }

    std::int64_t id_of(const std::string& token, const std::string& file) const {
        for (const added_token& t : added_)
            if (encode_utf8(t.content) == token) return t.id;
        const std::int32_t id = find(token);
        if (id < 0) throw error(file + ": special token '" + escape_for_message(token) + "' is not in the vocabulary");
        return id;
    }

    void add_merge(const std::string& left, const std::string& right, std::int32_t rank, const std::string& file) {
        const std::int32_t a = find(left), b = find(right), ab = find(left + right);
        if (a < 0 || b < 0 || ab < 0)
            throw error(file + ": merge " + std::to_string(rank) + " ('" + escape_for_message(left) + "' '" +
                        escape_for_message(right) + "') names a token missing from the vocabulary");
        // A repeated pair keeps its last rank, as the crate's and Python's maps do.
        merges_[std::uint64_t(std::uint32_t(a)) << 32 | std::uint32_t(b)] = {rank, ab};
    }

    void read_vocab(const nlohmann::json& v, const std::string& file) {
        if (!v.is_object()) throw error(file + ": the vocabulary is not a JSON object of token -> id");
        vocab_.reserve(v.size());
        for (const auto& [token, id] : v.items()) {
            if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > 0x7fffffff)
                throw error(file + ": token '" + escape_for_message(token) + "' has no valid id");
            vocab_.emplace(token, id.get<std::int32_t>());
        }
    }

    void load_tokenizer_json(const std::string& file) {
        const nlohmann::json j = read_json(file);
        try {
            const nlohmann::json& model = j.at("model");
            const std::string type = model.value("type", std::string("BPE"));
            if (type != "BPE") throw error(file + ": model type '" + escape_for_message(type) + "', CLIP's is BPE");
            if (model.contains("end_of_word_suffix") && model.at("end_of_word_suffix").is_string())
                suffix_ = model.at("end_of_word_suffix").get<std::string>();
            read_vocab(model.at("vocab"), file);
            const nlohmann::json& merges = model.at("merges");
            merges_.reserve(merges.size());
            std::int32_t rank = 0;
            for (const nlohmann::json& m : merges) {
                if (m.is_array()) {  // the newer [left, right] form
                    add_merge(m.at(0).get<std::string>(), m.at(1).get<std::string>(), rank++, file);
                } else {
                    const std::string s = m.get<std::string>();
                    const std::size_t sp = s.find(' ');
                    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                        throw error(file + ": merge " + std::to_string(rank) + " '" + escape_for_message(s) +
                                    "' is not two tokens separated by a space");
                    add_merge(s.substr(0, sp), s.substr(sp + 1), rank++, file);
                }
            }
            if (model.contains("unk_token") && model.at("unk_token").is_string())
                unk_ = find(model.at("unk_token").get<std::string>());
            if (j.contains("added_tokens"))
                for (const nlohmann::json& t : j.at("added_tokens")) {
                    added_token a;
                    a.id = t.at("id").get<std::int64_t>();
                    a.content = decode_utf8(t.at("content").get<std::string>(), file + ": an added token");
                    a.normalized = t.value("normalized", true);
                    a.lstrip = t.value("lstrip", false);
                    a.rstrip = t.value("rstrip", false);
                    added_.push_back(std::move(a));
                }
            // The post-processor names the tokens put around the text.
            if (j.contains("post_processor") && j.at("post_processor").is_object()) {
                const nlohmann::json& pp = j.at("post_processor");
                if (pp.value("type", std::string()) == "RobertaProcessing" ||
                    pp.value("type", std::string()) == "BertProcessing") {
                    bos_ = pp.at("cls").at(1).get<std::int64_t>();
                    eos_ = pp.at("sep").at(1).get<std::int64_t>();
                }
            }
        } catch (const nlohmann::json::exception& e) {
            throw error(file + ": not a BPE tokenizer.json: " + escape_for_message(e.what(), 200));
        }
    }

    void load_vocab_merges(const std::string& vocab_file, const std::string& merges_file, const nlohmann::json& config,
                           const std::string& config_file) {
        read_vocab(read_json(vocab_file), vocab_file);
        const mapped_file mf(merges_file);
        const char* p = reinterpret_cast<const char*>(mf.data());
        const char* end = p + mf.size();
        // As CLIPTokenizer: drop the "#version" line, keep at most 49152 - 256 - 2 merges.
        constexpr std::int32_t max_merges = 49152 - 256 - 2;
        std::int32_t line = 0, rank = 0;
        while (p < end && rank < max_merges) {
            const char* nl = std::find(p, end, '\n');
            std::string s(p, nl);
            p = nl < end ? nl + 1 : end;
            if (line++ == 0) continue;
            if (!s.empty() && s.back() == '\r') s.pop_back();
            if (s.empty() && p >= end) break;  // the file's final newline
            const std::size_t sp = s.find(' ');
            if (sp == std::string::npos)
                throw error(merges_file + ": line " + std::to_string(line) + " is not two tokens separated by a space");
            add_merge(s.substr(0, sp), s.substr(sp + 1), rank++, merges_file);
        }
        added_ = added_tokens_of_config(config, config_file);
        if (added_.empty())
            for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
                const std::string c = token_content(config, key, config_file);
                const std::int32_t id = c.empty() ? -1 : find(c);
                if (id >= 0) added_.push_back({decode_utf8(c, config_file), id, false, false, false});
            }
        unk_ = find(token_content(config, "unk_token", config_file).empty()
                        ? std::string("<|endoftext|>")
                        : token_content(config, "unk_token", config_file));
    }

    // NFC, every run of whitespace to one space, lower case per character.
    static std::u32string normalize(const std::u32string& s) {
        const std::u32string n = decode_utf8(nfc(encode_utf8(s)), "text");
        std::u32string out;
        out.reserve(n.size());
        for (std::size_t i = 0; i < n.size();) {
            if (is_white_space(n[i])) {
                out.push_back(U' ');
                while (i < n.size() && is_white_space(n[i])) ++i;
            } else {
                append_lower(out, n[i++]);
            }
        }
        return out;
    }

    // The pre-tokenizer's regex, matched by hand; whitespace between matches is dropped.
    void pieces(const std::u32string& s, std::vector<std::int64_t>& ids) const {
        const std::size_t n = s.size();
        std::size_t i = 0;
        while (i < n) {
            const char32_t c = s[i];
            std::size_t j = i + 1;
            if (is_white_space(c)) {
                i = j;
                continue;
            }
            if (c == U'\'' && contraction(s, i, j)) {
            } else if (is_letter(c)) {
                while (j < n && is_letter(s[j])) ++j;
            } else if (is_number(c)) {
            } else {
                while (j < n && !is_white_space(s[j]) && !is_letter(s[j]) && !is_number(s[j])) ++j;
            }
            bpe(encode_utf8(s.data() + i, s.data() + j), ids);
            i = j;
        }
    }

    // 's|'t|'re|'ve|'m|'ll|'d at s[i] == '\'': sets j past it.
    static bool contraction(const std::u32string& s, std::size_t i, std::size_t& j) {
        const char32_t a = i + 1 < s.size() ? s[i + 1] : 0, b = i + 2 < s.size() ? s[i + 2] : 0;
        if (a == U's' || a == U't' || a == U'm' || a == U'd') {
            j = i + 2;
            return true;
        }
        if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) {
            j = i + 3;
            return true;
        }
        return false;
    }

    // One piece's bytes: the lowest-ranked adjacent pair is merged, everywhere
    // from the left, until no pair has a merge.
    void bpe(const std::string& bytes, std::vector<std::int64_t>& ids) const {
        std::vector<std::int32_t> sym(bytes.size());
        for (std::size_t k = 0; k < bytes.size(); ++k) {
            const auto b = static_cast<unsigned char>(bytes[k]);
            const std::int32_t id = k + 1 == bytes.size() ? byte_end_id_[b] : byte_id_[b];
            sym[k] = id >= 0 ? id : unk_;
        }
        while (sym.size() > 1) {
            std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), merged = -1;
            std::int32_t left = 0, right = 0;
            for (std::size_t k = 0; k + 1 < sym.size(); ++k) {
                const auto it = merges_.find(std::uint64_t(std::uint32_t(sym[k])) << 32 | std::uint32_t(sym[k + 1]));
                if (it != merges_.end() && it->second.first < best_rank) {
                    best_rank = it->second.first;
                    merged = it->second.second;
                    left = sym[k];
                    right = sym[k + 1];
                }
            }
            if (merged < 0) break;
            std::size_t w = 0;
            for (std::size_t k = 0; k < sym.size(); ++k) {
                if (k + 1 < sym.size() && sym[k] == left && sym[k + 1] == right) {
                    sym[w++] = merged;
                    ++k;
                } else {
                    sym[w++] = sym[k];
                }
            }
            sym.resize(w);
        }
        for (const std::int32_t id : sym)
            if (id >= 0) ids.push_back(id);
    }
};

}  // namespace vit::detail::text
