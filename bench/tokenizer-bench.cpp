// Tokenizer throughput: the texts of a JSON Lines file ({"text": ...} per
// line, e.g. tests/data/text/tokenizers/clip_ids.jsonl) repeated, encoded as
// one unpadded, untruncated batch on one thread; prints the median of the runs.
//   tokenizer-bench MODEL_DIR TEXTS.jsonl [repeat=200] [runs=7]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <vit/tokenizer.hpp>

int main(int argc, char** argv) try {
    if (argc < 3) {
        std::fprintf(stderr, "usage: tokenizer-bench MODEL_DIR TEXTS.jsonl [repeat=200] [runs=7]\n");
        return 2;
    }
    const int repeat = argc > 3 ? std::stoi(argv[3]) : 200, runs = argc > 4 ? std::stoi(argv[4]) : 7;
    std::vector<std::string> base;
    std::ifstream in(argv[2]);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) base.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    std::vector<std::string> texts;
    for (int r = 0; r < repeat; ++r) texts.insert(texts.end(), base.begin(), base.end());

    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const vit::tokenizer tok(argv[1]);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

    vit::text_options o;
    o.padding = vit::text_padding::none;
    o.truncation = false;
    std::vector<double> secs;
    std::size_t tokens = 0;
    for (int r = 0; r < runs; ++r) {
        const auto a = clock::now();
        const vit::token_batch b = tok.encode(texts, o);
        secs.push_back(std::chrono::duration<double>(clock::now() - a).count());
        tokens = 0;
        for (const auto& row : b.input_ids) tokens += row.size();
    }
    std::sort(secs.begin(), secs.end());
    const double med = secs[secs.size() / 2];
    std::printf("{\"model\": \"%s\", \"texts\": %zu, \"tokens\": %zu, \"load_s\": %.3f, \"median_s\": %.4f, "
                "\"tokens_per_s\": %.0f, \"texts_per_s\": %.0f}\n",
                argv[1], texts.size(), tokens, load_s, med, double(tokens) / med, double(texts.size()) / med);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer-bench: %s\n", e.what());
    return 1;
}
