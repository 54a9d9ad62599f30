// Dynamic sparse training: random sparse initialisation (uniform or
// Erdos-Renyi densities) and drop-and-regrow of connections, at random (SET,
// Mocanu et al. 2018) or by gradient magnitude (RigL, Evci et al. 2020). A
// layer stays truly sparse throughout: CSR layers are rebuilt, never densified.
#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "kernels/gemm.h"
#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/gradient_topk.h"
#include "model/model.h"
#include "model/radix_select.h"

namespace np {

void Model::sparsify(double sparsity, bool erdos_renyi, const std::vector<int64_t>& which, ThreadPool* pool) {
  if (!(sparsity >= 0.0 && sparsity < 1.0)) throw_range("sparsity must be in [0, 1), got " + std::to_string(sparsity));
  const size_t n = layers_.size();
  // The layers to sparsify (all when none are named); the sparsity is theirs together.
  std::vector<bool> chosen(n, which.empty());
  for (int64_t l : which) {
    if (l < 0 || l >= static_cast<int64_t>(n)) throw_range("layer " + std::to_string(l) + " is not a dense layer");
    chosen[l] = true;
  }
  last_rescales_.clear();
  std::vector<double> density(n, 1.0 - sparsity);
  if (erdos_renyi) {
    // d_l = eps * (fan_in + fan_out) / (fan_in * fan_out), eps chosen so the
    // total matches; layers that would exceed density 1 are capped and the
    // rest rescaled (the ERK recipe of the RigL paper for dense layers).
    std::vector<bool> capped(n, false);
    for (int round = 0; round < static_cast<int>(n) + 1; ++round) {
      double budget = 0.0, raw = 0.0;
      for (size_t l = 0; l < n; ++l) {
        if (!chosen[l]) continue;
        const double size = static_cast<double>(layers_[l].units * layers_[l].inputs);
        budget += (1.0 - sparsity) * size;
        if (capped[l]) budget -= size;
        else raw += static_cast<double>(layers_[l].units + layers_[l].inputs);
      }
      const double eps = raw > 0 ? budget / raw : 0.0;
      bool changed = false;
      for (size_t l = 0; l < n; ++l) {
        if (!chosen[l] || capped[l]) continue;
        const double d = eps * static_cast<double>(layers_[l].units + layers_[l].inputs) /
                         static_cast<double>(layers_[l].units * layers_[l].inputs);
        if (d >= 1.0) {
          capped[l] = true;
          changed = true;
        }
        density[l] = std::min(1.0, d);
      }
      if (!changed) break;
      for (size_t l = 0; l < n; ++l)
        if (capped[l]) density[l] = 1.0;
    }
  }
  for (size_t l = 0; l < n; ++l) {
    if (!chosen[l]) continue;
    DenseLayer& layer = layers_[l];
    const int64_t size = layer.units * layer.inputs;
    const int64_t keep = std::max<int64_t>(1, std::llround(density[l] * static_cast<double>(size)));
    if (keep >= layer.nnz()) continue;
    // Keep a uniformly random subset of the stored weights, scaled by
    // 1/sqrt(density) so each unit's input variance stays as at init.
    std::vector<float> key;
    std::vector<float> scale_by;
    const float scale = static_cast<float>(1.0 / std::sqrt(density[l]));
    if (layer.format == WeightFormat::kDense && layer.mask.empty()) layer.mask.assign(size, 1);
    std::vector<int64_t> positions;
    for (int64_t r = 0; r < layer.units; ++r)
      for (int64_t c = 0; c < layer.inputs; ++c)
        if (layer.stores(r, c)) positions.push_back(r * layer.inputs + c);
    for (size_t i = 0; i < static_cast<size_t>(keep); ++i)
      std::swap(positions[i], positions[i + rng_.below(positions.size() - i)]);
    std::vector<uint8_t> kept(size, 0);
    for (int64_t i = 0; i < keep; ++i) kept[positions[i]] = 1;
    const double before = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    // Either format: the kept weights start with fresh optimizer state (and
    // no gradient), since their values were just rescaled.
    if (layer.format == WeightFormat::kCsr) {
      csr_filter(layer.csr, [&](int64_t r, int64_t c, int64_t) { return kept[r * layer.inputs + c] != 0; });
      for (int64_t k = 0; k < layer.csr.nnz(); ++k) layer.csr.value()[k] *= scale;
      for (int s = 1; s < kSlotCount; ++s)
        if (layer.csr.has(static_cast<Slot>(s))) std::fill(layer.csr.slot(static_cast<Slot>(s)), layer.csr.slot(static_cast<Slot>(s)) + layer.csr.nnz(), 0.0f);
    } else {
      DenseParam& p = layer.weight;
      for (int64_t r = 0; r < layer.units; ++r) {
        for (int64_t c = 0; c < layer.inputs; ++c) {
          const int64_t i = r * layer.inputs + c;
          layer.mask[i] = kept[i];
          for (int s = 0; s < kSlotCount; ++s)
            if (p.has(static_cast<Slot>(s))) p.slots[s][r * p.stride + c] = kept[i] ? (s == 0 ? p.slots[s][r * p.stride + c] * scale : 0.0f) : 0.0f;
        }
      }
    }
    last_rescales_.push_back({static_cast<int64_t>(l), scale});
    StructuralEvent e;
    e.kind = "prune";
    e.layer = static_cast<int64_t>(l);
    e.criterion = erdos_renyi ? "sparsify-erdos-renyi" : "sparsify-uniform";
    e.count = layer.units * layer.inputs - keep;
    e.density_before = before;
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    log_event(std::move(e));
    apply_format_policy(static_cast<int64_t>(l), pool);
  }
}

// Inputs that come from a pruned (not yet compacted) unit of the layer below
// are closed: a connection there would feed the unit's constant output (0.5
// for sigmoid) into this layer, and compact() drops it. Empty: none closed.
static std::vector<uint8_t> closed_inputs(const std::vector<DenseLayer>& layers, int64_t l) {
  std::vector<uint8_t> closed;
  if (l > 0 && !layers[l - 1].alive.empty()) {
    closed.resize(layers[l].inputs);
    for (int64_t c = 0; c < layers[l].inputs; ++c) closed[c] = !layers[l - 1].unit_alive(c);
  }
  return closed;
}

// How many positions of a layer can grow: every stored weight sits in a live row and an open column.
static int64_t open_positions(const DenseLayer& layer, const std::vector<uint8_t>& closed) {
  int64_t open_inputs = layer.inputs;
  for (uint8_t c : closed) open_inputs -= c;
  return (layer.units - layer.dead_units()) * open_inputs - layer.nnz();
}

int64_t Model::regrow_count(int64_t l, double fraction) const {
  const DenseLayer& layer = layers_[l];
  const int64_t empty = open_positions(layer, closed_inputs(layers_, l));
  return std::max<int64_t>(0, std::min(static_cast<int64_t>(std::floor(fraction * static_cast<double>(layer.nnz()))), empty));
}

static void check_regrow_args(const std::vector<DenseLayer>& layers, const std::vector<int64_t>& which, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0)) throw_range("dropFraction must be in [0, 1), got " + std::to_string(fraction));
  for (int64_t l : which)
    if (l < 0 || l >= static_cast<int64_t>(layers.size())) throw_range("dense layer index " + std::to_string(l) + " is out of range");
}

MagnitudePlan Model::plan_regrow_drops(const std::vector<int64_t>& which, double fraction) const {
  check_regrow_args(layers_, which, fraction);
  MagnitudePlan plan;
  for (int64_t l : which) plan.counts.push_back(regrow_count(l, fraction));
  return plan;
}

// RigL's choice in layer l after recompute_signals: the k open positions with the largest |dL/dw|.
std::vector<int64_t> Model::rigl_choice(int64_t l, int64_t k, int64_t batch, ThreadPool* pool) const {
  const std::vector<uint8_t> closed = closed_inputs(layers_, l);
  return top_gradient_positions(layers_[l], ws_.dz[l].data(), ws_.act[l].data(), batch, k, pool, nullptr,
                                closed.empty() ? nullptr : closed.data());
}

std::vector<std::vector<int64_t>> Model::gradient_growth(const std::vector<int64_t>& which,
                                                         const std::vector<int64_t>& counts, ThreadPool* pool,
                                                         const float* x, const Targets* targets, int64_t n) {
  if (counts.size() != which.size())
    throw_range("counts has " + std::to_string(counts.size()) + " entries for " + std::to_string(which.size()) + " layers");
  for (size_t i = 0; i < which.size(); ++i) {
    if (which[i] < 0 || which[i] >= static_cast<int64_t>(layers_.size()))
      throw_range("dense layer index " + std::to_string(which[i]) + " is out of range");
    const int64_t open = open_positions(layers_[which[i]], closed_inputs(layers_, which[i]));
    if (counts[i] < 0 || counts[i] > open)
      throw_range("layer " + std::to_string(which[i]) + " has " + std::to_string(open) + " open positions; cannot grow " +
                  std::to_string(counts[i]));
  }
  const int64_t batch = signals_of(x, targets, n, pool);
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < which.size(); ++i) out.push_back(rigl_choice(which[i], counts[i], batch, pool));
  return out;
}

// Positions chosen elsewhere (a GPU model's gradient_growth): k per layer,
// ascending, each an open position (live unit, open input, nothing stored).
static void check_grows(const std::vector<DenseLayer>& layers, const std::vector<int64_t>& which,
                        const std::vector<int64_t>& counts, const std::vector<std::vector<int64_t>>& grows) {
  if (grows.size() != which.size())
    throw_range("grows has " + std::to_string(grows.size()) + " entries for " + std::to_string(which.size()) + " layers");
  for (size_t i = 0; i < which.size(); ++i) {
    const DenseLayer& layer = layers[which[i]];
    const std::vector<uint8_t> closed = closed_inputs(layers, which[i]);
    const std::string name = "grows[" + std::to_string(i) + "] (layer " + std::to_string(which[i]) + ")";
    if (static_cast<int64_t>(grows[i].size()) != counts[i])
      throw_range(name + " has " + std::to_string(grows[i].size()) + " positions; the plan grows " + std::to_string(counts[i]));
    for (size_t j = 0; j < grows[i].size(); ++j) {
      const int64_t p = grows[i][j];
      if (p < 0 || p >= layer.units * layer.inputs || (j > 0 && p <= grows[i][j - 1]))
        throw_range(name + " must hold ascending positions in [0, " + std::to_string(layer.units * layer.inputs) + ")");
      const int64_t r = p / layer.inputs, c = p % layer.inputs;
      if (!layer.unit_alive(r) || (!closed.empty() && closed[c]) || layer.stores(r, c))
        throw_range(name + " grows position " + std::to_string(p) + ", which is not open");
    }
  }
}

int64_t Model::regrow(const std::vector<int64_t>& which, double fraction, bool by_gradient, ThreadPool* pool,
                      const float* x, const Targets* targets, int64_t n, const std::vector<DropBits>* drops,
                      const std::vector<std::vector<int64_t>>* grows) {
  check_regrow_args(layers_, which, fraction);
  if (grows && !by_gradient) throw_range("grows are RigL's gradient choice; SET draws its positions from the model's generator");
  MagnitudePlan plan;  // of a decision given (drops, grows): one over the structure as it is now
  if (drops || grows) {
    // A layer listed twice would change twice from one decision.
    for (size_t i = 0; i < which.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (which[i] == which[j]) throw_range("layer " + std::to_string(which[i]) + " is listed twice");
    plan = plan_regrow_drops(which, fraction);
    if (drops) check_drops(which, plan, *drops);
    if (grows) check_grows(layers_, which, plan.counts, *grows);
  }
  // RigL scores missing connections with the gradient of the current weights,
  // so compute it before anything is dropped (unless the choice was made elsewhere).
  int64_t batch = 0;
  if (by_gradient && !grows) {
    batch = signals_of(x, targets, n, pool);
  }
  // With drops given (one decision over the structure as it is now), RigL's
  // own choices are made first, and must match the drops' counts before
  // anything changes (NaN gradients can leave fewer than k candidates).
  std::vector<std::vector<int64_t>> own_grows;
  if (drops && by_gradient && !grows) {
    for (size_t i = 0; i < which.size(); ++i) {
      own_grows.push_back(plan.counts[i] > 0 ? rigl_choice(which[i], plan.counts[i], batch, pool) : std::vector<int64_t>());
      if (static_cast<int64_t>(own_grows.back().size()) != plan.counts[i])
        throw_error("RigL found " + std::to_string(own_grows.back().size()) + " growth positions in layer " +
                    std::to_string(which[i]) + " for a plan of " + std::to_string(plan.counts[i]) + " drops");
    }
    grows = &own_grows;
  }
  int64_t total = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    const int64_t l = which[i];
    DenseLayer& layer = layers_[l];
    const int64_t nnz = layer.nnz();
    const int64_t size = layer.units * layer.inputs;
    const std::vector<uint8_t> closed = closed_inputs(layers_, l);
    const int64_t k = regrow_count(l, fraction);
    if (k <= 0) continue;
    const int64_t empty = open_positions(layer, closed);
    const auto open = [&](int64_t r, int64_t c) {
      return layer.unit_alive(r) && (closed.empty() || !closed[c]) && !layer.stores(r, c);
    };

    // 1. Choose what grows, among positions empty now, as sorted positions
    // r * inputs + c (RigL: largest |dL/dw|; SET: uniformly at random). Dead
    // units never regrow.
    std::vector<int64_t> chosen;
    if (grows) {
      chosen = (*grows)[i];
    } else if (by_gradient) {
      chosen = rigl_choice(l, k, batch, pool);
    } else {
      if (empty <= 4 * k) {
        std::vector<int64_t> all;
        for (int64_t r = 0; r < layer.units; ++r)
          for (int64_t c = 0; c < layer.inputs; ++c)
            if (open(r, c)) all.push_back(r * layer.inputs + c);
        const int64_t take = std::min<int64_t>(k, all.size());
        for (int64_t i = 0; i < take; ++i) std::swap(all[i], all[i + rng_.below(all.size() - i)]);
        chosen.assign(all.begin(), all.begin() + take);
      } else {
        // Sparse enough that rejection sampling finds empty positions fast.
        std::unordered_set<int64_t> seen;
        while (static_cast<int64_t>(chosen.size()) < k) {
          const int64_t pos = static_cast<int64_t>(rng_.below(size));
          const int64_t r = pos / layer.inputs, c = pos % layer.inputs;
          if (open(r, c) && seen.insert(pos).second) chosen.push_back(pos);
        }
      }
      radix_sort_positions(chosen, size);
    }
    std::vector<std::pair<int64_t, int32_t>> grow(chosen.size());
    for (size_t i = 0; i < chosen.size(); ++i)
      grow[i] = {chosen[i] / layer.inputs, static_cast<int32_t>(chosen[i] % layer.inputs)};
    const int64_t grown = static_cast<int64_t>(grow.size());
    if (grown == 0) continue;

    // 2. Drop the same number of the smallest-magnitude stored weights.
    const double before = static_cast<double>(nnz) / static_cast<double>(size);
    remove_smallest(l, grown, drops ? &(*drops)[i] : nullptr);

    // 3. Add the new connections: value 0, fresh optimizer state.
    if (layer.format == WeightFormat::kCsr) {
      csr_insert(layer.csr, grow, std::vector<float>(grow.size(), 0.0f));
    } else {
      if (layer.mask.empty()) layer.mask.assign(size, 1);
      for (const auto& [r, c] : grow) {
        layer.mask[r * layer.inputs + c] = 1;
        for (int s = 0; s < kSlotCount; ++s)
          if (layer.weight.has(static_cast<Slot>(s))) layer.weight.slots[s][r * layer.weight.stride + c] = 0.0f;
      }
    }
    StructuralEvent e;
    e.kind = "regrow";
    e.layer = l;
    e.criterion = by_gradient ? "gradient" : "random";
    e.count = grown;
    e.density_before = before;
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    log_event(std::move(e));
    total += grown;
  }
  return total;
}

}  // namespace np
