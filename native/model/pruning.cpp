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

// Positions in a layer's storage order (magnitude_drops.h): units x inputs
// for a dense layer, nnz for a CSR one.
static int64_t drop_positions(const DenseLayer& layer) {
  return layer.format == WeightFormat::kCsr ? layer.csr.nnz() : layer.units * layer.inputs;
}

// The bits of the stored weights the cut picks (ties in storage order).
static DropBits cut_bits(const DenseLayer& layer, const Cut& cut) {
  DropBits bits(static_cast<size_t>(drop_words(drop_positions(layer))), 0u);
  int64_t ties = cut.ties_to_remove;
  auto consider = [&](int64_t i, float magnitude) {
    if (magnitude < cut.threshold || (magnitude == cut.threshold && ties-- > 0)) set_drop_bit(bits, i);
  };
  if (layer.format == WeightFormat::kCsr) {
    const float* v = layer.csr.value();
    for (int64_t k = 0; k < layer.csr.nnz(); ++k) consider(k, std::fabs(v[k]));
    return bits;
  }
  const DenseParam& p = layer.weight;
  for (int64_t r = 0; r < layer.units; ++r)
    for (int64_t c = 0; c < layer.inputs; ++c)
      if (layer.mask.empty() || layer.mask[r * layer.inputs + c])
        consider(r * layer.inputs + c, std::fabs(p.value()[r * p.stride + c]));
  return bits;
}

static int64_t count_drops(const DropBits& bits) {
  int64_t n = 0;
  for (uint32_t w : bits) n += __builtin_popcount(w);
  return n;
}

// Removes the stored weights whose bits are set (checked by check_drops or
// made by cut_bits), with their slots.
static int64_t remove_flagged(DenseLayer& layer, const DropBits& bits) {
  int64_t removed = 0;
  if (layer.format == WeightFormat::kCsr) {
    csr_filter(layer.csr, [&](int64_t, int64_t, int64_t k) { return !drop_bit(bits, k); });
    return count_drops(bits);
  }
  if (layer.mask.empty()) layer.mask.assign(layer.units * layer.inputs, 1);
  DenseParam& p = layer.weight;
  for (int64_t r = 0; r < layer.units; ++r) {
    for (int64_t c = 0; c < layer.inputs; ++c) {
      if (!drop_bit(bits, r * layer.inputs + c)) continue;
      layer.mask[r * layer.inputs + c] = 0;
      for (int s = 0; s < kSlotCount; ++s)
        if (p.has(static_cast<Slot>(s))) p.slots[s][r * p.stride + c] = 0.0f;
      ++removed;
    }
  }
  return removed;
}

std::vector<DropBits> Model::magnitude_drops(const std::vector<int64_t>& which, const MagnitudePlan& plan) const {
  std::vector<DropBits> out(which.size());
  if (plan.global < 0) {
    for (size_t i = 0; i < which.size(); ++i) {
      std::vector<float> mags;
      stored_magnitudes(layers_[which[i]], mags);
      out[i] = cut_bits(layers_[which[i]], find_cut(mags, plan.counts[i]));
    }
    return out;
  }
  std::vector<float> all;
  for (int64_t l : which) stored_magnitudes(layers_[l], all);
  const Cut cut = find_cut(all, plan.global);
  // Ties at the threshold go to the layers in the order given.
  int64_t ties_left = cut.ties_to_remove;
  for (size_t i = 0; i < which.size(); ++i) {
    std::vector<float> mine;
    stored_magnitudes(layers_[which[i]], mine);
    int64_t ties_here = 0;
    for (float m : mine) ties_here += m == cut.threshold;
    ties_here = std::min(ties_here, ties_left);
    ties_left -= ties_here;
    out[i] = cut_bits(layers_[which[i]], Cut{cut.threshold, ties_here});
  }
  return out;
}

void Model::check_drops(const std::vector<int64_t>& which, const MagnitudePlan& plan,
                        const std::vector<DropBits>& drops) const {
  if (drops.size() != which.size())
    throw_range("drops has " + std::to_string(drops.size()) + " entries for " + std::to_string(which.size()) + " layers");
  int64_t total = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    const DenseLayer& layer = layers_[which[i]];
    const DropBits& bits = drops[i];
    const int64_t positions = drop_positions(layer);
    const std::string name = "drops[" + std::to_string(i) + "] (" + layer_name(which[i]) + ")";
    if (static_cast<int64_t>(bits.size()) != drop_words(positions))
      throw_range(name + " has " + std::to_string(bits.size()) + " words; the layer's " + std::to_string(positions) +
                  " positions need " + std::to_string(drop_words(positions)));
    if (positions % 32 != 0 && (bits.back() >> (positions % 32)) != 0)
      throw_range(name + " sets a bit past the layer's " + std::to_string(positions) + " positions");
    if (layer.format == WeightFormat::kDense && !layer.mask.empty())
      for (int64_t p = 0; p < positions; ++p)
        if (!layer.mask[p] && drop_bit(bits, p))
          throw_range(name + " drops position " + std::to_string(p) + ", which the layer does not store");
    const int64_t n = count_drops(bits);
    if (plan.global < 0 && n != plan.counts[i])
      throw_range(name + " drops " + std::to_string(n) + " weights; the plan removes " + std::to_string(plan.counts[i]));
    total += n;
  }
  if (plan.global >= 0 && total != plan.global)
    throw_range("drops remove " + std::to_string(total) + " weights; the plan removes " + std::to_string(plan.global));
}

MagnitudePlan Model::plan_prune_weights(const std::vector<int64_t>& which, double amount, bool global) const {
  check_layers(layers_, which);
  if (!(amount >= 0.0 && amount < 1.0)) throw_range("amount must be in [0, 1), got " + std::to_string(amount));
  MagnitudePlan plan;
  int64_t total = 0;
  for (int64_t l : which) {
    const int64_t stored = layers_[l].nnz();
    plan.counts.push_back(global ? 0 : static_cast<int64_t>(std::floor(amount * static_cast<double>(stored))));
    total += stored;
  }
  if (global) plan.global = static_cast<int64_t>(std::floor(amount * static_cast<double>(total)));
  return plan;
}

// The amount whose floor(amount * have) is exactly have - keep: half a weight above.
static double amount_to_keep(int64_t have, int64_t keep) {
  const double amount = (static_cast<double>(have - keep) + 0.5) / static_cast<double>(have);
  return std::min(amount, std::nextafter(1.0, 0.0));
}

MagnitudePlan Model::plan_prune_to_sparsity(const std::vector<int64_t>& which, double sparsity, bool global) const {
  check_layers(layers_, which);
  if (!(sparsity >= 0.0 && sparsity < 1.0)) throw_range("sparsity must be in [0, 1), got " + std::to_string(sparsity));
  MagnitudePlan plan;
  int64_t stored = 0, size = 0;
  for (int64_t l : which) {
    const int64_t have = layers_[l].nnz(), positions = layers_[l].units * layers_[l].inputs;
    stored += have;
    size += positions;
    // Convert "reach this sparsity" into a number of stored weights to remove.
    const int64_t keep = static_cast<int64_t>(std::ceil((1.0 - sparsity) * static_cast<double>(positions)));
    plan.counts.push_back(global || have <= keep ? 0 : static_cast<int64_t>(std::floor(amount_to_keep(have, keep) * static_cast<double>(have))));
  }
  if (global) {
    const int64_t keep = static_cast<int64_t>(std::ceil((1.0 - sparsity) * static_cast<double>(size)));
    plan.global = stored <= keep ? 0 : static_cast<int64_t>(std::floor(amount_to_keep(stored, keep) * static_cast<double>(stored)));
  }
  return plan;
}

int64_t Model::remove_smallest(int64_t l, int64_t k, const DropBits* drops) {
  if (drops) return remove_flagged(layers_[l], *drops);  // regrow checked them against its plan
  std::vector<float> mags;
  stored_magnitudes(layers_[l], mags);
  const int64_t count = std::min<int64_t>(k, static_cast<int64_t>(mags.size()));
  return remove_flagged(layers_[l], cut_bits(layers_[l], find_cut(mags, count)));
}

int64_t Model::prune_weights_magnitude(const std::vector<int64_t>& which, double amount, bool global,
                                       const std::vector<DropBits>* drops) {
  const MagnitudePlan plan = plan_prune_weights(which, amount, global);
  if (drops) check_drops(which, plan, *drops);
  const std::vector<DropBits> bits = drops ? *drops : magnitude_drops(which, plan);
  std::vector<double> before(which.size());
  for (size_t i = 0; i < which.size(); ++i) {
    const DenseLayer& layer = layers_[which[i]];
    const int64_t stored = layer.nnz();
    before[i] = static_cast<double>(stored) / static_cast<double>(layer.units * layer.inputs);
    // A global cut that takes all of some layer's weights throws before anything is removed.
    if (global && stored > 0 && count_drops(bits[i]) == stored)
      throw_range("global pruning of " + std::to_string(plan.global) + " weights would remove all " +
                  std::to_string(stored) + " of layer " + std::to_string(which[i]) +
                  "; prune less, or prune that layer with scope 'layer'");
  }
  int64_t sum = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    DenseLayer& layer = layers_[which[i]];
    const int64_t removed = remove_flagged(layer, bits[i]);
    StructuralEvent e;
    e.kind = "prune";
    e.layer = which[i];
    e.criterion = global ? "magnitude-global" : "magnitude";
    e.count = removed;
    e.density_before = before[i];
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(layer.units * layer.inputs);
    log_event(std::move(e));
    apply_format_policy(which[i], nullptr);
    sum += removed;
  }
  return sum;
}

int64_t Model::prune_weights_to_sparsity(const std::vector<int64_t>& which, double sparsity, bool global,
                                         const std::vector<DropBits>* drops) {
  const MagnitudePlan plan = plan_prune_to_sparsity(which, sparsity, global);
  if (drops) check_drops(which, plan, *drops);
  if (global) {
    if (plan.global == 0) return 0;
    int64_t stored = 0;
    for (int64_t l : which) stored += layers_[l].nnz();
    // The amount whose floor gives the plan's count (amount_to_keep's rule).
    const double amount = std::min((static_cast<double>(plan.global) + 0.5) / static_cast<double>(stored),
                                   std::nextafter(1.0, 0.0));
    return prune_weights_magnitude(which, amount, true, drops);
  }
  int64_t sum = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    if (plan.counts[i] == 0) continue;  // already at or past the sparsity
    const int64_t have = layers_[which[i]].nnz();
    const double amount = std::min((static_cast<double>(plan.counts[i]) + 0.5) / static_cast<double>(have),
                                   std::nextafter(1.0, 0.0));
    std::vector<DropBits> mine;
    if (drops) mine.push_back((*drops)[i]);
    sum += prune_weights_magnitude({which[i]}, amount, false, drops ? &mine : nullptr);
  }
  return sum;
}

}  // namespace np
