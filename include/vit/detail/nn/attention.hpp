// Multi-head self-attention over the stacked q | k | v projections:
// probs = softmax(q k^T / sqrt(d)), ctx = probs v, per image and head, by
// the kernel the model chose at load (cpu/dispatch.hpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../cpu/attention_args.hpp"
#include "../cpu/dispatch.hpp"
#include "../cpu/thread_pool.hpp"

namespace vit::detail {

// All images and heads, spread over the pool in one contiguous range per
// thread (so each knows which head it takes next and can fetch its operands
// early). A kernel this CPU (or T) cannot run falls back (resolve_attention).
template <class T>
void attention(const attention_args<T>& a, attention_kernel want, thread_pool& pool) {
    const attention_head_fn<T> head = attention_head_for<T>(want);
    const std::int64_t total = a.batch * a.heads, parts = std::min<std::int64_t>(pool.size(), total);
    pool.parallel_for(parts, [&](std::int64_t t) {
        const std::int64_t end = total * (t + 1) / parts;
        for (std::int64_t bh = total * t / parts; bh < end; ++bh)
            head(a, bh / a.heads, bh % a.heads, bh + 1 < end ? bh + 1 : -1);
    });
}

}  // namespace vit::detail
