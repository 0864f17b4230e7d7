// nn.Linear on the product kernels, in float32, bf16 or int8.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../../error.hpp"
#include "../cpu/dispatch.hpp"
#include "../cpu/packed_linear.hpp"
#include "../cpu/packed_linear_bf16.hpp"
#include "../cpu/packed_linear_int8.hpp"
#include "../cpu/thread_pool.hpp"
#include "../index.hpp"

namespace vit::detail {

// The product a layer runs, one per weight format; each has the same
// run(a, m, lda, c, ldc, epilogue, pool). double has float64 products only.
template <class T>
using product_for = std::conditional_t<std::is_same_v<T, float>,
                                       std::variant<packed_linear<float>, packed_linear_bf16, packed_linear_int8>,
                                       std::variant<packed_linear<T>>>;

template <class T>
struct linear {
    product_for<T> product;
    std::vector<T> bias;

    // Deferred packing (float32 weights held as float32 in a mapped file, on
    // an AVX-512 CPU): the layer keeps pointers into the file and
    // pack_deferred() builds `product` later, on another thread. Until `packed`
    // is set, run() computes straight from the file with the direct kernel,
    // which gives the packed kernel's results bit for bit (gemm_direct.hpp): a
    // forward's output does not depend on how far packing has got.
    struct file_weights {
        std::vector<const float*> parts;  // each [part_out, in], rows contiguous
        index_t part_out = 0, in = 0;
        std::function<void()> release;  // once packed: the file's pages may go
    };
    file_weights file_;
    std::unique_ptr<std::atomic<bool>> packed;  // null: `product` is ready

    // Whether a layer can be left unpacked (set_deferred) here.
    static bool can_defer() { return direct_available<T>(); }

    linear() = default;
    linear(product_for<T> p, std::vector<T> b) : product(std::move(p)), bias(std::move(b)) {}

    // A layer run from the file's weights until pack_deferred().
    void set_deferred(std::vector<T> b, file_weights f) {
        bias = std::move(b);
        file_ = std::move(f);
        packed = std::make_unique<std::atomic<bool>>(false);
    }

    // Builds the packed layout of a deferred layer and publishes it; then the
    // layer's file pages may leave memory. Called once, by one thread.
    void pack_deferred() {
        if constexpr (std::is_same<T, float>::value) {
            if (!packed || packed->load()) return;
            const file_weights& f = file_;
            auto row = [&f](index_t j) { return f.parts[std::size_t(j / f.part_out)] + (j % f.part_out) * f.in; };
            product = packed_linear<T>(row, index_t(f.parts.size()) * f.part_out, f.in);
            packed->store(true, std::memory_order_release);
            if (f.release) f.release();
        }
    }

    // y[m, out] = act(x[m, in] * W^T + b)
    void run(const T* x, index_t m, index_t ldx, T* y, index_t ldy, thread_pool& pool,
             activation act = activation::none) const {
        epilogue<T> ep;
        ep.bias = bias.data();
        ep.act = act;
        compute(x, m, ldx, y, ldy, ep, pool);
    }

    // y[m, out] += (x[m, in] * W^T + b) * scale: a residual branch added to
    // its stream, times a layer scale [out] unless scale is null.
    void add_to(const T* x, index_t m, index_t ldx, T* y, index_t ldy, thread_pool& pool,
                const T* scale = nullptr) const {
        epilogue<T> ep;
        ep.bias = bias.data();
        ep.scale = scale;
        ep.residual = y;
        ep.ld_residual = ldy;
        compute(x, m, ldx, y, ldy, ep, pool);
    }

private:
    void compute(const T* x, index_t m, index_t ldx, T* y, index_t ldy, const epilogue<T>& ep,
                 thread_pool& pool) const {
        if constexpr (std::is_same<T, float>::value) {
            if (packed && !packed->load(std::memory_order_acquire)) {
                const direct_run_fn direct = kernels().direct_f32;  // set: can_defer() said so
                // Straight from the file, one stacked part at a time: columns
                // are independent, so this equals the stacked product.
                for (std::size_t p = 0; p < file_.parts.size(); ++p) {
                    const index_t off = index_t(p) * file_.part_out;
                    epilogue<T> part = ep;
                    part.bias = ep.bias + off;
                    if (ep.scale) part.scale = ep.scale + off;
                    if (ep.residual) part.residual = ep.residual + off;
                    direct(x, m, ldx, file_.parts[p], file_.part_out, file_.in, file_.in, y + off, ldy, part, pool);
                }
                return;
            }
        }
        std::visit([&](const auto& p) { p.run(x, m, ldx, y, ldy, ep, pool); }, product);
    }
};

}  // namespace vit::detail
