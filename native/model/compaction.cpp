// Compaction and storage formats: physically removing dead units (all slots
// together) and switching layers between dense and CSR storage at the
// density threshold.
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "kernels/sparse.h"
#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

// Copies the kept rows (in order) and kept columns of every slot of `p`.
DenseParam select_dense(const DenseParam& p, const std::vector<int64_t>& rows, const std::vector<int64_t>& cols) {
  DenseParam out;
  out.allocate(static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols.size()));
  out.set_moment_slots(p.moment_slots());
  for (int s = 0; s < kSlotCount; ++s) {
    if (!p.has(static_cast<Slot>(s)) || !out.has(static_cast<Slot>(s))) continue;
    for (size_t i = 0; i < rows.size(); ++i) {
      const float* src = p.slots[s].data() + rows[i] * p.stride;
      float* dst = out.slots[s].data() + static_cast<int64_t>(i) * out.stride;
      for (size_t j = 0; j < cols.size(); ++j) dst[j] = src[cols[j]];
    }
  }
  return out;
}

std::vector<int64_t> iota_list(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

template <typename T>
std::vector<T> gather(const std::vector<T>& v, const std::vector<int64_t>& keep) {
  std::vector<T> out;
  out.reserve(keep.size());
  for (int64_t i : keep) out.push_back(v[i]);
  return out;
}

}  // namespace

void Model::log_event(StructuralEvent event) {
  event.step = step_;
  event.epoch = epoch_;
  events_.push_back(std::move(event));
  // Exactly the newest event_limit_ stay (the README's promise, and what a
  // checkpoint restores); the deque drops the oldest in O(1).
  if (event_limit_ > 0) trim_events(event_limit_);
}

void Model::trim_events(int64_t keep) {
  const int64_t excess = static_cast<int64_t>(events_.size()) - keep;
  if (excess <= 0) return;
  events_.erase(events_.begin(), events_.begin() + excess);
  events_dropped_ += excess;
}

void Model::release_scratch() {
  ws_ = Workspace();
  last_batch_ = 0;
  for (DenseLayer& layer : layers_) layer.csr.drop_transpose();
}

void Model::set_event_limit(int64_t limit) {
  if (limit < 0) throw_range("eventLimit must be a non-negative integer (0: keep every event)");
  event_limit_ = limit;
  if (limit > 0) trim_events(limit);
}

void Model::set_layer_sparse_threshold(int64_t l, double density) {
  DenseLayer& layer = this->layer(l);
  if (!(density <= 1.0) || std::isnan(density)) throw_range("sparseThreshold must be in [0, 1] (or negative for the default)");
  layer.sparse_threshold = static_cast<float>(density);
}

double Model::sparse_threshold(int64_t l, ThreadPool* pool) {
  const DenseLayer& layer = this->layer(l);
  if (layer.sparse_threshold >= 0.0f) return layer.sparse_threshold;
  if (default_sparse_threshold_ >= 0.0) return default_sparse_threshold_;
  // NEUROPLASTIC_SPARSE_THRESHOLD fixes the default for the whole process:
  // the way to make format choices (and so results) identical across runs.
  static const double from_env = [] {
    const char* text = std::getenv("NEUROPLASTIC_SPARSE_THRESHOLD");
    if (!text) return -1.0;
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    return end != text && *end == '\0' && v >= 0.0 && v <= 1.0 ? v : -1.0;
  }();
  if (from_env >= 0.0) return from_env;
  // Measured once per process and shape: where a CSR training step starts to
  // beat the dense one on this machine. Rounded to a 0.05 grid so timing noise
  // rarely moves a decision between runs.
  static std::mutex mutex;
  static std::map<std::pair<int64_t, int64_t>, double> measured;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(layer.units, layer.inputs);
  auto it = measured.find(key);
  if (it != measured.end()) return it->second;
  const double d = std::round(measure_csr_crossover_density(layer.units, layer.inputs, 128, pool) * 20.0) / 20.0;
  measured[key] = d;
  return d;
}

void Model::apply_format_policy(int64_t l, ThreadPool* pool) {
  DenseLayer& layer = layers_[l];
  const double density = static_cast<double>(layer.nnz()) / static_cast<double>(layer.units * layer.inputs);
  const double threshold = sparse_threshold(l, pool);
  if (layer.format == WeightFormat::kDense && density < threshold) convert_to_csr(l, "below density threshold");
  else if (layer.format == WeightFormat::kCsr && density >= threshold) convert_to_dense(l, "above density threshold");
}

void Model::convert_to_csr(int64_t l, const char* reason) {
  DenseLayer& layer = this->layer(l);
  if (layer.format == WeightFormat::kCsr) return;
  const int64_t cols = layer.inputs;
  const std::vector<uint8_t>& mask = layer.mask;
  layer.csr = CsrParam::from_dense(layer.weight, [&](int64_t r, int64_t c) { return mask.empty() || mask[r * cols + c]; });
  layer.weight = DenseParam();
  layer.mask.clear();
  layer.mask.shrink_to_fit();
  layer.format = WeightFormat::kCsr;
  StructuralEvent e;
  e.kind = "sparsify";
  e.layer = l;
  e.criterion = reason;
  e.count = layer.csr.nnz();
  e.density_before = e.density_after = static_cast<double>(layer.csr.nnz()) / static_cast<double>(layer.units * layer.inputs);
  log_event(std::move(e));
}

void Model::convert_to_dense(int64_t l, const char* reason) {
  DenseLayer& layer = this->layer(l);
  if (layer.format == WeightFormat::kDense) return;
  DenseParam p;
  p.allocate(layer.units, layer.inputs);
  p.set_moment_slots(layer.csr.moment_slots());
  for (int s = 0; s < kSlotCount; ++s)
    if (p.has(static_cast<Slot>(s)) && layer.csr.has(static_cast<Slot>(s)))
      layer.csr.to_dense(static_cast<Slot>(s), p.slots[s].data(), p.stride);
  // Positions the CSR did not store stay pruned: the mask keeps them at zero.
  layer.mask.assign(layer.units * layer.inputs, 0);
  for (int64_t r = 0; r < layer.units; ++r)
    for (int64_t k = layer.csr.indptr[r]; k < layer.csr.indptr[r + 1]; ++k) layer.mask[r * layer.inputs + layer.csr.indices[k]] = 1;
  const int64_t nnz = layer.csr.nnz();
  layer.weight = std::move(p);
  layer.csr = CsrParam();
  layer.format = WeightFormat::kDense;
  if (nnz == layer.units * layer.inputs) layer.mask.clear();
  StructuralEvent e;
  e.kind = "densify";
  e.layer = l;
  e.criterion = reason;
  e.count = nnz;
  e.density_before = e.density_after = static_cast<double>(nnz) / static_cast<double>(layer.units * layer.inputs);
  log_event(std::move(e));
}

void Model::compact(ThreadPool* pool) {
  last_split_ = UnitSplit();  // unit indices are about to change
  last_compensations_.clear();
  last_rescales_.clear();
  for (size_t l = 0; l + 1 < layers_.size(); ++l) {
    DenseLayer& layer = layers_[l];
    const int64_t dead = layer.dead_units();
    if (dead == 0) continue;
    if (dead == layer.units) throw_error("layer " + std::to_string(l) + " has no live neuron left");
    DenseLayer& next = layers_[l + 1];
    std::vector<int64_t> keep, col_map(layer.units, -1);
    StructuralEvent e;
    e.kind = "compact";
    e.layer = static_cast<int64_t>(l);
    e.criterion = "dead units";
    for (int64_t j = 0; j < layer.units; ++j) {
      if (layer.alive[j]) {
        col_map[j] = static_cast<int64_t>(keep.size());
        keep.push_back(j);
      } else {
        e.neuron_ids.push_back(layer.neuron_ids[j]);
      }
    }
    const int64_t new_units = static_cast<int64_t>(keep.size());
    e.count = dead;
    e.density_before = static_cast<double>(layer.units);
    e.density_after = static_cast<double>(new_units);
    // This layer loses rows (weights, bias, mask, ids, statistics)...
    const std::vector<int64_t> all_inputs = iota_list(layer.inputs);
    if (layer.format == WeightFormat::kCsr) {
      std::vector<int64_t> identity = iota_list(layer.inputs);
      csr_select(layer.csr, keep, identity, layer.inputs);
    } else {
      layer.weight = select_dense(layer.weight, keep, all_inputs);
      if (!layer.mask.empty()) {
        std::vector<uint8_t> mask;
        mask.reserve(new_units * layer.inputs);
        for (int64_t j : keep) mask.insert(mask.end(), layer.mask.begin() + j * layer.inputs, layer.mask.begin() + (j + 1) * layer.inputs);
        layer.mask = std::move(mask);
      }
    }
    layer.bias = select_dense(layer.bias, keep, {0});
    layer.neuron_ids = gather(layer.neuron_ids, keep);
    if (!layer.stats.mean_abs_activation.empty()) layer.stats.mean_abs_activation = gather(layer.stats.mean_abs_activation, keep);
    if (!layer.stats.taylor.empty()) layer.stats.taylor = gather(layer.stats.taylor, keep);
    if (!layer.stats.mean_activation.empty()) layer.stats.mean_activation = gather(layer.stats.mean_activation, keep);
    if (!layer.birth_step.empty()) layer.birth_step = gather(layer.birth_step, keep);
    layer.alive.clear();
    layer.units = new_units;
    // ...and the next layer loses the matching columns.
    if (next.format == WeightFormat::kCsr) {
      csr_select(next.csr, iota_list(next.units), col_map, new_units);
    } else {
      next.weight = select_dense(next.weight, iota_list(next.units), keep);
      if (!next.mask.empty()) {
        std::vector<uint8_t> mask(next.units * new_units);
        for (int64_t r = 0; r < next.units; ++r)
          for (int64_t c = 0; c < new_units; ++c) mask[r * new_units + c] = next.mask[r * next.inputs + keep[c]];
        next.mask = std::move(mask);
      }
    }
    next.inputs = new_units;
    next.csr.cols = next.format == WeightFormat::kCsr ? new_units : next.csr.cols;
    next.csr.drop_transpose();
    log_event(std::move(e));
  }
  // Pruned positions are not stored once a layer is below its threshold; a
  // mask with nothing pruned is dropped.
  for (size_t l = 0; l < layers_.size(); ++l) {
    DenseLayer& layer = layers_[l];
    if (layer.format == WeightFormat::kDense && !layer.mask.empty() && layer.nnz() == layer.units * layer.inputs)
      layer.mask.clear();
    apply_format_policy(static_cast<int64_t>(l), pool);
  }
}

}  // namespace np
