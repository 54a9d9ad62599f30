// Dense single-precision matrix products for training.
//
// All matrices are row-major with explicit leading dimensions (row strides), so
// a layer with spare capacity (row stride > columns) is used in place.
//
//   C[M x N] = beta * C + op(A)[M x K] * op(B)[K x N]
//
// op(A) is A (stored M x K, lda >= K) or A^T (A stored K x M, lda >= M); the
// same for B. With feature-major activations (features x batch) the three
// training products are:
//   forward          Y[out x B]  = W[out x in]   * X[in x B]       gemm(N, N)
//   backward (data)  dX[in x B]  = W^T           * dY[out x B]     gemm(T, N)
//   weight gradient  dW[out x in] = dY[out x B]  * X^T             gemm(N, T)
//
// beta == 0 means C is overwritten (its old contents, even NaN, are ignored).
#pragma once

#include <cstdint>

#include "simd_level.h"

namespace np {

class ThreadPool;

enum class Trans : int { kNo = 0, kYes = 1 };

// The fast path: packing + register-blocked micro-kernels for the active SIMD
// level, parallel over pool (nullptr = single thread).
void gemm_f32(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc, ThreadPool* pool);

// Same, at an explicit SIMD level (tests and benches); level must be supported.
void gemm_f32_at(SimdLevel level, Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc, ThreadPool* pool);

// The naive triple loop (double accumulator): the reference every fast variant
// is tested against.
void gemm_f32_naive(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace np
