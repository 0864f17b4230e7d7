// Multinomial logistic regression in double: the objective, its gradient, and
// L-BFGS to a gradient norm. Rows are cut into fixed chunks whose partial sums
// are added in chunk order, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <Eigen/Dense>

#include "../../error.hpp"

namespace vit {

using matrix_d = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A linear classifier: logits = features @ weight.T + bias.
struct linear_head {
    matrix_d weight;       // [classes, features]
    Eigen::VectorXd bias;  // [classes]
};

struct head_options {
    double l2 = 1e-3;                  // (l2 / 2) * ||weight||^2; the bias is not penalised
    double gradient_tolerance = 1e-6;  // stop at a gradient norm at or below this
    int max_iterations = 20000;
    int history = 20;  // L-BFGS correction pairs
    int threads = 0;   // 0: every core
};

struct head_fit {
    linear_head head;
    double l2 = 0;
    double objective = 0;      // mean cross-entropy + (l2 / 2) * ||W||^2 at the head
    double gradient_norm = 0;  // Euclidean, over weight and bias
    int iterations = 0;
    bool converged = false;
};

namespace detail::train {

inline constexpr std::int64_t chunk_rows = 2048;

inline int thread_count(int threads) {
    if (threads > 0) return threads;
    const unsigned h = std::thread::hardware_concurrency();
    return h == 0 ? 1 : int(h);
}

// Runs f(c) for every chunk c on `threads` threads.
inline void for_chunks(std::int64_t chunks, int threads, const std::function<void(std::int64_t)>& f) {
    const int t = int(std::min<std::int64_t>(std::max(1, threads), chunks));
    if (t <= 1) {
        for (std::int64_t c = 0; c < chunks; ++c) f(c);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(t));
    for (int i = 0; i < t; ++i)
        pool.emplace_back([&, i] {
            try {
                for (std::int64_t c = i; c < chunks; c += t) f(c);
            } catch (...) {
                errors[std::size_t(i)] = std::current_exception();
            }
        });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

// The objective and (when g is given) its gradient at x = [vec(W) row-major, b].
class logistic_problem {
public:
    logistic_problem(const matrix_d& x, const std::vector<int>& y, int classes, double l2, int threads)
        : x_(x), y_(y), k_(classes), l2_(l2), threads_(thread_count(threads)) {
        if (x.rows() == 0) throw error("train_head: no training rows");
        if (std::int64_t(y.size()) != x.rows())
            throw error("train_head: " + std::to_string(y.size()) + " labels for " + std::to_string(x.rows()) + " rows");
        if (classes < 2) throw error("train_head: " + std::to_string(classes) + " class; a classifier needs at least 2");
        for (int v : y)
            if (v < 0 || v >= classes)
                throw error("train_head: label " + std::to_string(v) + " is not in 0.." + std::to_string(classes - 1));
        for (Eigen::Index i = 0; i < x.size(); ++i)
            if (!std::isfinite(x.data()[i])) throw error("train_head: the features hold a NaN or an infinity");
    }

    std::int64_t size() const { return std::int64_t(k_) * (x_.cols() + 1); }

    double operator()(const Eigen::VectorXd& p, Eigen::VectorXd* g) const {
        const Eigen::Index n = x_.rows(), f = x_.cols();
        const Eigen::Map<const matrix_d> w(p.data(), k_, f);
        const Eigen::Map<const Eigen::VectorXd> b(p.data() + k_ * f, k_);
        const std::int64_t chunks = (n + chunk_rows - 1) / chunk_rows;
        std::vector<double> loss(std::size_t(chunks), 0.0);
        std::vector<matrix_d> gw(g ? std::size_t(chunks) : 0);
        std::vector<Eigen::VectorXd> gb(g ? std::size_t(chunks) : 0);
        for_chunks(chunks, threads_, [&](std::int64_t c) {
            const Eigen::Index r0 = c * chunk_rows, rows = std::min<Eigen::Index>(chunk_rows, n - r0);
            const auto xc = x_.middleRows(r0, rows);
            matrix_d z = xc * w.transpose();
            z.rowwise() += b.transpose();
            double sum = 0;
            for (Eigen::Index i = 0; i < rows; ++i) {
                const double m = z.row(i).maxCoeff();
                double s = 0;
                for (Eigen::Index j = 0; j < k_; ++j) s += std::exp(z(i, j) - m);
                const int yi = y_[std::size_t(r0 + i)];
                sum += m + std::log(s) - z(i, yi);
                if (g) {  // z becomes softmax - onehot
                    for (Eigen::Index j = 0; j < k_; ++j) z(i, j) = std::exp(z(i, j) - m) / s;
                    z(i, yi) -= 1;
                }
            }
            loss[std::size_t(c)] = sum;
            if (g) {
                gw[std::size_t(c)].noalias() = z.transpose() * xc;
                gb[std::size_t(c)] = z.colwise().sum().transpose();
            }
        });
        double total = 0;
        for (double v : loss) total += v;
        const double inv_n = 1.0 / double(n);
        const double obj = total * inv_n + 0.5 * l2_ * w.squaredNorm();
        if (g) {
            g->resize(p.size());
            Eigen::Map<matrix_d> gwm(g->data(), k_, f);
            Eigen::Map<Eigen::VectorXd> gbm(g->data() + k_ * f, k_);
            gwm.setZero();
            gbm.setZero();
            for (std::int64_t c = 0; c < chunks; ++c) {
                gwm += gw[std::size_t(c)];
                gbm += gb[std::size_t(c)];
            }
            gwm = gwm * inv_n + l2_ * w;
            gbm *= inv_n;
        }
        return obj;
    }

private:
    const matrix_d& x_;
    const std::vector<int>& y_;
    Eigen::Index k_;
    double l2_;
    int threads_;
};

// L-BFGS (two-loop recursion) with a backtracking Armijo line search. Near
// the optimum the objective's decrease falls under its rounding, so a step
// that keeps it level within rounding and lowers the gradient norm is taken too.
inline head_fit lbfgs(const logistic_problem& prob, Eigen::VectorXd& x, const head_options& opt,
                      const std::function<void(int, double, double)>& progress) {
    Eigen::VectorXd g, g_new, x_new;
    double f = prob(x, &g);
    double gn = g.norm();
    std::deque<Eigen::VectorXd> s_hist, y_hist;
    std::deque<double> rho_hist;
    int it = 0;
    bool converged = gn <= opt.gradient_tolerance;
    while (!converged && it < opt.max_iterations) {
        // d = -H g
        Eigen::VectorXd d = -g;
        std::vector<double> alpha(s_hist.size());
        for (std::size_t i = s_hist.size(); i-- > 0;) {
            alpha[i] = rho_hist[i] * s_hist[i].dot(d);
            d -= alpha[i] * y_hist[i];
        }
        if (!s_hist.empty()) d *= s_hist.back().dot(y_hist.back()) / y_hist.back().squaredNorm();
        else d /= std::max(1.0, gn);
        for (std::size_t i = 0; i < s_hist.size(); ++i) {
            const double beta = rho_hist[i] * y_hist[i].dot(d);
            d += (alpha[i] - beta) * s_hist[i];
        }
        double gd = g.dot(d);
        if (!(gd < 0)) {  // not a descent direction: restart from steepest descent
            s_hist.clear(), y_hist.clear(), rho_hist.clear();
            d = -g / std::max(1.0, gn);
            gd = g.dot(d);
        }
        double t = 1, f_new = 0;
        bool accepted = false;
        for (int ls = 0; ls < 60; ++ls) {
            x_new = x + t * d;
            f_new = prob(x_new, &g_new);
            const bool armijo = f_new <= f + 1e-4 * t * gd;
            const bool level = std::abs(f_new - f) <= 1e-12 * std::max(1.0, std::abs(f)) && g_new.norm() < gn;
            if (std::isfinite(f_new) && (armijo || level)) {
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        ++it;
        if (!accepted) {
            if (s_hist.empty()) break;  // even steepest descent found nothing: as close as doubles get
            s_hist.clear(), y_hist.clear(), rho_hist.clear();
            continue;
        }
        Eigen::VectorXd s = x_new - x, yv = g_new - g;
        const double sy = s.dot(yv);
        if (sy > 1e-12 * s.norm() * yv.norm()) {
            s_hist.push_back(std::move(s));
            y_hist.push_back(std::move(yv));
            rho_hist.push_back(1.0 / sy);
            if (int(s_hist.size()) > opt.history) {
                s_hist.pop_front(), y_hist.pop_front(), rho_hist.pop_front();
            }
        }
        x.swap(x_new);
        g.swap(g_new);
        f = f_new;
        gn = g.norm();
        converged = gn <= opt.gradient_tolerance;
        if (progress) progress(it, f, gn);
    }
    head_fit fit;
    fit.objective = f;
    fit.gradient_norm = gn;
    fit.iterations = it;
    fit.converged = converged;
    return fit;
}

}  // namespace detail::train

// Fits the head minimising mean cross-entropy + (l2 / 2) * ||W||^2 over
// features x [rows, F] with labels y in 0..classes-1, from `start` (warm
// start, e.g. along an l2 grid) or zero.
inline head_fit train_head(const matrix_d& x, const std::vector<int>& y, int classes, const head_options& opt = {},
                           const linear_head* start = nullptr,
                           const std::function<void(int, double, double)>& progress = nullptr) {
    if (!(opt.l2 >= 0) || !std::isfinite(opt.l2)) throw error("train_head: l2 must be a number >= 0");
    const detail::train::logistic_problem prob(x, y, classes, opt.l2, opt.threads);
    const Eigen::Index k = classes, f = x.cols();
    Eigen::VectorXd p = Eigen::VectorXd::Zero(prob.size());
    if (start && start->weight.rows() == k && start->weight.cols() == f && start->bias.size() == k) {
        Eigen::Map<matrix_d>(p.data(), k, f) = start->weight;
        p.tail(k) = start->bias;
    }
    head_fit fit = detail::train::lbfgs(prob, p, opt, progress);
    fit.l2 = opt.l2;
    fit.head.weight = Eigen::Map<const matrix_d>(p.data(), k, f);
    fit.head.bias = p.tail(k);
    return fit;
}

}  // namespace vit
