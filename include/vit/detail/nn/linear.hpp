// nn.Linear on the product kernels, in float32, bf16 or int8.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
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

    // Packing spread over the first calls (float32 weights held as float32
    // in a mapped file, on a CPU with the direct kernel): the layer keeps
    // pointers into the file and runs from them with the direct kernel, which
    // gives the packed kernel's results bit for bit (gemm_direct.hpp), until
    // a call packs it (try_pack, on that call's threads, before it runs) or
    // wait_packed() does (pack_now): outputs do not depend on how far packing
    // has got.
    struct file_weights {
        std::vector<const float*> parts;  // each [part_out, in], rows contiguous
        index_t part_out = 0, in = 0;
        std::function<void()> release;  // once packed: the file's pages may go
    };

    // Whether a layer can be left unpacked (set_deferred) here.
    static bool can_defer() { return direct_available<T>() && packed_linear<float>::can_pack_later(); }

    linear() = default;
    linear(product_for<T> p, std::vector<T> b) : product(std::move(p)), bias(std::move(b)) {}

    // A layer run from the file's weights until try_pack() or pack_now().
    void set_deferred(file_weights f) {
        deferred_ = std::make_unique<deferred>();
        deferred_->file = std::move(f);
        const file_weights& w = deferred_->file;
        for (index_t j = 0; j < index_t(w.parts.size()) * w.part_out; ++j)
            deferred_->rows.push_back(w.parts[std::size_t(j / w.part_out)] + (j % w.part_out) * w.in);
    }

    // Whether the layer runs on packed weights (or failed to pack and never will).
    bool is_packed() const { return !deferred_ || deferred_->state.load(std::memory_order_acquire) >= packed_state; }

    // The weights a deferred layer still has to pack (0 once packed or claimed).
    index_t unpacked_weights() const {
        return deferred_ && deferred_->state.load(std::memory_order_acquire) == unpacked_state
                   ? index_t(deferred_->rows.size()) * deferred_->file.in
                   : 0;
    }

    // Packs a deferred layer on the pool's threads unless someone else has
    // or is packing it; true if this call packed it. Thread-safe.
    bool try_pack(thread_pool& pool) const {
        if constexpr (std::is_same<T, float>::value) {
            if (!deferred_) return false;
            deferred& d = *deferred_;
            int s = unpacked_state;
            if (!d.state.compare_exchange_strong(s, packing_state, std::memory_order_acq_rel)) return false;
            try {
                d.product = packed_linear<float>::unpacked(index_t(d.rows.size()), d.file.in);
                d.product.pack(d.rows.data(), pool);
            } catch (...) {
                d.state.store(failed_state, std::memory_order_release);  // stays on the file: slower, same results
                return false;
            }
            d.state.store(packed_state, std::memory_order_release);
            if (d.file.release) d.file.release();
            return true;
        } else {
            (void)pool;
            return false;
        }
    }

    // Packs it now (try_pack), or waits while another thread packs it.
    void pack_now(thread_pool& pool) const {
        if (!deferred_ || try_pack(pool)) return;
        while (deferred_->state.load(std::memory_order_acquire) == packing_state) std::this_thread::yield();
    }

    // y = epilogue(x W^T) straight from the file, whatever the state; for tests.
    void run_unpacked(const T* x, index_t m, index_t ldx, T* y, index_t ldy, const epilogue<T>& ep,
                      thread_pool& pool) const {
        if constexpr (std::is_same<T, float>::value) {
            if (deferred_) return compute_direct(x, m, ldx, y, ldy, ep, pool);
        }
        compute(x, m, ldx, y, ldy, ep, pool);
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
    enum : int { unpacked_state, packing_state, packed_state, failed_state };
    struct deferred {
        file_weights file;
        std::vector<const float*> rows;  // output j's weights in the file
        std::atomic<int> state{unpacked_state};
        packed_linear<float> product;  // written by the one thread that packs, read after packed_state
    };
    std::unique_ptr<deferred> deferred_;  // null: `product` is ready

    void compute(const T* x, index_t m, index_t ldx, T* y, index_t ldy, const epilogue<T>& ep,
                 thread_pool& pool) const {
        if constexpr (std::is_same<T, float>::value) {
            if (deferred_) {
                if (deferred_->state.load(std::memory_order_acquire) == packed_state)
                    return deferred_->product.run(x, m, ldx, y, ldy, ep, pool);
                return compute_direct(x, m, ldx, y, ldy, ep, pool);
            }
        }
        std::visit([&](const auto& p) { p.run(x, m, ldx, y, ldy, ep, pool); }, product);
    }

    // Straight from the file, one stacked part at a time: columns are
    // independent, so this equals the stacked product.
    void compute_direct(const float* x, index_t m, index_t ldx, float* y, index_t ldy, const epilogue<float>& ep,
                        thread_pool& pool) const {
        const direct_run_fn direct = kernels().direct_f32;  // set: can_defer() said so
        const file_weights& f = deferred_->file;
        for (std::size_t p = 0; p < f.parts.size(); ++p) {
            const index_t off = index_t(p) * f.part_out;
            epilogue<float> part = ep;
            part.bias = ep.bias + off;
            if (ep.scale) part.scale = ep.scale + off;
            if (ep.residual) part.residual = ep.residual + off;
            direct(x, m, ldx, f.parts[p], f.part_out, f.in, f.in, y + off, ldy, part, pool);
        }
    }
};

}  // namespace vit::detail
