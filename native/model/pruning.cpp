// Neuroapoptosis: magnitude pruning of weights (per layer or global) and
// pruning of whole neurons by a criterion. Every operation checks all its
// arguments first and only then changes the model, so a failed call leaves
// the model exactly as it was.
#include <algorithm>
#include <cmath>
#include <string>

#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/model.h"
#include "model/radix_select.h"

namespace np {

namespace {

std::string layer_name(int64_t l) { return "layer " + std::to_string(l); }

void check_layers(const std::vector<DenseLayer>& layers, const std::vector<int64_t>& which) {
  if (which.empty()) throw_range("no layer given to prune");
  for (size_t i = 0; i < which.size(); ++i) {
    if (which[i] < 0 || which[i] >= static_cast<int64_t>(layers.size()))
      throw_range("dense layer index " + std::to_string(which[i]) + " is out of range [0, " +
                  std::to_string(layers.size()) + ")");
    for (size_t j = 0; j < i; ++j)
      if (which[j] == which[i]) throw_range(layer_name(which[i]) + " is listed twice");
  }
}

// Magnitudes of the stored weights of a layer, in storage order (dense:
// row-major over units x inputs, skipping pruned positions; CSR: entry order).
void stored_magnitudes(const DenseLayer& layer, std::vector<float>& out) {
  out.reserve(out.size() + static_cast<size_t>(layer.nnz()));
  if (layer.format == WeightFormat::kCsr) {
    const float* v = layer.csr.value();
    for (int64_t k = 0; k < layer.csr.nnz(); ++k) out.push_back(std::fabs(v[k]));
    return;
  }
  const float* w = layer.weight.value();
  for (int64_t r = 0; r < layer.units; ++r)
    for (int64_t c = 0; c < layer.inputs; ++c)
      if (layer.mask.empty() || layer.mask[r * layer.inputs + c]) out.push_back(std::fabs(w[r * layer.weight.stride + c]));
}

// The magnitude t such that removing every stored weight below t, and the
// first `k - (count below t)` equal to t in storage order, removes exactly k.
struct Cut {
  float threshold = 0.0f;
  int64_t ties_to_remove = 0;
};

Cut find_cut(const std::vector<float>& magnitudes, int64_t k) {
  Cut cut;
  if (k <= 0 || magnitudes.empty()) {
    cut.threshold = -1.0f;  // removes nothing
    return cut;
  }
  k = std::min<int64_t>(k, static_cast<int64_t>(magnitudes.size()));
  const KthSmallest kth = kth_smallest_magnitude(magnitudes, k);
  cut.threshold = kth.value;
  cut.ties_to_remove = k - kth.below;
  return cut;
}

}  // namespace

int64_t DenseLayer::nnz() const {
  if (format == WeightFormat::kCsr) return csr.nnz();
  if (mask.empty()) return units * inputs;
  int64_t n = 0;
  for (uint8_t m : mask) n += m;
  return n;
}

bool DenseLayer::stores(int64_t r, int64_t c) const {
  if (format == WeightFormat::kCsr) {
    const int32_t* begin = csr.indices.data() + csr.indptr[r];
    const int32_t* end = csr.indices.data() + csr.indptr[r + 1];
    return std::binary_search(begin, end, static_cast<int32_t>(c));
  }
  return mask.empty() || mask[r * inputs + c];
}

int64_t DenseLayer::dead_units() const {
  int64_t n = 0;
  for (uint8_t a : alive) n += a == 0;
  return n;
}

int64_t DenseLayer::weight_bytes() const {
  if (format == WeightFormat::kCsr) return csr.bytes();
  int64_t slots = 2 + weight.moment_slots();
  return slots * weight.row_capacity * weight.stride * static_cast<int64_t>(sizeof(float)) +
         static_cast<int64_t>(mask.size());
}

// Removes the stored weights of `layer` picked by the cut (ties in storage order).
static int64_t remove_by_cut(DenseLayer& layer, const Cut& cut) {
  int64_t ties = cut.ties_to_remove;
  int64_t removed = 0;
  auto doomed = [&](float magnitude) {
    if (magnitude < cut.threshold) return true;
    if (magnitude == cut.threshold && ties > 0) {
      --ties;
      return true;
    }
    return false;
  };
  if (layer.format == WeightFormat::kCsr) {
    const float* v = layer.csr.value();
    std::vector<uint8_t> drop(layer.csr.nnz());
    for (int64_t k = 0; k < layer.csr.nnz(); ++k) drop[k] = doomed(std::fabs(v[k]));
    csr_filter(layer.csr, [&](int64_t, int64_t, int64_t k) { return !drop[k]; });
    for (uint8_t d : drop) removed += d;
    return removed;
  }
  if (layer.mask.empty()) layer.mask.assign(layer.units * layer.inputs, 1);
  DenseParam& p = layer.weight;
  for (int64_t r = 0; r < layer.units; ++r) {
    for (int64_t c = 0; c < layer.inputs; ++c) {
      uint8_t& m = layer.mask[r * layer.inputs + c];
      if (!m || !doomed(std::fabs(p.value()[r * p.stride + c]))) continue;
      m = 0;
      for (int s = 0; s < kSlotCount; ++s)
        if (p.has(static_cast<Slot>(s))) p.slots[s][r * p.stride + c] = 0.0f;
      ++removed;
    }
  }
  return removed;
}

// The core of weight pruning: remove `counts[i]` weights from which[i], or
// with global, `global_count` weights ranked over all of them.
static void prune_counts(std::vector<DenseLayer>& layers, const std::vector<int64_t>& which,
                         const std::vector<int64_t>& counts, bool global, int64_t global_count,
                         std::vector<int64_t>& removed) {
  removed.assign(which.size(), 0);
  if (global) {
    std::vector<float> all;
    for (int64_t l : which) stored_magnitudes(layers[l], all);
    const Cut cut = find_cut(all, global_count);
    // Ties at the threshold go to the layers in the order given. Every
    // layer's share is worked out first: a cut that would take all of some
    // layer's weights throws before anything is removed.
    std::vector<Cut> local(which.size());
    int64_t ties_left = cut.ties_to_remove;
    for (size_t i = 0; i < which.size(); ++i) {
      const DenseLayer& layer = layers[which[i]];
      std::vector<float> mine;
      stored_magnitudes(layer, mine);
      int64_t below = 0, ties_here = 0;
      for (float m : mine) {
        below += m < cut.threshold;
        ties_here += m == cut.threshold;
      }
      ties_here = std::min(ties_here, ties_left);
      ties_left -= ties_here;
      local[i] = Cut{cut.threshold, ties_here};
      if (!mine.empty() && below + ties_here == static_cast<int64_t>(mine.size()))
        throw_range("global pruning of " + std::to_string(global_count) + " weights would remove all " +
                    std::to_string(mine.size()) + " of layer " + std::to_string(which[i]) +
                    "; prune less, or prune that layer with scope 'layer'");
    }
    for (size_t i = 0; i < which.size(); ++i) removed[i] = remove_by_cut(layers[which[i]], local[i]);
    return;
  }
  for (size_t i = 0; i < which.size(); ++i) {
    std::vector<float> mags;
    stored_magnitudes(layers[which[i]], mags);
    removed[i] = remove_by_cut(layers[which[i]], find_cut(mags, counts[i]));
  }
}

int64_t Model::remove_smallest(int64_t l, int64_t k) {
  std::vector<float> mags;
  stored_magnitudes(layers_[l], mags);
  const int64_t count = std::min<int64_t>(k, static_cast<int64_t>(mags.size()));
  return remove_by_cut(layers_[l], find_cut(mags, count));
}

int64_t Model::prune_weights_magnitude(const std::vector<int64_t>& which, double amount, bool global) {
  check_layers(layers_, which);
  if (!(amount >= 0.0 && amount < 1.0)) throw_range("amount must be in [0, 1), got " + std::to_string(amount));
  std::vector<int64_t> stored(which.size()), counts(which.size());
  int64_t total = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    stored[i] = layers_[which[i]].nnz();
    counts[i] = static_cast<int64_t>(std::floor(amount * static_cast<double>(stored[i])));
    total += stored[i];
  }
  const int64_t global_count = static_cast<int64_t>(std::floor(amount * static_cast<double>(total)));
  std::vector<double> before(which.size());
  for (size_t i = 0; i < which.size(); ++i)
    before[i] = static_cast<double>(stored[i]) / static_cast<double>(layers_[which[i]].units * layers_[which[i]].inputs);
  std::vector<int64_t> removed;
  prune_counts(layers_, which, counts, global, global_count, removed);
  int64_t sum = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    DenseLayer& layer = layers_[which[i]];
    StructuralEvent e;
    e.kind = "prune";
    e.layer = which[i];
    e.criterion = global ? "magnitude-global" : "magnitude";
    e.count = removed[i];
    e.density_before = before[i];
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(layer.units * layer.inputs);
    log_event(std::move(e));
    apply_format_policy(which[i], nullptr);
    sum += removed[i];
  }
  return sum;
}

int64_t Model::prune_weights_to_sparsity(const std::vector<int64_t>& which, double sparsity, bool global) {
  check_layers(layers_, which);
  if (!(sparsity >= 0.0 && sparsity < 1.0)) throw_range("sparsity must be in [0, 1), got " + std::to_string(sparsity));
  // Convert "reach this sparsity" into the fraction of stored weights to remove.
  int64_t stored = 0, size = 0;
  for (int64_t l : which) {
    stored += layers_[l].nnz();
    size += layers_[l].units * layers_[l].inputs;
  }
  if (global) {
    const int64_t keep = static_cast<int64_t>(std::ceil((1.0 - sparsity) * static_cast<double>(size)));
    if (stored <= keep) return 0;
    // floor(amount * stored) must equal stored - keep exactly: aim half a weight above.
    const double amount = (static_cast<double>(stored - keep) + 0.5) / static_cast<double>(stored);
    return prune_weights_magnitude(which, std::min(amount, std::nextafter(1.0, 0.0)), true);
  }
  int64_t sum = 0;
  for (int64_t l : which) {
    const DenseLayer& layer = layers_[l];
    const int64_t keep = static_cast<int64_t>(std::ceil((1.0 - sparsity) * static_cast<double>(layer.units * layer.inputs)));
    const int64_t have = layer.nnz();
    if (have <= keep) continue;
    // floor(amount * have) must equal have - keep exactly: nudge up by half a weight.
    const double amount = (static_cast<double>(have - keep) + 0.5) / static_cast<double>(have);
    sum += prune_weights_magnitude({l}, std::min(amount, std::nextafter(1.0, 0.0)), false);
  }
  return sum;
}

}  // namespace np
