// The device-resident model (cuda_model.h): load and export of the parameter
// groups, and the training step as native/model/training.cpp does it, with
// the GPU kernels on one stream. Compiled by the host compiler: every CUDA
// call goes through runtime.h and kernels.h.
#include "cuda/cuda_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace np::cuda {

namespace {

template <typename T>
DeviceBuffer upload_array(const T* host, int64_t count, Stream& stream) {
  DeviceBuffer b(static_cast<size_t>(count) * sizeof(T));
  if (count > 0) b.upload(host, static_cast<size_t>(count) * sizeof(T), stream);
  return b;
}

DeviceBuffer zeros(int64_t count, Stream& stream) {
  DeviceBuffer b(static_cast<size_t>(count) * sizeof(float));
  b.fill_zero(stream);
  return b;
}

[[noreturn]] void bad(size_t layer, const std::string& what) {
  throw std::invalid_argument("CudaModel: layer " + std::to_string(layer) + ": " + what);
}

float* f(const DeviceBuffer& b) { return b.as<float>(); }

}  // namespace

CsrView CudaModel::Layer::view(const float* values) const {
  CsrView v;
  v.rows = units;
  v.cols = inputs;
  v.indptr = indptr.as<int64_t>();
  v.indices = indices.as<int32_t>();
  v.values = values ? values : weight.as<float>();
  return v;
}

CsrTransposeView CudaModel::Layer::transpose_view() const {
  CsrTransposeView t;
  t.rows = units;
  t.cols = inputs;
  t.col_ptr = t_col_ptr.as<int64_t>();
  t.row_idx = t_row_idx.as<int32_t>();
  t.value_pos = t_value_pos.as<int64_t>();
  return t;
}

CudaModel::CudaModel(const CudaModelConfig& config, int64_t step, std::vector<CudaLayerState> layers)
    : config_(config) {
  totals_ = DeviceBuffer(2 * sizeof(LossTotals));
  totals_.fill_zero(stream_);
  halt_ = DeviceBuffer(sizeof(NonFiniteStep));
  const NonFiniteStep no_halt;
  halt_.upload(&no_halt, sizeof no_halt, stream_);
  set_stats_decay(config.stats_decay);
  load(step, std::move(layers));
}

// The structure of layer i (sizes, CSR pattern, mask, alive) given its inputs.
void CudaModel::check_structure(size_t i, const CudaLayerState& l, int64_t inputs) {
  if (l.inputs != inputs) bad(i, "has " + std::to_string(l.inputs) + " inputs, expected " + std::to_string(inputs));
  if (l.units < 1) bad(i, "has no units");
  if (!(l.input_dropout >= 0.0f && l.input_dropout < 1.0f)) bad(i, "input dropout must be in [0, 1)");
  if (!(l.drop_connect >= 0.0f && l.drop_connect < 1.0f)) bad(i, "dropConnect must be in [0, 1)");
  if (l.csr) {
    if (static_cast<int64_t>(l.indptr.size()) != l.units + 1 || l.indptr[0] != 0) bad(i, "indptr must have units + 1 entries from 0");
    for (int64_t r = 0; r < l.units; ++r) {
      if (l.indptr[r + 1] < l.indptr[r] || l.indptr[r + 1] > static_cast<int64_t>(l.indices.size()))
        bad(i, "indptr is not monotone within indices at row " + std::to_string(r));
      for (int64_t k = l.indptr[r]; k < l.indptr[r + 1]; ++k)
        if (l.indices[k] < 0 || l.indices[k] >= l.inputs || (k > l.indptr[r] && l.indices[k] <= l.indices[k - 1]))
          bad(i, "column indices out of range or unsorted in row " + std::to_string(r));
    }
    if (static_cast<int64_t>(l.indices.size()) != l.indptr.back()) bad(i, "indices.length != indptr[units]");
    if (!l.mask.empty()) bad(i, "a CSR layer has no mask");
  } else if (!l.mask.empty() && static_cast<int64_t>(l.mask.size()) != l.units * l.inputs) {
    bad(i, "mask must have units x inputs entries");
  }
  if (!l.alive.empty() && static_cast<int64_t>(l.alive.size()) != l.units) bad(i, "alive must have units entries");
  for (const auto* v : {&l.mean_abs_activation, &l.mean_activation, &l.taylor})
    if (!v->empty() && static_cast<int64_t>(v->size()) != l.units) bad(i, "unit statistics must have units entries");
  if (l.stats_updates < 0) bad(i, "the statistics update count is negative");
}

// The values of layer i: weight and each of `moments` slots the stored count, bias and its slots units.
void CudaModel::check_values(size_t i, const CudaLayerState& l, size_t moments) {
  const int64_t count = l.csr ? l.indptr.back() : l.units * l.inputs;
  if (static_cast<int64_t>(l.weight.size()) != count)
    bad(i, "weight has " + std::to_string(l.weight.size()) + " values, expected " + std::to_string(count));
  if (l.weight_moments.size() != moments || l.bias_moments.size() != moments)
    bad(i, "every parameter must have " + std::to_string(moments) + " optimizer slots");
  for (const auto& m : l.weight_moments)
    if (static_cast<int64_t>(m.size()) != count) bad(i, "a weight optimizer slot has the wrong size");
  if (static_cast<int64_t>(l.bias.size()) != l.units) bad(i, "bias must have units entries");
  for (const auto& m : l.bias_moments)
    if (static_cast<int64_t>(m.size()) != l.units) bad(i, "a bias optimizer slot has the wrong size");
}

void CudaModel::check_layers(const std::vector<CudaLayerState>& layers) const {
  if (layers.empty()) throw std::invalid_argument("CudaModel: the model has no dense layer");
  const size_t moments = layers[0].bias_moments.size();
  const CudaOptimizer& o = config_.optimizer;
  const size_t needed = static_cast<size_t>(optimizer_moments(o));
  if (moments < needed)
    throw std::invalid_argument("CudaModel: the optimizer needs " + std::to_string(needed) + " slots per parameter, the state has " +
                                std::to_string(moments));
  int64_t inputs = config_.input_size;
  for (size_t i = 0; i < layers.size(); ++i) {
    check_structure(i, layers[i], inputs);
    check_values(i, layers[i], moments);
    inputs = layers[i].units;
  }
}

namespace {

// A layer's shape and settings, between the host-side state and the device
// layer (both ways: the field names are the same).
template <typename From, typename To>
void copy_settings(const From& from, To& to) {
  to.units = from.units;
  to.inputs = from.inputs;
  to.activation = from.activation;
  to.input_dropout = from.input_dropout;
  to.drop_connect = from.drop_connect;
  to.use_bias = from.use_bias;
  to.csr = from.csr;
}

}  // namespace

CudaModel::Layer CudaModel::build_structure(const CudaLayerState& s, int64_t stride, int64_t row_capacity, bool gradients) {
  Layer l;
  copy_settings(s, l);
  l.count = s.csr ? s.indptr.back() : s.units * s.inputs;
  const bool spare = !s.csr && l.drop_connect == 0.0f;  // DropConnect's masks are drawn per compact position
  l.stride = spare && stride > s.inputs ? stride : s.inputs;
  l.row_capacity = spare && row_capacity > s.units ? row_capacity : s.units;
  if (gradients) {
    l.weight_grad = zeros(l.allocated(), stream_);
    l.bias_grad = zeros(l.row_capacity, stream_);
  }
  if (l.drop_connect > 0.0f) {
    l.dc_weight = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(float));
    l.dc_mask = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(float));
  }
  if (s.csr) {
    l.indptr = to_device(s.indptr, stream_);
    l.indices = to_device(s.indices, stream_);
    // W^T's structure, built on the device once per structure (the optimizer
    // only changes values) from the pattern just uploaded, which
    // check_structure found in range and sorted.
    l.t_col_ptr = DeviceBuffer(static_cast<size_t>(s.inputs + 1) * sizeof(int64_t));
    l.t_row_idx = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(int32_t));
    l.t_value_pos = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(int64_t));
    const CsrView pattern{s.units, s.inputs, l.indptr.as<int64_t>(), l.indices.as<int32_t>(), nullptr};
    csr_transpose_cuda(pattern, l.count, l.t_col_ptr.as<int64_t>(), l.t_row_idx.as<int32_t>(), l.t_value_pos.as<int64_t>(),
                       transpose_scratch_, stream_);
  }
  if (!s.mask.empty()) l.mask = to_device(s.mask, stream_);
  if (!s.alive.empty()) l.alive = to_device(s.alive, stream_);
  l.stats = DeviceBuffer(static_cast<size_t>(3 * l.units) * sizeof(double));
  return l;
}

void CudaModel::replace_layers(std::vector<Layer> built, int64_t step) {
  stream_.synchronize();  // a failed upload or kernel shows up here, before anything is replaced
  swap_layers(std::move(built), step);
}

void CudaModel::swap_layers(std::vector<Layer> built, int64_t step) noexcept {
  layers_ = std::move(built);
  step_ = step;
  ws_batch_ = 0;  // the widths may have changed
  act_.clear();
  dropped_.clear();
  drop_mask_.clear();
}

void CudaModel::ensure_usable() const {
  if (!unusable_.empty()) throw std::runtime_error("CudaModel: " + unusable_);
}

void CudaModel::load(int64_t step, std::vector<CudaLayerState> layers) {
  check_layers(layers);
  set_device(config_.device);
  std::vector<Layer> built;
  built.reserve(layers.size());
  for (CudaLayerState& s : layers) {
    Layer l = build_structure(s);
    l.weight = to_device(s.weight, stream_);
    l.bias = to_device(s.bias, stream_);
    for (size_t m = 0; m < s.weight_moments.size() && m < 2; ++m) {
      l.weight_moments[m] = to_device(s.weight_moments[m], stream_);
      l.bias_moments[m] = to_device(s.bias_moments[m], stream_);
    }
    l.stats.fill_zero(stream_);
    const std::vector<double>* stats[3] = {&s.mean_abs_activation, &s.mean_activation, &s.taylor};
    for (int i = 0; i < 3; ++i)
      if (!stats[i]->empty())
        l.stats.upload(stats[i]->data(), stats[i]->size() * sizeof(double), stream_, static_cast<size_t>(i * l.units) * sizeof(double));
    l.stats_updates = s.stats_updates;
    built.push_back(std::move(l));
  }
  replace_layers(std::move(built), step);
  unusable_.clear();  // every number is the host's again
}

std::vector<float> CudaModel::download_weights(const Layer& l, const DeviceBuffer& b) {
  if (!l.strided()) return to_host<float>(b, static_cast<size_t>(l.count), stream_);
  // Rows with spare capacity: the used rows whole, then each row's inputs.
  const std::vector<float> padded = to_host<float>(b, static_cast<size_t>(l.units * l.stride), stream_);
  std::vector<float> out(static_cast<size_t>(l.count));
  for (int64_t r = 0; r < l.units; ++r)
    std::copy(padded.begin() + r * l.stride, padded.begin() + r * l.stride + l.inputs, out.begin() + r * l.inputs);
  return out;
}

CudaModel::LayerLayout CudaModel::layout(int64_t layer) {
  ensure_usable();
  if (layer < 0 || layer >= static_cast<int64_t>(layers_.size())) throw std::invalid_argument("CudaModel.layout: no layer " + std::to_string(layer));
  const Layer& l = layers_[static_cast<size_t>(layer)];
  LayerLayout out{l.stride, l.row_capacity, l.weight.data(), 0};
  if (l.csr) return out;
  auto count_spare = [&](const DeviceBuffer& b, int64_t rows, int64_t cols, int64_t pitch) {
    if (b.size() == 0) return;
    const std::vector<float> all = to_host<float>(b, b.size() / sizeof(float), stream_);
    for (size_t i = 0; i < all.size(); ++i) {
      const int64_t r = static_cast<int64_t>(i) / pitch, c = static_cast<int64_t>(i) % pitch;
      out.spare_nonzero += (r >= rows || c >= cols) && all[i] != 0.0f;
    }
  };
  for (const DeviceBuffer* b : {&l.weight, &l.weight_moments[0], &l.weight_moments[1]}) count_spare(*b, l.units, l.inputs, l.stride);
  for (const DeviceBuffer* b : {&l.bias, &l.bias_moments[0], &l.bias_moments[1]}) count_spare(*b, l.units, 1, 1);
  return out;
}

std::vector<CudaLayerState> CudaModel::export_layers(bool with_moments) {
  ensure_usable();
  set_device(config_.device);
  std::vector<CudaLayerState> out;
  for (const Layer& l : layers_) {
    CudaLayerState s;
    copy_settings(l, s);
    s.weight = download_weights(l, l.weight);
    s.bias = to_host<float>(l.bias, static_cast<size_t>(l.units), stream_);
    for (int m = 0; m < 2 && with_moments; ++m) {
      if (l.bias_moments[m].size() == 0) break;  // units >= 1: a slot in use is never empty
      s.weight_moments.push_back(download_weights(l, l.weight_moments[m]));
      s.bias_moments.push_back(to_host<float>(l.bias_moments[m], static_cast<size_t>(l.units), stream_));
    }
    if (l.csr) {
      s.indptr = to_host<int64_t>(l.indptr, static_cast<size_t>(l.units + 1), stream_);
      s.indices = to_host<int32_t>(l.indices, static_cast<size_t>(l.count), stream_);
    }
    read_stats(l, s);
    out.push_back(std::move(s));
  }
  return out;
}

void CudaModel::read_stats(const Layer& l, CudaLayerState& s) {
  const std::vector<double> stats = to_host<double>(l.stats, static_cast<size_t>(3 * l.units), stream_);
  s.mean_abs_activation.assign(stats.begin(), stats.begin() + l.units);
  s.mean_activation.assign(stats.begin() + l.units, stats.begin() + 2 * l.units);
  s.taylor.assign(stats.begin() + 2 * l.units, stats.end());
  s.stats_updates = l.stats_updates;
}

std::vector<CudaLayerState> CudaModel::export_stats() {
  ensure_usable();
  set_device(config_.device);
  std::vector<CudaLayerState> out;
  for (const Layer& l : layers_) {
    CudaLayerState s;
    s.units = l.units;
    s.inputs = l.inputs;
    read_stats(l, s);
    out.push_back(std::move(s));
  }
  return out;
}

void CudaModel::set_stats_decay(double decay) {
  if (!(decay > 0.0 && decay < 1.0)) throw std::invalid_argument("CudaModel: statsDecay must be in (0, 1)");
  config_.stats_decay = decay;
}

int CudaModel::moment_slots() const {
  return layers_.empty() ? 0 : (layers_[0].bias_moments[1].size() ? 2 : layers_[0].bias_moments[0].size() ? 1 : 0);
}

void CudaModel::set_optimizer(const CudaOptimizer& o) {
  if (optimizer_moments(o) > moment_slots())
    throw std::invalid_argument("CudaModel: the optimizer needs " + std::to_string(optimizer_moments(o)) +
                                " slots per parameter; reload the state after compile()");
  config_.optimizer = o;
}

int64_t CudaModel::parameter_bytes() const {
  int64_t total = 0;
  for (const Layer& l : layers_) {
    total += static_cast<int64_t>(l.weight.size() + l.weight_grad.size() + l.bias.size() + l.bias_grad.size());
    for (int m = 0; m < 2; ++m) total += static_cast<int64_t>(l.weight_moments[m].size() + l.bias_moments[m].size());
    total += static_cast<int64_t>(l.indptr.size() + l.indices.size() + l.t_col_ptr.size() + l.t_row_idx.size() +
                                  l.t_value_pos.size() + l.mask.size() + l.alive.size());
  }
  return total;
}

// ---- data ---------------------------------------------------------------------

std::unique_ptr<DeviceDataset> CudaModel::upload_dataset(const float* x, int64_t n, const int32_t* labels,
                                                         const float* targets) {
  set_device(config_.device);
  auto d = std::make_unique<DeviceDataset>();
  d->n = n;
  d->features = input_size();
  d->outputs = output_size();
  d->x = upload_array(x, n * d->features, stream_);
  if (labels) {
    d->has_labels = true;
    d->labels = upload_array(labels, n, stream_);
  } else if (targets) {
    d->targets = upload_array(targets, n * d->outputs, stream_);
  }
  return d;
}

int64_t CudaModel::add_dataset(const float* x, int64_t n, const int32_t* labels, const float* targets) {
  auto d = upload_dataset(x, n, labels, targets);
  const int64_t handle = next_dataset_++;
  datasets_[handle] = std::move(d);
  return handle;
}

CudaModel::~CudaModel() {
  try {
    set_device(config_.device);
  } catch (...) {
    // A device that cannot be selected any more: the frees below fail quietly.
  }
}

void CudaModel::release_dataset(int64_t handle) {
  set_device(config_.device);
  datasets_.erase(handle);
}

int64_t CudaModel::dataset_size(int64_t handle) const {
  auto it = datasets_.find(handle);
  return it == datasets_.end() ? -1 : it->second->n;
}

void CudaModel::ensure_workspace(int64_t batch) {
  const size_t count = layers_.size();
  if (batch <= ws_batch_ && act_.size() == count + 1) return;
  act_.clear();
  dropped_.clear();
  drop_mask_.clear();
  dropped_.resize(count);
  drop_mask_.resize(count);
  int64_t widest = input_size();
  act_.emplace_back(static_cast<size_t>(input_size() * batch) * sizeof(float));
  for (size_t l = 0; l < count; ++l) {
    act_.emplace_back(static_cast<size_t>(layers_[l].units * batch) * sizeof(float));
    if (layers_[l].input_dropout > 0.0f) {
      dropped_[l] = DeviceBuffer(static_cast<size_t>(layers_[l].inputs * batch) * sizeof(float));
      drop_mask_[l] = DeviceBuffer(static_cast<size_t>(layers_[l].inputs * batch) * sizeof(float));
    }
    widest = std::max(widest, layers_[l].units);
  }
  for (DeviceBuffer* b : {&row_abs_, &row_sum_, &row_dot_}) *b = DeviceBuffer(static_cast<size_t>(widest) * sizeof(float));
  grad_a_ = DeviceBuffer(static_cast<size_t>(widest * batch) * sizeof(float));
  grad_b_ = DeviceBuffer(static_cast<size_t>(widest * batch) * sizeof(float));
  labels_ = DeviceBuffer(static_cast<size_t>(batch) * sizeof(int32_t));
  targets_ = DeviceBuffer(static_cast<size_t>(output_size() * batch) * sizeof(float));
  ws_batch_ = batch;
}

// ---- the step -------------------------------------------------------------------

namespace {

// The generator stream of a step's dropout mask: input dropout and DropConnect
// of each layer get their own (masks depend on seed, step and layer only).
uint64_t mask_stream(int64_t step, size_t layer, bool connect) {
  return static_cast<uint64_t>(step) * 4096u + (connect ? 2048u : 0u) + layer;
}

}  // namespace

void CudaModel::forward(int64_t batch, bool training) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    const float* input = f(act_[l]);
    if (training && layer.input_dropout > 0.0f) {
      // Masks depend on (seed, step, layer) only: reproducible and resumable,
      // but not the CPU model's masks (that one draws from its sequential RNG).
      dropout_forward_cuda(f(dropped_[l]), f(drop_mask_[l]), input, layer.inputs * batch, layer.input_dropout,
                           config_.dropout_seed, mask_stream(step_, l, false), stream_);
      input = f(dropped_[l]);
    }
    // DropConnect: the step's weights are the stored ones under an inverted
    // Bernoulli mask (the CPU's drop_connect_weights); backward reuses both.
    const float* weight = f(layer.weight);
    if (training && layer.drop_connect > 0.0f) {
      dropout_forward_cuda(f(layer.dc_weight), f(layer.dc_mask), weight, layer.count, layer.drop_connect,
                           config_.dropout_seed, mask_stream(step_, l, true), stream_);
      weight = f(layer.dc_weight);
    }
    float* out = f(act_[l + 1]);
    if (layer.csr)
      spmm_f32_csr_cuda(layer.view(weight), input, batch, 0.0f, out, batch, batch, stream_, SpmmKernel::kAuto, layer.count);
    else
      gemm_f32_cuda(Trans::kNo, Trans::kNo, layer.units, batch, layer.inputs, weight, layer.stride, input,
                    batch, 0.0f, out, batch, stream_);
    // While training, the per-unit sums for the statistics come from the same pass.
    bias_activation_forward_cuda(out, batch, layer.use_bias ? f(layer.bias) : nullptr, layer.activation, layer.units,
                                 batch, training ? f(row_abs_) : nullptr, training ? f(row_sum_) : nullptr, stream_);
    if (training) {
      update_unit_stats_cuda(layer.stat(0), layer.stat(1), f(row_abs_), f(row_sum_), layer.units, config_.stats_decay,
                             batch, halt_.as<NonFiniteStep>(), stream_);
      ++layer.stats_updates;
    }
  }
}

// Batch loss into totals[0], added to the running totals[1]; dL/dy into grad_a_ when wanted.
void CudaModel::loss(const int32_t* labels, const float* targets, int64_t batch, bool want_grad) {
  LossTotals* t = totals_.as<LossTotals>();
  float* grad = want_grad ? f(grad_a_) : nullptr;
  const float* out = f(act_.back());
  if (labels || config_.loss == CudaLossKind::kSoftmaxCrossEntropy)
    softmax_cross_entropy_cuda(grad, t, out, batch, labels, labels ? nullptr : targets, output_size(), batch, loss_ws_, stream_);
  else
    mean_squared_error_cuda(grad, t, out, batch, targets, output_size(), batch, loss_ws_, stream_);
  // Training: a non-finite batch loss stops every later update on the device (halt_).
  accumulate_totals_cuda(t + 1, t, stream_, want_grad ? halt_.as<NonFiniteStep>() : nullptr, step_);
}

void CudaModel::backward(int64_t batch) {
  float* g = f(grad_a_);
  float* other = f(grad_b_);
  for (int64_t l = static_cast<int64_t>(layers_.size()) - 1; l >= 0; --l) {
    Layer& layer = layers_[l];
    // dz in place, and its row sums straight into the bias gradient; for hidden
    // layers also sum(a * dL/da) per unit, the Taylor statistic (as the CPU).
    const bool hidden = l + 1 < static_cast<int64_t>(layers_.size());
    activation_backward_cuda(g, f(act_[l + 1]), batch, layer.activation, layer.units, batch, hidden ? f(row_dot_) : nullptr,
                             layer.use_bias ? f(layer.bias_grad) : nullptr, stream_);
    if (hidden) update_taylor_stats_cuda(layer.stat(2), f(row_dot_), layer.units, config_.stats_decay, halt_.as<NonFiniteStep>(), stream_);
    const bool dropped = layer.input_dropout > 0.0f;
    const float* input = dropped ? f(dropped_[l]) : f(act_[l]);
    if (layer.csr)
      sddmm_f32_csr_cuda(layer.view(), g, batch, input, batch, batch, 0.0f, f(layer.weight_grad), stream_);
    else
      gemm_f32_cuda(Trans::kNo, Trans::kYes, layer.units, layer.inputs, batch, g, batch, input, batch, 0.0f,
                    f(layer.weight_grad), layer.stride, stream_);
    // DropConnect: d(w * m)/dw = m, the mask with its 1/(1-p) scale.
    const bool connect = layer.drop_connect > 0.0f;
    if (connect) multiply_cuda(f(layer.weight_grad), f(layer.dc_mask), layer.count, stream_);
    // Pruned weights and dead units stay exactly zero (the CPU mask_gradients).
    if (layer.mask.size()) mask_by_flags_cuda(f(layer.weight_grad), layer.stride, layer.mask.as<uint8_t>(), layer.units, layer.inputs, stream_);
    if (layer.alive.size() && layer.use_bias) mask_by_flags_cuda(f(layer.bias_grad), 1, layer.alive.as<uint8_t>(), layer.units, 1, stream_);
    if (l > 0) {
      const float* weight = connect ? f(layer.dc_weight) : f(layer.weight);  // the weights the forward pass used
      if (layer.csr)
        spmm_t_f32_csr_cuda(layer.view(weight), layer.transpose_view(), g, batch, 0.0f, other, batch, batch, stream_,
                            SpmmKernel::kAuto, layer.count);
      else
        gemm_f32_cuda(Trans::kYes, Trans::kNo, layer.inputs, batch, layer.units, weight, layer.stride, g,
                      batch, 0.0f, other, batch, stream_);
      if (dropped) multiply_cuda(other, f(drop_mask_[l]), layer.inputs * batch, stream_);
      std::swap(g, other);
    }
  }
}

void CudaModel::apply_optimizer() {
  const CudaOptimizer& o = config_.optimizer;
  const double t = static_cast<double>(step_ + 1);
  SgdParams sgd{o.learning_rate, o.momentum, o.nesterov, o.weight_decay};
  AdamParams adam{o.learning_rate, o.beta1, o.beta2, o.epsilon, o.weight_decay, o.decoupled_weight_decay,
                  static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta1), t)),
                  static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta2), t))};
  // Weight decay applies to weights only, as on the CPU.
  SgdParams sgd_bias = sgd;
  sgd_bias.weight_decay = 0.0f;
  AdamParams adam_bias = adam;
  adam_bias.weight_decay = 0.0f;
  auto moment = [](const DeviceBuffer& b) { return b.size() ? b.as<float>() : nullptr; };
  const NonFiniteStep* halt = halt_.as<NonFiniteStep>();
  for (Layer& l : layers_) {
    // Dense: the used rows and inputs of each row (spare capacity stays zero); CSR: one block.
    const int64_t rows = l.csr ? 1 : l.units, cols = l.csr ? l.count : l.inputs, ld = l.csr ? l.count : l.stride;
    if (o.kind == CudaOptimizerKind::kSgd) {
      sgd_update_cuda(f(l.weight), moment(l.weight_moments[0]), f(l.weight_grad), rows, cols, ld, sgd, stream_, halt);
      if (l.use_bias)
        sgd_update_cuda(f(l.bias), moment(l.bias_moments[0]), f(l.bias_grad), 1, l.units, l.units, sgd_bias, stream_, halt);
    } else {
      adam_update_cuda(f(l.weight), moment(l.weight_moments[0]), moment(l.weight_moments[1]), f(l.weight_grad), rows,
                       cols, ld, adam, stream_, halt);
      if (l.use_bias)
        adam_update_cuda(f(l.bias), moment(l.bias_moments[0]), moment(l.bias_moments[1]), f(l.bias_grad), 1, l.units,
                         l.units, adam_bias, stream_, halt);
    }
  }
}

CudaTotals CudaModel::read_totals(int64_t samples) {
  LossTotals t[2];
  totals_.download(t, sizeof t, stream_);
  CudaTotals out;
  out.loss_sum = t[1].loss;
  out.correct = t[1].correct;
  out.samples = samples;
  return out;
}

CudaTrainResult CudaModel::train(int64_t handle, const int32_t* order, int64_t first, int64_t count,
                                 int64_t batch_size, const std::function<void(int64_t, const CudaTotals&)>& progress) {
  ensure_usable();
  auto it = datasets_.find(handle);
  if (it == datasets_.end()) throw std::invalid_argument("CudaModel::train: no dataset " + std::to_string(handle));
  const DeviceDataset& d = *it->second;
  if (d.features != input_size() || (!d.has_labels && d.outputs != output_size()))
    throw std::invalid_argument("CudaModel::train: the dataset was made for a model of another shape");
  if (batch_size < 1) throw std::invalid_argument("CudaModel::train: batch size must be positive");
  const int64_t batches = (d.n + batch_size - 1) / batch_size;
  if (first < 0 || count < 0 || first + count > batches)
    throw std::invalid_argument("CudaModel::train: batches [" + std::to_string(first) + ", " + std::to_string(first + count) +
                                ") outside [0, " + std::to_string(batches) + ")");
  set_device(config_.device);
  ensure_workspace(std::min(batch_size, d.n));
  order_.reserve(static_cast<size_t>(d.n) * sizeof(int32_t));
  order_.upload(order, static_cast<size_t>(d.n) * sizeof(int32_t), stream_);
  totals_.fill_zero(stream_);
  const NonFiniteStep no_halt;
  halt_.upload(&no_halt, sizeof no_halt, stream_);
  using clock = std::chrono::steady_clock;
  auto last_report = clock::now();
  CudaTrainResult r;
  const int64_t first_step = step_;
  std::vector<int64_t> first_updates;
  for (const Layer& l : layers_) first_updates.push_back(l.stats_updates);
  // Read with the totals (every 50 ms and at the end). The device stopped
  // updating at the first bad step, so the model is rolled back to it: the
  // weights, slots and step are those before it, as the CPU model leaves them.
  auto check_finite = [&]() {
    NonFiniteStep h;
    halt_.download(&h, sizeof h, stream_);
    if (h.step < 0) return;
    step_ = h.step;
    r.steps = h.step - first_step;
    // The bad step's forward pass updated the activation statistics (so does the CPU's); no later one did.
    for (size_t l = 0; l < layers_.size(); ++l) layers_[l].stats_updates = first_updates[l] + r.steps + 1;
    throw NonFiniteLoss("the loss became " + std::string(std::isnan(h.loss) ? "NaN" : "infinite") + " at step " +
                        std::to_string(h.step) + " on the GPU; that step and the ones queued after it changed no "
                        "weight (try a lower learning rate)");
  };
  const int32_t* dev_order = order_.as<int32_t>();
  for (int64_t b = first; b < first + count; ++b) {
    if (abort_requested.exchange(false)) {
      r.aborted = true;
      break;
    }
    const int64_t start = b * batch_size, size = std::min(batch_size, d.n - start);
    gather_transpose_f32_cuda(f(act_[0]), size, d.x.as<float>(), d.features, dev_order, start, size, d.features, stream_);
    const int32_t* labels = nullptr;
    const float* targets = nullptr;
    if (d.has_labels) {
      gather_i32_cuda(labels_.as<int32_t>(), d.labels.as<int32_t>(), dev_order, start, size, stream_);
      labels = labels_.as<int32_t>();
    } else {
      gather_transpose_f32_cuda(f(targets_), size, d.targets.as<float>(), d.outputs, dev_order, start, size, d.outputs, stream_);
      targets = f(targets_);
    }
    forward(size, true);
    loss(labels, targets, size, true);
    backward(size);
    apply_optimizer();
    ++step_;
    ++r.steps;
    r.totals.samples += size;
    const auto now = clock::now();
    if (progress && now - last_report >= std::chrono::milliseconds(50)) {
      last_report = now;
      const CudaTotals t = read_totals(r.totals.samples);
      check_finite();
      progress(r.steps, t);
    }
  }
  const CudaTotals t = read_totals(r.totals.samples);
  check_finite();
  r.totals = t;
  return r;
}

CudaTotals CudaModel::evaluate(const float* x, const int32_t* labels, const float* targets, int64_t n,
                               int64_t batch_size) {
  ensure_usable();
  if (!labels && !targets) throw std::invalid_argument("CudaModel::evaluate: labels or targets are needed");
  auto d = upload_dataset(x, n, labels, targets);
  const int64_t chunk = std::max<int64_t>(1, std::min(batch_size, n));
  ensure_workspace(chunk);
  totals_.fill_zero(stream_);
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t b = std::min(chunk, n - first);
    gather_transpose_f32_cuda(f(act_[0]), b, d->x.as<float>(), d->features, nullptr, first, b, d->features, stream_);
    if (labels) gather_i32_cuda(labels_.as<int32_t>(), d->labels.as<int32_t>(), nullptr, first, b, stream_);
    else gather_transpose_f32_cuda(f(targets_), b, d->targets.as<float>(), d->outputs, nullptr, first, b, d->outputs, stream_);
    forward(b, false);
    loss(labels ? labels_.as<int32_t>() : nullptr, labels ? nullptr : f(targets_), b, false);
  }
  return read_totals(n);
}

void CudaModel::predict(const float* x, int64_t n, float* out, int64_t batch_size) {
  ensure_usable();
  auto d = upload_dataset(x, n, nullptr, nullptr);
  const int64_t chunk = std::max<int64_t>(1, std::min(batch_size, n));
  const int64_t outputs = output_size();
  ensure_workspace(chunk);
  out_.reserve(static_cast<size_t>(n * outputs) * sizeof(float));
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t b = std::min(chunk, n - first);
    gather_transpose_f32_cuda(f(act_[0]), b, d->x.as<float>(), d->features, nullptr, first, b, d->features, stream_);
    forward(b, false);
    // Feature-major outputs back to row-major samples.
    gather_transpose_f32_cuda(f(out_) + first * outputs, outputs, f(act_.back()), b, nullptr, 0, outputs, b, stream_);
  }
  out_.download(out, static_cast<size_t>(n * outputs) * sizeof(float), stream_);
}

}  // namespace np::cuda
