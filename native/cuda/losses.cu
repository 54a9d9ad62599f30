// Fused softmax cross-entropy on feature-major logits (outputs x batch).
//
// One thread per sample (column): consecutive threads read consecutive columns
// of each logits row, so every pass over the outputs is coalesced. The CPU
// formula (native/kernels/losses.cpp): max subtracted, log-sum-exp in double,
// grad = (softmax - target) / batch. Totals are reduced deterministically: a
// fixed-order tree per block into a workspace, then one block over the partials.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kLossBlock = 256;

struct Partial {
  double loss;
  long long correct;
};

__device__ __forceinline__ void block_reduce(double& loss, long long& correct) {
  __shared__ double sl[kLossBlock];
  __shared__ long long sc[kLossBlock];
  sl[threadIdx.x] = loss;
  sc[threadIdx.x] = correct;
  __syncthreads();
  for (int half = kLossBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      sl[threadIdx.x] += sl[threadIdx.x + half];
      sc[threadIdx.x] += sc[threadIdx.x + half];
    }
    __syncthreads();
  }
  loss = sl[0];
  correct = sc[0];
}

__global__ void __launch_bounds__(kLossBlock)
    softmax_cross_entropy_kernel(float* __restrict__ grad, Partial* __restrict__ partials,
                                 const float* __restrict__ logits, int64_t ld, const int32_t* __restrict__ labels,
                                 const float* __restrict__ targets, int64_t outputs, int64_t batch) {
  // column j = sample; logits[r * ld + j], r < outputs
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kLossBlock + threadIdx.x;
  double loss = 0.0;
  long long correct = 0;
  if (j < batch) {
    const float* col = logits + j;
    float mx = col[0];
    int64_t arg = 0;
    for (int64_t r = 1; r < outputs; ++r) {
      const float v = col[r * ld];
      if (v > mx) {
        mx = v;
        arg = r;
      }
    }
    int64_t want = -1;  // the target's argmax (first maximum, as the CPU)
    if (labels) {
      want = labels[j];
    } else {
      float best = targets[j];
      want = 0;
      for (int64_t r = 1; r < outputs; ++r) {
        const float t = targets[r * ld + j];
        if (t > best) {
          best = t;
          want = r;
        }
      }
    }
    correct = arg == want;
    double sum = 0.0;
    for (int64_t r = 0; r < outputs; ++r) sum += exp(static_cast<double>(col[r * ld] - mx));
    const double log_sum = log(sum);
    const float inv_b = 1.0f / static_cast<float>(batch);
    for (int64_t r = 0; r < outputs; ++r) {
      const double logp = static_cast<double>(col[r * ld] - mx) - log_sum;
      const float t = labels ? (labels[j] == r ? 1.0f : 0.0f) : targets[r * ld + j];
      if (t != 0.0f) loss -= t * logp;
      if (grad) grad[r * ld + j] = (static_cast<float>(exp(logp)) - t) * inv_b;
    }
  }
  block_reduce(loss, correct);
  if (threadIdx.x == 0) partials[blockIdx.x] = Partial{loss, correct};
}

__global__ void __launch_bounds__(kLossBlock)
    mean_squared_error_kernel(float* __restrict__ grad, Partial* __restrict__ partials, const float* __restrict__ y,
                              int64_t ld, const float* __restrict__ targets, int64_t outputs, int64_t batch) {
  // column j = sample, as softmax_cross_entropy_kernel
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kLossBlock + threadIdx.x;
  double loss = 0.0;
  long long correct = 0;
  if (j < batch) {
    const float scale = 2.0f / static_cast<float>(batch * outputs);
    double sum = 0.0;
    float best_y = y[j], best_t = targets[j];
    int64_t arg_y = 0, arg_t = 0;
    for (int64_t r = 0; r < outputs; ++r) {
      const float yv = y[r * ld + j], tv = targets[r * ld + j];
      const float d = yv - tv;
      sum += static_cast<double>(d) * d;
      if (grad) grad[r * ld + j] = scale * d;
      if (yv > best_y) {
        best_y = yv;
        arg_y = r;
      }
      if (tv > best_t) {
        best_t = tv;
        arg_t = r;
      }
    }
    loss = sum / static_cast<double>(outputs);
    correct = arg_y == arg_t;
  }
  block_reduce(loss, correct);
  if (threadIdx.x == 0) partials[blockIdx.x] = Partial{loss, correct};
}

__global__ void __launch_bounds__(kLossBlock)
    sum_partials_kernel(LossTotals* __restrict__ totals, const Partial* __restrict__ partials, int64_t count) {
  double loss = 0.0;
  long long correct = 0;
  for (int64_t i = threadIdx.x; i < count; i += kLossBlock) {
    loss += partials[i].loss;
    correct += partials[i].correct;
  }
  block_reduce(loss, correct);
  if (threadIdx.x == 0) {
    totals->loss = loss;
    totals->correct = correct;
  }
}

// The plumbing both losses share: one block of kLossBlock samples per partial
// sum (kernel(blocks, partials, stream) launches the loss's own kernel), then
// the partials summed in a fixed order; an empty batch gives zero totals.
template <typename Kernel>
void launch_loss(const char* name, LossTotals* totals, int64_t batch, DeviceBuffer& workspace, Stream& stream,
                 Kernel&& kernel) {
  const int64_t blocks = ceil_div(batch, kLossBlock);
  if (blocks > kMaxGridX) throw std::length_error(std::string(name) + ": batch too large for one grid");
  cudaStream_t s = raw(stream);
  if (blocks == 0) {
    NP_CUDA_CHECK(cudaMemsetAsync(totals, 0, sizeof(LossTotals), s));
    return;
  }
  workspace.reserve(static_cast<size_t>(blocks) * sizeof(Partial));
  Partial* partials = workspace.as<Partial>();
  kernel(static_cast<unsigned>(blocks), partials, s);
  NP_CUDA_CHECK_LAUNCH();
  NP_LAUNCH(1, kLossBlock, 0, s, sum_partials_kernel)(totals, partials, blocks);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void softmax_cross_entropy_cuda(float* grad, LossTotals* totals, const float* logits, int64_t ld,
                                const int32_t* labels, const float* targets, int64_t outputs, int64_t batch,
                                DeviceBuffer& workspace, Stream& stream) {
  if ((labels == nullptr) == (targets == nullptr))
    throw std::invalid_argument("softmax_cross_entropy_cuda: give exactly one of labels and targets");
  if (outputs <= 0) throw std::invalid_argument("softmax_cross_entropy_cuda: outputs must be positive, got " + std::to_string(outputs));
  launch_loss("softmax_cross_entropy_cuda", totals, batch, workspace, stream,
              [&](unsigned blocks, Partial* partials, cudaStream_t s) {
                NP_LAUNCH(blocks, kLossBlock, 0, s, softmax_cross_entropy_kernel)(grad, partials, logits, ld, labels, targets,
                                                                           outputs, batch);
              });
}

void mean_squared_error_cuda(float* grad, LossTotals* totals, const float* y, int64_t ld, const float* targets,
                             int64_t outputs, int64_t batch, DeviceBuffer& workspace, Stream& stream) {
  if (outputs <= 0) throw std::invalid_argument("mean_squared_error_cuda: outputs must be positive, got " + std::to_string(outputs));
  launch_loss("mean_squared_error_cuda", totals, batch, workspace, stream,
              [&](unsigned blocks, Partial* partials, cudaStream_t s) {
                NP_LAUNCH(blocks, kLossBlock, 0, s, mean_squared_error_kernel)(grad, partials, y, ld, targets, outputs, batch);
              });
}

}  // namespace np::cuda
