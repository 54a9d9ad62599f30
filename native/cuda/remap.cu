// The device side of restructuring (remap.h): each new stored weight (or
// bias) finds its source by the shared rule and copies every slot from it.
// One thread per new position; the CSR row of a position is a binary search
// over the row pointers, so no per-row work has to be balanced. Memory-bound
// and run once per structural change, not per step.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kBlock = 256;

// Slot i of position k from `source`; a moved weight in column `col` (>= 0)
// takes the view's column scale, a bias (col -1) none.
__device__ inline void copy_slots(const RemapView& view, const RemapSlots& s, int64_t k, int64_t source, int64_t col) {
  for (int i = 0; i < s.count; ++i) {
    float v = 0.0f;
    if (source >= 0) {
      v = s.from[i][source];
      if (col >= 0) v *= remap_slot_scale(view, col, i);
    } else if (source == kRemapFresh && s.fresh[i] != nullptr) {
      v = s.fresh[i][k];
    }
    s.to[i][k] = v;
  }
}

__global__ void remap_weights_kernel(RemapView v, int64_t stored, RemapSlots s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < stored; k += stride) {
    int64_t col = 0;
    const int64_t source = remap_weight_source(v, k, &col);
    copy_slots(v, s, k, source, col);
  }
}

__global__ void remap_bias_kernel(RemapView v, RemapSlots s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < v.units; r += stride)
    copy_slots(v, s, r, remap_bias_source(v, r), -1);
}

__global__ void remap_rows_f64_kernel(double* to, const double* from, const double* fresh, const int32_t* row_source,
                                      int64_t units) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < units; r += stride)
    to[r] = row_source[r] >= 0 ? from[row_source[r]] : (fresh != nullptr ? fresh[r] : 0.0);
}

__global__ void compensate_bias_kernel(float* bias, RemapView v, const float* old_weight, const int32_t* cols,
                                       const double* means, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < v.units; r += stride) {
    const int32_t src = v.row_source[r];
    if (src < 0) continue;  // a new unit: its bias is the host's
    float b = bias[r];
    for (int64_t i = 0; i < count; ++i) {
      const int32_t j = cols[i];
      float w = 0.0f;
      if (!v.old_csr) {
        w = old_weight[static_cast<int64_t>(src) * v.old_inputs + j];
      } else {
        int64_t lo = v.old_indptr[src], hi = v.old_indptr[src + 1];  // the entry (src, j), if stored
        while (lo < hi) {
          const int64_t mid = lo + (hi - lo) / 2;
          if (v.old_indices[mid] < j) lo = mid + 1;
          else hi = mid;
        }
        if (lo < v.old_indptr[src + 1] && v.old_indices[lo] == j) w = old_weight[lo];
      }
      b = __fadd_rn(b, static_cast<float>(__dmul_rn(static_cast<double>(w), means[i])));
    }
    bias[r] = b;
  }
}

int64_t grid_for(int64_t n) { return std::min<int64_t>(std::max<int64_t>(1, ceil_div(n, kBlock)), 65535 * 16); }

}  // namespace

void remap_weights_cuda(const RemapView& v, int64_t stored, const RemapSlots& slots, Stream& stream) {
  if (stored <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(stored)), kBlock, 0, raw(stream), remap_weights_kernel)(v, stored, slots);
  NP_CUDA_CHECK_LAUNCH();
}

void remap_bias_cuda(const RemapView& v, const RemapSlots& slots, Stream& stream) {
  if (v.units <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(v.units)), kBlock, 0, raw(stream), remap_bias_kernel)(v, slots);
  NP_CUDA_CHECK_LAUNCH();
}

void compensate_bias_cuda(float* bias, const RemapView& v, const float* old_weight, const int32_t* cols,
                          const double* means, int64_t count, Stream& stream) {
  if (v.units <= 0 || count <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(v.units)), kBlock, 0, raw(stream), compensate_bias_kernel)(bias, v, old_weight, cols,
                                                                                                      means, count);
  NP_CUDA_CHECK_LAUNCH();
}

void remap_rows_f64_cuda(double* to, const double* from, const double* fresh, const int32_t* row_source, int64_t units,
                         Stream& stream) {
  if (units <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(units)), kBlock, 0, raw(stream), remap_rows_f64_kernel)(to, from, fresh, row_source, units);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
