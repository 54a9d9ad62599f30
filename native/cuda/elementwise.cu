// Activations (bias + activation forward, derivative backward) and optimizer
// updates: memory-bound elementwise passes with the CPU kernels' formulas
// (native/kernels/activations.cpp, optimizers.cpp).
//
// Activations: one block per row of the feature-major block, so the optional
// per-row sums reduce in shared memory in a fixed order (deterministic).
// Optimizers: a grid-stride loop over rows x cols of a strided block.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kRowBlock = 256;

__device__ __forceinline__ float stable_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

template <Activation A>
__device__ __forceinline__ float activate(float v) {
  if (A == Activation::kRelu) return v > 0.0f ? v : 0.0f;
  if (A == Activation::kTanh) return tanhf(v);
  if (A == Activation::kSigmoid) return stable_sigmoid(v);
  return v;
}

// The derivative from the output a = act(z).
template <Activation A>
__device__ __forceinline__ float derivative_from_output(float a) {
  if (A == Activation::kRelu) return a > 0.0f ? 1.0f : 0.0f;
  if (A == Activation::kTanh) return 1.0f - a * a;
  if (A == Activation::kSigmoid) return a * (1.0f - a);
  return 1.0f;
}

// Sums two values over the block in a fixed order; the result is valid in thread 0.
__device__ __forceinline__ void block_sum2(float& s0, float& s1) {
  __shared__ float sh0[kRowBlock], sh1[kRowBlock];
  sh0[threadIdx.x] = s0;
  sh1[threadIdx.x] = s1;
  __syncthreads();
  for (int half = kRowBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      sh0[threadIdx.x] += sh0[threadIdx.x + half];
      sh1[threadIdx.x] += sh1[threadIdx.x + half];
    }
    __syncthreads();
  }
  s0 = sh0[0];
  s1 = sh1[0];
}

template <Activation A>
__global__ void __launch_bounds__(kRowBlock)
    bias_activation_forward_kernel(float* __restrict__ y, int64_t ld, const float* __restrict__ bias, int64_t batch,
                                   float* __restrict__ row_abs_sum, float* __restrict__ row_sum) {
  // y[r, :] = act(y[r, :] + bias[r]); r = blockIdx.x
  const int64_t r = blockIdx.x;
  float* row = y + r * ld;
  const float b = bias ? bias[r] : 0.0f;
  float s_abs = 0.0f, s = 0.0f;
  for (int64_t j = threadIdx.x; j < batch; j += kRowBlock) {
    const float v = activate<A>(row[j] + b);
    row[j] = v;
    s_abs += fabsf(v);
    s += v;
  }
  if (!row_abs_sum && !row_sum) return;  // uniform across the block: no thread waits at a barrier alone
  block_sum2(s_abs, s);
  if (threadIdx.x == 0) {
    if (row_abs_sum) row_abs_sum[r] = s_abs;
    if (row_sum) row_sum[r] = s;
  }
}

template <Activation A>
__global__ void __launch_bounds__(kRowBlock)
    activation_backward_kernel(float* __restrict__ dy, const float* __restrict__ y, int64_t ld, int64_t batch,
                               float* __restrict__ row_y_dot_dy, float* __restrict__ row_dz_sum) {
  // dz[r, :] = dy[r, :] * act'(y[r, :]) in place; r = blockIdx.x
  const int64_t r = blockIdx.x;
  float* d = dy + r * ld;
  const float* a = y + r * ld;
  float dot = 0.0f, s = 0.0f;
  for (int64_t j = threadIdx.x; j < batch; j += kRowBlock) {
    const float g = d[j];
    dot += a[j] * g;
    const float dz = A == Activation::kLinear ? g : g * derivative_from_output<A>(a[j]);
    d[j] = dz;
    s += dz;
  }
  if (!row_y_dot_dy && !row_dz_sum) return;
  block_sum2(dot, s);
  if (threadIdx.x == 0) {
    if (row_y_dot_dy) row_y_dot_dy[r] = dot;
    if (row_dz_sum) row_dz_sum[r] = s;
  }
}

void check_rows(int64_t rows, const char* fn) {
  if (rows > kMaxGridX) throw std::length_error(std::string(fn) + ": " + std::to_string(rows) + " rows exceed the grid");
}

}  // namespace

void bias_activation_forward_cuda(float* y, int64_t ld, const float* bias, Activation act, int64_t rows,
                                  int64_t batch, float* row_abs_sum, float* row_sum, Stream& stream) {
  if (rows <= 0) return;
  check_rows(rows, "bias_activation_forward_cuda");
  const unsigned grid = static_cast<unsigned>(rows);
  cudaStream_t s = raw(stream);
  switch (act) {
    case Activation::kLinear: NP_LAUNCH(grid, kRowBlock, 0, s, bias_activation_forward_kernel<Activation::kLinear>)(y, ld, bias, batch, row_abs_sum, row_sum); break;
    case Activation::kRelu: NP_LAUNCH(grid, kRowBlock, 0, s, bias_activation_forward_kernel<Activation::kRelu>)(y, ld, bias, batch, row_abs_sum, row_sum); break;
    case Activation::kTanh: NP_LAUNCH(grid, kRowBlock, 0, s, bias_activation_forward_kernel<Activation::kTanh>)(y, ld, bias, batch, row_abs_sum, row_sum); break;
    case Activation::kSigmoid: NP_LAUNCH(grid, kRowBlock, 0, s, bias_activation_forward_kernel<Activation::kSigmoid>)(y, ld, bias, batch, row_abs_sum, row_sum); break;
  }
  NP_CUDA_CHECK_LAUNCH();
}

void activation_backward_cuda(float* dy, const float* y, int64_t ld, Activation act, int64_t rows, int64_t batch,
                              float* row_y_dot_dy, float* row_dz_sum, Stream& stream) {
  if (rows <= 0) return;
  check_rows(rows, "activation_backward_cuda");
  const unsigned grid = static_cast<unsigned>(rows);
  cudaStream_t s = raw(stream);
  switch (act) {
    case Activation::kLinear: NP_LAUNCH(grid, kRowBlock, 0, s, activation_backward_kernel<Activation::kLinear>)(dy, y, ld, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kRelu: NP_LAUNCH(grid, kRowBlock, 0, s, activation_backward_kernel<Activation::kRelu>)(dy, y, ld, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kTanh: NP_LAUNCH(grid, kRowBlock, 0, s, activation_backward_kernel<Activation::kTanh>)(dy, y, ld, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kSigmoid: NP_LAUNCH(grid, kRowBlock, 0, s, activation_backward_kernel<Activation::kSigmoid>)(dy, y, ld, batch, row_y_dot_dy, row_dz_sum); break;
  }
  NP_CUDA_CHECK_LAUNCH();
}

// ---- optimizers -----------------------------------------------------------------

namespace {

constexpr int kUpdateBlock = 256;

// Enough blocks to fill any current GPU; the grid-stride loop does the rest.
unsigned update_grid(int64_t count) { return static_cast<unsigned>(std::min<int64_t>(ceil_div(count, kUpdateBlock), 8192)); }

__global__ void sgd_update_kernel(float* __restrict__ value, float* __restrict__ velocity,
                                  const float* __restrict__ grad, int64_t rows, int64_t cols, int64_t ld,
                                  SgdParams p, const NonFiniteStep* halt) {
  // torch.optim.SGD: v = mu v + g (g with coupled L2); step = nesterov ? g + mu v : v
  if (halt != nullptr && halt->step >= 0) return;  // a non-finite loss: no update from here
  const int64_t count = rows * cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = (e / cols) * ld + e % cols;
    const float g = grad[i] + p.weight_decay * value[i];
    if (p.momentum == 0.0f || velocity == nullptr) {
      value[i] -= p.learning_rate * g;
      continue;
    }
    const float v = p.momentum * velocity[i] + g;
    velocity[i] = v;
    value[i] -= p.learning_rate * (p.nesterov ? g + p.momentum * v : v);
  }
}

__global__ void adam_update_kernel(float* __restrict__ value, float* __restrict__ m, float* __restrict__ v,
                                   const float* __restrict__ grad, int64_t rows, int64_t cols, int64_t ld,
                                   AdamParams p, const NonFiniteStep* halt) {
  // torch.optim.Adam / AdamW: w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
  if (halt != nullptr && halt->step >= 0) return;  // a non-finite loss: no update from here
  const float step = p.learning_rate / p.bias_correction1;
  const float inv_sqrt_bc2 = 1.0f / sqrtf(p.bias_correction2);
  const float coupled_wd = p.decoupled ? 0.0f : p.weight_decay;
  const float decay = p.decoupled ? 1.0f - p.learning_rate * p.weight_decay : 1.0f;
  const int64_t count = rows * cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = (e / cols) * ld + e % cols;
    const float g = grad[i] + coupled_wd * value[i];
    const float mi = p.beta1 * m[i] + (1.0f - p.beta1) * g;
    const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    value[i] = value[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + p.epsilon);
  }
}

}  // namespace

void sgd_update_cuda(float* value, float* velocity, const float* grad, int64_t rows, int64_t cols, int64_t ld,
                     const SgdParams& p, Stream& stream, const NonFiniteStep* halt) {
  if (rows <= 0 || cols <= 0) return;
  NP_LAUNCH(update_grid(rows * cols), kUpdateBlock, 0, raw(stream), sgd_update_kernel)(value, velocity, grad, rows, cols, ld, p, halt);
  NP_CUDA_CHECK_LAUNCH();
}

void adam_update_cuda(float* value, float* m, float* v, const float* grad, int64_t rows, int64_t cols, int64_t ld,
                      const AdamParams& p, Stream& stream, const NonFiniteStep* halt) {
  if (rows <= 0 || cols <= 0) return;
  NP_LAUNCH(update_grid(rows * cols), kUpdateBlock, 0, raw(stream), adam_update_kernel)(value, m, v, grad, rows, cols, ld, p, halt);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
