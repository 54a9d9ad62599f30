// Lottery-ticket rewind (Frankle & Carbin 2019): keep the weights of an early
// step, and later reset the surviving weights to them. Weights are matched by
// neuron id, so growth, pruning and compaction in between do not confuse it.
#include <string>
#include <unordered_map>

#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

// Input ids of layer l: the previous layer's neuron ids, or -(i + 1) for the
// input features (which have no neuron ids).
std::vector<int64_t> input_ids(const std::vector<DenseLayer>& layers, size_t l) {
  if (l > 0) return layers[l - 1].neuron_ids;
  std::vector<int64_t> ids(layers[0].inputs);
  for (int64_t i = 0; i < layers[0].inputs; ++i) ids[i] = -(i + 1);
  return ids;
}

std::vector<float> dense_values(const DenseLayer& layer) {
  std::vector<float> w(layer.units * layer.inputs);
  if (layer.format == WeightFormat::kCsr) layer.csr.to_dense(Slot::kValue, w.data(), layer.inputs);
  else layer.weight.read(Slot::kValue, w.data());
  return w;
}

}  // namespace

void Model::snapshot_weights() {
  Snapshot s;
  s.step = step_;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DenseLayer& layer = layers_[l];
    s.unit_ids.push_back(layer.neuron_ids);
    s.input_ids.push_back(input_ids(layers_, l));
    s.weights.push_back(dense_values(layer));
    std::vector<float> b(layer.units);
    layer.bias.read(Slot::kValue, b.data());
    s.biases.push_back(std::move(b));
  }
  for (auto& old : snapshots_) {
    if (old.step == step_) {
      old = std::move(s);
      return;
    }
  }
  snapshots_.push_back(std::move(s));
}

std::vector<int64_t> Model::snapshot_steps() const {
  std::vector<int64_t> steps;
  for (const auto& s : snapshots_) steps.push_back(s.step);
  return steps;
}

void Model::rewind(int64_t step) {
  const Snapshot* snap = nullptr;
  for (const auto& s : snapshots_)
    if (s.step == step) snap = &s;
  if (!snap) {
    std::string have;
    for (const auto& s : snapshots_) have += (have.empty() ? "" : ", ") + std::to_string(s.step);
    throw_range("no weights were saved at step " + std::to_string(step) + " (saved steps: " + (have.empty() ? "none" : have) +
                "); save them with model.snapshot() or plasticity.snapshotAt()");
  }
  int64_t restored = 0;
  for (size_t l = 0; l < layers_.size() && l < snap->weights.size(); ++l) {
    DenseLayer& layer = layers_[l];
    std::unordered_map<int64_t, int64_t> row_of, col_of;
    for (size_t i = 0; i < snap->unit_ids[l].size(); ++i) row_of[snap->unit_ids[l][i]] = static_cast<int64_t>(i);
    for (size_t i = 0; i < snap->input_ids[l].size(); ++i) col_of[snap->input_ids[l][i]] = static_cast<int64_t>(i);
    const std::vector<int64_t> inputs_now = input_ids(layers_, l);
    const int64_t snap_cols = static_cast<int64_t>(snap->input_ids[l].size());
    std::vector<int64_t> col_map(layer.inputs, -1);
    for (int64_t c = 0; c < layer.inputs; ++c) {
      auto it = col_of.find(inputs_now[c]);
      if (it != col_of.end()) col_map[c] = it->second;
    }
    for (int64_t r = 0; r < layer.units; ++r) {
      auto it = row_of.find(layer.neuron_ids[r]);
      if (it == row_of.end()) continue;  // grown after the snapshot: keeps its weights
      const int64_t sr = it->second;
      const float* src = snap->weights[l].data() + sr * snap_cols;
      if (layer.format == WeightFormat::kCsr) {
        for (int64_t k = layer.csr.indptr[r]; k < layer.csr.indptr[r + 1]; ++k) {
          const int64_t sc = col_map[layer.csr.indices[k]];
          if (sc >= 0) {
            layer.csr.value()[k] = src[sc];
            ++restored;
          }
        }
      } else {
        float* dst = layer.weight.value() + r * layer.weight.stride;
        for (int64_t c = 0; c < layer.inputs; ++c) {
          if (col_map[c] < 0 || (!layer.mask.empty() && !layer.mask[r * layer.inputs + c])) continue;
          dst[c] = src[col_map[c]];
          ++restored;
        }
      }
      if (layer.alive.empty() || layer.alive[r]) layer.bias.value()[r] = snap->biases[l][sr];
    }
    // Fresh optimizer state: the rewound weights start a new trajectory.
    for (int s = 2; s < kSlotCount; ++s) {
      if (layer.format == WeightFormat::kCsr) {
        if (layer.csr.has(static_cast<Slot>(s))) layer.csr.slots[s].zero();
      } else {
        layer.weight.zero(static_cast<Slot>(s));
      }
      layer.bias.zero(static_cast<Slot>(s));
    }
  }
  StructuralEvent e;
  e.kind = "rewind";
  e.criterion = "to step " + std::to_string(step);
  e.count = restored;
  log_event(std::move(e));
}

}  // namespace np
