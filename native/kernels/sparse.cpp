// The loops around the CSR micro-kernels: the split between threads, batch
// tiles, column blocks that keep the touched rows of X (or dX) in L2, beta;
// dispatch by SIMD level, the naive references, and the crossover measurement.
//
//   spmm    threads own row ranges of Y, balanced by nnz (+1 per row for its store)
//   spmm_t  threads own row ranges of dX (= column ranges of W, balanced by an
//           estimated column histogram), or batch ranges when W has few columns:
//           no two threads write one element, so no atomics
//   sddmm   threads own row ranges of W, balanced by nnz
//
// Inside a thread: batch tiles (<= the kernel's tile, split evenly so 257 is
// 3 x ~86, not 128 + 128 + 1) -> column blocks -> rows -> micro-kernel.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cache_info.h"
#include "gemm.h"
#include "sparse_internal.h"
#include "thread_pool.h"

namespace np {

namespace {

// Blocking. A micro-kernel reads (or writes) one batch tile of an X (dX) row
// per nonzero, 512 bytes at T = 128 (AVX-512) or 256 at T = 64 (AVX2), and
// from L2 that streams at about half the FMA rate. So:
//   - dense enough that a row meets >= kVisitNnz nonzeros in kL1BlockBytes
//     worth of X rows: cut the columns into such L1 blocks; each (row, block)
//     visit then reloads the row's Y tile, which the run of nonzeros pays for;
//   - sparser: L2 blocks (half the core's L2, cache_info.h) of X rows, so X
//     comes from L2, not L3.
// Rows go in chunks of a quarter of L2 of Y tiles, which stay in L2 across
// blocks beside the X block and the W stream.
// Measured on Zen 5 (48 KB L1d, 1 MB L2; 1024 x 1024, batch 128): L1 blocks win
// from density ~0.2 (1.6x at 0.5), L2 blocks below; 4096-column layers gain
// ~10% from L2 blocks. On Zen 3 (32 KB, 512 KB) the L2 sizes had been Zen 5's
// constants and overflowed L2: 4096 x 4096 SpMM at 90% sparsity ran 19-25 ms
// with them, 16-20 with these (three interleaved runs each).
// L1 blocks: 40 KB, which measured best on Zen 5 (48 KB L1d) and, for tiles
// that are whole rows of X (batch <= the tile), on Zen 3 (32 KB) too (batch
// 32 lost 6-13% with 24 KB blocks). When X's rows are wider than a tile
// (batch 128 or 256 in 64-float tiles) a block's lines lie further apart and
// share fewer cache sets; there the block is the L1d less 8 KB for the W stream
// and the Y tile (24 KB on Zen 3, 40 KB on Zen 5 as before): on Zen 3 at batch
// 128, 784 x 300 at 50% sparsity 1.49x faster (sddmm 1.32x), 1024 x 1024
// 1.09x (1.19x), no change at 80-90% (best of 10 interleaved rounds). Layers
// whose X overflows an L2 block keep 40 KB: their W comes from DRAM, where a
// visit's run length matters more (4096 x 4096 at 80%: 26 ms with 40 KB, 42
// with 32 KB).
constexpr int64_t kL1BlockBytes = 40 * 1024;
constexpr int64_t kL1Headroom = 8 * 1024;

struct BlockBytes {
  int64_t l1_strided_x, l2, chunk;  // other L1 blocks are kL1BlockBytes
};

BlockBytes block_bytes() {
  const CacheSizes& c = cache_sizes();
  const int64_t strided = std::clamp<int64_t>(c.l1d - kL1Headroom, 8 * 1024, kL1BlockBytes);
  return {strided, c.l2 / 2, c.l2 / 4};
}

constexpr int64_t kVisitNnz = 16;
// When X is larger than an L2 block (2048- and 4096-wide layers at batch
// 128), an L1 visit also fetches its stretch of W from further away (W no
// longer fits L3 at these densities), so such layers switch to L1 blocks
// later: measured on 4096 x 4096 and 2048 x 2048, L1 blocks win from density
// ~0.3 (at 0.4: 15.6 against 19.6 ms), L2 blocks below (at 0.2: 9.5 against
// 11.9 ms).
//
// That was on Zen 5, whose AVX-512 kernels take 128-float tiles. Narrower
// tiles do less work a visit for the same jump in W and need longer visits,
// measured on Zen 3 with W cold (the bench runs a dense GEMM between), 4096 x
// 4096, speed-up over dense, L1 blocks against L2 blocks, three interleaved
// runs:
//   64-float tiles (batch 128): 24 nonzeros a visit (85%) 1.7-1.9x against
//     2.2-2.4x; 32 a visit (80%) 26 ms against 32 ms: threshold 30;
//   32-float tiles (batch 32): 32 a visit (90%) 2.4x against 3.7-4.0x; 48 a
//     visit (85%) 2.9-3.1x against 2.4-2.5x: threshold 40.
int64_t visit_nnz_wide_x(int64_t tile_floats) {
  if (tile_floats >= 128) return 24;
  return tile_floats >= 64 ? 30 : 40;
}
// Below this many multiply-adds a product lasts about a microsecond, the cost
// of waking a worker, so it runs on the calling thread.
constexpr int64_t kMinParallelMnk = 1 << 16;

struct BatchTiles {
  int64_t width;  // every tile but the last
};

// Even tiles of at most `tile` floats, rounded up to whole 16-float vectors.
BatchTiles batch_tiles(int64_t batch, int tile) {
  const int64_t count = (batch + tile - 1) / tile;
  int64_t w = (batch + count - 1) / count;
  const int64_t g = std::min(tile, 16);
  w = std::min<int64_t>(tile, (w + g - 1) / g * g);
  return {w};
}

struct Blocking {
  int64_t block_cols;  // >= the column range: no column blocking
  int64_t chunk_rows;
  int64_t expected_run;  // mean nonzeros of a row in one block
};

// ld_in: row stride of the randomly accessed operand (X or dX), ld_out: of
// the one walked row by row (Y or dY). A stride under the tile (batch 1 with
// ld 1) packs several rows per cache line: the footprint is the stride.
Blocking blocking_for(const CsrView& w, int64_t width, int64_t ld_in, int64_t ld_out) {
  const int64_t in_floats = std::max<int64_t>(1, std::min(width, ld_in));  // of an X row a visit reads
  const int64_t in_bytes = in_floats * static_cast<int64_t>(sizeof(float));
  const int64_t out_bytes = std::max<int64_t>(1, std::min(width, ld_out)) * static_cast<int64_t>(sizeof(float));
  const double cells = static_cast<double>(w.rows) * static_cast<double>(w.cols);
  const double density = cells > 0.0 ? static_cast<double>(w.nnz()) / cells : 0.0;
  static const BlockBytes bb = block_bytes();
  const bool wide_x = w.cols * in_bytes > bb.l2;
  const bool strided_x = ld_in > width;
  const int64_t l1_cols = std::max<int64_t>(16, (strided_x && !wide_x ? bb.l1_strided_x : kL1BlockBytes) / in_bytes);
  const int64_t l2_cols = std::max<int64_t>(16, bb.l2 / in_bytes);
  const int64_t visit = wide_x ? visit_nnz_wide_x(in_floats) : kVisitNnz;
  const int64_t bc = density * static_cast<double>(l1_cols) >= static_cast<double>(visit) ? l1_cols : l2_cols;
  const int64_t run = static_cast<int64_t>(density * static_cast<double>(std::min(bc, w.cols)));
  return {bc, std::max<int64_t>(16, bb.chunk / out_bytes), run};
}

// Calls run(block, r_first, first) for every (row chunk, column block) of
// rows [r0, r1) x columns [c0, c1): chunks outside, blocks inside, so a chunk's
// Y (or dY) tiles stay in L2 while its blocks pass; first says the block is
// each row's first. One column block over every column needs no cursors.
thread_local std::vector<int64_t> t_cursor;

template <typename Run>
void for_each_block(const CsrView& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const Blocking& bk,
                    Run&& run) {
  if (c0 == 0 && c1 == w.cols && bk.block_cols >= w.cols) {
    run(CsrBlock{r1 - r0, w.indptr + r0, nullptr, INT32_MAX, w.indices, w.values}, r0, true);
    return;
  }
  const int64_t blocks = std::max<int64_t>(1, (c1 - c0 + bk.block_cols - 1) / bk.block_cols);
  const int64_t bc = (c1 - c0 + blocks - 1) / blocks;  // equal blocks: no sliver at the end
  std::vector<int64_t>& cur = t_cursor;
  for (int64_t rc0 = r0; rc0 < r1; rc0 += bk.chunk_rows) {
    const int64_t rc1 = std::min(r1, rc0 + bk.chunk_rows);
    cur.resize(static_cast<size_t>(rc1 - rc0));
    for (int64_t r = rc0; r < rc1; ++r) {
      const int32_t* first = w.indices + w.indptr[r];
      cur[r - rc0] = c0 == 0 ? w.indptr[r]
                             : std::lower_bound(first, w.indices + w.indptr[r + 1], static_cast<int32_t>(c0)) -
                                   w.indices;
    }
    for (int64_t b0 = c0; b0 < c1; b0 += bc) {
      const int32_t b1 = static_cast<int32_t>(std::min(c1, b0 + bc));
      run(CsrBlock{rc1 - rc0, w.indptr + rc0, cur.data(), b1, w.indices, w.values, bk.expected_run}, rc0,
          b0 == c0);
    }
  }
}

int thread_count(ThreadPool* pool, int64_t work) {
  if (pool == nullptr || work < kMinParallelMnk) return 1;
  return pool->size();
}

// First row r in [0, rows] with indptr[r] + r*row_cost >= target.
int64_t row_at_cost(const CsrView& w, int64_t row_cost, int64_t target) {
  int64_t lo = 0, hi = w.rows;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (w.indptr[mid] + mid * row_cost < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// ---- forward ------------------------------------------------------------------
// View: CsrView, or BlockedCsrView (below).
template <typename View>
struct SpmmArgsOf {
  const View& w;
  const float* x;
  int64_t ldx;
  float beta;
  float* y;
  int64_t ldy;
  int64_t batch;
};
using SpmmArgs = SpmmArgsOf<CsrView>;

// rows(r0, r1) over row ranges of about equal cost (a row: its nonzeros plus
// one store), one per thread; small products stay on the calling thread.
template <typename Rows>
void split_rows_by_cost(const CsrView& counts, int64_t batch, ThreadPool* pool, Rows&& rows) {
  const int64_t nnz = counts.nnz();
  const int threads = static_cast<int>(std::min<int64_t>(thread_count(pool, nnz * batch), counts.rows));
  if (threads <= 1) {
    rows(0, counts.rows);
    return;
  }
  const int64_t total = nnz + counts.rows;
  pool->parallel_for(threads, [&](int64_t t) {
    const int64_t r0 = t == 0 ? 0 : row_at_cost(counts, 1, total * t / threads);
    const int64_t r1 = t + 1 == threads ? counts.rows : row_at_cost(counts, 1, total * (t + 1) / threads);
    if (r0 < r1) rows(r0, r1);
  });
}

void spmm_rows(const SparseKernel& kr, const SpmmArgs& a, int64_t r0, int64_t r1) {
  const CsrView& w = a.w;
  const BatchTiles bt = batch_tiles(a.batch, kr.tile);
  const Blocking bk = blocking_for(w, bt.width, a.ldx, a.ldy);
  for (int64_t j0 = 0; j0 < a.batch; j0 += bt.width) {
    const int n = static_cast<int>(std::min(bt.width, a.batch - j0));
    for_each_block(w, r0, r1, 0, w.cols, bk, [&](const CsrBlock& b, int64_t rb, bool first) {
      const float beta = first ? a.beta : 1.0f;  // later blocks accumulate
      kr.spmm(b, a.x + j0, a.ldx, beta, a.y + rb * a.ldy + j0, a.ldy, n);
    });
  }
}

void spmm_run(const SparseKernel& kr, const SpmmArgs& a, ThreadPool* pool) {
  if (a.w.rows <= 0 || a.batch <= 0) return;
  split_rows_by_cost(a.w, a.batch, pool, [&](int64_t r0, int64_t r1) { spmm_rows(kr, a, r0, r1); });
}

// ---- forward over blocked CSR ---------------------------------------------------
// The block width (blocked_csr_block_cols): the X rows of a block should fill
// about L1d, and a row's run in a block hold ~kBlockedVisitNnz nonzeros,
// since each visit loads and stores the row's Y tile; whichever is wider.
// Measured on Zen 4 (32 KB L1d, 1 MB L2) for the W^T product at batch 128
// (512-byte tiles), time against plain CSR with its own L1/L2 blocks, 1024 x
// 1024 and 4096 x 4096: at density 0.5 64 columns 0.88-0.91 (96: 0.95); at
// 0.2 64-96 columns 0.74-0.82; at 0.1 128-192 columns 0.80-0.88 (64: 0.86-0.93);
// at 0.05 256-512 columns 0.86-0.96 (128: 0.97-1.02); at 0.01 1024 columns
// 0.94-1.08, narrower ones up to 2.9x slower. Where all of X sits well inside
// L2 blocking gains little and sometimes loses (300 rows of 512 bytes: at most
// 5% gained, two blocks lost 8%; 1024 rows at batch 32: 0.85-1.45), so a layer
// is blocked only when X fills a quarter of L2 or more, into three or more
// blocks of equal width.
constexpr int64_t kBlockedVisitNnz = 16;
constexpr int64_t kBlockedMinBlocks = 3;

using BlockedSpmmArgs = SpmmArgsOf<BlockedCsrView>;

// Rows in chunks whose Y tiles stay in L2 (as for_each_block's), each chunk
// through every block in order: the first block applies beta, later blocks
// add to what it wrote.
void blocked_spmm_rows(const SparseKernel& kr, const BlockedSpmmArgs& a, int64_t r0, int64_t r1) {
  const BlockedCsrView& w = a.w;
  const BatchTiles bt = batch_tiles(a.batch, kr.tile);
  static const BlockBytes bb = block_bytes();
  const int64_t out_bytes = std::max<int64_t>(1, std::min(bt.width, a.ldy)) * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::max<int64_t>(16, bb.chunk / out_bytes);
  for (int64_t j0 = 0; j0 < a.batch; j0 += bt.width) {
    const int n = static_cast<int>(std::min(bt.width, a.batch - j0));
    for (int64_t rc0 = r0; rc0 < r1; rc0 += chunk) {
      const int64_t rc1 = std::min(r1, rc0 + chunk);
      for (int64_t b = 0; b < w.blocks; ++b) {
        const CsrBlock block{rc1 - rc0, w.block_ptr + b * (w.rows + 1) + rc0, nullptr, INT32_MAX, w.indices, w.values};
        kr.spmm(block, a.x + j0, a.ldx, b == 0 ? a.beta : 1.0f, a.y + rc0 * a.ldy + j0, a.ldy, n);
      }
    }
  }
}

void blocked_spmm_run(const SparseKernel& kr, const BlockedSpmmArgs& a, ThreadPool* pool) {
  const BlockedCsrView& w = a.w;
  if (w.rows <= 0 || a.batch <= 0) return;
  if (w.blocks <= 0) {  // no columns: Y = beta * Y
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t j = 0; j < a.batch; ++j) a.y[r * a.ldy + j] = a.beta == 0.0f ? 0.0f : a.beta * a.y[r * a.ldy + j];
    return;
  }
  const CsrView counts{w.rows, w.cols, w.indptr, w.indices, w.values};  // each row's total, for the split
  split_rows_by_cost(counts, a.batch, pool, [&](int64_t r0, int64_t r1) { blocked_spmm_rows(kr, a, r0, r1); });
}

// ---- backward data -------------------------------------------------------------
struct SpmmTArgs {
  const CsrView& w;
  const float* dy;
  int64_t lddy;
  float beta;
  float* dx;
  int64_t lddx;
  int64_t batch;
};

// dX[c0:c1, j0:j1] = beta * dX + (W^T dY)[c0:c1, j0:j1].
void spmm_t_block(const SparseKernel& kr, const SpmmTArgs& a, int64_t c0, int64_t c1, int64_t j0, int64_t j1) {
  const CsrView& w = a.w;
  for (int64_t c = c0; c < c1; ++c) {
    float* row = a.dx + c * a.lddx;
    if (a.beta == 0.0f) {
      std::memset(row + j0, 0, static_cast<size_t>(j1 - j0) * sizeof(float));
    } else if (a.beta != 1.0f) {
      for (int64_t j = j0; j < j1; ++j) row[j] *= a.beta;
    }
  }
  if (w.rows <= 0) return;
  const BatchTiles bt = batch_tiles(j1 - j0, kr.tile);
  const Blocking bk = blocking_for(w, bt.width, a.lddx, a.lddy);
  for (int64_t jt = j0; jt < j1; jt += bt.width) {
    const int n = static_cast<int>(std::min(bt.width, j1 - jt));
    for_each_block(w, 0, w.rows, c0, c1, bk, [&](const CsrBlock& b, int64_t rb, bool) {
      kr.spmm_t(b, a.dy + rb * a.lddy + jt, a.lddy, a.dx + jt, a.lddx, n);
    });
  }
}

// Column boundaries [parts + 1] of W with about equal nonzeros each, from a
// histogram of a sample of rows (a pruned input layer has dead columns, so an
// even split by count would leave one thread most of the work).
std::vector<int64_t> split_columns(const CsrView& w, int parts) {
  const int64_t nnz = w.nnz();
  const int64_t stride = std::max<int64_t>(1, nnz / 32768);  // sample ~32K nonzeros' rows
  std::vector<int64_t> hist(static_cast<size_t>(w.cols), 0);
  for (int64_t r = 0; r < w.rows; r += stride)
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k) hist[w.indices[k]] += stride;
  // Each column also costs its beta pass over dX: about one nonzero.
  int64_t total = 0;
  for (int64_t& h : hist) total += (h += 1);
  std::vector<int64_t> bounds(static_cast<size_t>(parts) + 1, w.cols);
  bounds[0] = 0;
  int64_t acc = 0, c = 0;
  for (int p = 1; p < parts; ++p) {
    const int64_t target = total * p / parts;
    while (c < w.cols && acc + hist[c] <= target) acc += hist[c++];
    bounds[p] = std::max(c, bounds[p - 1]);
  }
  return bounds;
}

void spmm_t_run(const SparseKernel& kr, const SpmmTArgs& a, ThreadPool* pool) {
  const CsrView& w = a.w;
  if (w.cols <= 0 || a.batch <= 0) return;
  const int threads = thread_count(pool, w.nnz() * a.batch);
  if (threads <= 1) {
    spmm_t_block(kr, a, 0, w.cols, 0, a.batch);
    return;
  }
  if (w.cols >= 16 * threads) {
    const std::vector<int64_t> bounds = split_columns(w, threads);
    pool->parallel_for(threads, [&](int64_t t) {
      if (bounds[t] < bounds[t + 1]) spmm_t_block(kr, a, bounds[t], bounds[t + 1], 0, a.batch);
    });
    return;
  }
  // Few columns: split the batch into whole vectors instead.
  const int64_t units = (a.batch + 15) / 16;
  const int parts = static_cast<int>(std::min<int64_t>(threads, units));
  pool->parallel_for(parts, [&](int64_t t) {
    const int64_t j0 = std::min(a.batch, units * t / parts * 16);
    const int64_t j1 = std::min(a.batch, units * (t + 1) / parts * 16);
    if (j0 < j1) spmm_t_block(kr, a, 0, w.cols, j0, j1);
  });
}

// ---- weight gradient ----------------------------------------------------------
struct SddmmArgs {
  const CsrView& p;
  const float* dy;
  int64_t lddy;
  const float* x;
  int64_t ldx;
  int64_t batch;
  float beta;
  float* grad;
};

void sddmm_rows(const SparseKernel& kr, const SddmmArgs& a, int64_t r0, int64_t r1) {
  const CsrView& w = a.p;
  const BatchTiles bt = batch_tiles(a.batch, kr.tile);
  const Blocking bk = blocking_for(w, bt.width, a.ldx, a.lddy);
  for (int64_t j0 = 0; j0 < a.batch; j0 += bt.width) {
    const int n = static_cast<int>(std::min(bt.width, a.batch - j0));
    const float beta = j0 == 0 ? a.beta : 1.0f;  // later batch tiles accumulate
    for_each_block(w, r0, r1, 0, w.cols, bk, [&](const CsrBlock& b, int64_t rb, bool) {
      kr.sddmm(b, a.dy + rb * a.lddy + j0, a.lddy, a.x + j0, a.ldx, beta, a.grad, n);
    });
  }
}

void sddmm_run(const SparseKernel& kr, const SddmmArgs& a, ThreadPool* pool) {
  const CsrView& w = a.p;
  const int64_t nnz = w.nnz();
  if (nnz <= 0) return;
  if (a.batch <= 0) {  // an empty sum: grad = beta * grad
    for (int64_t k = 0; k < nnz; ++k) a.grad[k] = a.beta == 0.0f ? 0.0f : a.beta * a.grad[k];
    return;
  }
  const int threads = static_cast<int>(std::min<int64_t>(thread_count(pool, nnz * a.batch), w.rows));
  if (threads <= 1) {
    sddmm_rows(kr, a, 0, w.rows);
    return;
  }
  pool->parallel_for(threads, [&](int64_t t) {
    const int64_t r0 = t == 0 ? 0 : row_at_cost(w, 0, nnz * t / threads);
    const int64_t r1 = t + 1 == threads ? w.rows : row_at_cost(w, 0, nnz * (t + 1) / threads);
    if (r0 < r1) sddmm_rows(kr, a, r0, r1);
  });
}

SimdLevel clamp_level(SimdLevel level) {
  // Never run an instruction set the CPU lacks, whatever the caller asked.
  return static_cast<int>(level) > static_cast<int>(detected_simd_level()) ? detected_simd_level() : level;
}

}  // namespace

const SparseKernel& sparse_kernel_for(SimdLevel level) {
  static const SparseKernel* const registry[] = {
#define NP_SPARSE_KERNEL(isa, level, TILE) &sparse_kernel_##isa(),
#include "sparse_kernels.inc"
#undef NP_SPARSE_KERNEL
  };
  const SparseKernel* best = registry[0];
  for (const SparseKernel* kr : registry)
    if (static_cast<int>(kr->level) <= static_cast<int>(level) &&
        static_cast<int>(kr->level) >= static_cast<int>(best->level))
      best = kr;
  return *best;
}

void spmm_f32_csr_at(SimdLevel level, const CsrView& w, const float* x, int64_t ldx, float beta, float* y,
                     int64_t ldy, int64_t batch, ThreadPool* pool) {
  spmm_run(sparse_kernel_for(clamp_level(level)), SpmmArgs{w, x, ldx, beta, y, ldy, batch}, pool);
}

void spmm_t_f32_csr_at(SimdLevel level, const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx,
                       int64_t lddx, int64_t batch, ThreadPool* pool) {
  spmm_t_run(sparse_kernel_for(clamp_level(level)), SpmmTArgs{w, dy, lddy, beta, dx, lddx, batch}, pool);
}

void sddmm_f32_csr_at(SimdLevel level, const CsrView& pattern, const float* dy, int64_t lddy, const float* x,
                      int64_t ldx, int64_t batch, float beta, float* grad_values, ThreadPool* pool) {
  sddmm_run(sparse_kernel_for(clamp_level(level)), SddmmArgs{pattern, dy, lddy, x, ldx, batch, beta, grad_values},
            pool);
}

void spmm_f32_csr(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy, int64_t batch,
                  ThreadPool* pool) {
  spmm_f32_csr_at(active_simd_level(), w, x, ldx, beta, y, ldy, batch, pool);
}

void spmm_f32_blocked_csr_at(SimdLevel level, const BlockedCsrView& w, const float* x, int64_t ldx, float beta,
                             float* y, int64_t ldy, int64_t batch, ThreadPool* pool) {
  blocked_spmm_run(sparse_kernel_for(clamp_level(level)), BlockedSpmmArgs{w, x, ldx, beta, y, ldy, batch}, pool);
}

void spmm_f32_blocked_csr(const BlockedCsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                          int64_t batch, ThreadPool* pool) {
  spmm_f32_blocked_csr_at(active_simd_level(), w, x, ldx, beta, y, ldy, batch, pool);
}

int64_t blocked_csr_block_cols(int64_t rows, int64_t cols, int64_t nnz, int64_t batch) {
  return blocked_csr_block_cols_at(active_simd_level(), rows, cols, nnz, batch);
}

int64_t blocked_csr_block_cols_at(SimdLevel level, int64_t rows, int64_t cols, int64_t nnz, int64_t batch) {
  if (rows <= 0 || cols <= 0 || nnz <= 0 || batch <= 0) return 0;
  const SparseKernel& kr = sparse_kernel_for(clamp_level(level));
  // The bytes of an X row one visit reads: a batch tile (ld = batch here).
  const int64_t in_bytes = std::min(batch_tiles(batch, kr.tile).width, batch) * static_cast<int64_t>(sizeof(float));
  const double density = static_cast<double>(nnz) / (static_cast<double>(rows) * static_cast<double>(cols));
  const double by_cache = static_cast<double>(cache_sizes().l1d) / static_cast<double>(in_bytes);
  const double by_visit = static_cast<double>(kBlockedVisitNnz) / density;
  const double want = std::max(by_cache, by_visit);
  if (cols * in_bytes < cache_sizes().l2 / 4 || want * kBlockedMinBlocks > static_cast<double>(cols)) return 0;
  const int64_t blocks = static_cast<int64_t>(std::ceil(static_cast<double>(cols) / want));
  return ((cols + blocks - 1) / blocks + 15) / 16 * 16;
}

void spmm_f32_csr_transpose_at(SimdLevel level, const CsrTranspose& t, const float* gathered, const float* dy,
                               int64_t lddy, float beta, float* dx, int64_t lddx, int64_t batch, ThreadPool* pool) {
  if (t.block_cols > 0) {
    spmm_f32_blocked_csr_at(level, t.blocked_view(gathered), dy, lddy, beta, dx, lddx, batch, pool);
  } else {
    spmm_f32_csr_at(level, t.view(gathered), dy, lddy, beta, dx, lddx, batch, pool);
  }
}

void spmm_f32_csr_transpose(const CsrTranspose& t, const float* gathered, const float* dy, int64_t lddy, float beta,
                            float* dx, int64_t lddx, int64_t batch, ThreadPool* pool) {
  spmm_f32_csr_transpose_at(active_simd_level(), t, gathered, dy, lddy, beta, dx, lddx, batch, pool);
}

void spmm_t_f32_csr(const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx, int64_t lddx,
                    int64_t batch, ThreadPool* pool) {
  spmm_t_f32_csr_at(active_simd_level(), w, dy, lddy, beta, dx, lddx, batch, pool);
}

void sddmm_f32_csr(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                   int64_t batch, float beta, float* grad_values, ThreadPool* pool) {
  sddmm_f32_csr_at(active_simd_level(), pattern, dy, lddy, x, ldx, batch, beta, grad_values, pool);
}

void build_csr_transpose(const CsrView& w, CsrTranspose* out, int64_t block_cols) {
  const int64_t nnz = w.nnz();
  const bool blocked = block_cols > 0 && block_cols < w.rows;
  // One block over every row of W is plain CSR: block b of W's rows is block
  // b of W^T's columns, and a (block, column) run starts where the
  // previous column of the block ended, after the whole previous block.
  const int64_t bc = blocked ? block_cols : std::max<int64_t>(w.rows, 1);
  const int64_t blocks = blocked ? (w.rows + bc - 1) / bc : 1;
  const int64_t stride = w.cols + 1;
  out->rows = w.rows;
  out->cols = w.cols;
  out->nnz = nnz;
  out->block_cols = blocked ? bc : 0;
  out->blocks = blocked ? blocks : 0;
  out->indptr.assign(w.cols + 1, 0);
  out->indices.resize(nnz);
  out->perm.resize(nnz);
  std::vector<int64_t> starts(static_cast<size_t>(blocks * stride), 0);  // (block, column) -> first entry
  for (int64_t r = 0; r < w.rows; ++r) {
    int64_t* counts = starts.data() + (r / bc) * stride + 1;
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k) {
      ++out->indptr[w.indices[k] + 1];
      ++counts[w.indices[k]];
    }
  }
  for (int64_t c = 0; c < w.cols; ++c) out->indptr[c + 1] += out->indptr[c];
  int64_t offset = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t* p = starts.data() + b * stride;
    p[0] = offset;
    for (int64_t c = 0; c < w.cols; ++c) p[c + 1] += p[c];
    offset = p[w.cols];
  }
  // Kept before the fill below moves each run's start to its end.
  if (blocked) {
    out->block_ptr = starts;
  } else {
    out->block_ptr.clear();
  }
  for (int64_t r = 0; r < w.rows; ++r) {  // rows ascending: stable within every run
    int64_t* next = starts.data() + (r / bc) * stride;
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k) {
      const int64_t j = next[w.indices[k]]++;
      out->indices[j] = static_cast<int32_t>(r);
      out->perm[j] = static_cast<int32_t>(k);
    }
  }
}

// ---- naive references ------------------------------------------------------------
void spmm_f32_csr_naive(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                        int64_t batch) {
  // Y[rows x batch] = beta * Y + W[rows x cols] * X[cols x batch]
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t j = 0; j < batch; ++j) {
      double acc = 0.0;
      for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k)
        acc += static_cast<double>(w.values[k]) * x[w.indices[k] * ldx + j];
      float& out = y[r * ldy + j];
      out = beta == 0.0f ? static_cast<float>(acc) : static_cast<float>(beta * out + acc);
    }
  }
}

void spmm_t_f32_csr_naive(const CsrView& w, const float* dy, int64_t lddy, float beta, float* dx, int64_t lddx,
                          int64_t batch) {
  // dX[cols x batch] = beta * dX + W^T[cols x rows] * dY[rows x batch]
  std::vector<double> acc(static_cast<size_t>(w.cols * batch), 0.0);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k)
      for (int64_t j = 0; j < batch; ++j)
        acc[w.indices[k] * batch + j] += static_cast<double>(w.values[k]) * dy[r * lddy + j];
  for (int64_t c = 0; c < w.cols; ++c) {
    for (int64_t j = 0; j < batch; ++j) {
      float& out = dx[c * lddx + j];
      out = beta == 0.0f ? static_cast<float>(acc[c * batch + j]) : static_cast<float>(beta * out + acc[c * batch + j]);
    }
  }
}

void sddmm_f32_csr_naive(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                         int64_t batch, float beta, float* grad_values) {
  // grad[k] = beta * grad[k] + dY[row(k), :] . X[col(k), :]   (dY: rows x batch, X: cols x batch)
  for (int64_t r = 0; r < pattern.rows; ++r) {
    for (int64_t k = pattern.indptr[r]; k < pattern.indptr[r + 1]; ++k) {
      double acc = 0.0;
      for (int64_t j = 0; j < batch; ++j)
        acc += static_cast<double>(dy[r * lddy + j]) * x[pattern.indices[k] * ldx + j];
      float& out = grad_values[k];
      out = beta == 0.0f ? static_cast<float>(acc) : static_cast<float>(beta * out + acc);
    }
  }
}

void spmm_f32_blocked_csr_naive(const BlockedCsrView& w, const float* x, int64_t ldx, float beta, float* y,
                                int64_t ldy, int64_t batch) {
  // The sums of spmm_f32_csr_naive, each row's entries taken block by block.
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t j = 0; j < batch; ++j) {
      double acc = 0.0;
      for (int64_t b = 0; b < w.blocks; ++b) {
        const int64_t* p = w.block_ptr + b * (w.rows + 1);
        for (int64_t k = p[r]; k < p[r + 1]; ++k) acc += static_cast<double>(w.values[k]) * x[w.indices[k] * ldx + j];
      }
      float& out = y[r * ldy + j];
      out = beta == 0.0f ? static_cast<float>(acc) : static_cast<float>(beta * out + acc);
    }
  }
}

// ---- crossover -------------------------------------------------------------------
namespace {

struct Lcg {
  uint64_t s;
  uint32_t next_u32() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 32);
  }
  float next_float() { return static_cast<float>(next_u32() >> 8) / 8388608.0f - 1.0f; }
};

// Each entry kept with probability density (a fixed-seed Bernoulli mask).
void random_csr(int64_t rows, int64_t cols, double density, uint64_t seed, std::vector<int64_t>* indptr,
                std::vector<int32_t>* indices, std::vector<float>* values) {
  Lcg rng{seed};
  const uint32_t cut = static_cast<uint32_t>(std::min(1.0, density) * 4294967295.0);
  indptr->assign(1, 0);
  indices->clear();
  values->clear();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (rng.next_u32() <= cut) {
        indices->push_back(static_cast<int32_t>(c));
        values->push_back(rng.next_float());
      }
    }
    indptr->push_back(static_cast<int64_t>(indices->size()));
  }
}

template <typename Fn>
double time_ms(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median_of(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

double measure_csr_crossover_density(int64_t rows, int64_t cols, int64_t batch, ThreadPool* pool) {
  constexpr double kMin = 0.02, kMax = 0.9;
  // Costs per nonzero and per dense element scale alike past a few hundred, so
  // a capped problem answers for a huge layer in a few milliseconds.
  const int64_t m = std::clamp<int64_t>(rows, 1, 256);
  const int64_t k = std::clamp<int64_t>(cols, 1, 256);
  const int64_t n = std::clamp<int64_t>(batch, 1, 128);
  constexpr int kReps = 4;

  Lcg rng{0x5eed};
  std::vector<float> x(static_cast<size_t>(k * n)), dy(static_cast<size_t>(m * n));
  std::vector<float> y(dy.size()), dx(x.size()), wd(static_cast<size_t>(m * k)), gd(wd.size());
  for (float& v : x) v = rng.next_float();
  for (float& v : dy) v = rng.next_float();
  for (float& v : wd) v = rng.next_float();

  auto dense_step = [&] {
    gemm_f32(Trans::kNo, Trans::kNo, m, n, k, wd.data(), k, x.data(), n, 0.0f, y.data(), n, pool);
    gemm_f32(Trans::kYes, Trans::kNo, k, n, m, wd.data(), k, dy.data(), n, 0.0f, dx.data(), n, pool);
    gemm_f32(Trans::kNo, Trans::kYes, m, k, n, dy.data(), n, x.data(), n, 0.0f, gd.data(), k, pool);
  };
  dense_step();  // warm caches and the pool

  // From sparse upwards; stop at the first density where dense wins. Dense
  // and sparse steps alternate (A B A B), and the dense samples of every
  // density pool into one median, so a burst of load elsewhere on the machine
  // skews both sides alike rather than one density's verdict.
  const double densities[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9};
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values, grad, t_values;
  std::vector<double> dense_ms, sparse_ms;
  double prev_d = 0.0, prev_ratio = 0.0;
  for (double d : densities) {
    random_csr(m, k, d, 0xc5a + static_cast<uint64_t>(d * 1000), &indptr, &indices, &values);
    grad.assign(values.size(), 0.0f);
    const CsrView w{m, k, indptr.data(), indices.data(), values.data()};
    // The backward data product as training runs it: values gathered into the
    // (cached) transpose's order, then a forward product over the transpose.
    CsrTranspose t;
    build_csr_transpose(w, &t, blocked_csr_block_cols(k, m, w.nnz(), n));
    t_values.assign(values.size(), 0.0f);
    auto sparse_step = [&] {
      spmm_f32_csr(w, x.data(), n, 0.0f, y.data(), n, n, pool);
      for (size_t j = 0; j < t_values.size(); ++j) t_values[j] = values[t.perm[j]];
      spmm_f32_csr_transpose(t, t_values.data(), dy.data(), n, 0.0f, dx.data(), n, n, pool);
      sddmm_f32_csr(w, dy.data(), n, x.data(), n, n, 0.0f, grad.data(), pool);
    };
    sparse_step();
    sparse_ms.clear();
    for (int r = 0; r < kReps; ++r) {
      dense_ms.push_back(time_ms(dense_step));
      sparse_ms.push_back(time_ms(sparse_step));
    }
    const double ratio = median_of(sparse_ms) / std::max(median_of(dense_ms), 1e-9);  // < 1: sparse wins
    if (ratio >= 1.0) {
      if (prev_d == 0.0) return kMin;
      // Linear interpolation of the ratio between the last win and this loss.
      const double t = (1.0 - prev_ratio) / std::max(ratio - prev_ratio, 1e-9);
      return std::clamp(prev_d + t * (d - prev_d), kMin, kMax);
    }
    prev_d = d;
    prev_ratio = ratio;
  }
  return kMax;
}

}  // namespace np
