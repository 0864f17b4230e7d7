// The head's training time on a synthetic feature set (BENCHMARKS.md):
// `vit-train-head-bench [N F K L2 THREADS]`, by default 50,000 x 1024
// features in 100 classes: class means N(0, 0.25) plus N(0, 1) noise per
// feature, the scale of LayerNorm outputs.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <vit/train.hpp>

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 50000, f = argc > 2 ? std::atol(argv[2]) : 1024,
               k = argc > 3 ? std::atol(argv[3]) : 100;
    vit::head_options o;
    o.l2 = argc > 4 ? std::atof(argv[4]) : 1e-3;
    o.threads = argc > 5 ? std::atoi(argv[5]) : 0;
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal;
    vit::matrix_d means(k, f), x(n, f);
    for (long i = 0; i < means.size(); ++i) means.data()[i] = 0.5 * normal(rng);
    std::vector<int> y(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        y[std::size_t(i)] = int(i % k);
        for (long j = 0; j < f; ++j) x(i, j) = means(y[std::size_t(i)], j) + normal(rng);
    }
    const auto t0 = std::chrono::steady_clock::now();
    int last = 0;
    const vit::head_fit fit = vit::train_head(x, y, int(k), o, nullptr, [&](int it, double obj, double g) {
        if (it - last >= 50) std::fprintf(stderr, "  iteration %d: objective %.10g, gradient norm %.2e\n", last = it, obj, g);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const vit::head_evaluation e = vit::evaluate_head(x, y, fit.head);
    std::printf("%ld x %ld features, %ld classes, l2 %g: %.1f s, %d iterations (%.3f s each), objective %.10g, "
                "gradient norm %.2e, converged %d, train accuracy %.4f\n",
                n, f, k, o.l2, s, fit.iterations, s / std::max(1, fit.iterations), fit.objective, fit.gradient_norm,
                int(fit.converged), e.accuracy);
}
