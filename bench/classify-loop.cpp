// The README's example in a loop, exactly as a user writes it:
// vit::load_model(dir), then classify(image, 5) call after call, with no
// wait_packed(). Prints the load and every call's seconds, so that the first
// calls (the time to the first answers) are held to vit-bench's steady state.
//   classify-loop MODEL_DIR IMAGE [CALLS] [--dtype f32|bf16|int8] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <vit/vit.hpp>

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    std::string dtype = "f32";
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!std::strcmp(argv[i], "--json")) json = true;
        else pos.push_back(argv[i]);
    }
    if (pos.size() < 2 || (dtype != "f32" && dtype != "bf16" && dtype != "int8")) {
        std::fprintf(stderr, "usage: classify-loop MODEL_DIR IMAGE [CALLS] [--dtype f32|bf16|int8] [--json]\n");
        return 2;
    }
    try {
        const int calls = pos.size() > 2 ? std::max(1, std::stoi(pos[2])) : 20;
        vit::load_options lo;  // the defaults, as the README's program has them
        lo.compute = dtype == "bf16" ? vit::precision::bf16 : dtype == "int8" ? vit::precision::int8 : vit::precision::f32;
        const double t0 = now();
        const vit::model m = vit::load_model(pos[0], lo);
        const double load_s = now() - t0;
        std::vector<double> seconds;
        for (int i = 0; i < calls; ++i) {
            const double s = now();
            const std::vector<vit::prediction> top = m.classify(pos[1], 5);
            seconds.push_back(now() - s);
            if (top.empty()) return 1;
        }
        // Load to the n-th answer.
        auto to = [&](int n) {
            double t = load_s;
            for (int i = 0; i < std::min(n, calls); ++i) t += seconds[std::size_t(i)];
            return t;
        };
        std::vector<double> later(seconds.begin() + std::min(calls, 6), seconds.end());
        std::sort(later.begin(), later.end());
        const double steady = later.empty() ? 0 : later[later.size() / 2];
        std::vector<double> c26(seconds.begin() + std::min(calls, 1), seconds.begin() + std::min(calls, 6));
        std::sort(c26.begin(), c26.end());
        const double median_2_6 = c26.empty() ? 0 : c26[c26.size() / 2];
        if (json) {
            std::printf("{\"dtype\": \"%s\", \"load_s\": %.4f, \"to_1st_s\": %.4f, \"to_5th_s\": %.4f, \"to_20th_s\": %.4f, "
                        "\"median_calls_2_6_s\": %.4f, \"median_after_6_s\": %.4f, \"calls_s\": [",
                        dtype.c_str(), load_s, to(1), to(5), to(20), median_2_6, steady);
            for (std::size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.4f", i ? ", " : "", seconds[i]);
            std::printf("]}\n");
        } else {
            std::printf("load %.3f s; calls:", load_s);
            for (double s : seconds) std::printf(" %.3f", s);
            std::printf("\nload to 1st answer %.3f s, to 5th %.3f s, to 20th %.3f s; calls 2-6 median %.4f s, after 6 "
                        "median %.4f s\n",
                        to(1), to(5), to(20), median_2_6, steady);
        }
    } catch (const vit::error& e) {
        std::fprintf(stderr, "classify-loop: %s\n", e.what());
        return 1;
    }
}
