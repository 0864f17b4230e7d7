// Which instruction-set folders this compiler can build: the one place that
// defines the platform macros the kernel folders are guarded by.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// x86 kernels are compiled with target attributes, so a binary built without
// -march flags carries them and runs them only where the CPU has them.
#define VIT_X86 1
#define VIT_AVX2 __attribute__((target("avx2,fma")))
#define VIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,bmi,bmi2")))
#define VIT_AVX512_INLINE VIT_AVX512 inline __attribute__((always_inline))
#define VIT_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,bmi,bmi2")))
#if __GNUC__ >= 11 || defined(__clang__)
// AVX512_BF16 intrinsics (vdpbf16ps) arrived in GCC 11.
#define VIT_X86_BF16 1
#define VIT_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,bmi,bmi2")))
#endif
#endif
