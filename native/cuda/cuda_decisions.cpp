// Structural decisions made on the device, from the device's numbers, so the
// host model (which applies every change) gets the decision, not the numbers:
// - CudaModel::magnitude_drops: a magnitude decision (pruning, the gradual
//   schedule, SET's drops) exactly as np::Model::magnitude_drops makes it from
//   the host's weights: the same k-th smallest |w| (three radix passes of 11 +
//   11 + 10 bits), the same ties (in the order the layers are listed, then in
//   storage order). Only the drop bits go to the host, 1/32 of the weights' bytes.
// - CudaModel::neuron_scores: neuron pruning's per-unit scores (l1, l2 norms
//   computed here; activation, taylor: the device's running statistics), one
//   double per unit instead of two layers' weights.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cuda_model.h"

namespace np::cuda {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("CudaModel.magnitudeDrops: " + what); }
[[noreturn]] void bad_scores(const std::string& what) { throw std::invalid_argument("CudaModel.neuronScores: " + what); }

struct Cut {
  uint32_t threshold = 0;  // |w| bits of the k-th smallest
  int64_t below = 0;       // stored weights strictly below it
};

// The k-th smallest (1 <= k <= stored) |w| over a group of layers: the
// host's kth_smallest_magnitude (radix_select.h), one histogram per pass over
// all of them, read back to pick the digit.
Cut select_cut(const std::vector<MagnitudeView>& group, int64_t k, Stream& stream) {
  struct Pass {
    int shift, width;
  };
  constexpr Pass kPasses[] = {{21, 11}, {10, 11}, {0, 10}};
  DeviceBuffer hist(sizeof(unsigned long long) << 11);
  std::vector<unsigned long long> counts;
  uint32_t prefix = 0, known = 0;
  int64_t rank = k - 1, below = 0;
  for (const Pass& p : kPasses) {
    hist.fill_zero(stream);
    for (const MagnitudeView& v : group)
      magnitude_histogram_cuda(v, prefix, known, p.shift, p.width, hist.as<unsigned long long>(), stream);
    counts = to_host<unsigned long long>(hist, size_t{1} << p.width, stream);
    uint32_t digit = 0;
    while (rank >= static_cast<int64_t>(counts[digit])) {
      rank -= static_cast<int64_t>(counts[digit]);
      below += static_cast<int64_t>(counts[digit]);
      ++digit;
    }
    prefix |= digit << p.shift;
    known |= ((1u << p.width) - 1u) << p.shift;
  }
  return Cut{prefix, below};
}

// Per view: {stored weights below the cut, at it}; threshold 0xffffffff
// counts every stored weight as below (|w| bits never exceed 0x7fffffff).
std::vector<std::pair<int64_t, int64_t>> census(const std::vector<MagnitudeView>& views, uint32_t threshold,
                                                Stream& stream) {
  DeviceBuffer counts(2 * views.size() * sizeof(unsigned long long));
  counts.fill_zero(stream);
  for (size_t i = 0; i < views.size(); ++i)
    magnitude_census_cuda(views[i], threshold, counts.as<unsigned long long>() + 2 * i, stream);
  const auto host = to_host<unsigned long long>(counts, 2 * views.size(), stream);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t i = 0; i < views.size(); ++i)
    out.emplace_back(static_cast<int64_t>(host[2 * i]), static_cast<int64_t>(host[2 * i + 1]));
  return out;
}

np::DropBits drop_bits(const MagnitudeView& v, uint32_t threshold, int64_t ties, DeviceBuffer& scratch, Stream& stream) {
  const int64_t words = np::drop_words(v.count);
  if (words == 0) return {};
  DeviceBuffer bits(static_cast<size_t>(words) * sizeof(uint32_t));
  magnitude_drop_bits_cuda(v, threshold, ties, bits.as<uint32_t>(), scratch, stream);
  return to_host<uint32_t>(bits, static_cast<size_t>(words), stream);
}

}  // namespace

std::vector<np::DropBits> CudaModel::magnitude_drops(const std::vector<int64_t>& which, const np::MagnitudePlan& plan) {
  if (which.empty()) bad("no layer given");
  for (size_t i = 0; i < which.size(); ++i) {
    if (which[i] < 0 || which[i] >= static_cast<int64_t>(layers_.size()))
      bad("layer " + std::to_string(which[i]) + " is out of range [0, " + std::to_string(layers_.size()) + ")");
    for (size_t j = 0; j < i; ++j)
      if (which[j] == which[i]) bad("layer " + std::to_string(which[i]) + " is listed twice");
  }
  if (plan.global < 0 && plan.counts.size() != which.size())
    bad(std::to_string(plan.counts.size()) + " counts for " + std::to_string(which.size()) + " layers");
  set_device(config_.device);
  std::vector<MagnitudeView> views;
  for (int64_t l : which) {
    const Layer& layer = layers_[l];
    views.push_back(MagnitudeView{layer.weight.as<float>(), layer.mask.size() ? layer.mask.as<uint8_t>() : nullptr, layer.count});
  }
  const auto stored = census(views, 0xffffffffu, stream_);
  int64_t total = 0;
  for (size_t i = 0; i < which.size(); ++i) {
    total += stored[i].first;
    if (plan.global < 0 && (plan.counts[i] < 0 || plan.counts[i] > stored[i].first))
      bad("layer " + std::to_string(which[i]) + ": cannot drop " + std::to_string(plan.counts[i]) + " of its " +
          std::to_string(stored[i].first) + " stored weights");
  }
  if (plan.global > total) bad("cannot drop " + std::to_string(plan.global) + " of " + std::to_string(total) + " stored weights");

  std::vector<np::DropBits> out(which.size());
  DeviceBuffer scratch;
  if (plan.global < 0) {
    for (size_t i = 0; i < which.size(); ++i) {
      if (plan.counts[i] == 0) {
        out[i].assign(static_cast<size_t>(np::drop_words(views[i].count)), 0u);
        continue;
      }
      const Cut cut = select_cut({views[i]}, plan.counts[i], stream_);
      out[i] = drop_bits(views[i], cut.threshold, plan.counts[i] - cut.below, scratch, stream_);
    }
    return out;
  }
  if (plan.global == 0) {
    for (size_t i = 0; i < which.size(); ++i) out[i].assign(static_cast<size_t>(np::drop_words(views[i].count)), 0u);
    return out;
  }
  const Cut cut = select_cut(views, plan.global, stream_);
  const auto at_cut = census(views, cut.threshold, stream_);
  int64_t ties_left = plan.global - cut.below;  // ties at the cut go to the layers in the order listed
  for (size_t i = 0; i < which.size(); ++i) {
    const int64_t ties_here = std::min(at_cut[i].second, ties_left);
    ties_left -= ties_here;
    out[i] = drop_bits(views[i], cut.threshold, ties_here, scratch, stream_);
  }
  return out;
}

std::vector<double> CudaModel::neuron_scores(int64_t l, const std::string& criterion) {
  if (l < 0 || l + 1 >= static_cast<int64_t>(layers_.size()))
    bad_scores("layer " + std::to_string(l) + " is not a hidden layer (the output layer's units are never pruned)");
  const Layer& layer = layers_[l];
  const Layer& next = layers_[l + 1];
  set_device(config_.device);
  std::vector<double> scores(static_cast<size_t>(layer.units));
  if (criterion == "activation" || criterion == "taylor") {
    if (layer.stats_updates == 0)
      bad_scores("criterion '" + criterion + "' needs statistics from at least one training step; call fit() first");
    const int row = criterion == "activation" ? 0 : 2;  // mean |a|, mean a, taylor
    layer.stats.download(scores.data(), scores.size() * sizeof(double), stream_,
                         static_cast<size_t>(row * layer.units) * sizeof(double));
    return scores;
  }
  if (criterion != "l1" && criterion != "l2")
    bad_scores("criterion must be 'l1', 'l2', 'activation' or 'taylor' (random scores are the host generator's), got '" + criterion + "'");
  auto weights = [](const Layer& x) {
    NormWeights w;
    w.units = x.units;
    w.inputs = x.inputs;
    w.values = x.weight.as<float>();
    if (x.csr) {
      w.indptr = x.indptr.as<int64_t>();
      w.t_col_ptr = x.t_col_ptr.as<int64_t>();
      w.t_value_pos = x.t_value_pos.as<int64_t>();
    }
    return w;
  };
  DeviceBuffer out(scores.size() * sizeof(double));
  neuron_norm_scores_cuda(weights(layer), weights(next), criterion == "l1", out.as<double>(), stream_);
  out.download(scores.data(), scores.size() * sizeof(double), stream_);
  return scores;
}

}  // namespace np::cuda
