// Per-unit l1 / l2 scores for neuron pruning on the device, bit for bit the
// CPU model's (np::Model::neuron_scores): each unit's sum over its incoming
// row and its outgoing column, in double, added in the CPU's order (a row by
// input, a column by unit, a CSR column through W^T's positions, which are
// ascending). __dadd_rn / __dmul_rn keep nvcc from fusing a multiply and an
// add into one FMA, which would round differently. One thread per unit: run
// once per pruning decision, never per step.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kBlock = 128;

__device__ inline double norm_term(float w, bool l1) {
  const double d = static_cast<double>(w);
  return l1 ? fabs(d) : __dmul_rn(d, d);
}

__global__ void __launch_bounds__(kBlock)
    neuron_norm_scores_kernel(NormWeights layer, NormWeights next, bool l1, double* __restrict__ scores) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; j < layer.units; j += stride) {
    double in = 0.0;
    if (layer.indptr != nullptr) {
      for (int64_t k = layer.indptr[j]; k < layer.indptr[j + 1]; ++k) in = __dadd_rn(in, norm_term(layer.values[k], l1));
    } else {
      const float* row = layer.values + j * (layer.stride ? layer.stride : layer.inputs);
      for (int64_t c = 0; c < layer.inputs; ++c) in = __dadd_rn(in, norm_term(row[c], l1));
    }
    double out = 0.0;
    if (next.indptr != nullptr) {
      for (int64_t t = next.t_col_ptr[j]; t < next.t_col_ptr[j + 1]; ++t)
        out = __dadd_rn(out, norm_term(next.values[next.t_value_pos[t]], l1));
    } else {
      for (int64_t r = 0; r < next.units; ++r) out = __dadd_rn(out, norm_term(next.values[r * (next.stride ? next.stride : next.inputs) + j], l1));
    }
    const double sum = __dadd_rn(in, out);
    scores[j] = l1 ? sum : sqrt(sum);
  }
}

// Continual backprop's outgoing term: per column j of `next`, the mean |w|
// over its stored rows (mask, or the CSR entries), in row order, in double.
__global__ void __launch_bounds__(kBlock)
    mean_abs_columns_kernel(NormWeights next, const uint8_t* mask, double* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; j < next.inputs; j += stride) {
    double sum = 0.0;
    int64_t count = 0;
    if (next.indptr != nullptr) {
      for (int64_t t = next.t_col_ptr[j]; t < next.t_col_ptr[j + 1]; ++t)
        sum = __dadd_rn(sum, fabs(static_cast<double>(next.values[next.t_value_pos[t]])));
      count = next.t_col_ptr[j + 1] - next.t_col_ptr[j];
    } else {
      for (int64_t r = 0; r < next.units; ++r) {
        if (mask != nullptr && mask[r * next.inputs + j] == 0) continue;
        sum = __dadd_rn(sum, fabs(static_cast<double>(next.values[r * (next.stride ? next.stride : next.inputs) + j])));
        ++count;
      }
    }
    out[j] = count ? sum / static_cast<double>(count) : 0.0;
  }
}

// GradMax's norm of the next layer: each block's sum of w^2 over a strided
// share of the values (each thread in order, then a tree in shared memory),
// one double per block; the host adds the blocks in order. Deterministic, but
// not the CPU's single running sum.
constexpr int kSquaresBlocks = 64;

__global__ void __launch_bounds__(kBlock) sum_squares_kernel(const float* __restrict__ values, int64_t count, double* __restrict__ partials) {
  __shared__ double sh[kBlock];
  double s = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; i < count; i += stride) {
    const double d = static_cast<double>(values[i]);
    s = __dadd_rn(s, __dmul_rn(d, d));
  }
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sh[threadIdx.x] = __dadd_rn(sh[threadIdx.x], sh[threadIdx.x + half]);
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = sh[0];
}

}  // namespace

int sum_squares_partials() { return kSquaresBlocks; }

void sum_squares_cuda(const float* values, int64_t count, double* partials, Stream& stream) {
  NP_LAUNCH(static_cast<unsigned>(kSquaresBlocks), kBlock, 0, raw(stream), sum_squares_kernel)(values, count, partials);
  NP_CUDA_CHECK_LAUNCH();
}

void mean_abs_columns_cuda(const NormWeights& next, const uint8_t* mask, double* out, Stream& stream) {
  if (next.inputs <= 0) return;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(ceil_div(next.inputs, kBlock), 4096));
  NP_LAUNCH(grid, kBlock, 0, raw(stream), mean_abs_columns_kernel)(next, mask, out);
  NP_CUDA_CHECK_LAUNCH();
}

void neuron_norm_scores_cuda(const NormWeights& layer, const NormWeights& next, bool l1, double* scores, Stream& stream) {
  if (layer.units <= 0) return;
  if (next.inputs != layer.units) throw std::invalid_argument("neuron_norm_scores_cuda: the next layer's inputs are not this layer's units");
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(ceil_div(layer.units, kBlock), 4096));
  NP_LAUNCH(grid, kBlock, 0, raw(stream), neuron_norm_scores_kernel)(layer, next, l1, scores);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
