// A head's predictions, accuracy, confusion matrix, per-class precision and
// recall, and the confusion matrix as a PNG a person reads at a glance.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include "../../error.hpp"
#include "logistic.hpp"

namespace vit {

struct head_evaluation {
    std::size_t images = 0;
    double accuracy = 0;
    std::vector<std::vector<std::int64_t>> confusion;  // [true class][predicted class]
    std::vector<double> precision, recall;             // per class; 0 where undefined (nothing predicted / present)
};

// The most probable class of each row (the lowest index on a tie, as argmax).
inline std::vector<int> predict(const matrix_d& x, const linear_head& h) {
    std::vector<int> out(std::size_t(x.rows()));
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const Eigen::VectorXd z = h.weight * x.row(i).transpose() + h.bias;
        Eigen::Index best = 0;
        z.maxCoeff(&best);
        out[std::size_t(i)] = int(best);
    }
    return out;
}

inline head_evaluation evaluate_head(const matrix_d& x, const std::vector<int>& y, const linear_head& h) {
    const std::size_t k = std::size_t(h.bias.size());
    head_evaluation e;
    e.images = y.size();
    e.confusion.assign(k, std::vector<std::int64_t>(k, 0));
    const std::vector<int> p = predict(x, h);
    std::size_t right = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        ++e.confusion[std::size_t(y[i])][std::size_t(p[i])];
        right += y[i] == p[i];
    }
    e.accuracy = y.empty() ? 0 : double(right) / double(y.size());
    e.precision.assign(k, 0);
    e.recall.assign(k, 0);
    for (std::size_t c = 0; c < k; ++c) {
        std::int64_t predicted = 0, present = 0;
        for (std::size_t o = 0; o < k; ++o) predicted += e.confusion[o][c], present += e.confusion[c][o];
        if (predicted) e.precision[c] = double(e.confusion[c][c]) / double(predicted);
        if (present) e.recall[c] = double(e.confusion[c][c]) / double(present);
    }
    return e;
}

namespace detail::train {

// A 3x5 pixel font: digits, capitals and a little punctuation, rows top down.
inline const char* glyph(char c) {
    struct g {
        char c;
        const char* bits;
    };
    static constexpr g font[] = {
        {'0', "111101101101111"}, {'1', "010110010010111"}, {'2', "111001111100111"}, {'3', "111001111001111"},
        {'4', "101101111001001"}, {'5', "111100111001111"}, {'6', "111100111101111"}, {'7', "111001001001001"},
        {'8', "111101111101111"}, {'9', "111101111001111"}, {'A', "010101111101101"}, {'B', "110101110101110"},
        {'C', "011100100100011"}, {'D', "110101101101110"}, {'E', "111100110100111"}, {'F', "111100110100100"},
        {'G', "011100101101011"}, {'H', "101101111101101"}, {'I', "111010010010111"}, {'J', "001001001101010"},
        {'K', "101101110101101"}, {'L', "100100100100111"}, {'M', "101111111101101"}, {'N', "110101101101101"},
        {'O', "010101101101010"}, {'P', "110101110100100"}, {'Q', "010101101110011"}, {'R', "110101110101101"},
        {'S', "011100010001110"}, {'T', "111010010010010"}, {'U', "101101101101111"}, {'V', "101101101101010"},
        {'W', "101101111111101"}, {'X', "101101010101101"}, {'Y', "101101010010010"}, {'Z', "111001010100111"},
        {' ', "000000000000000"}, {'-', "000000111000000"}, {'.', "000000000000010"}, {'_', "000000000000111"},
        {'(', "001010010010001"}, {')', "100010010010100"}, {':', "000010000010000"}, {'/', "001001010100100"},
        {'%', "101001010100101"}, {',', "000000000010100"}, {'=', "000111000111000"}, {'?', "111001010000010"},
        {'>', "100010001010100"}, {'<', "001010100010001"}, {'+', "000010111010000"}, {'#', "101111101111101"},
    };
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    for (const g& x : font)
        if (x.c == c) return x.bits;
    return "111001010000010";  // '?'
}

struct canvas {
    int w, h;
    std::vector<unsigned char> rgb;
    canvas(int w_, int h_) : w(w_), h(h_), rgb(std::size_t(w_) * std::size_t(h_) * 3, 255) {}
    void fill(int x0, int y0, int x1, int y1, const unsigned char c[3]) {
        for (int y = std::max(0, y0); y < std::min(h, y1); ++y)
            for (int x = std::max(0, x0); x < std::min(w, x1); ++x) std::memcpy(&rgb[(std::size_t(y) * w + x) * 3], c, 3);
    }
    // Text at scale s (each font pixel s x s); returns the width drawn.
    int text(int x, int y, const std::string& s, int scale, const unsigned char c[3]) {
        for (std::size_t i = 0; i < s.size(); ++i) {
            const char* b = glyph(s[i]);
            for (int r = 0; r < 5; ++r)
                for (int q = 0; q < 3; ++q)
                    if (b[r * 3 + q] == '1')
                        fill(x + int(i) * 4 * scale + q * scale, y + r * scale, x + int(i) * 4 * scale + (q + 1) * scale,
                             y + (r + 1) * scale, c);
        }
        return int(s.size()) * 4 * scale;
    }
};

inline int text_width(std::size_t chars, int scale) { return int(chars) * 4 * scale; }

}  // namespace detail::train

// The confusion matrix as a PNG: rows the true class ("index name"), columns
// the prediction (index), each cell shaded by its share of the row (blue on
// the diagonal, red off it) with its count when the cells are big enough.
inline std::vector<unsigned char> confusion_png(const head_evaluation& e, const std::vector<std::string>& classes,
                                                const std::string& title) {
    using detail::train::canvas;
    using detail::train::text_width;
    const int k = int(e.confusion.size());
    const int cell = std::max(6, std::min(44, 900 / std::max(1, k)));
    const int scale = cell >= 30 ? 2 : 1;
    std::int64_t most = 1;
    for (const auto& row : e.confusion)
        for (std::int64_t v : row) most = std::max(most, v);
    const std::size_t digits = std::to_string(most).size();
    const bool numbers = text_width(digits, scale) + 2 <= cell && cell >= 5 * scale + 2;
    const std::size_t name_chars = 18;
    const int label_scale = k > 40 ? 1 : 2;
    const bool column_labels = text_width(std::to_string(k - 1).size(), label_scale) + 2 <= cell ||
                               text_width(std::to_string(k - 1).size(), 1) + 2 <= cell;
    const int col_scale = text_width(std::to_string(k - 1).size(), label_scale) + 2 <= cell ? label_scale : 1;
    const int left = 8 + text_width(std::to_string(k - 1).size() + 1 + name_chars, label_scale) + 6;
    const int top = 8 + 5 * 2 + 8 + 5 * 2 + 8 + (column_labels ? 5 * col_scale + 6 : 0);
    const int w = std::max(left + k * cell + 10, 8 + text_width(title.size(), 2) + 8);
    const int h = top + k * cell + 10;
    canvas img(w, h);
    const unsigned char black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grid[3] = {210, 210, 210};
    img.text(8, 8, title, 2, black);
    img.text(left, 8 + 10 + 8, "PREDICTED CLASS -> (ROWS: TRUE CLASS)", 2, black);
    for (int c = 0; c < k && column_labels; ++c) {
        const std::string s = std::to_string(c);
        img.text(left + c * cell + (cell - text_width(s.size(), col_scale)) / 2, top - 5 * col_scale - 4, s, col_scale, black);
    }
    for (int r = 0; r < k; ++r) {
        std::int64_t row_total = 0;
        for (std::int64_t v : e.confusion[std::size_t(r)]) row_total += v;
        std::string name = std::to_string(r) + " " + classes[std::size_t(r)];
        if (name.size() > std::to_string(k - 1).size() + 1 + name_chars)
            name = name.substr(0, std::to_string(k - 1).size() + 1 + name_chars - 2) + "..";
        const int y0 = top + r * cell;
        if (cell >= 5 * label_scale) img.text(8, y0 + (cell - 5 * label_scale) / 2, name, label_scale, black);
        for (int c = 0; c < k; ++c) {
            const std::int64_t v = e.confusion[std::size_t(r)][std::size_t(c)];
            const double share = row_total ? double(v) / double(row_total) : 0;
            unsigned char col[3];
            const double t = v ? 0.15 + 0.85 * share : 0;  // any count at all shows
            if (r == c) {
                col[0] = (unsigned char)(255 - t * (255 - 20));
                col[1] = (unsigned char)(255 - t * (255 - 80));
                col[2] = (unsigned char)(255 - t * (255 - 180));
            } else {
                col[0] = (unsigned char)(255 - t * (255 - 200));
                col[1] = (unsigned char)(255 - t * (255 - 30));
                col[2] = (unsigned char)(255 - t * (255 - 30));
            }
            const int x0 = left + c * cell;
            img.fill(x0, y0, x0 + cell, y0 + cell, grid);
            img.fill(x0 + 1, y0 + 1, x0 + cell, y0 + cell, col);
            if (numbers && v) {
                const std::string s = std::to_string(v);
                img.text(x0 + (cell - text_width(s.size(), scale)) / 2 + 1, y0 + (cell - 5 * scale) / 2 + 1, s, scale,
                         t > 0.55 ? white : black);
            }
        }
    }
    std::vector<unsigned char> png;
    auto sink = [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<unsigned char>*>(ctx);
        v->insert(v->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
    };
    if (!stbi_write_png_to_func(sink, &png, w, h, 3, img.rgb.data(), w * 3) || png.empty())
        throw error("confusion_png: cannot encode the picture");
    return png;
}

}  // namespace vit
