// bf16 linear layer: weights stored as bf16, activations rounded to bf16 per
// block, products accumulated in fp32 by AVX512_BF16's vdpbf16ps (two k
// values per 32-bit lane, twice the fp32 FMA rate). Same epilogue as fp32.
#pragma once

#include <cstdint>
#include <cstring>

#include "gemm.hpp"

#ifdef VIT_GEMM_X86
#define VIT_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,bmi,bmi2")))
#endif

namespace vit::detail {

// Round to nearest even, as vcvtne2ps2bf16 and PyTorch's .to(bfloat16) do.
inline std::uint16_t to_bf16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
}
inline float from_bf16(std::uint16_t h) {
    const std::uint32_t u = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline float round_bf16(float f) { return from_bf16(to_bf16(f)); }

#ifdef VIT_GEMM_X86
namespace avx512 {

template <int MR>
VIT_AVX512_BF16 void bf16_tile(int kc, const std::uint16_t* a, const std::uint16_t* b, float* c, std::int64_t ldc,
                               bool load_c, __mmask16 m0, __mmask16 m1, const tile_prefetch& pf);

struct bf16_policy {
    using a_t = std::uint16_t;
    using w_t = std::uint16_t;
    static constexpr bool coarse_gelu = true;  // the next layer rounds its input to bf16
    static constexpr int kstep = 2;
    static constexpr int mr = 14;
    static constexpr int kc = 512;  // B micro-panel 512 x 32 bf16 = 32 KiB (L1)
    static constexpr int mc = 192;  // A k-block 192 x 512 bf16 = 192 KiB (L2)
    static constexpr int chunk_panels = 16;
    using tile_fn = void (*)(int, const std::uint16_t*, const std::uint16_t*, float*, std::int64_t, bool, __mmask16,
                             __mmask16, const tile_prefetch&);

    // Rows of kc floats -> bf16 rows of stride kc (an odd kc gets a zero
    // partner: masked loads fill with zeros).
    VIT_AVX512_BF16 static void pack_a(const float* a, std::int64_t lda, std::int64_t rows, int kc_,
                                       std::uint16_t* dst) {
        for (std::int64_t i = 0; i < rows; ++i) {
            const float* src = a + i * lda;
            std::uint16_t* out = dst + i * kc;
            for (int k = 0; k < kc_; k += 32) {
                const int left = kc_ - k;
                const __mmask16 lo = left >= 16 ? 0xffff : __mmask16((1u << left) - 1);
                const __mmask16 hi = left >= 32 ? 0xffff : left <= 16 ? 0 : __mmask16((1u << (left - 16)) - 1);
                const __m512 x0 = _mm512_maskz_loadu_ps(lo, src + k);
                const __m512 x1 = _mm512_maskz_loadu_ps(hi, src + k + 16);
                _mm512_storeu_si512(out + k, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
            }
        }
    }
    static tile_fn tile_for(int rows) {
        static constexpr tile_fn table[] = {nullptr,       bf16_tile<1>,  bf16_tile<2>,  bf16_tile<3>,  bf16_tile<4>,
                                            bf16_tile<5>,  bf16_tile<6>,  bf16_tile<7>,  bf16_tile<8>,  bf16_tile<9>,
                                            bf16_tile<10>, bf16_tile<11>, bf16_tile<12>, bf16_tile<13>, bf16_tile<14>};
        static_assert(sizeof(table) / sizeof(table[0]) == mr + 1, "one tile per row count");
        return table[rows];
    }
};

template <int MR>
VIT_AVX512_BF16 void bf16_tile(int kc, const std::uint16_t* a, const std::uint16_t* b, float* c, std::int64_t ldc,
                               bool load_c, __mmask16 m0, __mmask16 m1, const tile_prefetch& pf) {
    constexpr int KC = bf16_policy::kc;
    prefetch_c(pf, ldc);
    // Fresh accumulators per k-block, added to C at the end (as the fp32
    // tile: two-level summation, and no wait on C before the first product).
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    const int steps = (kc + 1) / 2;
#pragma GCC unroll 2
    for (int s = 0; s < steps; ++s) {
        if (s < pf.b_lines) _mm_prefetch(reinterpret_cast<const char*>(pf.b) + 64 * s, _MM_HINT_T0);
        const __m512i b0 = _mm512_load_si512(b + 64 * s);
        const __m512i b1 = _mm512_load_si512(b + 64 * s + 32);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            std::int32_t pair;
            std::memcpy(&pair, a + i * KC + 2 * s, 4);
            const __m512i ai = _mm512_set1_epi32(pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], (__m512bh)ai, (__m512bh)b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], (__m512bh)ai, (__m512bh)b1);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        if (load_c) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c + i * ldc));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
        }
        _mm512_mask_storeu_ps(c + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c1[i]);
    }
}

}  // namespace avx512
#endif

// A Linear layer with bf16 weights: the fp32 weight [n, k] is rounded to bf16
// at load. Error against the fp32 product: each term a*w becomes
// a(1+d1) w(1+d2) with |d| <= 2^-9, so |c - c_fp32| <= (2^-8 + 2^-18) sum|a w|
// plus fp32 accumulation; typically ~2^-9 sqrt(k) rms(a w).
class packed_linear_bf16 {
public:
    packed_linear_bf16() = default;
    packed_linear_bf16(const float* w_nk, std::int64_t n, std::int64_t k, gemm_kernel want = gemm_kernel::automatic)
        : n_(n), k_(k) {
#ifdef VIT_GEMM_X86
        if (k > 0 && want != gemm_kernel::portable && want != gemm_kernel::avx2 && cpu_has_avx512_bf16()) {
            kernel_ = gemm_kernel::avx512;
            packed_.reset(static_cast<std::size_t>(avx512::packed_size<avx512::bf16_policy>(n, k)));
            avx512::pack_weights<avx512::bf16_policy>(
                n, k, packed_.data(), [&](std::int64_t j, std::int64_t kk) { return to_bf16(w_nk[j * k + kk]); });
            return;
        }
#endif
        (void)want;  // only the x86 kernels have a choice
        w_.resize(n, k);
        for (std::int64_t j = 0; j < n; ++j)
            for (std::int64_t kk = 0; kk < k; ++kk) w_(j, kk) = round_bf16(w_nk[j * k + kk]);
    }

    std::int64_t n() const { return n_; }
    std::int64_t k() const { return k_; }
    gemm_kernel kernel() const { return kernel_; }

    void run(const float* a, std::int64_t m, std::int64_t lda, float* c, std::int64_t ldc, const epilogue<float>& ep,
             thread_pool& pool) const {
        if (m <= 0 || n_ <= 0) return;
#ifdef VIT_GEMM_X86
        if (kernel_ == gemm_kernel::avx512) {
            pool.balanced_ranges((n_ + 31) / 32, [&](std::int64_t p0, std::int64_t p1) {
                avx512::run_panels<avx512::bf16_policy>(a, m, lda, packed_.data(), n_, k_, c, ldc, ep, p0, p1);
            });
            return;
        }
#endif
        // Portable: the same rounding of the activations, then fp32.
        float* ar = static_cast<float*>(thread_scratch(2, sizeof(float) * std::max<std::int64_t>(1, m * k_)));
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t kk = 0; kk < k_; ++kk) ar[i * k_ + kk] = round_bf16(a[i * lda + kk]);
        eigen_linear(w_, ar, m, k_, c, ldc, ep, pool);
    }

private:
    std::int64_t n_ = 0, k_ = 0;
    gemm_kernel kernel_ = gemm_kernel::portable;
    row_matrix<float> w_;
    aligned_array<std::uint16_t> packed_;
};

}  // namespace vit::detail
