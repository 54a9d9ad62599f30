// Export and import of the complete training state (see state.h).
#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <utility>

#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

std::vector<float> dense_slot(const DenseParam& p, Slot s) {
  std::vector<float> out(p.rows * p.cols);
  p.read(s, out.data());
  return out;
}

std::vector<float> csr_slot(const CsrParam& c, Slot s) {
  const float* v = c.slot(s);
  return std::vector<float>(v, v + c.nnz());
}

[[noreturn]] void bad(size_t layer, const std::string& what) {
  throw_range("checkpoint layer " + std::to_string(layer) + ": " + what);
}

// Calls fn(r, c, w) for every stored weight of a layer (every entry when dense).
template <typename Fn>
void for_each_stored(const LayerState& l, Fn&& fn) {
  if (l.csr) {
    for (int64_t r = 0; r < l.units; ++r)
      for (int64_t k = l.indptr[r]; k < l.indptr[r + 1]; ++k) fn(r, static_cast<int64_t>(l.indices[k]), l.weight[k]);
  } else {
    for (int64_t r = 0; r < l.units; ++r)
      for (int64_t c = 0; c < l.inputs; ++c) fn(r, c, l.weight[r * l.inputs + c]);
  }
}

// What the shapes cannot show: the bookkeeping must agree with what training
// itself keeps, or the model would load and then compute something silently
// wrong (a pruned connection still active, a grown neuron reusing an id, a
// generator stuck at zero). Whether the numbers are finite is the checkpoint
// reader's check (lib/checkpoint): a CUDA model's weights come back through
// here too, and after a NaN loss on the GPU they may hold NaN.
void check_state_values(const ModelState& s) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerState& l = s.layers[i];
    if (l.stats_updates < 0) bad(i, "statistics update count is negative");
    if (!(l.cbp_carry >= 0.0 && l.cbp_carry < 1e9)) bad(i, "continual backprop carry " + std::to_string(l.cbp_carry) + " is not in [0, 1e9)");
    if (!(l.sparse_threshold <= 1.0)) bad(i, "sparse threshold " + std::to_string(l.sparse_threshold) + " is above 1");
    if (!l.csr && !l.mask.empty()) {
      for (int64_t k = 0; k < l.units * l.inputs; ++k)
        if (!l.mask[k] && l.weight[k] != 0.0f)
          bad(i, "weight (unit " + std::to_string(k / l.inputs) + ", input " + std::to_string(k % l.inputs) +
                     ") is nonzero where the mask says pruned");
    }
    if (!l.alive.empty()) {
      if (std::none_of(l.alive.begin(), l.alive.end(), [](uint8_t a) { return a != 0; }))
        bad(i, "every unit is marked pruned; a layer keeps at least one");
      for (int64_t j = 0; j < l.units; ++j)
        if (!l.alive[j] && l.bias[j] != 0.0f) bad(i, "pruned unit " + std::to_string(j) + " has a nonzero bias");
      for_each_stored(l, [&](int64_t r, int64_t, float w) {
        if (!l.alive[r] && w != 0.0f) bad(i, "pruned unit " + std::to_string(r) + " has a nonzero incoming weight");
      });
      if (i + 1 < s.layers.size()) {
        for_each_stored(s.layers[i + 1], [&](int64_t, int64_t c, float w) {
          if (!l.alive[c] && w != 0.0f)
            bad(i + 1, "input " + std::to_string(c) + " comes from a pruned unit but has a nonzero weight");
        });
      }
    }
    for (int64_t id : l.neuron_ids) {
      if (id < 0 || id >= s.next_neuron_id)
        bad(i, "neuron id " + std::to_string(id) + " is outside [0, next id " + std::to_string(s.next_neuron_id) + ")");
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end()) throw_range("checkpoint: neuron id " + std::to_string(*dup) + " appears twice");
  if ((s.rng[0] | s.rng[1] | s.rng[2] | s.rng[3]) == 0)
    throw_range("checkpoint: the random generator's state is all zeros, which no generator reaches");
  if (!std::isfinite(s.rng_spare)) throw_range("checkpoint: the random generator's spare value is not finite");
  if (!(s.default_sparse_threshold <= 1.0))
    throw_range("checkpoint: default sparse threshold " + std::to_string(s.default_sparse_threshold) + " is above 1");
  for (size_t e = 0; e < s.events.size(); ++e) {
    const int64_t layer = s.events[e].layer;
    if (layer < -1 || layer >= static_cast<int64_t>(s.layers.size()))
      throw_range("checkpoint: event " + std::to_string(e) + " names layer " + std::to_string(layer) + " of " +
                  std::to_string(s.layers.size()));
  }
}

// A dense parameter holding `values` and `moments` (rows x cols, packed) in
// `out`, with a zero gradient. A loaded checkpoint usually has the shape the
// model was just built with: then the parameter the build allocated (`same`,
// when given) is written in place, instead of allocating it again and
// faulting in fresh pages for every slot.
void fill_dense(DenseParam* same, int64_t rows, int64_t cols, int moments, const std::vector<float>& values,
                const std::vector<std::vector<float>>& slots, DenseParam& out) {
  const bool reuse = same && same->rows == rows && same->cols == cols && same->moment_slots() == moments;
  if (!reuse) {
    DenseParam p;
    p.allocate(rows, cols);
    p.set_moment_slots(moments);
    out = std::move(p);
  } else {
    out.zero(Slot::kGrad);
  }
  out.write(Slot::kValue, values.data());
  for (int m = 0; m < moments; ++m) out.write(static_cast<Slot>(2 + m), slots[m].data());
}

}  // namespace

ModelState Model::export_state() const { return export_state(std::vector<bool>(layers_.size(), true)); }

int64_t Model::stored_weights(size_t layer) const {
  const DenseLayer& l = layers_.at(layer);
  return l.format == WeightFormat::kCsr ? l.csr.nnz() : l.units * l.inputs;
}

void Model::copy_slot(size_t layer, bool bias, Slot slot, float* out) const {
  const DenseLayer& l = layers_.at(layer);
  if (bias) {
    l.bias.read(slot, out);
  } else if (l.format == WeightFormat::kCsr) {
    const float* v = l.csr.slot(slot);
    std::copy(v, v + l.csr.nnz(), out);
  } else {
    l.weight.read(slot, out);
  }
}

ModelState Model::export_state(const std::vector<bool>& with_values) const {
  ModelState s;
  s.step = step_;
  s.epoch = epoch_;
  s.next_neuron_id = next_neuron_id_;
  for (int i = 0; i < 4; ++i) s.rng[i] = rng_.state()[i];
  s.rng_has_spare = rng_.has_spare_normal();
  s.rng_spare = rng_.spare_normal();
  s.default_sparse_threshold = default_sparse_threshold_;
  s.stats_decay = stats_decay_;
  s.events.assign(events_.begin(), events_.end());
  s.events_dropped = events_dropped_;
  const int moments = moment_slots();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DenseLayer& l = layers_[i];
    const bool values = i < with_values.size() && with_values[i];
    LayerState ls;
    ls.units = l.units;
    ls.inputs = l.inputs;
    ls.csr = l.format == WeightFormat::kCsr;
    if (ls.csr) {
      ls.indptr = l.csr.indptr;
      ls.indices = l.csr.indices;
      if (values) {
        ls.weight = csr_slot(l.csr, Slot::kValue);
        for (int m = 0; m < moments; ++m) ls.weight_moments.push_back(csr_slot(l.csr, static_cast<Slot>(2 + m)));
      }
    } else {
      if (values) {
        ls.weight = dense_slot(l.weight, Slot::kValue);
        for (int m = 0; m < moments; ++m) ls.weight_moments.push_back(dense_slot(l.weight, static_cast<Slot>(2 + m)));
      }
      ls.mask = l.mask;
    }
    if (values) {
      ls.bias = dense_slot(l.bias, Slot::kValue);
      for (int m = 0; m < moments; ++m) ls.bias_moments.push_back(dense_slot(l.bias, static_cast<Slot>(2 + m)));
    }
    ls.alive = l.alive;
    ls.neuron_ids = l.neuron_ids;
    ls.birth_step = l.birth_step;
    ls.mean_abs_activation = l.stats.mean_abs_activation;
    ls.mean_activation = l.stats.mean_activation;
    ls.taylor = l.stats.taylor;
    ls.stats_updates = l.stats.updates;
    ls.cbp_carry = l.cbp_carry;
    ls.sparse_threshold = l.sparse_threshold;
    s.layers.push_back(std::move(ls));
  }
  return s;
}

// Every check runs before the first change, so a bad checkpoint leaves the
// model as it was.
void Model::import_state(ModelState s) {
  if (s.layers.size() != layers_.size())
    throw_range("checkpoint has " + std::to_string(s.layers.size()) + " dense layers, the model " +
                std::to_string(layers_.size()));
  const int moments = moment_slots();
  int64_t inputs = input_size_;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerState& l = s.layers[i];
    if (l.inputs != inputs) bad(i, "has " + std::to_string(l.inputs) + " inputs, expected " + std::to_string(inputs));
    if (l.units < 1) bad(i, "has no units");
    if (i + 1 == s.layers.size() && l.units != layers_.back().units)
      bad(i, "has " + std::to_string(l.units) + " outputs, the model " + std::to_string(layers_.back().units));
    const int64_t size = l.units * l.inputs;
    int64_t nnz = size;
    if (l.csr) {
      if (static_cast<int64_t>(l.indptr.size()) != l.units + 1 || l.indptr[0] != 0) bad(i, "row pointers have the wrong length or start");
      for (int64_t r = 0; r < l.units; ++r) {
        if (l.indptr[r + 1] < l.indptr[r]) bad(i, "row pointers are not monotone at row " + std::to_string(r));
        for (int64_t k = l.indptr[r]; k < l.indptr[r + 1]; ++k) {
          if (k >= static_cast<int64_t>(l.indices.size())) bad(i, "row pointers run past the column indices");
          if (l.indices[k] < 0 || l.indices[k] >= l.inputs) bad(i, "column index out of range in row " + std::to_string(r));
          if (k > l.indptr[r] && l.indices[k] <= l.indices[k - 1]) bad(i, "column indices not sorted in row " + std::to_string(r));
        }
      }
      nnz = l.indptr.back();
      if (static_cast<int64_t>(l.indices.size()) != nnz) bad(i, "has " + std::to_string(l.indices.size()) + " column indices for " + std::to_string(nnz) + " entries");
    } else if (!l.mask.empty() && static_cast<int64_t>(l.mask.size()) != size) {
      bad(i, "mask has the wrong size");
    }
    if (static_cast<int64_t>(l.weight.size()) != nnz) bad(i, "weight has " + std::to_string(l.weight.size()) + " values, expected " + std::to_string(nnz));
    if (static_cast<int>(l.weight_moments.size()) != moments || static_cast<int>(l.bias_moments.size()) != moments)
      bad(i, "has " + std::to_string(l.weight_moments.size()) + " optimizer slots, the optimizer uses " + std::to_string(moments));
    for (const auto& m : l.weight_moments)
      if (static_cast<int64_t>(m.size()) != nnz) bad(i, "an optimizer slot has the wrong size");
    for (const auto& m : l.bias_moments)
      if (static_cast<int64_t>(m.size()) != l.units) bad(i, "a bias optimizer slot has the wrong size");
    if (static_cast<int64_t>(l.bias.size()) != l.units) bad(i, "bias has the wrong size");
    if (!l.alive.empty() && static_cast<int64_t>(l.alive.size()) != l.units) bad(i, "alive flags have the wrong size");
    if (static_cast<int64_t>(l.neuron_ids.size()) != l.units) bad(i, "neuron ids have the wrong size");
    if (!l.mean_abs_activation.empty() && static_cast<int64_t>(l.mean_abs_activation.size()) != l.units) bad(i, "statistics have the wrong size");
    if (!l.taylor.empty() && static_cast<int64_t>(l.taylor.size()) != l.units) bad(i, "statistics have the wrong size");
    if (!l.mean_activation.empty() && static_cast<int64_t>(l.mean_activation.size()) != l.units) bad(i, "statistics have the wrong size");
    if (!l.birth_step.empty() && static_cast<int64_t>(l.birth_step.size()) != l.units) bad(i, "unit ages have the wrong size");
    inputs = l.units;
  }
  if (s.step < 0 || s.epoch < 0 || s.next_neuron_id < 0) throw_range("checkpoint counters are negative");
  check_state_values(s);

  for (size_t i = 0; i < s.layers.size(); ++i) {
    LayerState& src = s.layers[i];
    DenseLayer& l = layers_[i];
    l.units = src.units;
    l.inputs = src.inputs;
    l.sparse_threshold = src.sparse_threshold;
    if (src.csr) {
      CsrParam c;
      c.rows = src.units;
      c.cols = src.inputs;
      c.indptr = std::move(src.indptr);
      c.indices = std::move(src.indices);
      c.allocate_slots(c.indptr.back(), moments);
      std::copy(src.weight.begin(), src.weight.end(), c.value());
      for (int m = 0; m < moments; ++m) std::copy(src.weight_moments[m].begin(), src.weight_moments[m].end(), c.slot(static_cast<Slot>(2 + m)));
      l.csr = std::move(c);
      l.weight = DenseParam();
      l.mask.clear();
      l.format = WeightFormat::kCsr;
    } else {
      fill_dense(l.format == WeightFormat::kDense ? &l.weight : nullptr, src.units, src.inputs, moments, src.weight,
                 src.weight_moments, l.weight);
      l.csr = CsrParam();
      l.mask = std::move(src.mask);
      l.format = WeightFormat::kDense;
    }
    fill_dense(&l.bias, src.units, 1, moments, src.bias, src.bias_moments, l.bias);
    l.alive = std::move(src.alive);
    l.neuron_ids = std::move(src.neuron_ids);
    l.birth_step = src.birth_step.empty() ? std::vector<int64_t>(src.units, 0) : std::move(src.birth_step);
    l.stats.mean_abs_activation = std::move(src.mean_abs_activation);
    l.stats.mean_activation = std::move(src.mean_activation);
    l.stats.taylor = std::move(src.taylor);
    l.stats.updates = src.stats_updates;
    l.cbp_carry = src.cbp_carry;
  }
  step_ = s.step;
  epoch_ = s.epoch;
  next_neuron_id_ = s.next_neuron_id;
  rng_.set_state(s.rng, s.rng_has_spare, s.rng_spare);
  default_sparse_threshold_ = s.default_sparse_threshold;
  if (s.stats_decay > 0.0 && s.stats_decay < 1.0) stats_decay_ = s.stats_decay;
  events_.assign(std::make_move_iterator(s.events.begin()), std::make_move_iterator(s.events.end()));
  events_dropped_ = std::max<int64_t>(0, s.events_dropped);
  if (event_limit_ > 0) trim_events(event_limit_);
  ws_ = Workspace();
  last_batch_ = 0;  // the kept batch went with the workspace
  last_split_ = UnitSplit();  // its unit indices belonged to the old layers
  last_compensations_.clear();
  last_rescales_.clear();
}

}  // namespace np
