// Keeping plasticity: reinitialising units that stopped contributing.
// Continual backprop (Dohare et al., Nature 2024) replaces a small fraction of
// mature, low-utility units every step; ReDo (Sokar et al. 2023) resets
// dormant units periodically. A reset unit gets fresh incoming weights, zero
// outgoing weights (so the function barely moves), and fresh optimizer state.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

// Mean |w| of each outgoing column of `next` (over its stored rows).
std::vector<double> mean_abs_outgoing(const DenseLayer& next) {
  std::vector<double> sum(next.inputs, 0.0);
  std::vector<int64_t> count(next.inputs, 0);
  if (next.format == WeightFormat::kCsr) {
    for (int64_t k = 0; k < next.csr.nnz(); ++k) {
      sum[next.csr.indices[k]] += std::fabs(next.csr.value()[k]);
      ++count[next.csr.indices[k]];
    }
  } else {
    for (int64_t r = 0; r < next.units; ++r) {
      const float* w = next.weight.value() + r * next.weight.stride;
      for (int64_t c = 0; c < next.inputs; ++c) {
        if (!next.mask.empty() && !next.mask[r * next.inputs + c]) continue;
        sum[c] += std::fabs(w[c]);
        ++count[c];
      }
    }
  }
  for (int64_t c = 0; c < next.inputs; ++c) sum[c] = count[c] ? sum[c] / static_cast<double>(count[c]) : 0.0;
  return sum;
}

}  // namespace

std::vector<double> Model::unit_utility(int64_t l) {
  DenseLayer& layer = this->layer(l);
  if (l + 1 >= static_cast<int64_t>(layers_.size())) throw_range("the output layer has no utility to rank");
  std::vector<double> u(layer.units, 0.0);
  if (layer.stats.updates == 0) return u;
  // EMA with zero start: divide by (1 - decay^t) to remove the start-up bias.
  const double correction = 1.0 - std::pow(stats_decay_, static_cast<double>(layer.stats.updates));
  const std::vector<double> out = mean_abs_outgoing(layers_[l + 1]);
  for (int64_t j = 0; j < layer.units; ++j) {
    u[j] = layer.alive.empty() || layer.alive[j] ? layer.stats.mean_abs_activation[j] / correction * out[j] : -INFINITY;
  }
  return u;
}

void Model::reinit_units(int64_t l, const std::vector<int64_t>& units, const std::string& criterion,
                         const std::vector<double>& scores, bool compensate) {
  DenseLayer& layer = this->layer(l);
  if (l + 1 >= static_cast<int64_t>(layers_.size())) throw_range("output units are never reinitialised");
  for (int64_t j : units)
    if (j < 0 || j >= layer.units) throw_range("unit " + std::to_string(j) + " is out of range");
  DenseLayer& next = layers_[l + 1];
  StructuralEvent e;
  e.kind = "reinit";
  e.layer = l;
  e.criterion = criterion;
  e.count = static_cast<int64_t>(units.size());
  const double correction =
      layer.stats.updates ? 1.0 - std::pow(stats_decay_, static_cast<double>(layer.stats.updates)) : 1.0;
  // Outgoing weights to zero; the next layer's bias absorbs each unit's mean
  // contribution so the network's output stays about the same. Units in
  // ascending order: the float additions into the biases then come in the
  // order a GPU model's restructure adds them (compensate_bias_cuda).
  std::vector<int64_t> ascending(units);
  std::sort(ascending.begin(), ascending.end());
  Compensation moved;
  moved.layer = l;
  for (const int64_t j : ascending) {
    const double mean_h = compensate && !layer.stats.mean_activation.empty() ? layer.stats.mean_activation[j] / correction : 0.0;
    if (compensate) {
      moved.units.push_back(j);
      moved.means.push_back(mean_h);
    }
    auto clear_outgoing = [&](float& w, int64_t r, float* m1, float* m2) {
      if (compensate) next.bias.value()[r] += static_cast<float>(w * mean_h);
      w = 0.0f;
      if (m1) *m1 = 0.0f;
      if (m2) *m2 = 0.0f;
    };
    if (next.format == WeightFormat::kCsr) {
      CsrParam& c = next.csr;
      for (int64_t r = 0; r < next.units; ++r)
        for (int64_t k = c.indptr[r]; k < c.indptr[r + 1]; ++k)
          if (c.indices[k] == j)
            clear_outgoing(c.value()[k], r, c.has(Slot::kMoment1) ? &c.slots[2][k] : nullptr, c.has(Slot::kMoment2) ? &c.slots[3][k] : nullptr);
    } else {
      DenseParam& p = next.weight;
      for (int64_t r = 0; r < next.units; ++r) {
        const int64_t at = r * p.stride + j;
        clear_outgoing(p.value()[at], r, p.has(Slot::kMoment1) ? &p.slots[2][at] : nullptr, p.has(Slot::kMoment2) ? &p.slots[3][at] : nullptr);
      }
    }
  }
  if (compensate && !moved.units.empty()) last_compensations_.push_back(std::move(moved));
  for (size_t i = 0; i < units.size(); ++i) {
    const int64_t j = units[i];
    e.neuron_ids.push_back(layer.neuron_ids[j]);
    e.scores.push_back(i < scores.size() ? static_cast<float>(scores[i]) : 0.0f);
    // Fresh incoming weights (drawn in the given order), bias and optimizer state.
    init_incoming_row(layer, j, 1.0f);
    if (layer.format == WeightFormat::kCsr) {
      for (int s = 2; s < kSlotCount; ++s)
        if (layer.csr.has(static_cast<Slot>(s)))
          std::fill(layer.csr.slots[s].data() + layer.csr.indptr[j], layer.csr.slots[s].data() + layer.csr.indptr[j + 1], 0.0f);
    } else {
      for (int s = 2; s < kSlotCount; ++s)
        if (layer.weight.has(static_cast<Slot>(s)))
          std::fill(layer.weight.slots[s].data() + j * layer.weight.stride, layer.weight.slots[s].data() + j * layer.weight.stride + layer.inputs, 0.0f);
    }
    for (int s = 0; s < kSlotCount; ++s)
      if (s != 1 && layer.bias.has(static_cast<Slot>(s))) layer.bias.slots[s][j] = 0.0f;
    if (layer.birth_step.size() == static_cast<size_t>(layer.units)) layer.birth_step[j] = step_;
    for (auto* v : {&layer.stats.mean_abs_activation, &layer.stats.mean_activation, &layer.stats.taylor})
      if (static_cast<int64_t>(v->size()) == layer.units) (*v)[j] = 0.0;
  }
  log_event(std::move(e));
}

int64_t Model::continual_backprop_step(double rate, int64_t maturity, const std::vector<std::vector<double>>* utilities) {
  if (utilities) {
    // Computed where the numbers are (a GPU model's unit_utility): one list per hidden layer, one per unit.
    if (utilities->size() + 1 != layers_.size())
      throw_range("utilities has " + std::to_string(utilities->size()) + " entries for " + std::to_string(layers_.size() - 1) +
                  " hidden layers");
    for (size_t l = 0; l < utilities->size(); ++l) {
      if (static_cast<int64_t>((*utilities)[l].size()) != layers_[l].units)
        throw_range("utilities[" + std::to_string(l) + "] has " + std::to_string((*utilities)[l].size()) + " entries for " +
                    std::to_string(layers_[l].units) + " units");
      for (double u : (*utilities)[l])
        if (std::isnan(u)) throw_range("utilities[" + std::to_string(l) + "] holds NaN");
    }
  }
  last_compensations_.clear();
  int64_t replaced = 0;
  for (size_t l = 0; l + 1 < layers_.size(); ++l) {
    DenseLayer& layer = layers_[l];
    if (layer.stats.updates == 0) continue;
    std::vector<int64_t> eligible;
    for (int64_t j = 0; j < layer.units; ++j)
      if ((layer.alive.empty() || layer.alive[j]) && step_ - layer.birth_step[j] > maturity) eligible.push_back(j);
    if (eligible.empty()) continue;
    // rate * eligible units per step; the fractional part carries over so
    // small rates still replace a unit every 1/(rate * eligible) steps.
    layer.cbp_carry += rate * static_cast<double>(eligible.size());
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(layer.cbp_carry), static_cast<int64_t>(eligible.size()));
    if (n <= 0) continue;
    layer.cbp_carry -= static_cast<double>(n);
    const std::vector<double> utility = utilities ? (*utilities)[l] : unit_utility(static_cast<int64_t>(l));
    std::stable_sort(eligible.begin(), eligible.end(), [&](int64_t a, int64_t b) { return utility[a] < utility[b]; });
    eligible.resize(n);
    std::vector<double> scores;
    for (int64_t j : eligible) scores.push_back(utility[j]);
    reinit_units(static_cast<int64_t>(l), eligible, "utility", scores, true);
    replaced += n;
  }
  return replaced;
}

namespace {

// Units of `layer` old enough to be replaced at `step` (alive, age > maturity).
int64_t cbp_eligible(const DenseLayer& layer, int64_t step, int64_t maturity) {
  int64_t n = 0;
  for (int64_t j = 0; j < layer.units; ++j)
    if ((layer.alive.empty() || layer.alive[j]) && step - layer.birth_step[j] > maturity) ++n;
  return n;
}

}  // namespace

int64_t Model::continual_backprop_due(int64_t from_step, int64_t max) const {
  if (cbp_rate_ <= 0.0) return 0;
  std::vector<double> carry;
  for (size_t l = 0; l + 1 < layers_.size(); ++l) carry.push_back(layers_[l].cbp_carry);
  for (int64_t s = 1; s <= max; ++s) {
    for (size_t l = 0; l + 1 < layers_.size(); ++l) {
      const int64_t eligible = cbp_eligible(layers_[l], from_step + s, cbp_maturity_);
      if (eligible == 0) continue;
      carry[l] += cbp_rate_ * static_cast<double>(eligible);
      if (static_cast<int64_t>(carry[l]) >= 1) return s;
    }
  }
  return 0;
}

void Model::continual_backprop_skip(int64_t from_step, int64_t steps) {
  if (cbp_rate_ <= 0.0) return;
  for (int64_t s = 1; s <= steps; ++s)
    for (size_t l = 0; l + 1 < layers_.size(); ++l) {
      const int64_t eligible = cbp_eligible(layers_[l], from_step + s, cbp_maturity_);
      if (eligible > 0) layers_[l].cbp_carry += cbp_rate_ * static_cast<double>(eligible);
    }
}

int64_t Model::redo(double threshold) {
  if (!(threshold >= 0.0) || !std::isfinite(threshold)) throw_range("threshold must be a non-negative number");
  last_compensations_.clear();
  int64_t reset = 0;
  for (size_t l = 0; l + 1 < layers_.size(); ++l) {
    DenseLayer& layer = layers_[l];
    if (layer.stats.updates == 0) continue;
    double mean = 0.0;
    int64_t live = 0;
    for (int64_t j = 0; j < layer.units; ++j)
      if (layer.alive.empty() || layer.alive[j]) {
        mean += layer.stats.mean_abs_activation[j];
        ++live;
      }
    if (live == 0) continue;
    mean /= static_cast<double>(live);
    std::vector<int64_t> dormant;
    std::vector<double> scores;
    for (int64_t j = 0; j < layer.units; ++j) {
      if (!(layer.alive.empty() || layer.alive[j])) continue;
      const double s = mean > 0.0 ? layer.stats.mean_abs_activation[j] / mean : 0.0;
      if (s <= threshold) {
        dormant.push_back(j);
        scores.push_back(s);
      }
    }
    if (dormant.empty()) continue;
    reinit_units(static_cast<int64_t>(l), dormant, "dormant", scores, false);
    reset += static_cast<int64_t>(dormant.size());
  }
  return reset;
}

}  // namespace np
