// Texts and zero-shot labels as the programs take them: UTF-8 checks, label
// lists (--label, --labels-file, vit-serve's candidate_labels) and the
// hypothesis template. The text models themselves are <vit/text.hpp>.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <vit/error.hpp>
#include <vit/output.hpp>

namespace labels {

// The byte offset of the first invalid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF included), or npos when valid.
inline std::size_t invalid_utf8_at(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned c = p[i];
        std::size_t len;
        std::uint32_t cp, min;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
        else return i;
        if (n - i < len) return i;
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return std::string::npos;
}

// Throws naming `what` and the offset when `s` is not valid UTF-8.
inline void check_utf8(const std::string& s, const std::string& what) {
    const std::size_t at = invalid_utf8_at(s);
    if (at != std::string::npos)
        throw vit::error(what + " is not valid UTF-8 (byte " + std::to_string(at) + " of " + std::to_string(s.size()) + ")");
}

// A label or text for a message: at most 60 bytes, cut at a character boundary.
inline std::string shown(const std::string& s) {
    if (s.size() <= 60) return "'" + s + "'";
    std::size_t cut = 57;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return "'" + s.substr(0, cut) + "...'";
}

// Every label non-empty, valid UTF-8 and given once: a repeated label would
// split CLIP's softmax between two equal rows, which is never meant. `names`
// says where each came from ("--label 3", "labels.txt:7"), for the messages.
inline void check_labels(const std::vector<std::string>& list, const std::vector<std::string>& names) {
    if (list.empty()) throw vit::error("no labels given: zero-shot classification needs at least one");
    std::unordered_map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
        if (list[i].empty()) throw vit::error(names[i] + ": an empty label");
        check_utf8(list[i], names[i]);
        const auto [it, fresh] = seen.emplace(list[i], i);
        if (!fresh) throw vit::error(names[i] + ": the label " + shown(list[i]) + " is given twice (first as " + names[it->second] + ")");
    }
}

// The template is used as the zero-shot pipeline uses it: "{}" replaced by
// the label. One without "{}" would give every label the same sentence.
inline void check_template(const std::string& t, const std::string& what) {
    check_utf8(t, what);
    if (t.find("{}") == std::string::npos) throw vit::error(what + " " + shown(t) + " has no {} for the label");
}

inline std::string trim(const std::string& s) {
    const char* ws = " \t\r\n\v\f";
    const std::size_t a = s.find_first_not_of(ws);
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// "cat, dog,,bird" -> {"cat", "dog", "bird"}: what transformers does with a
// comma-separated string of candidate labels (each stripped, empty ones dropped).
inline std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t comma = s.find(',', start);
        const std::string piece = trim(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (!piece.empty()) out.push_back(piece);
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

struct label_list {
    std::vector<std::string> labels;
    std::vector<std::string> names;  // where each came from, for messages
};

// A labels file: one label per line, surrounding whitespace stripped, blank
// lines skipped, a UTF-8 byte order mark ignored.
inline label_list read_labels_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw vit::error(path + ": cannot read the labels file");
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw vit::error(path + ": read error in the labels file");
    std::string all = ss.str();
    if (all.compare(0, 3, "\xEF\xBB\xBF") == 0) all.erase(0, 3);
    label_list out;
    std::istringstream lines(all);
    std::string line;
    for (std::size_t n = 1; std::getline(lines, line); ++n) {
        check_utf8(line, path + ":" + std::to_string(n));
        const std::string label = trim(line);
        if (label.empty()) continue;
        out.labels.push_back(label);
        out.names.push_back(path + ":" + std::to_string(n));
    }
    if (out.labels.empty()) throw vit::error(path + ": the labels file has no labels (one a line; blank lines are skipped)");
    return out;
}

// Labels by score (zero-shot probs: already softmax or sigmoid), best first,
// ties in label order; at most k (k <= 0: all).
template <class T>
std::vector<vit::prediction> ranked(const T* scores, int n, int k, const std::vector<std::string>& names) {
    std::vector<int> order(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) order[std::size_t(i)] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
    if (k > 0 && k < n) order.resize(std::size_t(k));
    std::vector<vit::prediction> out;
    for (int i : order) out.push_back({names[std::size_t(i)], i, double(scores[i])});
    return out;
}

}  // namespace labels
