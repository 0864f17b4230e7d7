// Linear layers: C = act(A * W^T + bias) * scale + residual, with W prepared once at load.
//
// packed_linear<T> runs the float32 (or float64) product the kernel table
// (dispatch.hpp) gives it at construction: AVX-512, AVX2+FMA or plain C++
// (the only one for double). packed_linear_bf16 (packed_linear_bf16.hpp) and
// packed_linear_int8 (packed_linear_int8.hpp) have the same run() and
// epilogue. Threads split the output columns (thread_pool::balanced_ranges
// over the weight panels), so each streams its share of the weights and packs
// the activations it needs; shares follow the threads' measured speeds, and
// every output column is computed alike whoever computes it, so results do not
// depend on the split. Scratch is per thread and reused, so calls do not
// allocate once the largest layer has run on each thread.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "dispatch.hpp"
#include "epilogue.hpp"
#include "memory.hpp"
#include "thread_pool.hpp"

namespace vit::detail {

// A Linear layer's weight [n, k] (PyTorch's [out, in]) laid out for the product.
template <class T>
class packed_linear {
public:
    packed_linear() = default;
    packed_linear(const T* w_nk, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : packed_linear([w_nk, k](std::int64_t j) { return w_nk + j * k; }, n, k, want) {}

    // From rows that need not form one block (stacked layers, tensors in a
    // memory-mapped file): row(j) points at the k weights of output j. Packs
    // straight from them, so loading makes no intermediate copy.
    template <class RowFn, class = std::enable_if_t<std::is_invocable_r_v<const T*, RowFn&, std::int64_t>>>
    packed_linear(RowFn row, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        // k == 0 (a product of nothing) is left to the portable kernel.
        : n_(n), k_(k), config_(&gemm_for<T>(k > 0 ? want : gemm_kernel::portable)) {
        std::vector<const T*> rows(static_cast<std::size_t>(n));  // row(j) once, not per element
        for (std::int64_t j = 0; j < n; ++j) rows[std::size_t(j)] = row(j);
        packed_.reset(static_cast<std::size_t>(config_->packed_size(n, k)), !config_->pack_panels);
        config_->pack(rows.data(), n, k, packed_.data());
    }

    // Room for a layer packed later by pack(), on the automatic kernel,
    // which must pack by panel ranges (can_pack_later()). On 4 KiB pages:
    // faulted in as it is filled (BENCHMARKS.md: 2 MiB pages cost more there).
    static bool can_pack_later() { return gemm_for<T>(gemm_kernel::automatic).pack_panels != nullptr; }
    static packed_linear unpacked(std::int64_t n, std::int64_t k) {
        packed_linear p;
        p.n_ = n;
        p.k_ = k;
        p.config_ = &gemm_for<T>(gemm_kernel::automatic);
        p.packed_.reset(static_cast<std::size_t>(p.config_->packed_size(n, k)), false, false);
        return p;
    }
    // Packs rows (rows[j]: output j's k weights) on the pool's threads.
    void pack(const T* const* rows, thread_pool& pool) {
        const gemm_config<T>& g = *config_;
        pool.parallel_for(pool.size(), [&](std::int64_t t) {
            const std::int64_t panels = (n_ + g.nr - 1) / g.nr;
            g.pack_panels(rows, n_, k_, packed_.data(), panels * t / pool.size(), panels * (t + 1) / pool.size());
        });
    }
    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return config_ ? config_->kernel : gemm_kernel::portable; }

    // a: [m, k] with row stride lda; c: [m, n] with row stride ldc. Safe to call
    // concurrently (each thread's scratch is its own).
    void run(const T* a, std::int64_t m, std::int64_t lda, T* c, std::int64_t ldc, const epilogue<T>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
        const gemm_config<T>& g = *config_;
        pool.balanced_ranges((n_ + g.nr - 1) / g.nr, [&](std::int64_t p0, std::int64_t p1) {
            g.run_panels(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
        });
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    const gemm_config<T>* config_ = nullptr;  // a row of the kernel table
    aligned_array<T> packed_;                 // panels of the kernel's width
};

}  // namespace vit::detail
