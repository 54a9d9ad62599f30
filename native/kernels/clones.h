// NP_CLONES: build AVX-512, AVX2 and baseline copies of a memory-bound loop
// function and let the loader pick one from cpuid (GCC target_clones). Used
// for the elementwise kernels, which are not worth hand-written variants; the
// compute-bound kernels (GEMM, sparse) have explicit per-ISA files instead.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NP_NO_TARGET_CLONES)
#define NP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NP_CLONES
#endif
