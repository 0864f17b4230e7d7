// Where a forward pass spends its time, stage by stage.
#pragma once

#include <array>
#include <chrono>

namespace vit {

// Wall-clock seconds per stage of the forward pass, added up over the calls
// given the same profile (forward_options::profile). For finding where time
// goes; costs a clock read per stage.
struct profile {
    double embeddings = 0;        // patch projection, CLS, position embeddings
    double layer_norm = 0;        // the 2 per layer and the final one
    double qkv = 0;               // query/key/value projections
    double attention = 0;         // softmax(q k^T / sqrt(d)) v, all heads
    double attention_output = 0;  // attention.output.dense + residual
    double mlp_up = 0;            // intermediate.dense + activation
    double mlp_down = 0;          // output.dense + residual
    double head = 0;              // CLS extraction, classifier or pooler, outputs
    int calls = 0;

    // The stages in forward order, by name: the one list that add(), total()
    // and reports (vit-bench --profile) go through.
    struct stage {
        const char* name;
        double profile::*seconds;
    };
    static const std::array<stage, 8>& stages() {
        static const std::array<stage, 8> list = {{{"embeddings", &profile::embeddings},
                                                   {"layer_norm", &profile::layer_norm},
                                                   {"qkv", &profile::qkv},
                                                   {"attention", &profile::attention},
                                                   {"attention_output", &profile::attention_output},
                                                   {"mlp_up", &profile::mlp_up},
                                                   {"mlp_down", &profile::mlp_down},
                                                   {"head", &profile::head}}};
        return list;
    }
    // Adds another profile's stage times, scaled (calls are not added).
    void add(const profile& o, double scale) {
        for (const stage& s : stages()) this->*s.seconds += scale * (o.*s.seconds);
    }
    double total() const {
        double sum = 0;
        for (const stage& s : stages()) sum += this->*s.seconds;
        return sum;
    }
};

namespace detail {
// Charges the time since the previous lap to one field of a profile.
class stage_clock {
public:
    explicit stage_clock(vit::profile* p) : p_(p) {
        if (p_) last_ = std::chrono::steady_clock::now();
    }
    void lap(double vit::profile::*field) {
        if (!p_) return;
        const auto now = std::chrono::steady_clock::now();
        p_->*field += std::chrono::duration<double>(now - last_).count();
        last_ = now;
    }

private:
    vit::profile* p_;
    std::chrono::steady_clock::time_point last_;
};
}  // namespace detail

}  // namespace vit
