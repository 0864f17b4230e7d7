// Multi-head self-attention over the stacked q | k | v projections:
// probs = softmax(q k^T / sqrt(d)), ctx = probs v, per image and head, by
// the kernel the model chose at load (cpu/dispatch.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../cpu/dispatch.hpp"
#include "../cpu/portable/attention.hpp"
#include "../cpu/thread_pool.hpp"
#include "../cpu/x86/attention.hpp"
#include "attention_args.hpp"

namespace vit::detail {

// All images and heads, spread over the pool in one contiguous range per
// thread (so each knows which head it takes next and can fetch its operands
// early). A kernel this CPU (or T) cannot run falls back (resolve_attention).
template <class T>
void attention(const attention_args<T>& a, attention_kernel want, thread_pool& pool) {
    [[maybe_unused]] const attention_kernel kernel = resolve_attention<T>(want);
    const std::int64_t total = a.batch * a.heads, parts = std::min<std::int64_t>(pool.size(), total);
    pool.parallel_for(parts, [&](std::int64_t t) {
        const std::int64_t end = total * (t + 1) / parts;
        for (std::int64_t bh = total * t / parts; bh < end; ++bh) {
            const std::int64_t b = bh / a.heads, h = bh % a.heads, next = bh + 1 < end ? bh + 1 : -1;
            if constexpr (std::is_same_v<T, float>) {
#ifdef VIT_X86_BF16
                if (kernel == attention_kernel::bf16) {
                    avx512::attention_head_bf16(a, b, h, next);
                    continue;
                }
#endif
#ifdef VIT_X86
                if (kernel == attention_kernel::f32) {
                    avx512::attention_head(a, b, h, next);
                    continue;
                }
#endif
            }
            (void)next;
            attention_head_portable(a, b, h);
        }
    });
}

}  // namespace vit::detail
