// The device-resident model's data movement: batch gather + transposition into
// feature-major blocks (and back for predictions), label gathers, the running
// loss totals, gradient masks and dropout. All memory-bound; the only tiling is
// the 32 x 32 shared-memory transpose, so both the reads (along a sample's
// features) and the writes (along a feature's samples) are coalesced.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8;  // a 32 x 8 block moves a 32 x 32 tile, 4 elements per thread
constexpr int kBlock = 256;

__global__ void __launch_bounds__(kTile * kTileRows)
    gather_transpose_kernel(float* __restrict__ dst, int64_t ldd, const float* __restrict__ src, int64_t lds,
                            const int32_t* __restrict__ index, int64_t first, int64_t rows, int64_t cols,
                            int64_t tile_row0) {
  // dst[c, j] = src[row(j), c]; tile (tile_row0 + blockIdx.y: j0, blockIdx.x: c0)
  __shared__ float tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t j0 = (tile_row0 + static_cast<int64_t>(blockIdx.y)) * kTile;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t j = j0 + k, c = c0 + threadIdx.x;
    if (j < rows && c < cols) {
      const int64_t row = index ? index[first + j] : first + j;
      tile[k][threadIdx.x] = src[row * lds + c];
    }
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t c = c0 + k, j = j0 + threadIdx.x;
    if (c < cols && j < rows) dst[c * ldd + j] = tile[threadIdx.x][k];
  }
}

__global__ void gather_i32_kernel(int32_t* __restrict__ dst, const int32_t* __restrict__ src,
                                  const int32_t* __restrict__ index, int64_t first, int64_t count) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < count) dst[j] = src[index ? index[first + j] : first + j];
}

__global__ void accumulate_totals_kernel(LossTotals* total, const LossTotals* batch, NonFiniteStep* halt, int64_t step) {
  if (halt != nullptr) {
    if (halt->step >= 0) return;
    if (!isfinite(batch->loss)) {
      halt->step = step;
      halt->loss = batch->loss;
      return;
    }
  }
  total->loss += batch->loss;
  total->correct += batch->correct;
}

__global__ void update_unit_stats_kernel(double* __restrict__ mean_abs, double* __restrict__ mean,
                                         const float* __restrict__ abs_sum, const float* __restrict__ sum, int64_t units,
                                         double decay, double inv_batch, const NonFiniteStep* halt) {
  if (halt != nullptr && halt->step >= 0) return;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= units) return;
  mean_abs[r] = decay * mean_abs[r] + (1.0 - decay) * (static_cast<double>(abs_sum[r]) * inv_batch);
  mean[r] = decay * mean[r] + (1.0 - decay) * (static_cast<double>(sum[r]) * inv_batch);
}

__global__ void update_taylor_stats_kernel(double* __restrict__ taylor, const float* __restrict__ dot, int64_t units,
                                           double decay, const NonFiniteStep* halt) {
  if (halt != nullptr && halt->step >= 0) return;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= units) return;
  taylor[r] = decay * taylor[r] + (1.0 - decay) * fabs(static_cast<double>(dot[r]));
}

__global__ void mask_by_flags_kernel(float* __restrict__ values, int64_t ld, const uint8_t* __restrict__ keep,
                                     int64_t rows, int64_t cols) {
  const int64_t count = rows * cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!keep[i]) values[(i / cols) * ld + i % cols] = 0.0f;
  }
}

__global__ void dropout_forward_kernel(float* __restrict__ dropped, float* __restrict__ mask,
                                       const float* __restrict__ in, int64_t count, float rate, float scale,
                                       uint64_t seed, uint64_t stream_id) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float m = dropout_uniform(seed, stream_id, static_cast<uint64_t>(i)) >= rate ? scale : 0.0f;
    mask[i] = m;
    dropped[i] = in[i] * m;
  }
}

__global__ void multiply_kernel(float* __restrict__ x, const float* __restrict__ mask, int64_t count) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= mask[i];
}

// Grid-stride loops: enough blocks to fill the device, never more than the grid allows.
unsigned stride_grid(int64_t count) {
  const int64_t blocks = ceil_div(count, kBlock);
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

void gather_transpose_f32_cuda(float* dst, int64_t ldd, const float* src, int64_t lds, const int32_t* index,
                               int64_t first, int64_t rows, int64_t cols, Stream& stream) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t gx = ceil_div(cols, kTile), gy = ceil_div(rows, kTile);
  if (gx > kMaxGridX)
    throw std::length_error("gather_transpose_f32_cuda: " + std::to_string(rows) + " x " + std::to_string(cols) +
                            " exceeds the grid");
  // gridDim.y is at most 65535 tiles (2M rows: a big evaluate()/predict() chunk
  // reaches it): launch the rows in slices of that many tiles.
  const dim3 block(kTile, kTileRows);
  for (int64_t y0 = 0; y0 < gy; y0 += kMaxGridY) {
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(std::min(gy - y0, kMaxGridY)));
    NP_LAUNCH(grid, block, 0, raw(stream), gather_transpose_kernel)(dst, ldd, src, lds, index, first, rows, cols, y0);
    NP_CUDA_CHECK_LAUNCH();
  }
}

void gather_i32_cuda(int32_t* dst, const int32_t* src, const int32_t* index, int64_t first, int64_t count,
                     Stream& stream) {
  if (count <= 0) return;
  const int64_t blocks = ceil_div(count, kBlock);
  if (blocks > kMaxGridX) throw std::length_error("gather_i32_cuda: count exceeds the grid");
  NP_LAUNCH(static_cast<unsigned>(blocks), kBlock, 0, raw(stream), gather_i32_kernel)(dst, src, index, first, count);
  NP_CUDA_CHECK_LAUNCH();
}

void accumulate_totals_cuda(LossTotals* total, const LossTotals* batch, Stream& stream, NonFiniteStep* halt,
                            int64_t step) {
  NP_LAUNCH(1, 1, 0, raw(stream), accumulate_totals_kernel)(total, batch, halt, step);
  NP_CUDA_CHECK_LAUNCH();
}

void update_unit_stats_cuda(double* mean_abs, double* mean, const float* abs_sum, const float* sum, int64_t units,
                            double decay, int64_t batch, const NonFiniteStep* halt, Stream& stream) {
  if (units <= 0 || batch <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(ceil_div(units, kBlock)), kBlock, 0, raw(stream), update_unit_stats_kernel)(
      mean_abs, mean, abs_sum, sum, units, decay, 1.0 / static_cast<double>(batch), halt);
  NP_CUDA_CHECK_LAUNCH();
}

void update_taylor_stats_cuda(double* taylor, const float* dot, int64_t units, double decay, const NonFiniteStep* halt,
                              Stream& stream) {
  if (units <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(ceil_div(units, kBlock)), kBlock, 0, raw(stream), update_taylor_stats_kernel)(taylor, dot, units,
                                                                                                      decay, halt);
  NP_CUDA_CHECK_LAUNCH();
}

void mask_by_flags_cuda(float* values, int64_t ld, const uint8_t* keep, int64_t rows, int64_t cols, Stream& stream) {
  if (rows <= 0 || cols <= 0) return;
  NP_LAUNCH(stride_grid(rows * cols), kBlock, 0, raw(stream), mask_by_flags_kernel)(values, ld, keep, rows, cols);
  NP_CUDA_CHECK_LAUNCH();
}

void dropout_forward_cuda(float* dropped, float* mask, const float* in, int64_t count, float rate, uint64_t seed,
                          uint64_t stream_id, Stream& stream) {
  if (count <= 0) return;
  if (!(rate >= 0.0f && rate < 1.0f)) throw std::invalid_argument("dropout_forward_cuda: rate must be in [0, 1)");
  NP_LAUNCH(stride_grid(count), kBlock, 0, raw(stream), dropout_forward_kernel)(dropped, mask, in, count, rate,
                                                                         1.0f / (1.0f - rate), seed, stream_id);
  NP_CUDA_CHECK_LAUNCH();
}

void multiply_cuda(float* x, const float* mask, int64_t count, Stream& stream) {
  if (count <= 0) return;
  NP_LAUNCH(stride_grid(count), kBlock, 0, raw(stream), multiply_kernel)(x, mask, count);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
