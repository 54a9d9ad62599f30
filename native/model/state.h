// The model's complete training state as plain arrays, for checkpoints: what
// save() writes and load() gives back. Resuming from it is exact: the same
// weights, optimizer moments, step counter, random generator, neuron ids,
// statistics and event log as the model that was saved.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/events.h"

namespace np {

// A layer's parameters with their optimizer slots: what moves between the CPU
// model and the GPU model (native/cuda/cuda_model.h), and the core of a checkpoint.
struct LayerParams {
  int64_t units = 0;
  int64_t inputs = 0;
  bool csr = false;
  // Dense: units x inputs row-major. CSR: the values (nnz), with indptr/indices.
  std::vector<float> weight;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<std::vector<float>> weight_moments;  // same layout as weight
  std::vector<float> bias;
  std::vector<std::vector<float>> bias_moments;
  std::vector<uint8_t> mask;   // dense only; empty = nothing pruned
  std::vector<uint8_t> alive;  // empty = every unit alive
};

struct LayerState : LayerParams {
  std::vector<int64_t> neuron_ids;
  std::vector<int64_t> birth_step;  // empty = all 0
  std::vector<double> mean_abs_activation, mean_activation, taylor;
  int64_t stats_updates = 0;
  double cbp_carry = 0.0;
  float sparse_threshold = -1.0f;
};

// A run of numbers the caller owns (a JS typed array, read during the call);
// size -1: not given.
template <typename T>
struct ValuesView {
  const T* data = nullptr;
  int64_t size = -1;
  bool given() const { return size >= 0; }
};

// One layer's numbers for Model::set_values, in the layer's stored order
// (dense: units x inputs row-major; CSR: its values); what is not given stays.
struct LayerValuesIn {
  ValuesView<float> weight, bias;
  std::vector<ValuesView<float>> weight_moments, bias_moments;  // empty: kept; else one per optimizer moment
  ValuesView<double> mean_abs_activation, mean_activation, taylor;  // units entries, or 0 for none yet
  int64_t stats_updates = -1;  // -1: kept
};

struct ModelState {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t next_neuron_id = 0;
  uint64_t rng[4] = {0, 0, 0, 0};
  bool rng_has_spare = false;
  float rng_spare = 0.0f;
  double default_sparse_threshold = -1.0;
  double stats_decay = 0.99;
  std::vector<LayerState> layers;
  std::vector<StructuralEvent> events;
  int64_t events_dropped = 0;  // events older than `events`, discarded by the log's limit
};

}  // namespace np
