// bf16 linear layer: weights stored as bf16, activations rounded to bf16 per
// block, products accumulated in fp32 by AVX512_BF16's vdpbf16ps (two k
// values per 32-bit lane). What it buys is half the weight memory: on the
// CPUs measured it is no faster than the fp32 product (BENCHMARKS.md). Same
// epilogue as fp32.
#pragma once

#include <cstdint>

#include "dispatch.hpp"
#include "epilogue.hpp"
#include "memory.hpp"
#include "thread_pool.hpp"

namespace vit::detail {

// A Linear layer with bf16 weights: the fp32 weight [n, k] is rounded to bf16
// at load. Error against the fp32 product: each term a*w becomes
// a(1+d1) w(1+d2) with |d| <= 2^-9, so |c - c_fp32| <= (2^-8 + 2^-18) sum|a w|
// plus fp32 accumulation; typically ~2^-9 sqrt(k) rms(a w).
class packed_linear_bf16 {
public:
    packed_linear_bf16() = default;
    packed_linear_bf16(const float* w_nk, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : n_(n), k_(k), config_(&bf16_for(k > 0 ? want : gemm_kernel::portable)) {
        packed_.reset(static_cast<std::size_t>(config_->packed_bytes(n, k)));
        config_->pack(w_nk, n, k, packed_.data());
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return config_ ? config_->kernel : gemm_kernel::portable; }

    void run(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc, const epilogue<float>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
        config_->run(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, pool);
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    const bf16_config* config_ = nullptr;  // a row of the kernel table
    aligned_array<unsigned char> packed_;  // the kernel's layout (bf16; rounded floats on the portable kernel)
};

}  // namespace vit::detail
