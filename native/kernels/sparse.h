// Sparse products on CSR weights against feature-major activations
// (features x batch, row-major with leading dimension ld >= batch).
//
// CSR layout (DESIGN.md): int64 row pointers (rows + 1), int32 column indices
// sorted within each row, float32 values; optimizer slots are arrays aligned
// with `values`, so sparse optimizer updates reuse the dense update kernels.
//
//   forward          Y[rows x B]  = beta*Y  + W * X          X: cols x B      spmm
//   backward (data)  dX[cols x B] = beta*dX + W^T * dY       dY: rows x B     spmm_t
//                    (training multiplies by W^T as spmm over W's transposed
//                    pattern instead, see CsrTranspose; spmm_t is the fallback)
//   weight gradient  dW[k] = beta*dW[k] + dY[row(k), :] . X[col(k), :]       sddmm
//
// beta == 0 overwrites (old contents, even NaN, are ignored).
#pragma once

#include <cstdint>
#include <vector>

#include "simd_level.h"

namespace np {

class ThreadPool;

struct CsrView {
  int64_t rows = 0;
  int64_t cols = 0;
  const int64_t* indptr = nullptr;   // rows + 1 entries, indptr[0] == 0
  const int32_t* indices = nullptr;  // nnz entries, each in [0, cols), sorted per row
  const float* values = nullptr;     // nnz entries
  int64_t nnz() const { return rows ? indptr[rows] : 0; }
};

void spmm_f32_csr(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy, int64_t batch,
                  ThreadPool* pool);
void spmm_t_f32_csr(const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx, int64_t lddx,
                    int64_t batch, ThreadPool* pool);
void sddmm_f32_csr(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                   int64_t batch, float beta, float* grad_values, ThreadPool* pool);

// The pattern of W^T as CSR (cols x rows): entry j is W's entry perm[j], and
// indices[j] its row in W (ascending within each column). The backward pass
// multiplies by W^T as a gather over this (each dX row accumulates in
// registers, like the forward product) instead of scattering through W's
// rows, which costs a read-modify-write of a dX row per stored weight.
struct CsrTranspose {
  int64_t rows = 0, cols = 0, nnz = 0;  // W's shape and entries it was built for
  std::vector<int64_t> indptr;         // cols + 1
  std::vector<int32_t> indices;        // nnz
  std::vector<int32_t> perm;           // nnz
  int64_t bytes() const {
    return static_cast<int64_t>(indptr.size() * sizeof(int64_t) + (indices.size() + perm.size()) * sizeof(int32_t));
  }
};

// Builds the transpose of a pattern (counting sort by column; stable, so rows
// stay ascending). Needs nnz < 2^31 (perm is int32).
void build_csr_transpose(const CsrView& w, CsrTranspose* out);

// The same at an explicit SIMD level (tests, benches).
void spmm_f32_csr_at(SimdLevel level, const CsrView& w, const float* x, int64_t ldx, float beta, float* y,
                     int64_t ldy, int64_t batch, ThreadPool* pool);
void spmm_t_f32_csr_at(SimdLevel level, const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx,
                       int64_t lddx, int64_t batch, ThreadPool* pool);
void sddmm_f32_csr_at(SimdLevel level, const CsrView& pattern, const float* dy, int64_t lddy, const float* x,
                      int64_t ldx, int64_t batch, float beta, float* grad_values, ThreadPool* pool);

// Naive references (double accumulators), what every fast variant is tested against.
void spmm_f32_csr_naive(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                        int64_t batch);
void spmm_t_f32_csr_naive(const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx, int64_t lddx,
                          int64_t batch);
void sddmm_f32_csr_naive(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                         int64_t batch, float beta, float* grad_values);

// The weight density below which a CSR training step (spmm, the W^T product
// through the transpose, sddmm) beats the dense one (three GEMMs) for a rows x cols layer at this batch, on
// this machine, measured in a few milliseconds. Used as the default
// dense <-> CSR switching threshold.
double measure_csr_crossover_density(int64_t rows, int64_t cols, int64_t batch, ThreadPool* pool);

}  // namespace np
