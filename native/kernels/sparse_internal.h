// The pieces of the CSR kernels shared between the loops (sparse.cpp: thread
// split, batch tiles, column blocks, beta) and the per-ISA micro-kernels
// (sparse_scalar/avx2/avx512.cpp).
//
// A micro-kernel handles one column block of a range of CSR rows against one
// batch tile of n <= tile floats (n >= 1) and its own edge (masked lanes), so
// the loops never see an ISA and the tile width is dispatched once per block,
// not per row. Pointers to x / dx / y / dy are offset to the tile's first
// batch column.
#pragma once

#include <cstdint>

#include "sparse.h"

namespace np {

// One column block of a range of CSR rows: row r (0 <= r < nrows) runs from
// cursor[r] (or ptr[r] when cursor is null: whole rows) up to ptr[r + 1] or
// its first index >= col_end, whichever comes first; the kernel moves
// cursor[r] past the run, ready for the next block. ptr, cursor and the row
// pointers of y/dy are offset to the range's first row; indices and values
// (and sddmm's output) are indexed by global nonzero position.
struct CsrBlock {
  int64_t nrows;
  const int64_t* ptr;  // nrows + 1 row pointers
  int64_t* cursor;     // nrows positions, or nullptr
  int32_t col_end;
  const int32_t* indices;
  const float* values;
  int64_t expected_run = 0;  // mean nonzeros per row in this block: how much to prefetch
};

// The end of row r's run in block b, from *start; advances the cursor.
inline int64_t csr_block_run(const CsrBlock& b, int64_t r, int64_t* start) {
  if (b.cursor == nullptr) {
    *start = b.ptr[r];
    return b.ptr[r + 1];
  }
  const int64_t s = b.cursor[r], end = b.ptr[r + 1];
  int64_t e = s;
  while (e < end && b.indices[e] < b.col_end) ++e;
  b.cursor[r] = e;
  *start = s;
  return e;
}

// Column-blocked runs start wherever the previous block left each row: one new
// place in W per row and block, which the hardware prefetchers cannot follow
// across hundreds of rows, so a W too big for L3 costs a DRAM miss per visit.
// The block loops prefetch the run kCsrPrefetchRows rows ahead instead.
constexpr int64_t kCsrPrefetchRows = 12;

inline void csr_block_prefetch(const CsrBlock& b, int64_t r) {
  if (b.cursor == nullptr || r >= b.nrows) return;
  const int64_t k = b.cursor[r];
  const int64_t lines = b.expected_run / 16 + 1 < 8 ? b.expected_run / 16 + 1 : 8;
  for (int64_t l = 0; l < lines; ++l) {
    __builtin_prefetch(b.indices + k + 16 * l);
    __builtin_prefetch(b.values + k + 16 * l);
  }
}

// Row kernels passed to for_each_block_row are inlined into it (a call per
// row costs ~10% at 99% sparsity, where rows hold a handful of nonzeros).
#define NP_INLINE_LAMBDA __attribute__((always_inline))

// The loop over one column block's rows that every micro-kernel runs:
// run(b, r, &start) finds row r's run (csr_block_run, or an ISA's faster scan)
// and returns its end; row(r, start, end) is the ISA's row kernel. A row whose
// run is empty is skipped when skip_empty (spmm with beta == 1, spmm_t and
// sddmm always); spmm must still scale or clear its output row otherwise.
template <typename Run, typename Row>
__attribute__((always_inline)) inline void for_each_block_row(const CsrBlock& b, bool skip_empty, Run&& run, Row&& row) {
  for (int64_t r = 0; r < b.nrows; ++r) {
    csr_block_prefetch(b, r + kCsrPrefetchRows);
    int64_t s;
    const int64_t e = run(b, r, &s);
    if (s == e && skip_empty) continue;
    row(r, s, e);
  }
}

// Calls fn<NV, MASKED>(args..., mask) for NV = nv in 1..8 vectors and the
// edge flag: the per-ISA files dispatch the tile width once per block with it
// (their NP_SPARSE_DISPATCH computes nv, the edge mask and the flag).
#define NP_SPARSE_SWITCH(fn, nv, masked, mask, ...)                  \
  switch ((nv) * 2 + ((masked) ? 1 : 0)) {                           \
    case 2: fn<1, false>(__VA_ARGS__, mask); break;                  \
    case 3: fn<1, true>(__VA_ARGS__, mask); break;                   \
    case 4: fn<2, false>(__VA_ARGS__, mask); break;                  \
    case 5: fn<2, true>(__VA_ARGS__, mask); break;                   \
    case 6: fn<3, false>(__VA_ARGS__, mask); break;                  \
    case 7: fn<3, true>(__VA_ARGS__, mask); break;                   \
    case 8: fn<4, false>(__VA_ARGS__, mask); break;                  \
    case 9: fn<4, true>(__VA_ARGS__, mask); break;                   \
    case 10: fn<5, false>(__VA_ARGS__, mask); break;                 \
    case 11: fn<5, true>(__VA_ARGS__, mask); break;                  \
    case 12: fn<6, false>(__VA_ARGS__, mask); break;                 \
    case 13: fn<6, true>(__VA_ARGS__, mask); break;                  \
    case 14: fn<7, false>(__VA_ARGS__, mask); break;                 \
    case 15: fn<7, true>(__VA_ARGS__, mask); break;                  \
    case 16: fn<8, false>(__VA_ARGS__, mask); break;                 \
    default: fn<8, true>(__VA_ARGS__, mask); break;                  \
  }

// Backward data for a batch of one: masked one-lane vector stores defeat
// store-to-load forwarding when the next row updates the same dX element, so
// the SIMD variants take this scalar loop for n == 1.
inline void spmm_t_run_1(int64_t nnz, const float* vals, const int32_t* idx, float dy, float* dx, int64_t lddx) {
  for (int64_t k = 0; k < nnz; ++k) dx[static_cast<int64_t>(idx[k]) * lddx] += vals[k] * dy;
}

// Forward: y[r, 0:n] = beta*y[r, 0:n] + sum_k values[k] * x[indices[k]*ldx + 0:n] over the
// row's run; the tile of y stays in registers across the run. beta == 0 never
// reads y; beta == 1 skips rows with an empty run.
using SpmmUkernelFn = void (*)(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y,
                               int64_t ldy, int n);

// Backward data: dx[indices[k]*lddx + 0:n] += values[k] * dy[r, 0:n] over the
// row's run; the tile of dy stays in registers. Indices within a run are distinct.
using SpmmTUkernelFn = void (*)(const CsrBlock& b, const float* dy, int64_t lddy, float* dx, int64_t lddx,
                                int n);

// Weight gradient: grad[k] = beta*grad[k] + dy[r, 0:n] . x[indices[k]*ldx + 0:n]
// over the row's run. beta == 0 never reads grad.
using SddmmUkernelFn = void (*)(const CsrBlock& b, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                                float beta, float* grad, int n);

struct SparseKernel {
  const char* name;  // <isa>, e.g. "avx512"
  SimdLevel level;
  int tile;  // the widest batch tile (floats) the micro-kernels take
  SpmmUkernelFn spmm;
  SpmmTUkernelFn spmm_t;
  SddmmUkernelFn sddmm;
};

#define NP_SPARSE_KERNEL(isa, level, TILE)                                                             \
  void spmm_f32_csr_ukernel_##TILE##_##isa(const CsrBlock& b, const float* x, int64_t ldx, float beta,   \
                                           float* y, int64_t ldy, int n);                                 \
  void spmm_t_f32_csr_ukernel_##TILE##_##isa(const CsrBlock& b, const float* dy, int64_t lddy, float* dx, \
                                             int64_t lddx, int n);                                        \
  void sddmm_f32_csr_ukernel_##TILE##_##isa(const CsrBlock& b, const float* dy, int64_t lddy,            \
                                            const float* x, int64_t ldx, float beta, float* grad, int n); \
  const SparseKernel& sparse_kernel_##isa();
#include "sparse_kernels.inc"
#undef NP_SPARSE_KERNEL

// The descriptor for a level (the best registered one not above it).
const SparseKernel& sparse_kernel_for(SimdLevel level);

}  // namespace np
