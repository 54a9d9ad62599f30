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

// CSR stored column block by column block ("blocked CSR"): block b holds,
// row by row, every row's entries with columns in [b*block_cols,
// (b+1)*block_cols), and the blocks follow one another in memory. A product
// over it reads W as one sequential stream while one block's rows of X stay
// near the core; plain CSR cut into column blocks (spmm_f32_csr's L1/L2
// blocks) instead restarts each row where the previous block left it, a jump
// per row and block that the prefetchers do not follow. Only worth it where
// the values are laid out this way anyway, as in W^T's gathered copy below
// (gathering W's values into block order every step costs what it saves).
struct BlockedCsrView {
  int64_t rows = 0, cols = 0;
  int64_t block_cols = 0, blocks = 0;  // blocks = ceil(cols / block_cols)
  const int64_t* indptr = nullptr;     // rows + 1: each row's entries over all blocks (for the thread split)
  const int64_t* block_ptr = nullptr;  // blocks x (rows + 1): row r of block b is
                                       // [block_ptr[b*(rows+1)+r], block_ptr[b*(rows+1)+r+1])
  const int32_t* indices = nullptr;    // nnz, block-major, ascending within a row's run
  const float* values = nullptr;       // nnz, same order
  int64_t nnz() const { return rows ? indptr[rows] : 0; }
};

// Y = beta*Y + W*X over blocked CSR (the same product as spmm_f32_csr).
void spmm_f32_blocked_csr(const BlockedCsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                          int64_t batch, ThreadPool* pool);

// The column block width for a blocked copy of a rows x cols pattern with nnz
// entries multiplied at this batch, on this machine; 0 where one block would
// cover every column (plain CSR is then the same thing).
int64_t blocked_csr_block_cols(int64_t rows, int64_t cols, int64_t nnz, int64_t batch);
int64_t blocked_csr_block_cols_at(SimdLevel level, int64_t rows, int64_t cols, int64_t nnz, int64_t batch);

// The pattern of W^T as CSR (cols x rows): entry j is W's entry perm[j], and
// indices[j] its row in W (ascending within each column). The backward pass
// multiplies by W^T as a gather over this (each dX row accumulates in
// registers, like the forward product) instead of scattering through W's
// rows, which costs a read-modify-write of a dX row per stored weight.
// With block_cols > 0 the entries are blocked CSR (by W's rows in blocks of
// block_cols): indptr still counts each column's entries, block_ptr says
// where each (block, column) run lies, and the values gathered through perm
// come out in block order, so the product streams W^T at no extra cost.
struct CsrTranspose {
  int64_t rows = 0, cols = 0, nnz = 0;  // W's shape and entries it was built for
  int64_t block_cols = 0, blocks = 0;   // 0: plain CSR
  std::vector<int64_t> indptr;          // cols + 1
  std::vector<int64_t> block_ptr;       // blocks x (cols + 1), empty when plain
  std::vector<int32_t> indices;         // nnz
  std::vector<int32_t> perm;            // nnz
  int64_t bytes() const {
    return static_cast<int64_t>((indptr.size() + block_ptr.size()) * sizeof(int64_t) +
                                (indices.size() + perm.size()) * sizeof(int32_t));
  }
  // W^T (cols x rows) with `values` gathered through perm.
  CsrView view(const float* values) const { return {cols, rows, indptr.data(), indices.data(), values}; }
  BlockedCsrView blocked_view(const float* values) const {
    return {cols, rows, block_cols, blocks, indptr.data(), block_ptr.data(), indices.data(), values};
  }
};

// Builds the transpose of a pattern (counting sort by column; stable, so rows
// stay ascending), as blocked CSR with blocks of block_cols of W's rows when
// block_cols > 0 and under W's row count. Needs nnz < 2^31 (perm is int32).
void build_csr_transpose(const CsrView& w, CsrTranspose* out, int64_t block_cols = 0);

// dX = beta*dX + W^T dY over a transpose, values gathered through its perm.
void spmm_f32_csr_transpose(const CsrTranspose& t, const float* gathered, const float* dy, int64_t lddy, float beta,
                            float* dx, int64_t lddx, int64_t batch, ThreadPool* pool);

// The same at an explicit SIMD level (tests, benches).
void spmm_f32_csr_at(SimdLevel level, const CsrView& w, const float* x, int64_t ldx, float beta, float* y,
                     int64_t ldy, int64_t batch, ThreadPool* pool);
void spmm_t_f32_csr_at(SimdLevel level, const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx,
                       int64_t lddx, int64_t batch, ThreadPool* pool);
void sddmm_f32_csr_at(SimdLevel level, const CsrView& pattern, const float* dy, int64_t lddy, const float* x,
                      int64_t ldx, int64_t batch, float beta, float* grad_values, ThreadPool* pool);
void spmm_f32_blocked_csr_at(SimdLevel level, const BlockedCsrView& w, const float* x, int64_t ldx, float beta,
                             float* y, int64_t ldy, int64_t batch, ThreadPool* pool);
void spmm_f32_csr_transpose_at(SimdLevel level, const CsrTranspose& t, const float* gathered, const float* dy,
                               int64_t lddy, float beta, float* dx, int64_t lddx, int64_t batch, ThreadPool* pool);

// Naive references (double accumulators), what every fast variant is tested against.
void spmm_f32_csr_naive(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                        int64_t batch);
void spmm_t_f32_csr_naive(const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx, int64_t lddx,
                          int64_t batch);
void sddmm_f32_csr_naive(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                         int64_t batch, float beta, float* grad_values);
void spmm_f32_blocked_csr_naive(const BlockedCsrView& w, const float* x, int64_t ldx, float beta, float* y,
                                int64_t ldy, int64_t batch);

// The weight density below which a CSR training step (spmm, the W^T product
// through the transpose, sddmm) beats the dense one (three GEMMs) for a rows x cols layer at this batch, on
// this machine, measured in a few milliseconds. Used as the default
// dense <-> CSR switching threshold.
double measure_csr_crossover_density(int64_t rows, int64_t cols, int64_t batch, ThreadPool* pool);

}  // namespace np
