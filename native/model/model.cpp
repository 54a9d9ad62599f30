#include "model/model.h"

#include <cmath>
#include <string>

#include "model/errors.h"

namespace np {

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
    DenseLayer layer;
    layer.inputs = inputs;
    layer.units = spec.units;
    layer.activation = spec.activation;
    layer.input_dropout = spec.input_dropout;
    layer.use_bias = spec.use_bias;
    layer.weight.allocate(spec.units, inputs);
    layer.bias.allocate(spec.units, 1);
    layer.neuron_ids.resize(spec.units);
    for (auto& id : layer.neuron_ids) id = next_neuron_id_++;
    init_layer_weights(layer, spec.init);
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
    layer.weight.set_moment_slots(moments);
    layer.bias.set_moment_slots(moments);
  }
}

DenseLayer& Model::layer(int64_t index) {
  if (index < 0 || index >= static_cast<int64_t>(layers_.size()))
    throw_range("layer index " + std::to_string(index) + " is out of range [0, " +
                std::to_string(layers_.size()) + ")");
  return layers_[index];
}

int64_t Model::parameter_count() const {
  int64_t total = 0;
  for (const auto& layer : layers_) total += layer.weight.count() + (layer.use_bias ? layer.units : 0);
  return total;
}

void Model::get_weights(int64_t index, float* weight, float* bias) const {
  const DenseLayer& l = const_cast<Model*>(this)->layer(index);
  if (weight) l.weight.read(Slot::kValue, weight);
  if (bias) l.bias.read(Slot::kValue, bias);
}

void Model::set_weights(int64_t index, const float* weight, const float* bias) {
  DenseLayer& l = layer(index);
  if (weight) l.weight.write(Slot::kValue, weight);
  if (bias) l.bias.write(Slot::kValue, bias);
}

void Model::get_gradients(int64_t index, float* weight, float* bias) const {
  const DenseLayer& l = const_cast<Model*>(this)->layer(index);
  if (weight) l.weight.read(Slot::kGrad, weight);
  if (bias) l.bias.read(Slot::kGrad, bias);
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
