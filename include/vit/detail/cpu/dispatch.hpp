// The one place that knows what this CPU runs and picks the kernels: CPU
// features are read here (once), and a model's kernels are chosen here at
// load. Kernels and layers run what they are given.
//
// A new instruction set is a folder beside x86/ with its kernels and a
// features header, plus one block in detect_cpu() and in the resolvers below.
#pragma once

#include <type_traits>

#include "arch.hpp"
#include "x86/features.hpp"

namespace vit::detail {

// Which code computes a product. `automatic` is the fastest the CPU runs; the
// others exist so tests can compare paths (a request the CPU cannot run falls
// back to the best it can).
enum class gemm_kernel { automatic, portable, avx2, avx512 };

// Which attention kernel runs: the portable one (Eigen; double, CPUs without
// AVX-512), the fused fp32 one, or the fused bf16 one (bf16 compute mode).
enum class attention_kernel { portable, f32, bf16 };

struct cpu_features {
    bool avx2 = false, avx512 = false, avx512_bf16 = false, avx512_vnni = false;
};

// Building with VIT_FORCE_PORTABLE defined makes an x86 CPU report none of
// its features, so everything runs the portable kernels, as on aarch64: a way
// to test that path natively (and to time it) without an emulator.
inline cpu_features detect_cpu() {
    cpu_features c;
#if defined(VIT_X86) && !defined(VIT_FORCE_PORTABLE)
    const x86::features f = x86::detect();
    c.avx2 = f.avx2;
    c.avx512 = f.avx512;
    c.avx512_bf16 = f.avx512_bf16;
    c.avx512_vnni = f.avx512_vnni;
#endif
    return c;
}

// Detected once per process.
inline const cpu_features& cpu() {
    static const cpu_features c = detect_cpu();
    return c;
}

// The float32 product kernel that runs for a request.
inline gemm_kernel resolve_kernel(gemm_kernel want) {
    const gemm_kernel best = cpu().avx512 ? gemm_kernel::avx512 : cpu().avx2 ? gemm_kernel::avx2 : gemm_kernel::portable;
    if (want == gemm_kernel::automatic) return best;
    if (want == gemm_kernel::avx512 && best != gemm_kernel::avx512) return best;
    if (want == gemm_kernel::avx2 && best == gemm_kernel::portable) return best;
    return want;
}

// The bf16 and int8 products have an AVX-512 kernel (AVX512_BF16, VNNI) and
// the portable one.
inline gemm_kernel resolve_bf16_kernel(gemm_kernel want) {
    const bool fast = want != gemm_kernel::portable && want != gemm_kernel::avx2 && cpu().avx512_bf16;
    return fast ? gemm_kernel::avx512 : gemm_kernel::portable;
}
inline gemm_kernel resolve_int8_kernel(gemm_kernel want) {
    const bool fast = want != gemm_kernel::portable && want != gemm_kernel::avx2 && cpu().avx512_vnni;
    return fast ? gemm_kernel::avx512 : gemm_kernel::portable;
}

// The attention kernel that runs for a request: bf16 falls back to the fused
// fp32 kernel, that to the portable one; only float has fused kernels.
template <class T>
attention_kernel resolve_attention(attention_kernel want) {
    if (!std::is_same_v<T, float>) return attention_kernel::portable;
    if (want == attention_kernel::bf16 && cpu().avx512_bf16) return want;
    return want != attention_kernel::portable && cpu().avx512 ? attention_kernel::f32 : attention_kernel::portable;
}
template <class T>
bool attention_available(attention_kernel kernel) {
    return resolve_attention<T>(kernel) == kernel;
}

// Whether LayerNorm's AVX-512 row runs for T.
template <class T>
bool layer_norm_vectorized() {
    return std::is_same_v<T, float> && cpu().avx512;
}

// Whether SwiGLU's gate runs vectorised (AVX-512) for T.
template <class T>
bool swiglu_vectorized() {
    return std::is_same_v<T, float> && cpu().avx512;
}

// Whether a float32 layer can run straight from the checkpoint's mapped
// rows (the direct kernel) until its packed copy is ready.
template <class T>
bool direct_available() {
    return std::is_same_v<T, float> && cpu().avx512;
}

}  // namespace vit::detail
