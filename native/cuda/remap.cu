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

// Slot i of a new position (at address `at`; its host value at fresh[i][k])
// from `source` (an old compact position, kRemapFresh or kRemapZero); a moved
// weight in column `col` (>= 0) follows remap_moved_slot, a bias (col -1)
// moves as it is.
__device__ inline void copy_slots(const RemapView& view, const RemapSlots& s, int64_t k, int64_t at, int64_t source, int64_t col) {
  const int64_t from = source >= 0 ? (col >= 0 ? remap_old_addr(view, source) : source) : 0;
  for (int i = 0; i < s.count; ++i) {
    float v = 0.0f;
    if (source >= 0) {
      v = col >= 0 ? remap_moved_slot(view, col, i, s.from[i][from]) : s.from[i][from];
    } else if (source == kRemapFresh && s.fresh[i] != nullptr) {
      v = s.fresh[i][k];
    }
    s.to[i][at] = v;
  }
}

// A copied value (remap_weight_copy, remap_bias_copy; `from` its address):
// the value times `scale`, every other slot zero; no copy (from < 0, an
// unstored source): zero in every slot.
__device__ inline void copy_value_only(const RemapSlots& s, int64_t at, int64_t from, float scale) {
  s.to[0][at] = from >= 0 ? s.from[0][from] * scale : 0.0f;
  for (int i = 1; i < s.count; ++i) s.to[i][at] = 0.0f;
}

// New position k of the layer: its source by the rule, copied into its
// address; its host value, if it takes one, at fresh[i][fresh_at].
__device__ inline void remap_position(const RemapView& v, const RemapSlots& s, int64_t k, int64_t fresh_at) {
  int64_t col = 0, row = 0;
  const int64_t source = remap_weight_source(v, k, &col, &row);
  const int64_t at = remap_new_addr(v, k, row, col);
  if (source == kRemapFresh) {
    float scale = 1.0f;
    const int64_t copy = remap_weight_copy(v, row, col, &scale);
    if (copy != kRemapFresh) {
      copy_value_only(s, at, copy >= 0 ? remap_old_addr(v, copy) : -1, scale);
      return;
    }
  }
  copy_slots(v, s, fresh_at, at, source, col);
}

__global__ void remap_weights_kernel(RemapView v, int64_t stored, RemapSlots s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < stored; k += stride)
    remap_position(v, s, k, k);
}

// In place (s.from == s.to): only the positions a growth added to a dense
// layer, the new inputs of its old rows, then its new rows (old_units x
// added inputs, then added units x inputs); the old ones are not touched.
// Their sources are never old positions that move, so nothing read is
// written. The host's values (s.fresh) hold these positions only, in this order.
__global__ void remap_append_kernel(RemapView v, int64_t old_units, int64_t old_inputs, RemapSlots s) {
  const int64_t added_inputs = v.inputs - old_inputs;
  const int64_t in_old_rows = old_units * added_inputs;
  const int64_t total = in_old_rows + (v.units - old_units) * v.inputs;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    int64_t r, c;
    if (t < in_old_rows) {
      r = t / added_inputs;
      c = old_inputs + t % added_inputs;
    } else {
      r = old_units + (t - in_old_rows) / v.inputs;
      c = (t - in_old_rows) % v.inputs;
    }
    remap_position(v, s, r * v.inputs + c, t);
  }
}

// In place: the old rows' entries in each split column (net2wider's
// sources) times the column's factors, after remap_append_kernel has copied
// what it needs: O(old units x split columns).
__global__ void remap_scale_columns_kernel(RemapView v, int64_t old_units, const int32_t* columns, int64_t splits, RemapSlots s) {
  const int64_t total = old_units * splits;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t r = t / splits, c = columns[t % splits];
    const int64_t at = r * v.stride + c;
    for (int i = 0; i < s.count; ++i) s.to[i][at] = remap_moved_slot(v, c, i, s.to[i][at]);
  }
}

__global__ void remap_bias_kernel(RemapView v, int64_t first, RemapSlots s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = first + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < v.units; r += stride) {
    const int64_t source = remap_bias_source(v, r);
    const int64_t copy = source == kRemapFresh ? remap_bias_copy(v, r) : kRemapFresh;
    if (copy != kRemapFresh) {
      copy_value_only(s, r, copy, 1.0f);
    } else {
      copy_slots(v, s, r - first, r, source, -1);  // the host's biases from `first` on
    }
  }
}

__global__ void remap_rows_f64_kernel(double* to, const double* from, const double* fresh, const int32_t* row_source,
                                      int64_t units) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < units; r += stride)
    to[r] = row_source[r] >= 0 ? from[row_source[r]] : (fresh != nullptr ? fresh[r] : 0.0);
}

__global__ void compensate_bias_kernel(float* bias, RemapView v, const float* weight, bool new_weights, const int32_t* cols,
                                       const double* means, int64_t count) {
  // The weight (row, j): the old layer's at the unit's old row, or (new_weights) the new layer's at r.
  RemapView at = v;
  if (new_weights) {
    at.old_inputs = v.inputs;
    at.old_csr = v.csr;
    at.old_indptr = v.indptr;
    at.old_indices = v.indices;
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < v.units; r += stride) {
    const int32_t src = v.row_source[r];
    if (src < 0) continue;  // a new unit: its bias is the host's
    const int64_t row = new_weights ? r : src;
    float b = bias[r];
    for (int64_t i = 0; i < count; ++i) {
      const int64_t p = remap_old_position(at, row, cols[i]);
      const float w = p < 0 ? 0.0f : weight[new_weights ? remap_new_addr(v, p, row, cols[i]) : remap_old_addr(v, p)];
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

void remap_bias_cuda(const RemapView& v, const RemapSlots& slots, Stream& stream, int64_t first) {
  if (v.units <= first) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(v.units - first)), kBlock, 0, raw(stream), remap_bias_kernel)(v, first, slots);
  NP_CUDA_CHECK_LAUNCH();
}

void remap_append_cuda(const RemapView& v, int64_t old_units, int64_t old_inputs, const RemapSlots& slots, Stream& stream) {
  const int64_t total = old_units * (v.inputs - old_inputs) + (v.units - old_units) * v.inputs;
  if (total <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(total)), kBlock, 0, raw(stream), remap_append_kernel)(v, old_units, old_inputs, slots);
  NP_CUDA_CHECK_LAUNCH();
}

void remap_scale_columns_cuda(const RemapView& v, int64_t old_units, const int32_t* columns, int64_t splits,
                              const RemapSlots& slots, Stream& stream) {
  if (v.col_scale == nullptr || old_units * splits <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(old_units * splits)), kBlock, 0, raw(stream),
            remap_scale_columns_kernel)(v, old_units, columns, splits, slots);
  NP_CUDA_CHECK_LAUNCH();
}

void compensate_bias_cuda(float* bias, const RemapView& v, const float* weight, bool new_weights, const int32_t* cols,
                          const double* means, int64_t count, Stream& stream) {
  if (v.units <= 0 || count <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(v.units)), kBlock, 0, raw(stream), compensate_bias_kernel)(bias, v, weight, new_weights,
                                                                                                      cols, means, count);
  NP_CUDA_CHECK_LAUNCH();
}

void remap_rows_f64_cuda(double* to, const double* from, const double* fresh, const int32_t* row_source, int64_t units,
                         Stream& stream) {
  if (units <= 0) return;
  NP_LAUNCH(static_cast<unsigned>(grid_for(units)), kBlock, 0, raw(stream), remap_rows_f64_kernel)(to, from, fresh, row_source, units);
  NP_CUDA_CHECK_LAUNCH();
}

}  // namespace np::cuda
