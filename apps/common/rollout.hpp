// Attention rollout, shared by vit-classify --attention-map and vit-serve's
// POST /attention (the page's heat map).
#pragma once

#include <vector>

#include <vit/vit.hpp>

namespace rollout {

// Attention rollout (Abnar & Zuidema, 2020): per layer the head-averaged
// attention with the residual connection added (0.5 A + 0.5 I, rows
// renormalised), multiplied through the layers; the CLS row says how much
// each patch flows into the CLS token the classifier reads. Rollout rather
// than the last layer alone: in ViTs the last layer's CLS attention is often
// concentrated on a few "register-like" background tokens.
inline std::vector<double> attention_rollout(const vit::output<float>& out, int heads) {
    const int T = out.tokens;
    Eigen::MatrixXd roll = Eigen::MatrixXd::Identity(T, T);
    for (const auto& att : out.attentions) {  // [heads * T, T] for image 0
        Eigen::MatrixXd a = Eigen::MatrixXd::Zero(T, T);
        for (int h = 0; h < heads; ++h) a += att.block(Eigen::Index(h) * T, 0, T, T).cast<double>();
        a /= heads;
        a = 0.5 * a + 0.5 * Eigen::MatrixXd::Identity(T, T);
        for (int r = 0; r < T; ++r) a.row(r) /= a.row(r).sum();
        roll = a * roll;
    }
    std::vector<double> cls(std::size_t(T - 1));
    for (int t = 1; t < T; ++t) cls[std::size_t(t - 1)] = roll(0, t);
    return cls;
}

}  // namespace rollout
