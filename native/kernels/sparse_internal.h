// The pieces of the CSR kernels shared between the loops (sparse.cpp: thread
// split, batch tiles, column blocks, beta) and the per-ISA micro-kernels
// (sparse_scalar/avx2/avx512.cpp).
//
// A micro-kernel handles one run of nonzeros of one CSR row against one batch
// tile of n <= tile floats (n >= 1) and handles its own edge (masked lanes),
// so the loops never see an ISA. Pointers to x / dx / y / dy are already
// offset to the tile's first batch column.
#pragma once

#include <cstdint>

#include "sparse.h"

namespace np {

// Forward, one output row: y[0:n] = beta*y[0:n] + sum_k vals[k] * x[idx[k]*ldx + 0:n].
// beta == 0 never reads y. The tile of y stays in registers across all nnz.
using SpmmUkernelFn = void (*)(int64_t nnz, const float* vals, const int32_t* idx, const float* x,
                               int64_t ldx, float beta, float* y, int n);

// Backward data, one row of dY: dx[idx[k]*lddx + 0:n] += vals[k] * dy[0:n].
// The tile of dy stays in registers; idx within a run are distinct.
using SpmmTUkernelFn = void (*)(int64_t nnz, const float* vals, const int32_t* idx, const float* dy,
                                float* dx, int64_t lddx, int n);

// Weight gradient, one row: out[k] = beta*out[k] + dy[0:n] . x[idx[k]*ldx + 0:n].
// beta == 0 never reads out.
using SddmmUkernelFn = void (*)(int64_t nnz, const int32_t* idx, const float* dy, const float* x,
                                int64_t ldx, float beta, float* out, int n);

struct SparseKernel {
  const char* name;  // <isa>, e.g. "avx512"
  SimdLevel level;
  int tile;  // the widest batch tile (floats) the micro-kernels take
  SpmmUkernelFn spmm;
  SpmmTUkernelFn spmm_t;
  SddmmUkernelFn sddmm;
};

#define NP_SPARSE_KERNEL(isa, level, TILE)                                                            \
  void spmm_f32_csr_ukernel_##TILE##_##isa(int64_t nnz, const float* vals, const int32_t* idx,       \
                                           const float* x, int64_t ldx, float beta, float* y, int n); \
  void spmm_t_f32_csr_ukernel_##TILE##_##isa(int64_t nnz, const float* vals, const int32_t* idx,     \
                                             const float* dy, float* dx, int64_t lddx, int n);       \
  void sddmm_f32_csr_ukernel_##TILE##_##isa(int64_t nnz, const int32_t* idx, const float* dy,        \
                                            const float* x, int64_t ldx, float beta, float* out,     \
                                            int n);                                                  \
  const SparseKernel& sparse_kernel_##isa();
#include "sparse_kernels.inc"
#undef NP_SPARSE_KERNEL

// The descriptor for a level (the best registered one not above it).
const SparseKernel& sparse_kernel_for(SimdLevel level);

}  // namespace np
