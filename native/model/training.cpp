// The training step: gather a batch into feature-major layout, forward,
// fused loss + gradient, backward, optimizer update. Also evaluation,
// prediction and gradient-only passes, which share the same pieces.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/losses.h"
#include "kernels/optimizers.h"
#include "kernels/sparse.h"
#include "kernels/thread_pool.h"
#include "model/errors.h"
#include "model/model.h"

namespace np {

namespace {

// Chunk size for evaluation and prediction: large enough for efficient GEMMs,
// small enough that the workspace stays in a few MB.
constexpr int64_t kInferenceChunk = 512;

// Splits rows into tasks for the pool when the block is big enough to pay for
// the hand-off (a few microseconds); small blocks run inline.
template <typename Fn>
void for_row_blocks(ThreadPool* pool, int64_t rows, int64_t cols, Fn&& fn) {
  const int64_t work = rows * cols;
  int64_t tasks = 1;
  if (pool && pool->size() > 1 && work >= 32768) tasks = std::min<int64_t>(rows, pool->size() * 4);
  if (tasks <= 1) {
    fn(0, rows);
    return;
  }
  const int64_t chunk = (rows + tasks - 1) / tasks;
  pool->parallel_for(tasks, [&](int64_t t) {
    const int64_t r0 = t * chunk, r1 = std::min(rows, r0 + chunk);
    if (r0 < r1) fn(r0, r1);
  });
}

// W^T x for a CSR layer as a gather: y = T x, where T is W^T's pattern
// (CsrParam::transpose(), blocked CSR for this batch) with W's values put in
// its order (into `scratch`, one pass over nnz). Each row of y then
// accumulates in registers like the forward product, instead of the
// scatter's read-modify-write of a y row per stored weight (~1.5x slower on
// Zen 5).
void multiply_by_transpose(const CsrParam& csr, const float* values, const float* x, float* y, int64_t batch,
                           FloatBuffer* scratch, ThreadPool* pool) {
  const CsrTranspose& t = csr.transpose(batch);
  const int64_t nnz = t.nnz;
  scratch->ensure_discard(std::max<int64_t>(nnz, 1));
  float* gathered = scratch->data();
  const int32_t* perm = t.perm.data();
  for_row_blocks(pool, (nnz + 4095) / 4096, 4096, [&](int64_t b0, int64_t b1) {
    const int64_t end = std::min(nnz, b1 * 4096);
    for (int64_t j = b0 * 4096; j < end; ++j) gathered[j] = values[perm[j]];
  });
  spmm_f32_csr_transpose(t, gathered, x, batch, 0.0f, y, batch, batch, pool);
}

// y = W x (forward) or y = W^T x (backward data) for feature-major blocks
// (ld = batch), dense or CSR; `values` replaces the stored weights when given
// (DropConnect's masked copy, same layout). `scratch` holds W's values in
// W^T's order for a CSR backward product.
void multiply_by_weights(const DenseLayer& layer, const float* values, bool transpose, const float* x, float* y,
                         int64_t batch, FloatBuffer* scratch, ThreadPool* pool) {
  if (layer.format == WeightFormat::kCsr) {
    CsrView view = layer.csr.view();
    if (values) view.values = values;
    if (!transpose) {
      spmm_f32_csr(view, x, batch, 0.0f, y, batch, batch, pool);
    } else if (layer.csr.transposable() && scratch != nullptr) {
      multiply_by_transpose(layer.csr, view.values, x, y, batch, scratch, pool);
    } else {
      spmm_t_f32_csr(view, x, batch, 0.0f, y, batch, batch, pool);
    }
    return;
  }
  const float* w = values ? values : layer.weight.value();
  if (transpose)
    gemm_f32(Trans::kYes, Trans::kNo, layer.inputs, batch, layer.units, w, layer.weight.stride, x, batch, 0.0f, y, batch, pool);
  else
    gemm_f32(Trans::kNo, Trans::kNo, layer.units, batch, layer.inputs, w, layer.weight.stride, x, batch, 0.0f, y, batch, pool);
}

}  // namespace

// Gathers samples (rows of the row-major x) into the feature-major input block,
// 8 samples at a time so each destination row gets a contiguous run of writes.
// Threads take whole groups of 16 samples (a 64-byte line of every
// destination row), so no two write into one cache line.
void Model::load_batch(const float* x, const int32_t* indices, int64_t first, int64_t batch, ThreadPool* pool) {
  const int64_t in = input_size_;
  float* dst = ws_.act[0].data();
  const int64_t groups = (batch + 15) / 16;
  for_row_blocks(pool, groups, 16 * in, [&](int64_t g0, int64_t g1) {
    for (int64_t j0 = 16 * g0; j0 < std::min(batch, 16 * g1); j0 += 8) {
      const int64_t width = std::min<int64_t>(8, batch - j0);
      const float* src[8];
      for (int64_t jj = 0; jj < width; ++jj) {
        const int64_t sample = indices ? indices[first + j0 + jj] : first + j0 + jj;
        src[jj] = x + sample * in;
      }
      for (int64_t i = 0; i < in; ++i) {
        float* d = dst + i * batch + j0;
        for (int64_t jj = 0; jj < width; ++jj) d[jj] = src[jj][i];
      }
    }
  });
}

static void ensure_workspace(Workspace& ws, const std::vector<DenseLayer>& layers, int64_t input_size,
                             int64_t batch) {
  const size_t count = layers.size();
  if (ws.act.size() != count + 1) {
    ws.act.resize(count + 1);
    ws.dropped.resize(count);
    ws.mask.resize(count);
    ws.dc_mask.resize(count);
    ws.dc_weight.resize(count);
  }
  int64_t widest = input_size;
  ws.act[0].ensure_discard(input_size * batch);
  for (size_t l = 0; l < count; ++l) {
    ws.act[l + 1].ensure_discard(layers[l].units * batch);
    if (layers[l].input_dropout > 0.0f) {
      ws.dropped[l].ensure_discard(layers[l].inputs * batch);
      ws.mask[l].ensure_discard(layers[l].inputs * batch);
    }
    widest = std::max(widest, layers[l].units);
  }
  ws.grad_a.ensure_discard(widest * batch);
  ws.grad_b.ensure_discard(widest * batch);
  ws.batch = batch;
}

void Model::forward(int64_t batch, bool training, ThreadPool* pool) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    DenseLayer& layer = layers_[l];
    const float* input = ws_.act[l].data();
    if (training && layer.input_dropout > 0.0f) {
      // Inverted dropout: kept inputs are scaled by 1/(1-p) so evaluation
      // needs no rescaling. The mask is kept for the backward pass.
      const float keep = 1.0f - layer.input_dropout, scale = 1.0f / keep;
      float* mask = ws_.mask[l].data();
      float* dropped = ws_.dropped[l].data();
      const int64_t count = layer.inputs * batch;
      for (int64_t i = 0; i < count; ++i) mask[i] = rng_.uniform() < keep ? scale : 0.0f;
      for (int64_t i = 0; i < count; ++i) dropped[i] = input[i] * mask[i];
      input = dropped;
    }
    float* out = ws_.act[l + 1].data();
    const float* weights = training && layer.drop_connect > 0.0f ? drop_connect_weights(l) : nullptr;
    multiply_by_weights(layer, weights, false, input, out, batch, nullptr, pool);
    const float* bias = layer.use_bias ? layer.bias.value() : nullptr;
    // While training, the per-unit sums for the statistics come from the same pass.
    float* abs_sum = nullptr;
    float* sum = nullptr;
    if (training) {
      ws_.row_sums.ensure_discard(2 * layer.units);
      abs_sum = ws_.row_sums.data();
      sum = abs_sum + layer.units;
    }
    for_row_blocks(pool, layer.units, batch, [&](int64_t r0, int64_t r1) {
      bias_activation_forward(out, batch, bias, layer.activation, r0, r1, batch, abs_sum, sum);
    });
    if (training) update_activation_stats(static_cast<int64_t>(l), abs_sum, sum, batch);
  }
}

// DropConnect: a fresh Bernoulli mask over the stored weights each step,
// inverted like dropout (kept weights scaled by 1/(1-p)). Returns the masked
// weights (same layout as the layer's value slot); the mask itself stays in
// the workspace for the gradient.
const float* Model::drop_connect_weights(size_t l) {
  DenseLayer& layer = layers_[l];
  const float keep = 1.0f - layer.drop_connect, scale = 1.0f / keep;
  const bool csr = layer.format == WeightFormat::kCsr;
  const int64_t count = csr ? layer.csr.nnz() : layer.units * layer.weight.stride;
  ws_.dc_mask[l].ensure_discard(std::max<int64_t>(count, 1));
  ws_.dc_weight[l].ensure_discard(std::max<int64_t>(count, 1));
  float* mask = ws_.dc_mask[l].data();
  float* w = ws_.dc_weight[l].data();
  const float* src = csr ? layer.csr.value() : layer.weight.value();
  for (int64_t i = 0; i < count; ++i) {
    mask[i] = rng_.uniform() < keep ? scale : 0.0f;
    w[i] = src[i] * mask[i];
  }
  return w;
}

void Model::update_activation_stats(int64_t l, const float* abs_sum, const float* sum, int64_t batch) {
  DenseLayer& layer = layers_[l];
  NeuronStats& s = layer.stats;
  if (static_cast<int64_t>(s.mean_abs_activation.size()) != layer.units) {
    s.mean_abs_activation.assign(layer.units, 0.0);
    s.mean_activation.assign(layer.units, 0.0);
    s.taylor.assign(layer.units, 0.0);
  }
  const double decay = stats_decay_, inv_b = 1.0 / static_cast<double>(batch);
  for (int64_t j = 0; j < layer.units; ++j) {
    s.mean_abs_activation[j] = decay * s.mean_abs_activation[j] + (1.0 - decay) * (abs_sum[j] * inv_b);
    s.mean_activation[j] = decay * s.mean_activation[j] + (1.0 - decay) * (sum[j] * inv_b);
  }
  ++s.updates;
}

// First-order Taylor estimate of the loss change from removing unit j
// (Molchanov et al. 2017): |sum over the batch of a_j * dL/da_j|, from the
// per-row dot products the backward pass gathered.
void Model::update_taylor_stats(int64_t l, const float* dot) {
  DenseLayer& layer = layers_[l];
  NeuronStats& s = layer.stats;
  if (static_cast<int64_t>(s.taylor.size()) != layer.units) return;
  const double decay = stats_decay_;
  for (int64_t j = 0; j < layer.units; ++j) s.taylor[j] = decay * s.taylor[j] + (1.0 - decay) * std::fabs(dot[j]);
}

// Pruned weights and dead units must stay exactly zero: their gradients are
// cleared before the optimizer sees them, so weights and moments never move.
void Model::mask_gradients(DenseLayer& layer, ThreadPool* pool) {
  if (layer.format == WeightFormat::kDense && !layer.mask.empty()) {
    float* g = layer.weight.grad();
    const int64_t stride = layer.weight.stride, inputs = layer.inputs;
    const uint8_t* mask = layer.mask.data();
    for_row_blocks(pool, layer.units, inputs, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < inputs; ++c)
          if (!mask[r * inputs + c]) g[r * stride + c] = 0.0f;
    });
  }
  if (!layer.alive.empty()) {
    float* gb = layer.bias.grad();
    for (int64_t j = 0; j < layer.units; ++j)
      if (!layer.alive[j]) gb[j] = 0.0f;
  }
}

// Loss over the batch in the workspace; when want_grad, d(loss)/d(output) goes
// to grad_a, divided by grad_divisor (the number of samples the mean is over).
BatchStats Model::loss_and_gradient(const Targets& targets, const int32_t* indices, int64_t first, int64_t batch,
                                    int64_t grad_divisor, bool want_grad) {
  const int64_t outputs = output_size();
  const float* out = ws_.act.back().data();
  float* grad = want_grad ? ws_.grad_a.data() : nullptr;
  BatchStats stats;
  stats.samples = batch;
  auto sample_of = [&](int64_t j) { return indices ? indices[first + j] : first + j; };
  if (targets.labels) {
    if (loss_ != LossKind::kSoftmaxCrossEntropy)
      throw_type("integer class labels need the 'softmaxCrossEntropy' loss; use Float32Array targets for 'meanSquaredError'");
    ws_.labels.resize(batch);
    for (int64_t j = 0; j < batch; ++j) {
      const int32_t label = targets.labels[sample_of(j)];
      if (label < 0 || label >= outputs)
        throw_range("label " + std::to_string(label) + " of sample " + std::to_string(sample_of(j)) +
                    " is out of range [0, " + std::to_string(outputs) + ")");
      ws_.labels[j] = label;
    }
  } else {
    ws_.targets.ensure_discard(outputs * batch);
    float* t = ws_.targets.data();
    for (int64_t j = 0; j < batch; ++j) {
      const float* row = targets.values + sample_of(j) * outputs;
      for (int64_t r = 0; r < outputs; ++r) t[r * batch + j] = row[r];
    }
  }
  // The loss kernels divide the gradient by their `batch` argument; passing
  // grad_divisor there makes chunked passes produce the mean over all chunks.
  if (targets.labels) {
    stats.loss_sum = softmax_cross_entropy_labels(grad, out, batch, ws_.labels.data(), outputs, 0, batch,
                                                  grad_divisor, &stats.correct);
  } else if (loss_ == LossKind::kSoftmaxCrossEntropy) {
    stats.loss_sum = softmax_cross_entropy_targets(grad, out, batch, ws_.targets.data(), outputs, 0, batch,
                                                   grad_divisor, &stats.correct);
  } else {
    stats.loss_sum = mean_squared_error(grad, out, batch, ws_.targets.data(), outputs, 0, batch, grad_divisor,
                                        &stats.correct);
  }
  return stats;
}

void Model::backward(int64_t batch, float beta, bool training, ThreadPool* pool, bool capture_dz, bool weight_grads) {
  if (capture_dz && ws_.dz.size() != layers_.size()) ws_.dz.resize(layers_.size());
  float* g = ws_.grad_a.data();
  float* other = ws_.grad_b.data();
  for (int64_t l = static_cast<int64_t>(layers_.size()) - 1; l >= 0; --l) {
    DenseLayer& layer = layers_[l];
    const float* out = ws_.act[l + 1].data();
    const bool taylor = training && l + 1 < static_cast<int64_t>(layers_.size());
    ws_.row_sums.ensure_discard(2 * layer.units);
    float* dot = taylor ? ws_.row_sums.data() : nullptr;
    float* dz_sum = ws_.row_sums.data() + layer.units;
    for_row_blocks(pool, layer.units, batch, [&](int64_t r0, int64_t r1) {
      activation_backward(g, out, batch, layer.activation, r0, r1, batch, dot, dz_sum);
    });
    if (taylor) update_taylor_stats(l, dot);
    if (layer.use_bias && weight_grads) {
      float* db = layer.bias.grad();
      for (int64_t r = 0; r < layer.units; ++r) db[r] = beta == 0.0f ? dz_sum[r] : beta * db[r] + dz_sum[r];
    }
    if (capture_dz) {
      ws_.dz[l].ensure_discard(layer.units * batch);
      std::copy(g, g + layer.units * batch, ws_.dz[l].data());
    }
    const bool dropped = training && layer.input_dropout > 0.0f;
    const bool drop_connect = training && layer.drop_connect > 0.0f;
    const float* input = dropped ? ws_.dropped[l].data() : ws_.act[l].data();
    if (!weight_grads) {
      // Signal capture only: dz is all the caller needs.
    } else if (layer.format == WeightFormat::kCsr) {
      sddmm_f32_csr(layer.csr.view(), g, batch, input, batch, batch, beta, layer.csr.grad(), pool);
      if (drop_connect) apply_mask(layer.csr.grad(), ws_.dc_mask[l].data(), layer.csr.nnz());
    } else {
      gemm_f32(Trans::kNo, Trans::kYes, layer.units, layer.inputs, batch, g, batch, input, batch, beta,
               layer.weight.grad(), layer.weight.stride, pool);
      if (drop_connect) apply_mask(layer.weight.grad(), ws_.dc_mask[l].data(), layer.units * layer.weight.stride);
    }
    if (weight_grads) mask_gradients(layer, pool);
    if (l > 0) {
      multiply_by_weights(layer, drop_connect ? ws_.dc_weight[l].data() : nullptr, true, g, other, batch,
                          &ws_.transposed_values, pool);
      if (dropped) apply_mask(other, ws_.mask[l].data(), layer.inputs * batch);
      std::swap(g, other);
    }
  }
}

void Model::apply_optimizer(ThreadPool* pool) {
  const OptimizerConfig& o = optimizer_;
  const double t = static_cast<double>(step_ + 1);
  SgdParams sgd{o.learning_rate, o.momentum, o.nesterov, o.weight_decay};
  AdamParams adam{o.learning_rate, o.beta1, o.beta2, o.epsilon, o.weight_decay, o.decoupled_weight_decay,
                  static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta1), t)),
                  static_cast<float>(1.0 - std::pow(static_cast<double>(o.beta2), t))};
  // Weight decay applies to weights only: decaying biases only hurts.
  auto update = [&](DenseParam& p, bool decay, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t off = r * p.stride;
      float* m1 = p.has(Slot::kMoment1) ? p.slot(Slot::kMoment1) + off : nullptr;
      float* m2 = p.has(Slot::kMoment2) ? p.slot(Slot::kMoment2) + off : nullptr;
      if (o.kind == OptimizerKind::kSgd) {
        SgdParams s = sgd;
        if (!decay) s.weight_decay = 0.0f;
        sgd_update(p.value() + off, m1, p.grad() + off, p.cols, s);
      } else {
        AdamParams a = adam;
        if (!decay) a.weight_decay = 0.0f;
        adam_update(p.value() + off, m1, m2, p.grad() + off, p.cols, a);
      }
    }
  };
  for (auto& layer : layers_) {
    if (layer.format == WeightFormat::kCsr) {
      // The slots are nnz-long arrays: update them in contiguous chunks.
      CsrParam& p = layer.csr;
      const int64_t nnz = p.nnz(), chunk = 16384;
      const int64_t tasks = (nnz + chunk - 1) / chunk;
      auto run = [&](int64_t t) {
        const int64_t k0 = t * chunk, n = std::min(chunk, nnz - k0);
        float* m1 = p.has(Slot::kMoment1) ? p.slot(Slot::kMoment1) + k0 : nullptr;
        float* m2 = p.has(Slot::kMoment2) ? p.slot(Slot::kMoment2) + k0 : nullptr;
        if (o.kind == OptimizerKind::kSgd) sgd_update(p.value() + k0, m1, p.grad() + k0, n, sgd);
        else adam_update(p.value() + k0, m1, m2, p.grad() + k0, n, adam);
      };
      if (pool && tasks > 1) pool->parallel_for(tasks, run);
      else for (int64_t t = 0; t < tasks; ++t) run(t);
    } else {
      for_row_blocks(pool, layer.units, layer.inputs,
                     [&](int64_t r0, int64_t r1) { update(layer.weight, true, r0, r1); });
    }
    // The bias is units x 1: update it as one row of `units` values.
    DenseParam& b = layer.bias;
    if (layer.use_bias) {
      if (o.kind == OptimizerKind::kSgd) {
        SgdParams s = sgd;
        s.weight_decay = 0.0f;
        sgd_update(b.value(), b.has(Slot::kMoment1) ? b.slot(Slot::kMoment1) : nullptr, b.grad(), b.rows, s);
      } else {
        AdamParams a = adam;
        a.weight_decay = 0.0f;
        adam_update(b.value(), b.slot(Slot::kMoment1), b.slot(Slot::kMoment2), b.grad(), b.rows, a);
      }
    }
  }
}

BatchStats Model::train_batch(const float* x, const Targets& targets, const int32_t* indices, int64_t batch,
                              ThreadPool* pool) {
  if (!compiled()) throw_error("the model must be compiled before training");
  ensure_workspace(ws_, layers_, input_size_, batch);
  load_batch(x, indices, 0, batch, pool);
  forward(batch, true, pool);
  BatchStats stats = loss_and_gradient(targets, indices, 0, batch, batch, true);
  if (!std::isfinite(stats.loss_sum)) {
    throw Error(ErrorKind::kNonFinite, "the loss became " + std::string(std::isnan(stats.loss_sum) ? "NaN" : "infinite") +
                                           " at step " + std::to_string(step_) +
                                           "; training stopped before this step's update (try a lower learning rate)");
  }
  backward(batch, 0.0f, true, pool);
  apply_optimizer(pool);
  ++step_;
  if (keep_last_batch_ && batch_may_be_kept_) {
    // Keep the batch (feature-major) and its targets for growth signals.
    const int64_t outputs = output_size();
    ws_.last_x.ensure_discard(input_size_ * batch);
    std::copy(ws_.act[0].data(), ws_.act[0].data() + input_size_ * batch, ws_.last_x.data());
    if (targets.labels) {
      ws_.last_labels.assign(ws_.labels.begin(), ws_.labels.begin() + batch);
    } else {
      ws_.last_labels.clear();
      ws_.last_targets.ensure_discard(outputs * batch);
      std::copy(ws_.targets.data(), ws_.targets.data() + outputs * batch, ws_.last_targets.data());
    }
    last_batch_ = batch;
  }
  if (cbp_rate_ > 0.0) continual_backprop_step(cbp_rate_, cbp_maturity_);
  return stats;
}

BatchStats Model::evaluate(const float* x, const Targets& targets, int64_t n, int64_t batch_size, ThreadPool* pool) {
  BatchStats total;
  const int64_t chunk = std::max<int64_t>(1, std::min(batch_size, n));
  ensure_workspace(ws_, layers_, input_size_, chunk);
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t b = std::min(chunk, n - first);
    load_batch(x, nullptr, first, b, pool);
    forward(b, false, pool);
    BatchStats s = loss_and_gradient(targets, nullptr, first, b, b, false);
    total.loss_sum += s.loss_sum;
    total.correct += s.correct;
    total.samples += s.samples;
  }
  return total;
}

void Model::predict(const float* x, int64_t n, float* out, int64_t batch_size, ThreadPool* pool) {
  const int64_t chunk = std::max<int64_t>(1, std::min(batch_size, n));
  const int64_t outputs = output_size();
  ensure_workspace(ws_, layers_, input_size_, chunk);
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t b = std::min(chunk, n - first);
    load_batch(x, nullptr, first, b, pool);
    forward(b, false, pool);
    const float* y = ws_.act.back().data();
    for (int64_t j = 0; j < b; ++j)
      for (int64_t r = 0; r < outputs; ++r) out[(first + j) * outputs + r] = y[r * b + j];
  }
}

BatchStats Model::compute_gradients(const float* x, const Targets& targets, int64_t n, ThreadPool* pool) {
  BatchStats total;
  const int64_t chunk = std::min<int64_t>(kInferenceChunk, n);
  ensure_workspace(ws_, layers_, input_size_, chunk);
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t b = std::min(chunk, n - first);
    load_batch(x, nullptr, first, b, pool);
    forward(b, false, pool);
    BatchStats s = loss_and_gradient(targets, nullptr, first, b, n, true);
    backward(b, first == 0 ? 0.0f : 1.0f, false, pool);
    total.loss_sum += s.loss_sum;
    total.correct += s.correct;
    total.samples += s.samples;
  }
  return total;
}

}  // namespace np

namespace np {

// Growth signals (GradMax, RigL) need dL/dz for a recent batch: re-run the
// kept last training batch without dropout and capture every layer's dz.
int64_t Model::recompute_signals(ThreadPool* pool) {
  if (last_batch_ == 0)
    throw_error("no recent training batch is kept for growth signals: train with a schedule that needs them "
                "(plasticity.rigl, plasticity.dropin with init 'gradmax'), or pass data");
  const int64_t b = last_batch_;
  ensure_workspace(ws_, layers_, input_size_, b);
  std::copy(ws_.last_x.data(), ws_.last_x.data() + input_size_ * b, ws_.act[0].data());
  forward(b, false, pool);
  Targets t;
  std::vector<float> rows;
  if (!ws_.last_labels.empty()) {
    t.labels = ws_.last_labels.data();
  } else {
    const int64_t outputs = output_size();
    rows.resize(outputs * b);
    for (int64_t j = 0; j < b; ++j)
      for (int64_t r = 0; r < outputs; ++r) rows[j * outputs + r] = ws_.last_targets[r * b + j];
    t.values = rows.data();
  }
  loss_and_gradient(t, nullptr, 0, b, b, true);
  backward(b, 0.0f, false, pool, /*capture_dz=*/true, /*weight_grads=*/false);
  return b;
}

int64_t Model::signals_of(const float* x, const Targets* targets, int64_t n, ThreadPool* pool) {
  if (!x) return recompute_signals(pool);
  // The given batch takes the kept one's place for the pass, then the kept
  // one comes back (also when the pass throws): the signals stay in ws_.dz /
  // ws_.act, and a later decision without data still reads the last batch
  // trained, as a GPU model's does.
  struct Restore {
    Model& m;
    FloatBuffer x, targets;
    std::vector<int32_t> labels;
    int64_t batch;
    ~Restore() {
      m.ws_.last_x = std::move(x);
      m.ws_.last_targets = std::move(targets);
      m.ws_.last_labels = std::move(labels);
      m.last_batch_ = batch;
    }
  } kept{*this, std::move(ws_.last_x), std::move(ws_.last_targets), std::move(ws_.last_labels), last_batch_};
  ws_.last_labels.clear();
  last_batch_ = 0;
  load_signal_batch(x, *targets, n);
  return recompute_signals(pool);
}

// Makes (x, targets) the batch recompute_signals() uses.
void Model::load_signal_batch(const float* x, const Targets& targets, int64_t n) {
  const int64_t outputs = output_size();
  // Checked before anything is overwritten: a rejected batch leaves the kept one as it was.
  if (targets.labels)
    for (int64_t j = 0; j < n; ++j)
      if (targets.labels[j] < 0 || targets.labels[j] >= outputs) throw_range("label " + std::to_string(targets.labels[j]) + " is out of range");
  ensure_workspace(ws_, layers_, input_size_, n);
  load_batch(x, nullptr, 0, n);
  ws_.last_x.ensure_discard(input_size_ * n);
  std::copy(ws_.act[0].data(), ws_.act[0].data() + input_size_ * n, ws_.last_x.data());
  if (targets.labels) {
    ws_.last_labels.assign(targets.labels, targets.labels + n);
  } else {
    ws_.last_labels.clear();
    ws_.last_targets.ensure_discard(outputs * n);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t r = 0; r < outputs; ++r) ws_.last_targets[r * n + j] = targets.values[j * outputs + r];
  }
  last_batch_ = n;
}

}  // namespace np
