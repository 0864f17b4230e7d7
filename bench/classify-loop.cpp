// The README's example in a loop: vit::load_model(dir).classify(image, 5),
// timed per call, to hold the convenience path to the speed of vit-bench.
//   classify-loop MODEL_DIR IMAGE [CALLS]    prints the median seconds per call
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <vit/vit.hpp>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: classify-loop MODEL_DIR IMAGE [CALLS]\n");
        return 2;
    }
    try {
        const int calls = argc > 3 ? std::max(1, std::stoi(argv[3])) : 20;
        const vit::model m = vit::load_model(argv[1]);
        m.wait_packed();
        m.classify(argv[2], 5);  // warm-up: the workspace grows once
        std::vector<double> seconds;
        for (int i = 0; i < calls; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            const std::vector<vit::prediction> top = m.classify(argv[2], 5);
            seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            if (top.empty()) return 1;
        }
        std::sort(seconds.begin(), seconds.end());
        std::printf("classify: median %.4f s per call (min %.4f, max %.4f, %d calls)\n", seconds[seconds.size() / 2],
                    seconds.front(), seconds.back(), calls);
    } catch (const vit::error& e) {
        std::fprintf(stderr, "classify-loop: %s\n", e.what());
        return 1;
    }
}
