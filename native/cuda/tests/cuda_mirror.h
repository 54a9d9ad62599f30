// The CPU model's layers as CudaModel takes them (what lib/cuda_model.ts
// sends), for the tests that mirror an np::Model on the device.
#pragma once

#include "cuda/cuda_model.h"
#include "model/model.h"

namespace np_cuda_test {

inline np::cuda::CudaLayerState to_cuda(const np::LayerState& l, const np::DenseLayer& spec) {
  np::cuda::CudaLayerState s;
  s.units = l.units;
  s.inputs = l.inputs;
  s.activation = spec.activation;
  s.input_dropout = spec.input_dropout;
  s.use_bias = spec.use_bias;
  s.csr = l.csr;
  s.weight = l.weight;
  s.indptr = l.indptr;
  s.indices = l.indices;
  s.weight_moments = l.weight_moments;
  s.bias = l.bias;
  s.bias_moments = l.bias_moments;
  s.mask = l.mask;
  s.alive = l.alive;
  s.mean_abs_activation = l.mean_abs_activation;
  s.mean_activation = l.mean_activation;
  s.taylor = l.taylor;
  s.stats_updates = l.stats_updates;
  return s;
}

}  // namespace np_cuda_test
