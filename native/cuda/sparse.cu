// CSR SpMM (forward and transposed) and SDDMM on feature-major activations.
//
// spmm, two kernels with equal results (kernels.h, SpmmKernel):
//   rows: a group of G threads owns one output row and a tile of 4*G batch
//     columns; thread t accumulates columns t, t+G, t+2G, t+3G, so each stored
//     weight (index + value, a broadcast read) feeds four products, and the
//     group's reads of an input row are coalesced. G adapts to the batch (32,
//     64 or 128) so a small batch does not leave most threads idle.
//   warp: a warp owns one output row and up to 1024 batch columns; lane l
//     accumulates the float4s at 4l, 4l + 128, ..., so an X row is read in
//     16-byte loads, 512 coalesced bytes per warp and vector. The row's stored
//     weights are read 32 at a time, one (index, value) per lane in one
//     coalesced load, and handed round by __shfl_sync, instead of every
//     thread loading every one (the "coalesced row caching" of GE-SpMM, Huang
//     et al. 2020; vector loads as in Sputnik, Gale et al. 2020). Same products,
//     same order as rows: acc += v * x per stored weight, ascending.
//   staged: a block of 8 warps owns 64 output rows (8 per warp) and 128 batch
//     columns; it stages X in shared memory 64 input rows at a time (32 KB),
//     and each warp advances a cursor per row through the weights whose
//     columns fall in the staged rows (read 32 at a time and shuffled round, as
//     in the warp kernel), reading X from shared memory. X then
//     crosses from L2 once per 64 output rows, where the other two read an X
//     row per stored weight. Same products, same order again.
// spmm_t runs the same kernel over the transpose structure (CsrTransposeView),
// gathering values through value_pos: deterministic, no atomics.
// sddmm: one block per row; its warps take the row's stored entries in turn and
// reduce dY[row,:] . X[col,:] across lanes with shuffles (fixed order).
// csr_transpose_cuda: W^T's structure from W's, on the device, by a stable
// counting sort over row blocks; the same arrays as the host reference
// csr_transpose_host.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kSpmmBlock = 256;
constexpr int kColsPerThread = 4;

template <bool kGather>
__global__ void __launch_bounds__(kSpmmBlock)
    spmm_f32_csr_rows_kernel(int64_t rows, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                             const float* __restrict__ values, const int64_t* __restrict__ value_pos,
                             const float* __restrict__ x, int64_t ldx, float beta, float* __restrict__ y,
                             int64_t ldy, int64_t batch, int group) {
  // Y[rows x B] = beta*Y + A * X, A given by (ptr, idx, values[value_pos or k]).
  const int lane = threadIdx.x % group;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kSpmmBlock / group) + threadIdx.x / group;
  if (row >= rows) return;
  const int64_t j0 = static_cast<int64_t>(blockIdx.y) * group * kColsPerThread + lane;
  if (j0 >= batch) return;
  float acc[kColsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t end = ptr[row + 1];
  for (int64_t k = ptr[row]; k < end; ++k) {
    const float v = values[kGather ? value_pos[k] : k];
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
#pragma unroll
    for (int c = 0; c < kColsPerThread; ++c) {
      const int64_t j = j0 + static_cast<int64_t>(c) * group;
      if (j < batch) acc[c] += v * xr[j];
    }
  }
  float* yr = y + row * ldy;
#pragma unroll
  for (int c = 0; c < kColsPerThread; ++c) {
    const int64_t j = j0 + static_cast<int64_t>(c) * group;
    if (j < batch) yr[j] = beta == 0.0f ? acc[c] : beta * yr[j] + acc[c];
  }
}

// A 16-byte load of 4 floats; p must be 16-byte aligned (spmm_kernel_for
// checks the operands; on a GPU a misaligned vector load faults, and the
// emulator checks the same).
__device__ __forceinline__ float4 load_float4(const float* p) {
#if defined(NP_CUDA_EMULATOR)
  if (!emulator::check_aligned(p, 16)) return make_float4(0.0f, 0.0f, 0.0f, 0.0f);  // the launch has failed
#endif
  return *reinterpret_cast<const float4*>(p);
}

__device__ __forceinline__ void store_float4(float* p, float4 v) {
#if defined(NP_CUDA_EMULATOR)
  if (!emulator::check_aligned(p, 16)) return;  // the launch has failed
#endif
  *reinterpret_cast<float4*>(p) = v;
}

// A product's grid of gx x gy blocks, refused with a length_error past CUDA's limits.
dim3 product_grid(int64_t gx, int64_t gy, int64_t rows, int64_t batch) {
  if (gx > kMaxGridX || gy > kMaxGridY)
    throw std::length_error("spmm_f32_csr_cuda: " + std::to_string(rows) + " rows x batch " + std::to_string(batch) +
                            " exceeds the grid limits");
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
}

constexpr int kWarpBlock = 128;           // four warps, one output row each
constexpr int64_t kWarpSpan = 32 * 4;     // batch columns a lane's float4s cover per vector
constexpr int kWarpMaxVectors = 8;        // float4s per lane: up to 1024 columns per warp

// Whether two feature-major operands (rows of `batch` floats at strides lda,
// ldb) can be read and written as whole, aligned float4s: batch and both
// strides multiples of 4, both pointers 16-byte aligned.
bool float4_operands(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t batch) {
  const auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return batch > 0 && batch % 4 == 0 && lda % 4 == 0 && ldb % 4 == 0 && aligned(a) && aligned(b);
}

// The fewest float4s per lane (1, 2, 4 or 8) that cover `batch` columns of a warp's row.
int float4s_per_lane(int64_t batch) {
  const int64_t needed = ceil_div(batch, kWarpSpan);
  return needed <= 1 ? 1 : needed <= 2 ? 2 : needed <= 4 ? 4 : kWarpMaxVectors;
}

template <int V, bool kGather>
__global__ void __launch_bounds__(kWarpBlock)
    spmm_f32_csr_warp_kernel(int64_t rows, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                             const float* __restrict__ values, const int64_t* __restrict__ value_pos,
                             const float* __restrict__ x, int64_t ldx, float beta, float* __restrict__ y,
                             int64_t ldy, int64_t batch) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarpBlock / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp: its lanes share the row
  // Lane l's columns: j0 + kWarpSpan*c .. + 3 for c < V. Lanes past the batch
  // still take part in the shuffles, so every shuffle has all 32 lanes.
  const int64_t j0 = static_cast<int64_t>(blockIdx.y) * (kWarpSpan * V) + 4 * lane;
  float4 acc[V];
#pragma unroll
  for (int c = 0; c < V; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const int64_t end = ptr[row + 1];
  for (int64_t k0 = ptr[row]; k0 < end; k0 += 32) {
    const int64_t mine = k0 + lane;
    int32_t my_index = 0;
    float my_value = 0.0f;
    if (mine < end) {
      my_index = idx[mine];
      my_value = values[kGather ? value_pos[mine] : mine];
    }
    const int n = static_cast<int>(end - k0 < 32 ? end - k0 : 32);  // the same for every lane
    for (int t = 0; t < n; ++t) {
      const int32_t i = __shfl_sync(0xffffffffu, my_index, t);
      const float v = __shfl_sync(0xffffffffu, my_value, t);
      const float* xr = x + static_cast<int64_t>(i) * ldx;
#pragma unroll
      for (int c = 0; c < V; ++c) {
        const int64_t j = j0 + kWarpSpan * c;
        if (j < batch) {
          const float4 q = load_float4(xr + j);
          acc[c].x += v * q.x;
          acc[c].y += v * q.y;
          acc[c].z += v * q.z;
          acc[c].w += v * q.w;
        }
      }
    }
  }
  float* yr = y + row * ldy;
#pragma unroll
  for (int c = 0; c < V; ++c) {
    const int64_t j = j0 + kWarpSpan * c;
    if (j >= batch) continue;
    if (beta == 0.0f) {
      store_float4(yr + j, acc[c]);
    } else {
      const float4 o = load_float4(yr + j);
      store_float4(yr + j, make_float4(beta * o.x + acc[c].x, beta * o.y + acc[c].y, beta * o.z + acc[c].z, beta * o.w + acc[c].w));
    }
  }
}

template <int V>
void launch_warp_kernel(dim3 grid, int64_t rows, const int64_t* ptr, const int32_t* idx, const float* values,
                        const int64_t* value_pos, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                        int64_t batch, Stream& stream) {
  if (value_pos)
    NP_LAUNCH(grid, kWarpBlock, 0, raw(stream), spmm_f32_csr_warp_kernel<V, true>)(rows, ptr, idx, values, value_pos, x, ldx,
                                                                          beta, y, ldy, batch);
  else
    NP_LAUNCH(grid, kWarpBlock, 0, raw(stream), spmm_f32_csr_warp_kernel<V, false>)(rows, ptr, idx, values, nullptr, x, ldx,
                                                                           beta, y, ldy, batch);
}

void launch_warp(int64_t rows, const int64_t* ptr, const int32_t* idx, const float* values, const int64_t* value_pos,
                 const float* x, int64_t ldx, float beta, float* y, int64_t ldy, int64_t batch, Stream& stream) {
  const int vectors = float4s_per_lane(batch);  // past 8, more column tiles
  const int64_t gx = ceil_div(rows, kWarpBlock / 32), gy = ceil_div(batch, kWarpSpan * vectors);
  const dim3 grid = product_grid(gx, gy, rows, batch);
  switch (vectors) {
    case 1: launch_warp_kernel<1>(grid, rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
    case 2: launch_warp_kernel<2>(grid, rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
    case 4: launch_warp_kernel<4>(grid, rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
    default: launch_warp_kernel<kWarpMaxVectors>(grid, rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
  }
  NP_CUDA_CHECK_LAUNCH();
}

constexpr int kStagedBlock = 256;                            // 8 warps
constexpr int kStagedRowsPerWarp = 8;
constexpr int kStagedRows = (kStagedBlock / 32) * kStagedRowsPerWarp;  // 64 output rows per block
constexpr int kStagedDepth = 64;                            // input rows staged at a time
constexpr double kStagedMinDensity = 1.0 / 16.0;            // kAuto's switch from kWarp (unmeasured: see kernels.h)

template <bool kGather>
__global__ void __launch_bounds__(kStagedBlock)
    spmm_f32_csr_staged_kernel(int64_t rows, int64_t cols, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                              const float* __restrict__ values, const int64_t* __restrict__ value_pos,
                              const float* __restrict__ x, int64_t ldx, float beta, float* __restrict__ y, int64_t ldy,
                              int64_t batch) {
  __shared__ float4 tile[kStagedDepth][32];  // X[k0 + r, block's 128 columns]: 32 KB
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kStagedRows + static_cast<int64_t>(warp) * kStagedRowsPerWarp;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kWarpSpan + 4 * lane;
  const bool column_in_batch = j < batch;
  // Per row (all warp-uniform but the lane's own entry): its weights are read
  // 32 at a time, one (index, value) per lane in a coalesced load, as in the
  // warp kernel, and handed round by shuffles; `base` is the chunk's first
  // position, `next` the next entry of it to use, `stop` the row's end. The
  // chunk stays in registers across stages until used up. Rows past the
  // matrix have no entries.
  int64_t base[kStagedRowsPerWarp], stop[kStagedRowsPerWarp];
  int next[kStagedRowsPerWarp];
  int32_t my_index[kStagedRowsPerWarp];
  float my_value[kStagedRowsPerWarp];
  float4 acc[kStagedRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kStagedRowsPerWarp; ++r) {
    const int64_t row = row0 + r;
    // As if a chunk ending at the row's first weight were used up: the first use loads the row's first.
    base[r] = (row < rows ? ptr[row] : 0) - 32;
    next[r] = 32;
    stop[r] = row < rows ? ptr[row + 1] : 0;
    my_index[r] = 0;
    my_value[r] = 0.0f;
    acc[r] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  // Every warp of the block runs every stage (the barriers), whatever its rows.
  for (int64_t k0 = 0; k0 < cols; k0 += kStagedDepth) {
#pragma unroll
    for (int i = 0; i < kStagedDepth / (kStagedBlock / 32); ++i) {
      const int t = warp + (kStagedBlock / 32) * i;  // tile row: warp w stages rows w, w + 8, ...
      const int64_t xr = k0 + t;
      tile[t][lane] = xr < cols && column_in_batch ? load_float4(x + xr * ldx + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    __syncthreads();
    const int64_t k1 = k0 + kStagedDepth;
#pragma unroll
    for (int r = 0; r < kStagedRowsPerWarp; ++r) {
      // The row's weights with columns in [k0, k1): indices ascend within a row.
      while (base[r] + next[r] < stop[r]) {
        if (next[r] == 32) {  // the next chunk of 32
          base[r] += 32;
          next[r] = 0;
          const int64_t mine = base[r] + lane;
          my_index[r] = mine < stop[r] ? idx[mine] : 0;
          my_value[r] = mine < stop[r] ? values[kGather ? value_pos[mine] : mine] : 0.0f;
        }
        const int64_t c = __shfl_sync(0xffffffffu, my_index[r], next[r]);
        if (c >= k1) break;
        const float v = __shfl_sync(0xffffffffu, my_value[r], next[r]);
        const float4 q = tile[c - k0][lane];
        acc[r].x += v * q.x;
        acc[r].y += v * q.y;
        acc[r].z += v * q.z;
        acc[r].w += v * q.w;
        ++next[r];
      }
    }
    __syncthreads();  // every warp is done with the tile before it is restaged
  }
  if (!column_in_batch) return;
#pragma unroll
  for (int r = 0; r < kStagedRowsPerWarp; ++r) {
    const int64_t row = row0 + r;
    if (row >= rows) break;
    float* yr = y + row * ldy + j;
    if (beta == 0.0f) {
      store_float4(yr, acc[r]);
    } else {
      const float4 o = load_float4(yr);
      store_float4(yr, make_float4(beta * o.x + acc[r].x, beta * o.y + acc[r].y, beta * o.z + acc[r].z, beta * o.w + acc[r].w));
    }
  }
}

void launch_staged(int64_t rows, int64_t cols, const int64_t* ptr, const int32_t* idx, const float* values,
                  const int64_t* value_pos, const float* x, int64_t ldx, float beta, float* y, int64_t ldy, int64_t batch,
                  Stream& stream) {
  const int64_t gx = ceil_div(rows, kStagedRows), gy = ceil_div(batch, kWarpSpan);
  const dim3 grid = product_grid(gx, gy, rows, batch);
  if (value_pos)
    NP_LAUNCH(grid, kStagedBlock, 0, raw(stream), spmm_f32_csr_staged_kernel<true>)(rows, cols, ptr, idx, values, value_pos, x,
                                                                         ldx, beta, y, ldy, batch);
  else
    NP_LAUNCH(grid, kStagedBlock, 0, raw(stream), spmm_f32_csr_staged_kernel<false>)(rows, cols, ptr, idx, values, nullptr, x,
                                                                          ldx, beta, y, ldy, batch);
  NP_CUDA_CHECK_LAUNCH();
}

// NEUROPLASTIC_CUDA_SPMM=rows|warp|staged, read once; anything else (or unset) is auto.
SpmmKernel spmm_kernel_from_environment() {
  static const SpmmKernel chosen = [] {
    const char* e = std::getenv("NEUROPLASTIC_CUDA_SPMM");
    if (e && std::strcmp(e, "rows") == 0) return SpmmKernel::kRows;
    if (e && std::strcmp(e, "warp") == 0) return SpmmKernel::kWarp;
    if (e && std::strcmp(e, "staged") == 0) return SpmmKernel::kStaged;
    return SpmmKernel::kAuto;
  }();
  return chosen;
}

// Empty rows still get Y = beta*Y (their accumulators stay 0).
void launch_rows(int64_t rows, const int64_t* ptr, const int32_t* idx, const float* values, const int64_t* value_pos,
                 const float* x, int64_t ldx, float beta, float* y, int64_t ldy, int64_t batch, Stream& stream) {
  if (rows <= 0 || batch <= 0) return;
  const int group = batch <= 32 * kColsPerThread ? 32 : batch <= 64 * kColsPerThread ? 64 : 128;
  const int64_t rows_per_block = kSpmmBlock / group;
  const int64_t gx = ceil_div(rows, rows_per_block);
  const int64_t gy = ceil_div(batch, static_cast<int64_t>(group) * kColsPerThread);
  const dim3 grid = product_grid(gx, gy, rows, batch);
  if (value_pos)
    NP_LAUNCH(grid, kSpmmBlock, 0, raw(stream), spmm_f32_csr_rows_kernel<true>)(rows, ptr, idx, values, value_pos, x, ldx,
                                                                        beta, y, ldy, batch, group);
  else
    NP_LAUNCH(grid, kSpmmBlock, 0, raw(stream), spmm_f32_csr_rows_kernel<false>)(rows, ptr, idx, values, nullptr, x, ldx,
                                                                         beta, y, ldy, batch, group);
  NP_CUDA_CHECK_LAUNCH();
}

constexpr int kSddmmBlock = 128;

__global__ void __launch_bounds__(kSddmmBlock)
    sddmm_f32_csr_kernel(int64_t rows, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                         const float* __restrict__ dy, int64_t lddy, const float* __restrict__ x, int64_t ldx,
                         int64_t batch, float beta, float* __restrict__ grad) {
  // grad[k] = beta*grad[k] + dY[row, :] . X[idx[k], :] for k in row's range.
  const int64_t row = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* dyr = dy + row * lddy;
  const int64_t end = ptr[row + 1];
  for (int64_t k = ptr[row] + warp; k < end; k += kSddmmBlock / 32) {
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
    float s = 0.0f;
    for (int64_t j = lane; j < batch; j += 32) s += dyr[j] * xr[j];
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) grad[k] = beta == 0.0f ? s : beta * grad[k] + s;
  }
}

// The same product with float4 reads (batch 128..1024, aligned operands):
// each lane keeps the row's dY at its columns 4l + 128c (c < V) in registers,
// loaded once per row, so a stored weight costs V float4 reads of its X row
// instead of 2 * batch / 32 scalar reads (dY and X). A lane sums its own
// products (c ascending, x y z w), then the warp adds its 32 lane sums as the
// scalar kernel does. Another order of the sum than that kernel's, so the two
// agree to float rounding, not to the bit.
template <int V>
__global__ void __launch_bounds__(kSddmmBlock)
    sddmm_f32_csr_vector_kernel(int64_t rows, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                                const float* __restrict__ dy, int64_t lddy, const float* __restrict__ x, int64_t ldx,
                                int64_t batch, float beta, float* __restrict__ grad) {
  const int64_t row = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float4 d[V];
#pragma unroll
  for (int c = 0; c < V; ++c) {
    const int64_t j = 4 * lane + kWarpSpan * c;
    d[c] = j < batch ? load_float4(dy + row * lddy + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  const int64_t end = ptr[row + 1];
  for (int64_t k = ptr[row] + warp; k < end; k += kSddmmBlock / 32) {
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < V; ++c) {
      const int64_t j = 4 * lane + kWarpSpan * c;
      if (j < batch) {
        const float4 q = load_float4(xr + j);
        s += d[c].x * q.x;
        s += d[c].y * q.y;
        s += d[c].z * q.z;
        s += d[c].w * q.w;
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) grad[k] = beta == 0.0f ? s : beta * grad[k] + s;
  }
}

template <int V>
void launch_sddmm_vector(unsigned grid, cudaStream_t s, const CsrView& p, const float* dy, int64_t lddy, const float* x,
                         int64_t ldx, int64_t batch, float beta, float* grad) {
  NP_LAUNCH(grid, kSddmmBlock, 0, s, sddmm_f32_csr_vector_kernel<V>)(p.rows, p.indptr, p.indices, dy, lddy, x, ldx, batch, beta,
                                                                     grad);
}

// ---- W^T's structure on the device (csr_transpose_cuda) ----------------------------

constexpr int kTransposeBlock = 256;
constexpr int kScanThreads = 1024;
constexpr int64_t kTransposeCells = int64_t{1} << 22;  // csr_transpose_cuda's table: 32 MiB of int64 at most

unsigned transpose_grid(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(std::max<int64_t>(n, 1), kTransposeBlock), 65535));
}

// In place, one block: v[i] = v[0] + ... + v[i] over n entries. Each thread
// sums a chunk, thread 0 scans the chunk sums, then each chunk is rewritten.
__global__ void __launch_bounds__(kScanThreads) inclusive_scan_kernel(int64_t* __restrict__ v, int64_t n) {
  __shared__ int64_t chunk_sum[kScanThreads];
  const int64_t chunk = (n + kScanThreads - 1) / kScanThreads;
  const int64_t begin = threadIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;
  int64_t s = 0;
  for (int64_t i = begin; i < end; ++i) s += v[i];
  chunk_sum[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t running = 0;
    for (int t = 0; t < kScanThreads; ++t) {
      const int64_t c = chunk_sum[t];
      chunk_sum[t] = running;  // what comes before chunk t
      running += c;
    }
  }
  __syncthreads();
  int64_t running = chunk_sum[threadIdx.x];
  for (int64_t i = begin; i < end; ++i) {
    running += v[i];
    v[i] = running;
  }
}

// W^T by a stable counting sort on the column, over row blocks: thread b owns
// rows [b * rows / blocks, (b + 1) * rows / blocks) and walks them in order, so
// cells[1 + c * blocks + b] (entries of column c in block b) needs no atomics;
// after a scan, cells[c * blocks + b] is where block b's first entry of column
// c goes, and the same walk places every entry there in row order. No sort,
// nothing left to the order of atomics, and a tall layer (few columns, many
// rows) spreads over the row blocks instead of one thread per column.
__global__ void __launch_bounds__(kTransposeBlock)
    count_row_blocks_kernel(int64_t* __restrict__ cells, const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx,
                            int64_t rows, int64_t blocks) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kTransposeBlock + threadIdx.x;
  if (b >= blocks) return;
  const int64_t r_end = (b + 1) * rows / blocks;
  for (int64_t r = b * rows / blocks; r < r_end; ++r)
    for (int64_t k = ptr[r]; k < ptr[r + 1]; ++k) ++cells[1 + static_cast<int64_t>(idx[k]) * blocks + b];
}

// col_ptr[c] = where column c starts (the scanned cell of its first block); col_ptr[cols] = nnz.
__global__ void __launch_bounds__(kTransposeBlock)
    column_starts_kernel(int64_t* __restrict__ col_ptr, const int64_t* __restrict__ cells, int64_t cols, int64_t blocks) {
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * kTransposeBlock + threadIdx.x; c <= cols;
       c += static_cast<int64_t>(gridDim.x) * kTransposeBlock)
    col_ptr[c] = cells[c * blocks];
}

__global__ void __launch_bounds__(kTransposeBlock)
    fill_row_blocks_kernel(int64_t* __restrict__ value_pos, int32_t* __restrict__ row_idx, int64_t* __restrict__ cursor,
                           const int64_t* __restrict__ ptr, const int32_t* __restrict__ idx, int64_t rows, int64_t blocks) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kTransposeBlock + threadIdx.x;
  if (b >= blocks) return;
  const int64_t r_end = (b + 1) * rows / blocks;
  for (int64_t r = b * rows / blocks; r < r_end; ++r)
    for (int64_t k = ptr[r]; k < ptr[r + 1]; ++k) {
      const int64_t at = cursor[static_cast<int64_t>(idx[k]) * blocks + b]++;
      value_pos[at] = k;
      row_idx[at] = static_cast<int32_t>(r);
    }
}

}  // namespace

void inclusive_scan_i64_cuda(int64_t* v, int64_t n, Stream& stream) {
  if (n <= 0) return;
  NP_LAUNCH(1, kScanThreads, 0, raw(stream), inclusive_scan_kernel)(v, n);
  NP_CUDA_CHECK_LAUNCH();
}

void csr_transpose_cuda(const CsrView& w, int64_t nnz, int64_t* col_ptr, int32_t* row_idx, int64_t* value_pos,
                        DeviceBuffer& scratch, Stream& stream) {
  cudaStream_t s = raw(stream);
  NP_CUDA_CHECK(cudaMemsetAsync(col_ptr, 0, static_cast<size_t>(w.cols + 1) * sizeof(int64_t), s));
  if (w.cols <= 0 || w.rows <= 0 || nnz == 0) return;
  // As many row blocks as rows, up to a table of kTransposeCells cells (cols x blocks).
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(w.rows, kTransposeCells / w.cols));
  const int64_t cells = w.cols * blocks + 1;
  scratch.reserve(static_cast<size_t>(cells) * sizeof(int64_t));
  int64_t* table = scratch.as<int64_t>();
  NP_CUDA_CHECK(cudaMemsetAsync(table, 0, static_cast<size_t>(cells) * sizeof(int64_t), s));
  const unsigned grid = static_cast<unsigned>(ceil_div(blocks, kTransposeBlock));
  NP_LAUNCH(grid, kTransposeBlock, 0, s, count_row_blocks_kernel)(table, w.indptr, w.indices, w.rows, blocks);
  NP_CUDA_CHECK_LAUNCH();
  // Inclusive over [0, counts...] = exclusive over the counts: cell (c, b) becomes its first slot.
  NP_LAUNCH(1, kScanThreads, 0, s, inclusive_scan_kernel)(table, cells);
  NP_CUDA_CHECK_LAUNCH();
  NP_LAUNCH(transpose_grid(w.cols + 1), kTransposeBlock, 0, s, column_starts_kernel)(col_ptr, table, w.cols, blocks);
  NP_CUDA_CHECK_LAUNCH();
  NP_LAUNCH(grid, kTransposeBlock, 0, s, fill_row_blocks_kernel)(value_pos, row_idx, table, w.indptr, w.indices, w.rows, blocks);
  NP_CUDA_CHECK_LAUNCH();
}

CsrTranspose csr_transpose_host(const CsrView& w) {
  CsrTranspose t;
  const int64_t nnz = w.nnz();
  t.col_ptr.assign(static_cast<size_t>(w.cols) + 1, 0);
  t.row_idx.resize(static_cast<size_t>(nnz));
  t.value_pos.resize(static_cast<size_t>(nnz));
  for (int64_t k = 0; k < nnz; ++k) {
    const int32_t c = w.indices[k];
    if (c < 0 || c >= w.cols)
      throw std::out_of_range("csr_transpose_host: column index " + std::to_string(c) + " at " + std::to_string(k) +
                              " is outside [0, " + std::to_string(w.cols) + ")");
    ++t.col_ptr[static_cast<size_t>(c) + 1];
  }
  for (int64_t c = 0; c < w.cols; ++c) t.col_ptr[c + 1] += t.col_ptr[c];
  std::vector<int64_t> next(t.col_ptr.begin(), t.col_ptr.end() - 1);
  // Rows visited in order, so each column's rows come out sorted.
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k) {
      const int64_t pos = next[w.indices[k]]++;
      t.row_idx[pos] = static_cast<int32_t>(r);
      t.value_pos[pos] = k;
    }
  }
  return t;
}

SpmmKernel spmm_kernel_for(SpmmKernel asked, const float* x, int64_t ldx, const float* y, int64_t ldy, int64_t batch,
                           double density) {
  if (asked == SpmmKernel::kAuto) asked = spmm_kernel_from_environment();
  const bool vectors = float4_operands(x, ldx, y, ldy, batch);
  if (asked == SpmmKernel::kRows || !vectors) return SpmmKernel::kRows;
  if (asked != SpmmKernel::kAuto) return asked;
  if (batch < kWarpSpan) return SpmmKernel::kRows;
  // The staged kernel takes 128 columns per block in y, the warp kernel up to 1024.
  const bool staged_grid = ceil_div(batch, kWarpSpan) <= kMaxGridY;
  return density >= kStagedMinDensity && staged_grid ? SpmmKernel::kStaged : SpmmKernel::kWarp;
}

namespace {

// rows x cols: the product's matrix (W, or W^T for the transposed product); nnz < 0: unknown.
void launch_product(SpmmKernel asked, int64_t rows, int64_t cols, int64_t nnz, const int64_t* ptr, const int32_t* idx,
                    const float* values, const int64_t* value_pos, const float* x, int64_t ldx, float beta, float* y,
                    int64_t ldy, int64_t batch, Stream& stream) {
  if (rows <= 0 || batch <= 0) return;
  const double density = nnz >= 0 && cols > 0 ? static_cast<double>(nnz) / (static_cast<double>(rows) * static_cast<double>(cols)) : -1.0;
  switch (spmm_kernel_for(asked, x, ldx, y, ldy, batch, density)) {
    case SpmmKernel::kStaged: launch_staged(rows, cols, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
    case SpmmKernel::kWarp: launch_warp(rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
    default: launch_rows(rows, ptr, idx, values, value_pos, x, ldx, beta, y, ldy, batch, stream); break;
  }
}

}  // namespace

void spmm_f32_csr_cuda(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                       int64_t batch, Stream& stream, SpmmKernel kernel, int64_t nnz) {
  launch_product(kernel, w.rows, w.cols, nnz, w.indptr, w.indices, w.values, nullptr, x, ldx, beta, y, ldy, batch, stream);
}

void spmm_t_f32_csr_cuda(const CsrView& w, const CsrTransposeView& wt, const float* dy, int64_t lddy, float beta,
                         float* dx, int64_t lddx, int64_t batch, Stream& stream, SpmmKernel kernel, int64_t nnz) {
  if (wt.rows != w.rows || wt.cols != w.cols)
    throw std::invalid_argument("spmm_t_f32_csr_cuda: the transpose structure is for a " + std::to_string(wt.rows) +
                                " x " + std::to_string(wt.cols) + " matrix, W is " + std::to_string(w.rows) + " x " +
                                std::to_string(w.cols));
  launch_product(kernel, w.cols, w.rows, nnz, wt.col_ptr, wt.row_idx, w.values, wt.value_pos, dy, lddy, beta, dx, lddx, batch,
                 stream);
}

bool sddmm_takes_vectors(const float* dy, int64_t lddy, const float* x, int64_t ldx, int64_t batch) {
  return batch >= kWarpSpan && batch <= kWarpSpan * kWarpMaxVectors && float4_operands(dy, lddy, x, ldx, batch);
}

void sddmm_f32_csr_cuda(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                        int64_t batch, float beta, float* grad_values, Stream& stream) {
  if (pattern.rows <= 0) return;
  if (pattern.rows > kMaxGridX) throw std::length_error("sddmm_f32_csr_cuda: too many rows for one grid");
  const unsigned grid = static_cast<unsigned>(pattern.rows);
  cudaStream_t s = raw(stream);
  if (!sddmm_takes_vectors(dy, lddy, x, ldx, batch)) {
    NP_LAUNCH(grid, kSddmmBlock, 0, s, sddmm_f32_csr_kernel)(pattern.rows, pattern.indptr, pattern.indices, dy, lddy, x, ldx,
                                                             batch, beta, grad_values);
  } else {
    switch (float4s_per_lane(batch)) {
      case 1: launch_sddmm_vector<1>(grid, s, pattern, dy, lddy, x, ldx, batch, beta, grad_values); break;
      case 2: launch_sddmm_vector<2>(grid, s, pattern, dy, lddy, x, ldx, batch, beta, grad_values); break;
      case 4: launch_sddmm_vector<4>(grid, s, pattern, dy, lddy, x, ldx, batch, beta, grad_values); break;
      default: launch_sddmm_vector<kWarpMaxVectors>(grid, s, pattern, dy, lddy, x, ldx, batch, beta, grad_values); break;
    }
  }
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
