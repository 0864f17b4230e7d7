// Aligned storage and per-thread scratch: the memory the kernels compute in.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include <sys/mman.h>

namespace vit::detail {

// 64-byte aligned array (a cache line, a zmm register). Copyable so that the
// layers holding one stay regular values.
template <class T>
class aligned_array {
public:
    aligned_array() = default;
    explicit aligned_array(std::size_t n) { reset(n); }
    aligned_array(const aligned_array& o) {
        reset(o.n_);
        if (n_) std::memcpy(p_, o.p_, n_ * sizeof(T));
    }
    aligned_array(aligned_array&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    aligned_array& operator=(aligned_array o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    ~aligned_array() { std::free(p_); }

    // Zero-filled (padding lanes of packed weights must be zero), unless the
    // caller writes every element itself (zero = false): then no page is
    // touched here, and each is first faulted in by the thread that fills it.
    // huge = false: 4 KiB pages even for a large array.
    void reset(std::size_t n, bool zero = true, bool huge_pages = true) {
        std::free(p_);
        p_ = nullptr;
        n_ = 0;
        if (!n) return;
        // Large arrays go on 2 MiB-aligned transparent huge pages: fewer page
        // faults at load and fewer TLB misses in the products (BENCHMARKS.md).
        const std::size_t huge = std::size_t(2) << 20;
        const std::size_t align = huge_pages && n * sizeof(T) >= huge ? huge : 64;
        const std::size_t bytes = (n * sizeof(T) + align - 1) / align * align;
        p_ = static_cast<T*>(std::aligned_alloc(align, bytes));
        if (!p_) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        if (align == huge) ::madvise(static_cast<void*>(p_), bytes, MADV_HUGEPAGE);
#endif
        if (zero) std::memset(static_cast<void*>(p_), 0, bytes);
        n_ = n;
    }
    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

// The per-thread scratch buffers, by what they hold. Buffers live at the
// same time need different slots; the kernel_* slots belong to whichever
// product kernel runs (one at a time per thread).
enum class scratch : int {
    packed_a,        // a product's activations, packed for its micro-kernel
    saved_residual,  // output columns saved before a product overwrites them
    kernel_0,
    kernel_1,
    kernel_2,
    attention,  // one head's scores, probabilities and reordered operands
    count_
};

// Per-thread scratch that only grows: the products run on long-lived pool
// threads, so after the first call of the largest layer no call allocates.
inline void* thread_scratch(scratch slot, std::size_t bytes) {
    struct buffers {
        aligned_array<unsigned char> b[int(scratch::count_)];
    };
    static thread_local buffers tl;
    auto& buf = tl.b[int(slot)];
    if (buf.size() < bytes) buf.reset(bytes + bytes / 4);
    return buf.data();
}

}  // namespace vit::detail
