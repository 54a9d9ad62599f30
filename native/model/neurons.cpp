// Structured pruning: scoring neurons by a criterion and killing the least
// useful ones. A killed unit's incoming weights, bias and outgoing weights are
// zeroed and held at zero (masks, or removed CSR entries) until compact()
// drops it physically.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

const char* kCriteria[] = {"l1", "l2", "activation", "taylor", "random"};

bool known_criterion(const std::string& c) {
  for (const char* k : kCriteria)
    if (c == k) return true;
  return false;
}

// Sum over the stored incoming weights of unit j of f(w).
template <typename F>
double row_sum(const DenseLayer& layer, int64_t j, F f) {
  double s = 0.0;
  if (layer.format == WeightFormat::kCsr) {
    for (int64_t k = layer.csr.indptr[j]; k < layer.csr.indptr[j + 1]; ++k) s += f(layer.csr.value()[k]);
    return s;
  }
  const float* w = layer.weight.value() + j * layer.weight.stride;
  for (int64_t c = 0; c < layer.inputs; ++c) s += f(w[c]);
  return s;
}

// Per input column j of `layer`, the sum of f over its stored weights.
template <typename F>
std::vector<double> column_sums(const DenseLayer& layer, F f) {
  std::vector<double> s(layer.inputs, 0.0);
  if (layer.format == WeightFormat::kCsr) {
    for (int64_t k = 0; k < layer.csr.nnz(); ++k) s[layer.csr.indices[k]] += f(layer.csr.value()[k]);
    return s;
  }
  for (int64_t r = 0; r < layer.units; ++r) {
    const float* w = layer.weight.value() + r * layer.weight.stride;
    for (int64_t c = 0; c < layer.inputs; ++c) s[c] += f(w[c]);
  }
  return s;
}

}  // namespace

void Model::check_neuron_criterion(int64_t l, const std::string& criterion) const {
  if (l < 0 || l >= static_cast<int64_t>(layers_.size()))
    throw_range("layer index " + std::to_string(l) + " is out of range [0, " + std::to_string(layers_.size()) + ")");
  if (!known_criterion(criterion))
    throw_range("criterion must be one of 'l1', 'l2', 'activation', 'taylor', 'random', got '" + criterion + "'");
  if (l + 1 >= static_cast<int64_t>(layers_.size()))
    throw_range("layer " + std::to_string(l) + " is the output layer; output neurons are never pruned");
}

std::vector<double> Model::neuron_scores(int64_t l, const std::string& criterion) {
  DenseLayer& layer = this->layer(l);
  check_neuron_criterion(l, criterion);
  const DenseLayer& next = layers_[l + 1];
  std::vector<double> scores(layer.units, 0.0);
  if (criterion == "l1" || criterion == "l2") {
    const bool l1 = criterion == "l1";
    auto f = [l1](float w) { return l1 ? std::fabs(static_cast<double>(w)) : static_cast<double>(w) * w; };
    const std::vector<double> out = column_sums(next, f);
    for (int64_t j = 0; j < layer.units; ++j) {
      const double in = row_sum(layer, j, f);
      scores[j] = l1 ? in + out[j] : std::sqrt(in + out[j]);
    }
  } else if (criterion == "activation" || criterion == "taylor") {
    if (layer.stats.updates == 0)
      throw_error("criterion '" + criterion + "' needs statistics from at least one training step; call fit() first");
    scores = criterion == "activation" ? layer.stats.mean_abs_activation : layer.stats.taylor;
  } else {
    for (auto& s : scores) s = rng_.uniform();
  }
  for (int64_t j = 0; j < layer.units; ++j)
    if (!layer.alive.empty() && !layer.alive[j]) scores[j] = -INFINITY;
  return scores;
}

// Scores computed where the numbers are (a GPU model's neuron_scores): one per
// unit, not NaN; dead units get -inf here, as neuron_scores gives them.
static std::vector<double> checked_given_scores(const DenseLayer& layer, int64_t l, const std::vector<double>& given) {
  if (static_cast<int64_t>(given.size()) != layer.units)
    throw_range("scores for layer " + std::to_string(l) + " have " + std::to_string(given.size()) + " entries for " +
                std::to_string(layer.units) + " units");
  std::vector<double> scores = given;
  for (int64_t j = 0; j < layer.units; ++j) {
    if (std::isnan(scores[j])) throw_range("scores for layer " + std::to_string(l) + " hold NaN at unit " + std::to_string(j));
    if (!layer.unit_alive(j)) scores[j] = -INFINITY;
  }
  return scores;
}

int64_t Model::prune_neurons(const std::vector<int64_t>& which, double amount, const std::string& criterion,
                             bool global, const std::vector<std::vector<double>>* given_scores) {
  if (which.empty()) throw_range("no layer given to prune");
  if (!(amount >= 0.0 && amount < 1.0)) throw_range("amount must be in [0, 1), got " + std::to_string(amount));
  if (given_scores && given_scores->size() != which.size())
    throw_range("scores has " + std::to_string(given_scores->size()) + " entries for " + std::to_string(which.size()) + " layers");
  if (given_scores && criterion == "random") throw_range("criterion 'random' draws its scores from the model's generator; give none");
  // Check everything and score first; nothing changes until all is known good.
  std::vector<std::vector<double>> scores;
  std::vector<int64_t> live(which.size());
  for (size_t i = 0; i < which.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (which[j] == which[i]) throw_range("layer " + std::to_string(which[i]) + " is listed twice");
    if (given_scores) {
      check_neuron_criterion(which[i], criterion);
      scores.push_back(checked_given_scores(layers_[which[i]], which[i], (*given_scores)[i]));
    } else {
      scores.push_back(neuron_scores(which[i], criterion));
    }
    const DenseLayer& layer = layers_[which[i]];
    live[i] = layer.units - layer.dead_units();
  }
  std::vector<std::vector<int64_t>> victims(which.size());
  if (!global) {
    for (size_t i = 0; i < which.size(); ++i) {
      const int64_t k = static_cast<int64_t>(std::floor(amount * static_cast<double>(live[i])));
      if (k >= live[i]) throw_range("pruning would leave layer " + std::to_string(which[i]) + " without neurons");
      std::vector<int64_t> order(scores[i].size());
      std::iota(order.begin(), order.end(), 0);
      // Dead units score -inf: skip them by ranking only the live ones.
      order.erase(std::remove_if(order.begin(), order.end(), [&](int64_t j) { return scores[i][j] == -INFINITY; }),
                  order.end());
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[i][a] < scores[i][b]; });
      victims[i].assign(order.begin(), order.begin() + k);
    }
  } else {
    // Normalise each layer's scores by its mean over live units so layers of
    // different width and scale compete fairly.
    struct Candidate {
      double score;
      size_t layer;
      int64_t unit;
    };
    std::vector<Candidate> all;
    int64_t total_live = 0;
    for (size_t i = 0; i < which.size(); ++i) {
      double mean = 0.0;
      for (double s : scores[i])
        if (s != -INFINITY) mean += s;
      mean /= std::max<int64_t>(1, live[i]);
      for (int64_t j = 0; j < static_cast<int64_t>(scores[i].size()); ++j)
        if (scores[i][j] != -INFINITY) all.push_back({mean > 0 ? scores[i][j] / mean : scores[i][j], i, j});
      total_live += live[i];
    }
    std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) { return a.score < b.score; });
    int64_t k = static_cast<int64_t>(std::floor(amount * static_cast<double>(total_live)));
    std::vector<int64_t> remaining = live;
    for (const Candidate& c : all) {
      if (k == 0) break;
      if (remaining[c.layer] <= 1) continue;  // at least one neuron always stays
      victims[c.layer].push_back(c.unit);
      --remaining[c.layer];
      --k;
    }
  }
  int64_t total = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    if (victims[i].empty()) continue;
    std::sort(victims[i].begin(), victims[i].end());
    DenseLayer& layer = layers_[which[i]];
    StructuralEvent e;
    e.kind = "prune";
    e.layer = which[i];
    e.criterion = criterion + (global ? "-global" : "");
    e.count = static_cast<int64_t>(victims[i].size());
    for (int64_t j : victims[i]) {
      e.neuron_ids.push_back(layer.neuron_ids[j]);
      e.scores.push_back(static_cast<float>(scores[i][j]));
    }
    e.density_before = static_cast<double>(live[i]) / static_cast<double>(layer.units);
    kill_units(which[i], victims[i]);
    e.density_after = static_cast<double>(layer.units - layer.dead_units()) / static_cast<double>(layer.units);
    log_event(std::move(e));
    total += static_cast<int64_t>(victims[i].size());
  }
  return total;
}

void Model::kill_units(int64_t l, const std::vector<int64_t>& units) {
  DenseLayer& layer = layers_[l];
  DenseLayer& next = layers_[l + 1];
  if (layer.alive.empty()) layer.alive.assign(layer.units, 1);
  std::vector<uint8_t> dying(layer.units, 0);
  for (int64_t j : units) {
    dying[j] = 1;
    layer.alive[j] = 0;
    for (int s = 0; s < kSlotCount; ++s)
      if (layer.bias.has(static_cast<Slot>(s))) layer.bias.slots[s][j] = 0.0f;
  }
  // Incoming weights: rows of this layer.
  if (layer.format == WeightFormat::kCsr) {
    csr_filter(layer.csr, [&](int64_t r, int64_t, int64_t) { return !dying[r]; });
  } else {
    if (layer.mask.empty()) layer.mask.assign(layer.units * layer.inputs, 1);
    for (int64_t j : units) {
      std::fill(layer.mask.begin() + j * layer.inputs, layer.mask.begin() + (j + 1) * layer.inputs, 0);
      for (int s = 0; s < kSlotCount; ++s)
        if (layer.weight.has(static_cast<Slot>(s)))
          std::fill(layer.weight.slots[s].data() + j * layer.weight.stride,
                    layer.weight.slots[s].data() + j * layer.weight.stride + layer.inputs, 0.0f);
    }
  }
  // Outgoing weights: columns of the next layer.
  if (next.format == WeightFormat::kCsr) {
    csr_filter(next.csr, [&](int64_t, int64_t c, int64_t) { return !dying[c]; });
  } else {
    if (next.mask.empty()) next.mask.assign(next.units * next.inputs, 1);
    for (int64_t r = 0; r < next.units; ++r) {
      for (int64_t j : units) {
        next.mask[r * next.inputs + j] = 0;
        for (int s = 0; s < kSlotCount; ++s)
          if (next.weight.has(static_cast<Slot>(s))) next.weight.slots[s][r * next.weight.stride + j] = 0.0f;
      }
    }
  }
}

}  // namespace np
