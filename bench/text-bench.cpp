// text-bench MODEL_DIR [--batch N] [--threads T] [--rounds R] [--reps K]:
// texts per second of a checkpoint's text tower (vit::basic_text_model) in
// float32, bf16 and int8, on a batch of typical zero-shot label sentences
// ("a photo of a {label}."). The three precisions run interleaved, R rounds
// of K forwards each, so a busy machine slows them alike; medians over the
// rounds, and each precision's median speed ratio to float32. Tokenizing is
// timed apart. E.g., CLIP ViT-L/14's text tower from the formula:
//   build/bench/vit-make-formula bench/formula/clip-vit-large-patch14-text/config.json /tmp/clip-l-text
//   cp tests/data/clip-text-tiny/model/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.json,merges.txt} /tmp/clip-l-text/
//   build/bench/text-bench /tmp/clip-l-text --batch 64 --threads 2
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <vit/text.hpp>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

const char* const labels[] = {
    "tench",        "goldfish",     "great white shark", "tiger shark", "hammerhead", "electric ray",
    "stingray",     "cock",         "hen",               "ostrich",     "brambling",  "goldfinch",
    "house finch",  "junco",        "indigo bunting",    "robin",       "bulbul",     "jay",
    "magpie",       "chickadee",    "water ouzel",       "kite",        "bald eagle", "vulture",
    "great grey owl", "fire salamander", "common newt",  "eft",         "spotted salamander", "axolotl",
    "bullfrog",     "tree frog",    "tailed frog",       "loggerhead",  "leatherback turtle", "mud turtle",
    "terrapin",     "box turtle",   "banded gecko",      "common iguana", "American chameleon", "whiptail",
    "agama",        "frilled lizard", "alligator lizard", "Gila monster", "green lizard", "African chameleon",
    "Komodo dragon", "African crocodile", "American alligator", "triceratops", "thunder snake", "ringneck snake",
    "hognose snake", "green snake", "king snake",        "garter snake", "water snake", "vine snake",
    "night snake",  "boa constrictor", "rock python",    "Indian cobra"};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: text-bench MODEL_DIR [--batch N] [--threads T] [--rounds R] [--reps K]\n";
        return 2;
    }
    const std::string dir = argv[1];
    int batch = 64, threads = 2, rounds = 5, reps = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const int v = std::atoi(argv[i + 1]);
        if (a == "--batch") batch = v;
        else if (a == "--threads") threads = v;
        else if (a == "--rounds") rounds = v;
        else if (a == "--reps") reps = v;
        else {
            std::cerr << "text-bench: unknown option " << a << "\n";
            return 2;
        }
    }
    try {
        std::vector<std::string> texts;
        const int n_labels = int(sizeof labels / sizeof labels[0]);
        for (int i = 0; i < batch; ++i) texts.push_back(std::string("a photo of a ") + labels[i % n_labels] + ".");
        const vit::precision modes[] = {vit::precision::f32, vit::precision::bf16, vit::precision::int8};
        const char* names[] = {"f32", "bf16", "int8"};
        std::vector<vit::text_model> models;
        for (const vit::precision p : modes) {
            vit::load_options o;
            o.compute = p;
            o.threads = threads;
            models.push_back(vit::load_text_model(dir, o));
        }
        auto t0 = std::chrono::steady_clock::now();
        const vit::token_batch tokens = models[0].encode(texts);
        const double tok_s = seconds_since(t0);
        vit::text_forward_options opt;
        opt.output_last_hidden_state = false;
        vit::workspace<float> ws(threads);
        for (auto& m : models) m.forward(tokens, opt, &ws);  // warm up: buffers, pages
        std::vector<double> rate[3], ratio[3];
        for (int r = 0; r < rounds; ++r) {
            double s[3];
            for (int k = 0; k < 3; ++k) {
                t0 = std::chrono::steady_clock::now();
                for (int i = 0; i < reps; ++i) models[std::size_t(k)].forward(tokens, opt, &ws);
                s[k] = seconds_since(t0) / reps;
                rate[k].push_back(batch / s[k]);
            }
            for (int k = 0; k < 3; ++k) ratio[k].push_back(s[0] / s[k]);
        }
        std::cout << dir << ": " << batch << " texts of " << tokens.input_ids[0].size() << " tokens, " << threads
                  << " threads, " << rounds << " rounds of " << reps << "\n";
        std::cout << "tokenize: " << batch / tok_s << " texts/s\n";
        for (int k = 0; k < 3; ++k)
            std::cout << names[k] << ": " << median(rate[k]) << " texts/s (median; min " << *std::min_element(rate[k].begin(), rate[k].end())
                      << ", max " << *std::max_element(rate[k].begin(), rate[k].end()) << "), speed vs f32 "
                      << median(ratio[k]) << "x\n";
    } catch (const vit::error& e) {
        std::cerr << "text-bench: " << e.what() << "\n";
        return 1;
    }
}
