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
// - CudaModel::gradient_growth: RigL's choice, the open positions with the
//   largest |dL/dw| of a batch (the dense gradient is made here, one GEMM per
//   layer, and ranked with the magnitude kernels, largest first): k positions
//   per layer instead of the weights and the batch's forward and backward on
//   the host.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cuda_model.h"

namespace np::cuda {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("CudaModel.magnitudeDrops: " + what); }
[[noreturn]] void bad_scores(const std::string& what) { throw std::invalid_argument("CudaModel.neuronScores: " + what); }

float* f(const DeviceBuffer& b) { return b.as<float>(); }

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

}  // namespace

std::vector<np::DropBits> CudaModel::magnitude_drops(const std::vector<int64_t>& which, const np::MagnitudePlan& plan) {
  ensure_usable();
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
    views.push_back(MagnitudeView{layer.weight.as<float>(), layer.mask.size() ? layer.mask.as<uint8_t>() : nullptr, layer.count,
                                  false, layer.csr ? 0 : layer.inputs, layer.csr ? 0 : layer.stride});
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
      out[i] = magnitude_smallest_cuda(views[i], plan.counts[i], scratch, stream_);
    }
    return out;
  }
  if (plan.global == 0) {
    for (size_t i = 0; i < which.size(); ++i) out[i].assign(static_cast<size_t>(np::drop_words(views[i].count)), 0u);
    return out;
  }
  const MagnitudeCut cut = magnitude_select_cuda(views, plan.global, stream_);
  const auto at_cut = census(views, cut.threshold, stream_);
  int64_t ties_left = plan.global - cut.below;  // ties at the cut go to the layers in the order listed
  for (size_t i = 0; i < which.size(); ++i) {
    const int64_t ties_here = std::min(at_cut[i].second, ties_left);
    ties_left -= ties_here;
    out[i] = magnitude_drop_bits_host(views[i], cut.threshold, ties_here, scratch, stream_);
  }
  return out;
}

NormWeights CudaModel::norm_weights(const Layer& x) {
  NormWeights w;
  w.units = x.units;
  w.inputs = x.inputs;
  w.stride = x.stride;
  w.values = x.weight.as<float>();
  if (x.csr) {
    w.indptr = x.indptr.as<int64_t>();
    w.t_col_ptr = x.t_col_ptr.as<int64_t>();
    w.t_value_pos = x.t_value_pos.as<int64_t>();
  }
  return w;
}

std::vector<double> CudaModel::unit_utility(int64_t l) {
  ensure_usable();
  if (l < 0 || l + 1 >= static_cast<int64_t>(layers_.size()))
    throw std::invalid_argument("CudaModel.unitUtility: layer " + std::to_string(l) + " is not a hidden layer");
  const Layer& layer = layers_[l];
  const Layer& next = layers_[l + 1];
  const size_t units = static_cast<size_t>(layer.units);
  std::vector<double> u(units, 0.0);
  if (layer.stats_updates == 0) return u;  // the CPU's rule: no statistics yet, no utility
  set_device(config_.device);
  DeviceBuffer out(units * sizeof(double));
  mean_abs_columns_cuda(norm_weights(next), next.mask.size() ? next.mask.as<uint8_t>() : nullptr, out.as<double>(), stream_);
  const std::vector<double> outgoing = to_host<double>(out, units, stream_);
  std::vector<double> mean_abs(units);
  layer.stats.download(mean_abs.data(), units * sizeof(double), stream_);
  const std::vector<uint8_t> alive = layer.alive.size() ? to_host<uint8_t>(layer.alive, units, stream_) : std::vector<uint8_t>();
  // EMA with zero start: divided by (1 - decay^t), as np::Model::unit_utility.
  const double correction = 1.0 - std::pow(config_.stats_decay, static_cast<double>(layer.stats_updates));
  for (size_t j = 0; j < units; ++j)
    u[j] = alive.empty() || alive[j] ? mean_abs[j] / correction * outgoing[j] : -INFINITY;
  return u;
}

std::vector<double> CudaModel::neuron_scores(int64_t l, const std::string& criterion) {
  ensure_usable();
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
    return dead_units_last(layer, std::move(scores));
  }
  if (criterion != "l1" && criterion != "l2")
    bad_scores("criterion must be 'l1', 'l2', 'activation' or 'taylor' (random scores are the host generator's), got '" + criterion + "'");
  DeviceBuffer out(scores.size() * sizeof(double));
  neuron_norm_scores_cuda(norm_weights(layer), norm_weights(next), criterion == "l1", out.as<double>(), stream_);
  out.download(scores.data(), scores.size() * sizeof(double), stream_);
  return dead_units_last(layer, std::move(scores));
}

std::vector<double> CudaModel::dead_units_last(const Layer& layer, std::vector<double> scores) {
  if (layer.alive.size() == 0) return scores;
  const std::vector<uint8_t> alive = to_host<uint8_t>(layer.alive, static_cast<size_t>(layer.units), stream_);
  for (size_t j = 0; j < scores.size(); ++j)
    if (!alive[j]) scores[j] = -INFINITY;
  return scores;
}

std::unique_ptr<DeviceDataset> CudaModel::signal_pass(const float* x, const int32_t* labels, const float* targets, int64_t n) {
  // The batch's forward pass and dL/dy into grad_a_, as the CPU's
  // recompute_signals: no dropout, no statistics, nothing added to the
  // running totals or the halt flag. The batch stays with the caller until
  // the stream is done with it.
  auto d = upload_dataset(x, n, labels, targets);
  ensure_workspace(n);
  gather_transpose_f32_cuda(f(act_[0]), n, d->x.as<float>(), d->features, nullptr, 0, n, d->features, stream_);
  if (labels) gather_i32_cuda(labels_.as<int32_t>(), d->labels.as<int32_t>(), nullptr, 0, n, stream_);
  else gather_transpose_f32_cuda(f(targets_), n, d->targets.as<float>(), d->outputs, nullptr, 0, n, d->outputs, stream_);
  forward(n, false);
  LossTotals* scratch_totals = totals_.as<LossTotals>();  // [0]: one batch's, rewritten by every step
  if (labels || config_.loss == CudaLossKind::kSoftmaxCrossEntropy)
    softmax_cross_entropy_cuda(f(grad_a_), scratch_totals, f(act_.back()), n, labels ? labels_.as<int32_t>() : nullptr,
                               labels ? nullptr : f(targets_), output_size(), n, loss_ws_, stream_);
  else
    mean_squared_error_cuda(f(grad_a_), scratch_totals, f(act_.back()), n, f(targets_), output_size(), n, loss_ws_, stream_);
  return d;
}

np::GradMaxProduct CudaModel::gradmax_product(int64_t l, const float* x, const int32_t* labels, const float* targets, int64_t n) {
  ensure_usable();
  auto refuse = [](const std::string& what) { throw std::invalid_argument("CudaModel.gradmaxProduct: " + what); };
  if (l < 0 || l + 1 >= static_cast<int64_t>(layers_.size()))
    refuse("layer " + std::to_string(l) + " is not a hidden layer (the output layer cannot grow)");
  if (n <= 0 || (labels == nullptr) == (targets == nullptr)) refuse("a batch of at least one sample with labels or targets is needed");
  const Layer& layer = layers_[l];
  const Layer& next = layers_[l + 1];
  set_device(config_.device);
  const auto batch = signal_pass(x, labels, targets, n);
  // Backward to dL/dz of the next layer (dz only), then M = dz_{l+1} a_{l-1}^T, as the host's gradmax_product.
  float* g = f(grad_a_);
  float* other = f(grad_b_);
  for (int64_t k = static_cast<int64_t>(layers_.size()) - 1;; --k) {
    const Layer& at = layers_[k];
    activation_backward_cuda(g, f(act_[k + 1]), n, at.activation, at.units, n, nullptr, nullptr, stream_);
    if (k == l + 1) break;
    if (at.csr)
      spmm_t_f32_csr_cuda(at.view(), at.transpose_view(), g, n, 0.0f, other, n, n, stream_, SpmmKernel::kAuto, at.count);
    else
      gemm_f32_cuda(Trans::kYes, Trans::kNo, at.inputs, n, at.units, f(at.weight), at.stride, g, n, 0.0f, other, n, stream_);
    std::swap(g, other);
  }
  np::GradMaxProduct out;
  const size_t size = static_cast<size_t>(next.units * layer.inputs);
  DeviceBuffer m(size * sizeof(float));
  gemm_f32_cuda(Trans::kNo, Trans::kYes, next.units, layer.inputs, n, g, n, f(act_[l]), n, 0.0f, m.as<float>(), layer.inputs, stream_);
  out.m = to_host<float>(m, size, stream_);
  // Stored values only: the zeros a dense mask or CSR leaves out add nothing.
  DeviceBuffer partials(static_cast<size_t>(sum_squares_partials()) * sizeof(double));
  sum_squares_cuda(f(next.weight), next.csr ? next.count : next.units * next.stride, partials.as<double>(), stream_);  // spare columns are zero
  for (double p : to_host<double>(partials, static_cast<size_t>(sum_squares_partials()), stream_)) out.weight_squares += p;
  return out;
}

std::vector<std::vector<int64_t>> CudaModel::gradient_growth(const std::vector<int64_t>& which,
                                                             const std::vector<int64_t>& counts, const float* x,
                                                             const int32_t* labels, const float* targets, int64_t n) {
  ensure_usable();
  auto refuse = [](const std::string& what) { throw std::invalid_argument("CudaModel.gradientGrowth: " + what); };
  if (which.empty()) refuse("no layer given");
  if (counts.size() != which.size()) refuse(std::to_string(counts.size()) + " counts for " + std::to_string(which.size()) + " layers");
  for (size_t i = 0; i < which.size(); ++i) {
    if (which[i] < 0 || which[i] >= static_cast<int64_t>(layers_.size()))
      refuse("layer " + std::to_string(which[i]) + " is out of range [0, " + std::to_string(layers_.size()) + ")");
    for (size_t j = 0; j < i; ++j)
      if (which[j] == which[i]) refuse("layer " + std::to_string(which[i]) + " is listed twice");
    if (counts[i] < 0) refuse("a count is negative");
  }
  if (n <= 0 || (labels == nullptr) == (targets == nullptr)) refuse("a batch of at least one sample with labels or targets is needed");
  set_device(config_.device);
  const auto batch = signal_pass(x, labels, targets, n);

  // Backward through the layers, dz only; each listed layer's dense gradient is ranked on the way.
  std::vector<std::vector<int64_t>> out(which.size());
  DeviceBuffer gradient, open, scratch;
  const int64_t lowest = *std::min_element(which.begin(), which.end());
  float* g = f(grad_a_);
  float* other = f(grad_b_);
  for (int64_t l = static_cast<int64_t>(layers_.size()) - 1; l >= lowest; --l) {
    const Layer& layer = layers_[l];
    activation_backward_cuda(g, f(act_[l + 1]), n, layer.activation, layer.units, n, nullptr, nullptr, stream_);
    const auto listed = std::find(which.begin(), which.end(), l);
    if (listed != which.end()) {
      const size_t i = static_cast<size_t>(listed - which.begin());
      const int64_t size = layer.units * layer.inputs;
      gradient.reserve(static_cast<size_t>(size) * sizeof(float));
      open.reserve(static_cast<size_t>(size));
      gemm_f32_cuda(Trans::kNo, Trans::kYes, layer.units, layer.inputs, n, g, n, f(act_[l]), n, 0.0f, gradient.as<float>(),
                    layer.inputs, stream_);
      const uint8_t* alive_inputs = l > 0 && layers_[l - 1].alive.size() ? layers_[l - 1].alive.as<uint8_t>() : nullptr;
      growth_candidates_cuda(open.as<uint8_t>(), layer.units, layer.inputs, layer.alive.size() ? layer.alive.as<uint8_t>() : nullptr,
                             alive_inputs, layer.mask.size() ? layer.mask.as<uint8_t>() : nullptr,
                             layer.csr ? layer.indptr.as<int64_t>() : nullptr, layer.csr ? layer.indices.as<int32_t>() : nullptr, stream_);
      MagnitudeView v{gradient.as<float>(), open.as<uint8_t>(), size, true};
      const int64_t candidates = census({v}, 0xffffffffu, stream_)[0].first;
      if (counts[i] > candidates)
        refuse("layer " + std::to_string(l) + " has " + std::to_string(candidates) + " open positions; cannot grow " +
               std::to_string(counts[i]));
      if (counts[i] > 0) {
        const np::DropBits bits = magnitude_smallest_cuda(v, counts[i], scratch, stream_);
        for (int64_t p = 0; p < size; ++p)
          if (np::drop_bit(bits, p)) out[i].push_back(p);
      }
    }
    if (l == lowest) break;
    if (layer.csr)
      spmm_t_f32_csr_cuda(layer.view(), layer.transpose_view(), g, n, 0.0f, other, n, n, stream_, SpmmKernel::kAuto, layer.count);
    else
      gemm_f32_cuda(Trans::kYes, Trans::kNo, layer.inputs, n, layer.units, f(layer.weight), layer.stride, g, n, 0.0f, other, n, stream_);
    std::swap(g, other);
  }
  return out;
}

}  // namespace np::cuda
