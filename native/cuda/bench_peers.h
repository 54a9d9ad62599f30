// Timings for `npm run bench -- --device cuda` (bench/cuda.ts): our kernels and,
// when libcusparse loads at run time, cusparseSpMM on the same matrices. Plain
// C++ (no CUDA header); each function allocates its own device data, warms up,
// and returns the mean milliseconds per call over `reps` (stream synchronised
// around the timed loop).
#pragma once

#include <cstdint>
#include <string>

namespace np::cuda {

// C[m x n] = A[m x k] B[k x n] through gemm_f32_cuda (cuBLAS when loaded) or,
// with tiled, our own kernel.
double bench_gemm_ms(int64_t m, int64_t n, int64_t k, int reps, bool tiled);

// Who computes the product in bench_spmm_ms: ours as the model runs it
// (spmm_f32_csr_cuda, SpmmKernel::kAuto), ours with one kernel forced, or
// cusparseSpMM (CSR int32 indices, row-major dense, its default algorithm).
enum class SpmmBenchImpl { kOurs, kOursRows, kOursWarp, kOursStaged, kCusparse };

// Y[rows x batch] = W X for a random CSR W (rows x cols, density), X feature-major.
// Returns -1 when the implementation is not available (cuSPARSE not loaded, or
// a forced kernel that cannot run on these operands: kernels.h SpmmKernel).
double bench_spmm_ms(int64_t rows, int64_t cols, double density, int64_t batch, int reps, SpmmBenchImpl impl);

// "cusparse (libcusparse.so.12)" or "unavailable (<why>)".
std::string cusparse_status();

}  // namespace np::cuda
