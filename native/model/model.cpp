#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/errors.h"

#include <unistd.h>

namespace np {

void check_fits_in_memory(double bytes, const std::string& what) {
  const double physical = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (physical > 0 && bytes > physical) {
    throw_range(what + " needs " + std::to_string(static_cast<int64_t>(bytes / 1e9)) + " GB, more than this machine's " +
                std::to_string(static_cast<int64_t>(physical / 1e9)) + " GB of memory");
  }
}

Model::Model(int64_t input_size, uint64_t seed, const std::vector<LayerSpec>& specs)
    : input_size_(input_size), rng_(seed) {
  if (input_size < 1) throw_range("inputSize must be a positive integer, got " + std::to_string(input_size));
  if (specs.empty()) throw_range("a model needs at least one dense layer");
  int64_t inputs = input_size;
  layers_.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& spec = specs[i];
    if (spec.units < 1) throw_range("layer " + std::to_string(i) + ": units must be a positive integer");
    if (!(spec.input_dropout >= 0.0f && spec.input_dropout < 1.0f))
      throw_range("layer " + std::to_string(i) + ": dropout rate must be in [0, 1)");
    if (!(spec.density > 0.0 && spec.density <= 1.0))
      throw_range("layer " + std::to_string(i) + ": density must be in (0, 1]");
    // Weights, gradient and up to two optimizer moments (plus a column index when sparse).
    const double entries = spec.density * static_cast<double>(spec.units) * static_cast<double>(inputs);
    check_fits_in_memory((spec.density < 1.0 ? 20.0 : 16.0) * entries,
                         "layer " + std::to_string(i) + " (" + std::to_string(spec.units) + " x " + std::to_string(inputs) + ")");
    DenseLayer layer;
    layer.inputs = inputs;
    layer.units = spec.units;
    layer.activation = spec.activation;
    layer.input_dropout = spec.input_dropout;
    if (!(spec.drop_connect >= 0.0f && spec.drop_connect < 1.0f))
      throw_range("layer " + std::to_string(i) + ": dropConnect rate must be in [0, 1)");
    layer.drop_connect = spec.drop_connect;
    layer.sparse_threshold = spec.sparse_threshold;
    layer.use_bias = spec.use_bias;
    layer.bias.allocate(spec.units, 1);
    layer.neuron_ids.resize(spec.units);
    layer.birth_step.assign(spec.units, 0);
    for (auto& id : layer.neuron_ids) id = next_neuron_id_++;
    if (spec.density < 1.0) {
      init_sparse_layer(layer, spec.init, spec.density);
    } else {
      layer.weight.allocate(spec.units, inputs);
      init_layer_weights(layer, spec.init);
    }
    layers_.push_back(std::move(layer));
    inputs = spec.units;
  }
}

// He-normal for ReLU (keeps activation variance through depth), Glorot-uniform
// for the saturating and linear activations; biases start at zero.
void Model::init_layer_weights(DenseLayer& layer, InitKind init) {
  if (init == InitKind::kAuto)
    init = layer.activation == Activation::kRelu ? InitKind::kHeNormal : InitKind::kGlorotUniform;
  float* w = layer.weight.value();
  const int64_t stride = layer.weight.stride;
  const double fan_in = static_cast<double>(layer.inputs), fan_out = static_cast<double>(layer.units);
  for (int64_t r = 0; r < layer.units; ++r) {
    for (int64_t c = 0; c < layer.inputs; ++c) {
      float v = 0.0f;
      switch (init) {
        case InitKind::kHeNormal:
          v = static_cast<float>(std::sqrt(2.0 / fan_in)) * rng_.normal();
          break;
        case InitKind::kGlorotUniform: {
          const float limit = static_cast<float>(std::sqrt(6.0 / (fan_in + fan_out)));
          v = (2.0f * rng_.uniform() - 1.0f) * limit;
          break;
        }
        case InitKind::kZeros:
        case InitKind::kAuto:
          break;
      }
      w[r * stride + c] = v;
    }
  }
  layer.bias.zero(Slot::kValue);
}

// Random sparse connectivity, built straight into CSR: each unit draws
// round(density x inputs) distinct inputs (Floyd's sampling, O(k) per row),
// and its weights come from the init distribution with the unit's actual
// fan-in, so activations keep their scale however sparse the layer is.
void Model::init_sparse_layer(DenseLayer& layer, InitKind init, double density) {
  if (init == InitKind::kAuto)
    init = layer.activation == Activation::kRelu ? InitKind::kHeNormal : InitKind::kGlorotUniform;
  const int64_t per_row = std::max<int64_t>(1, std::min<int64_t>(layer.inputs, std::llround(density * layer.inputs)));
  CsrParam c;
  c.rows = layer.units;
  c.cols = layer.inputs;
  c.indptr.resize(layer.units + 1);
  for (int64_t r = 0; r <= layer.units; ++r) c.indptr[r] = r * per_row;
  c.indices.resize(layer.units * per_row);
  c.allocate_slots(layer.units * per_row, 0);
  const double fan_in = static_cast<double>(per_row);
  const double fan_out = std::max(1.0, density * static_cast<double>(layer.units));
  std::vector<int32_t> row;
  std::vector<uint8_t> seen(layer.inputs, 0);  // membership for Floyd's test, cleared per row
  for (int64_t r = 0; r < layer.units; ++r) {
    row.clear();
    for (int64_t j = layer.inputs - per_row; j < layer.inputs; ++j) {
      const int32_t t = static_cast<int32_t>(rng_.below(static_cast<uint64_t>(j + 1)));
      const int32_t pick = seen[t] ? static_cast<int32_t>(j) : t;
      seen[pick] = 1;
      row.push_back(pick);
    }
    for (int32_t c : row) seen[c] = 0;
    std::sort(row.begin(), row.end());
    std::copy(row.begin(), row.end(), c.indices.begin() + r * per_row);
    float* v = c.value() + r * per_row;
    for (int64_t k = 0; k < per_row; ++k) {
      switch (init) {
        case InitKind::kHeNormal: v[k] = static_cast<float>(std::sqrt(2.0 / fan_in)) * rng_.normal(); break;
        case InitKind::kGlorotUniform:
          v[k] = (2.0f * rng_.uniform() - 1.0f) * static_cast<float>(std::sqrt(6.0 / (fan_in + fan_out)));
          break;
        default: v[k] = 0.0f; break;
      }
    }
  }
  layer.csr = std::move(c);
  layer.format = WeightFormat::kCsr;
  layer.bias.zero(Slot::kValue);
}

void Model::compile(const OptimizerConfig& optimizer, LossKind loss) {
  if (optimizer.kind == OptimizerKind::kNone) throw_range("compile: an optimizer is required");
  if (!(optimizer.learning_rate > 0.0f) || !std::isfinite(optimizer.learning_rate))
    throw_range("compile: learningRate must be a positive finite number");
  optimizer_ = optimizer;
  loss_ = loss;
  // Fresh optimizer state: SGD keeps one moment (velocity) when momentum is
  // used, Adam two (m, v).
  int moments = 0;
  if (optimizer.kind == OptimizerKind::kSgd) moments = optimizer.momentum != 0.0f ? 1 : 0;
  if (optimizer.kind == OptimizerKind::kAdam) moments = 2;
  for (auto& layer : layers_) {
    if (layer.format == WeightFormat::kCsr) {
      // Reallocate the moments only (values, gradients and pattern stay).
      CsrParam& c = layer.csr;
      c.moments = moments;
      for (int s = 2; s < kSlotCount; ++s) c.slots[s].resize_discard(c.has(static_cast<Slot>(s)) ? c.nnz() : 0);
    } else {
      layer.weight.set_moment_slots(moments);
    }
    layer.bias.set_moment_slots(moments);
  }
}

DenseLayer& Model::layer(int64_t index) {
  if (index < 0 || index >= static_cast<int64_t>(layers_.size()))
    throw_range("layer index " + std::to_string(index) + " is out of range [0, " +
                std::to_string(layers_.size()) + ")");
  return layers_[index];
}

// Stored weights and biases of live units: what training updates.
int64_t Model::parameter_count() const {
  int64_t total = 0;
  for (const auto& layer : layers_) total += layer.nnz() + (layer.use_bias ? layer.units - layer.dead_units() : 0);
  return total;
}

static void read_slot(const DenseLayer& l, Slot s, float* weight, float* bias) {
  if (weight) {
    if (l.format == WeightFormat::kCsr) l.csr.to_dense(s, weight, l.inputs);
    else l.weight.read(s, weight);
  }
  if (bias) l.bias.read(s, bias);
}

void Model::get_weights(int64_t index, float* weight, float* bias) const {
  read_slot(const_cast<Model*>(this)->layer(index), Slot::kValue, weight, bias);
}

void Model::get_gradients(int64_t index, float* weight, float* bias) const {
  read_slot(const_cast<Model*>(this)->layer(index), Slot::kGrad, weight, bias);
}

// Pruned positions (and dead units) must receive zeros: a nonzero there would
// silently revive a removed connection, so it is rejected before anything is
// written.
void Model::set_weights(int64_t index, const float* weight, const float* bias) {
  DenseLayer& l = layer(index);
  if (weight) {
    std::vector<uint8_t> stored;
    const uint8_t* keep = nullptr;
    if (l.format == WeightFormat::kCsr) {
      stored.assign(l.units * l.inputs, 0);
      for (int64_t r = 0; r < l.units; ++r)
        for (int64_t k = l.csr.indptr[r]; k < l.csr.indptr[r + 1]; ++k) stored[r * l.inputs + l.csr.indices[k]] = 1;
      keep = stored.data();
    } else if (!l.mask.empty()) {
      keep = l.mask.data();
    }
    if (keep) {
      for (int64_t i = 0; i < l.units * l.inputs; ++i)
        if (!keep[i] && weight[i] != 0.0f)
          throw_range("weight[" + std::to_string(i) + "] (unit " + std::to_string(i / l.inputs) + ", input " +
                      std::to_string(i % l.inputs) + ") is " + std::to_string(weight[i]) +
                      " but that connection is pruned; pruned positions must be 0");
    }
  }
  if (bias && !l.alive.empty()) {
    for (int64_t j = 0; j < l.units; ++j)
      if (!l.alive[j] && bias[j] != 0.0f)
        throw_range("bias[" + std::to_string(j) + "] is " + std::to_string(bias[j]) + " but unit " + std::to_string(j) +
                    " is pruned; its bias must be 0");
  }
  if (weight) {
    if (l.format == WeightFormat::kCsr) {
      for (int64_t r = 0; r < l.units; ++r)
        for (int64_t k = l.csr.indptr[r]; k < l.csr.indptr[r + 1]; ++k) l.csr.value()[k] = weight[r * l.inputs + l.csr.indices[k]];
    } else {
      l.weight.write(Slot::kValue, weight);
    }
  }
  if (bias) l.bias.write(Slot::kValue, bias);
}

void Model::epoch_order(int64_t n, bool shuffle, int32_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(i);
  if (!shuffle) return;
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const int64_t j = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(i + 1)));
    std::swap(out[i], out[j]);
  }
}

}  // namespace np
