// Model::set_values: numbers written in place, without the structure (see
// model.h). The CUDA model's way back: the device trains and changes its own
// numbers, the host keeps the structure, and importing a whole state (every
// array checked and copied twice, the structure rebuilt) for the numbers
// alone cost about twice the copy itself.
#include <algorithm>
#include <string>

#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

[[noreturn]] void bad(size_t layer, const std::string& what) {
  throw_range("setValues: layer " + std::to_string(layer) + ": " + what);
}

template <typename T>
void check_size(size_t layer, const ValuesView<T>& v, int64_t want, const char* what) {
  if (v.given() && v.size != want)
    bad(layer, std::string(what) + " has " + std::to_string(v.size) + " entries, expected " + std::to_string(want));
}

// The stored weight at (row r, position k in the stored order) of a layer
// whose new values are `given` (else the current ones).
float stored_value(const DenseLayer& l, const ValuesView<float>& given, int64_t r, int64_t k) {
  if (given.given()) return given.data[k];
  if (l.format == WeightFormat::kCsr) return l.csr.value()[k];
  return l.weight.value()[r * l.weight.stride + (k - r * l.inputs)];
}

}  // namespace

void Model::set_values(int64_t step, const std::vector<LayerValuesIn>& layers) {
  // ---- check everything first ---------------------------------------------
  if (step < 0) throw_range("setValues: step must be non-negative");
  if (!layers.empty() && layers.size() != layers_.size())
    throw_range("setValues: " + std::to_string(layers.size()) + " layers given, the model has " + std::to_string(layers_.size()));
  const int moments = moment_slots();
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerValuesIn& v = layers[i];
    const DenseLayer& l = layers_[i];
    const int64_t stored = l.format == WeightFormat::kCsr ? l.csr.nnz() : l.units * l.inputs;
    check_size(i, v.weight, stored, "weight");
    check_size(i, v.bias, l.units, "bias");
    for (const auto* list : {&v.weight_moments, &v.bias_moments}) {
      if (!list->empty() && static_cast<int>(list->size()) != moments)
        bad(i, std::to_string(list->size()) + " optimizer slots given, the optimizer uses " + std::to_string(moments));
    }
    for (const auto& m : v.weight_moments) check_size(i, m, stored, "an optimizer slot");
    for (const auto& m : v.bias_moments) check_size(i, m, l.units, "a bias optimizer slot");
    for (const auto* stat : {&v.mean_abs_activation, &v.mean_activation, &v.taylor})
      if (stat->given() && stat->size != 0) check_size(i, *stat, l.units, "a unit statistic");
    if (v.stats_updates < -1) bad(i, "statistics update count is negative");
    // What the structure says is zero must be zero: a pruned position, a dead
    // unit's row and bias, a dead unit's column in the next layer.
    if (v.weight.given() && l.format == WeightFormat::kDense && !l.mask.empty()) {
      for (int64_t k = 0; k < stored; ++k)
        if (!l.mask[k] && v.weight.data[k] != 0.0f) bad(i, "weight " + std::to_string(k) + " is nonzero where the mask says pruned");
    }
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const DenseLayer& l = layers_[i];
    if (l.alive.empty()) continue;
    const bool own = layers[i].weight.given() || layers[i].bias.given();
    const bool next = i + 1 < layers.size() && layers[i + 1].weight.given();
    if (!own && !next) continue;
    for (int64_t r = 0; r < l.units; ++r) {
      if (l.alive[r]) continue;
      if (layers[i].bias.given() && layers[i].bias.data[r] != 0.0f) bad(i, "dead unit " + std::to_string(r) + " has a nonzero bias");
      if (!layers[i].weight.given()) continue;
      const int64_t from = l.format == WeightFormat::kCsr ? l.csr.indptr[r] : r * l.inputs;
      const int64_t to = l.format == WeightFormat::kCsr ? l.csr.indptr[r + 1] : (r + 1) * l.inputs;
      for (int64_t k = from; k < to; ++k)
        if (layers[i].weight.data[k] != 0.0f) bad(i, "dead unit " + std::to_string(r) + " has a nonzero incoming weight");
    }
    if (!next) continue;
    const DenseLayer& n = layers_[i + 1];
    for (int64_t r = 0; r < n.units; ++r) {
      const int64_t from = n.format == WeightFormat::kCsr ? n.csr.indptr[r] : r * n.inputs;
      const int64_t to = n.format == WeightFormat::kCsr ? n.csr.indptr[r + 1] : (r + 1) * n.inputs;
      for (int64_t k = from; k < to; ++k) {
        const int64_t c = n.format == WeightFormat::kCsr ? n.csr.indices[k] : k - from;
        if (!l.alive[c] && stored_value(n, layers[i + 1].weight, r, k) != 0.0f)
          bad(i + 1, "input " + std::to_string(c) + " comes from a dead unit but has a nonzero weight");
      }
    }
  }

  // Statistics may need memory (a host that has none yet): allocated before
  // the first write, so running out changes nothing.
  std::vector<std::vector<double>> stats_in(3 * layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const ValuesView<double>* in[3] = {&layers[i].mean_abs_activation, &layers[i].mean_activation, &layers[i].taylor};
    for (int k = 0; k < 3; ++k)
      if (in[k]->given()) stats_in[3 * i + k].assign(in[k]->data, in[k]->data + in[k]->size);
  }

  // ---- write ------------------------------------------------------------------
  step_ = step;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerValuesIn& v = layers[i];
    DenseLayer& l = layers_[i];
    // Gradients restart at zero, as after an import: they belonged to other numbers.
    auto write_weights = [&](Slot slot, const ValuesView<float>& in) {
      if (l.format == WeightFormat::kCsr) {
        std::copy(in.data, in.data + in.size, l.csr.slot(slot));
      } else {
        l.weight.write(slot, in.data);
      }
    };
    if (v.weight.given()) {
      write_weights(Slot::kValue, v.weight);
      if (l.format == WeightFormat::kCsr) {
        std::fill(l.csr.grad(), l.csr.grad() + l.csr.nnz(), 0.0f);
      } else {
        l.weight.zero(Slot::kGrad);
      }
    }
    for (size_t m = 0; m < v.weight_moments.size(); ++m) write_weights(static_cast<Slot>(2 + m), v.weight_moments[m]);
    if (v.bias.given()) {
      l.bias.write(Slot::kValue, v.bias.data);
      l.bias.zero(Slot::kGrad);
    }
    for (size_t m = 0; m < v.bias_moments.size(); ++m) l.bias.write(static_cast<Slot>(2 + m), v.bias_moments[m].data);
    const ValuesView<double>* in[3] = {&v.mean_abs_activation, &v.mean_activation, &v.taylor};
    std::vector<double>* out[3] = {&l.stats.mean_abs_activation, &l.stats.mean_activation, &l.stats.taylor};
    for (int k = 0; k < 3; ++k)
      if (in[k]->given()) out[k]->swap(stats_in[3 * i + k]);
    if (v.stats_updates >= 0) l.stats.updates = v.stats_updates;
  }
  // The kept batch (RigL's and gradmax's default) is no longer the last one
  // trained with these numbers: they were trained elsewhere. Forget it, as an
  // import does, so a later call asks for data instead of reading an old batch.
  if (!layers.empty()) last_batch_ = 0;
}

}  // namespace np
