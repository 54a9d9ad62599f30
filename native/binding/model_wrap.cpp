#include "binding/model_wrap.h"

#include <string>
#include <vector>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/workers.h"

namespace npb {

namespace {

np::LayerSpec read_layer_spec(Napi::Env env, Napi::Value value, size_t index) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, "layers[" + std::to_string(index) + "] must be an object");
  Napi::Object o = value.As<Napi::Object>();
  np::LayerSpec spec;
  const double units = number_prop(o, "units", 0);
  if (!(units >= 1 && units <= (1 << 30)) || units != static_cast<double>(static_cast<int64_t>(units)))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].units must be a positive integer");
  spec.units = static_cast<int64_t>(units);
  const std::string act = string_prop(o, "activation", "linear");
  if (!np::parse_activation(act.c_str(), &spec.activation))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].activation '" + act + "' is not one of relu, tanh, sigmoid, linear");
  spec.input_dropout = static_cast<float>(number_prop(o, "inputDropout", 0));
  if (!(spec.input_dropout >= 0.0f && spec.input_dropout < 1.0f))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].inputDropout must be in [0, 1)");
  const std::string init = string_prop(o, "init", "auto");
  if (init == "auto") spec.init = np::InitKind::kAuto;
  else if (init == "heNormal") spec.init = np::InitKind::kHeNormal;
  else if (init == "glorotUniform") spec.init = np::InitKind::kGlorotUniform;
  else if (init == "zeros") spec.init = np::InitKind::kZeros;
  else throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].init '" + init + "' is unknown");
  spec.use_bias = bool_prop(o, "useBias", true);
  spec.drop_connect = static_cast<float>(number_prop(o, "dropConnect", 0));
  if (!(spec.drop_connect >= 0.0f && spec.drop_connect < 1.0f))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].dropConnect must be in [0, 1)");
  spec.sparse_threshold = static_cast<float>(number_prop(o, "sparseThreshold", -1));
  spec.density = number_prop(o, "density", 1.0);
  if (!(spec.density > 0.0 && spec.density <= 1.0))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].density must be in (0, 1]");
  if (!(spec.sparse_threshold <= 1.0f))
    throw Napi::RangeError::New(env, "layers[" + std::to_string(index) + "].sparseThreshold must be <= 1");
  return spec;
}

}  // namespace

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Compile>>("compile"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::EpochOrder>>("epochOrder"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::CreateDataset>>("createDataset"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ReleaseDataset>>("releaseDataset"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::TrainBatches>>("trainBatches"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Evaluate>>("evaluate"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Predict>>("predict"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ComputeGradients>>("computeGradients"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::GetWeights>>("getWeights"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetWeights>>("setWeights"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::GetGradients>>("getGradients"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::LayerInfo>>("layerInfo"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::RequestAbort>>("requestAbort"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ReleaseMemory>>("releaseMemory"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetStep>>("step"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetBusy>>("busy"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetLayerCount>>("layerCount"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetParameterCount>>("parameterCount"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetEventCount>>("eventCount"),
                         InstanceAccessor<&ModelWrap::Guarded<&ModelWrap::GetEventsDropped>>("eventsDropped"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::NeuronIds>>("neuronIds"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::PruneWeights>>("pruneWeights"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::PruneWeightsToSparsity>>("pruneWeightsToSparsity"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::PlanMagnitudeDrops>>("planMagnitudeDrops"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::MagnitudeDrops>>("magnitudeDrops"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::PruneNeurons>>("pruneNeurons"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::NeuronScores>>("neuronScores"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Compact>>("compact"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ConvertLayer>>("convertLayer"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetSparseThreshold>>("setSparseThreshold"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SparseThreshold>>("sparseThreshold"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Events>>("events"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetEpoch>>("setEpoch"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Snapshot>>("snapshot"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Rewind>>("rewind"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SnapshotSteps>>("snapshotSteps"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ExportState>>("exportState"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Grow>>("grow"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::LastSplit>>("lastSplit"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::GradmaxProduct>>("gradmaxProduct"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::LastRescales>>("lastRescales"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::LastCompensations>>("lastCompensations"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Sparsify>>("sparsify"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Regrow>>("regrow"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::GradientGrowth>>("gradientGrowth"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetContinualBackprop>>("setContinualBackprop"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ContinualBackpropDue>>("continualBackpropDue"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ContinualBackpropSkip>>("continualBackpropSkip"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ContinualBackpropStep>>("continualBackpropStep"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::Redo>>("redo"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::UnitUtility>>("unitUtility"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::UnitStats>>("unitStats"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetKeepLastBatch>>("setKeepLastBatch"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetStatsDecay>>("setStatsDecay"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::ImportState>>("importState"),
                         InstanceMethod<&ModelWrap::Guarded<&ModelWrap::SetValues>>("setValues"),
                     });
}

// new NativeModel({ inputSize, seed, layers: [{ units, activation, inputDropout, init, useBias }] })
ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  Napi::Object config = object_arg(info, 0, "config");
  const double input_size = number_prop(config, "inputSize", 0);
  if (!(input_size >= 1 && input_size <= (1 << 30)) || input_size != static_cast<double>(static_cast<int64_t>(input_size)))
    throw Napi::RangeError::New(env, "inputSize must be a positive integer");
  const double seed = number_prop(config, "seed", 0);
  if (!(seed >= 0 && seed <= 9007199254740991.0)) throw Napi::RangeError::New(env, "seed must be a non-negative integer");
  Napi::Value layers_value = config.Get("layers");
  if (!layers_value.IsArray()) throw Napi::TypeError::New(env, "layers must be an array");
  Napi::Array layers = layers_value.As<Napi::Array>();
  std::vector<np::LayerSpec> specs;
  for (uint32_t i = 0; i < layers.Length(); ++i) specs.push_back(read_layer_spec(env, layers.Get(i), i));
  model_ = guard(env, [&] {
    return std::make_unique<np::Model>(static_cast<int64_t>(input_size), static_cast<uint64_t>(seed), specs);
  });
  const double threshold = number_prop(config, "sparseThreshold", -1);
  if (!(threshold <= 1.0)) throw Napi::RangeError::New(env, "sparseThreshold must be <= 1");
  model_->set_default_sparse_threshold(threshold);
  const double event_limit = number_prop(config, "eventLimit", 0);
  if (!(event_limit >= 0 && event_limit <= 9007199254740991.0) ||
      event_limit != static_cast<double>(static_cast<int64_t>(event_limit)))
    throw Napi::RangeError::New(env, "eventLimit must be a non-negative integer");
  model_->set_event_limit(static_cast<int64_t>(event_limit));
}

void ModelWrap::ensure_idle(Napi::Env env, const char* operation) {
  if (busy_) {
    throw make_error(env, np::ErrorKind::kBusy,
                     std::string(operation) + "() cannot run while " + busy_ +
                         "() is running on this model; await it first");
  }
}

void ModelWrap::claim(Napi::Env env, const char* operation) {
  ensure_idle(env, operation);
  busy_ = operation;
}

// compile({ kind, learningRate, momentum, nesterov, weightDecay, beta1, beta2, epsilon, decoupledWeightDecay }, loss)
Napi::Value ModelWrap::Compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "compile");
  Napi::Object o = object_arg(info, 0, "optimizer");
  np::OptimizerConfig c;
  const std::string kind = string_prop(o, "kind", "");
  if (kind == "sgd") c.kind = np::OptimizerKind::kSgd;
  else if (kind == "adam") c.kind = np::OptimizerKind::kAdam;
  else throw Napi::RangeError::New(env, "optimizer.kind must be 'sgd' or 'adam'");
  c.learning_rate = static_cast<float>(number_prop(o, "learningRate", 0.01));
  c.momentum = static_cast<float>(number_prop(o, "momentum", 0));
  c.nesterov = bool_prop(o, "nesterov", false);
  c.weight_decay = static_cast<float>(number_prop(o, "weightDecay", 0));
  c.beta1 = static_cast<float>(number_prop(o, "beta1", 0.9));
  c.beta2 = static_cast<float>(number_prop(o, "beta2", 0.999));
  c.epsilon = static_cast<float>(number_prop(o, "epsilon", 1e-8));
  c.decoupled_weight_decay = bool_prop(o, "decoupledWeightDecay", false);
  check(c.momentum >= 0 && c.momentum < 1, env, "momentum must be in [0, 1)");
  check(c.weight_decay >= 0, env, "weightDecay must be >= 0");
  check(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1, env, "beta1 and beta2 must be in [0, 1)");
  check(c.epsilon > 0, env, "epsilon must be > 0");
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "loss must be a string");
  const std::string loss = info[1].As<Napi::String>().Utf8Value();
  np::LossKind lk;
  if (loss == "softmaxCrossEntropy") lk = np::LossKind::kSoftmaxCrossEntropy;
  else if (loss == "meanSquaredError") lk = np::LossKind::kMeanSquaredError;
  else throw Napi::RangeError::New(env, "loss must be 'softmaxCrossEntropy' or 'meanSquaredError'");
  model_->compile(c, lk);
  return env.Undefined();
}

// epochOrder(n, shuffle) -> Int32Array
Napi::Value ModelWrap::EpochOrder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "epochOrder");
  const int64_t n = int_arg(info, 0, "n", 1, INT32_MAX);
  const bool shuffle = bool_arg(info, 1, "shuffle");
  auto out = Napi::Int32Array::New(env, static_cast<size_t>(n));
  model_->epoch_order(n, shuffle, out.Data());
  return out;
}

Napi::Value ModelWrap::CreateDataset(const Napi::CallbackInfo& info) { return create_dataset(info, this); }

Napi::Value ModelWrap::ReleaseDataset(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    auto it = datasets_.find(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()));
    if (it != datasets_.end()) {
      // Keep the buffers for the next fit unless a worker still reads them.
      if (it->second.use_count() == 1) spare_dataset_ = std::move(it->second);
      datasets_.erase(it);
    }
  }
  return info.Env().Undefined();
}

int64_t ModelWrap::keep_dataset(std::shared_ptr<Dataset> data) {
  const int64_t handle = next_dataset_++;
  datasets_[handle] = std::move(data);
  return handle;
}

std::shared_ptr<const Dataset> ModelWrap::dataset(int64_t handle) const {
  auto it = datasets_.find(handle);
  return it == datasets_.end() ? nullptr : it->second;
}
Napi::Value ModelWrap::TrainBatches(const Napi::CallbackInfo& info) { return start_train(info, this); }
Napi::Value ModelWrap::Evaluate(const Napi::CallbackInfo& info) { return start_evaluate(info, this); }
Napi::Value ModelWrap::Predict(const Napi::CallbackInfo& info) { return start_predict(info, this); }
Napi::Value ModelWrap::ComputeGradients(const Napi::CallbackInfo& info) { return start_gradients(info, this); }

// A layer's weight and bias slot as dense arrays: { weight (units x inputs), bias }.
Napi::Object ModelWrap::weight_pair(Napi::Env env, const Napi::CallbackInfo& info, bool gradients) {
  ensure_idle(env, gradients ? "getGradients" : "getWeights");
  const int64_t index = int_arg(info, 0, "layer", 0, model_->layers().size() - 1);
  const np::DenseLayer& l = model_->layers()[index];
  auto w = Napi::Float32Array::New(env, static_cast<size_t>(l.units * l.inputs));
  auto b = Napi::Float32Array::New(env, static_cast<size_t>(l.units));
  if (gradients) model_->get_gradients(index, w.Data(), b.Data());
  else model_->get_weights(index, w.Data(), b.Data());
  Napi::Object o = Napi::Object::New(env);
  o.Set("weight", w);
  o.Set("bias", b);
  return o;
}

Napi::Value ModelWrap::GetWeights(const Napi::CallbackInfo& info) { return weight_pair(info.Env(), info, false); }
Napi::Value ModelWrap::GetGradients(const Napi::CallbackInfo& info) { return weight_pair(info.Env(), info, true); }

// setWeights(layer, weight | null, bias | null)
Napi::Value ModelWrap::SetWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "setWeights");
  const int64_t index = int_arg(info, 0, "layer", 0, model_->layers().size() - 1);
  const np::DenseLayer& l = model_->layers()[index];
  const float* w = nullptr;
  const float* b = nullptr;
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined())
    w = typed_arg<float>(info, 1, "weight", l.units * l.inputs, napi_float32_array, "Float32Array").Data();
  if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined())
    b = typed_arg<float>(info, 2, "bias", l.units, napi_float32_array, "Float32Array").Data();
  model_->set_weights(index, w, b);
  return env.Undefined();
}

Napi::Value ModelWrap::LayerInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t index = int_arg(info, 0, "layer", 0, model_->layers().size() - 1);
  const np::DenseLayer& l = model_->layers()[index];
  Napi::Object o = Napi::Object::New(env);
  o.Set("units", static_cast<double>(l.units));
  o.Set("inputs", static_cast<double>(l.inputs));
  o.Set("activation", np::activation_name(l.activation));
  o.Set("inputDropout", l.input_dropout);
  o.Set("useBias", l.use_bias);
  o.Set("nnz", static_cast<double>(l.nnz()));
  o.Set("format", l.format == np::WeightFormat::kCsr ? "csr" : "dense");
  o.Set("bytes", static_cast<double>(l.weight_bytes()));
  o.Set("deadUnits", static_cast<double>(l.dead_units()));
  o.Set("dropConnect", l.drop_connect);

  return o;
}

// neuronIds(layer) -> Float64Array: kept out of layerInfo(), which is read
// often (every property access) and should not copy a wide layer's ids.
Napi::Value ModelWrap::NeuronIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t index = int_arg(info, 0, "layer", 0, model_->layers().size() - 1);
  const np::DenseLayer& l = model_->layers()[index];
  auto ids = Napi::Float64Array::New(env, l.neuron_ids.size());
  for (size_t i = 0; i < l.neuron_ids.size(); ++i) ids[i] = static_cast<double>(l.neuron_ids[i]);
  return ids;
}

Napi::Value ModelWrap::GetEventsDropped(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->events_dropped()));
}

Napi::Value ModelWrap::GetEventCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->event_count()));
}

// releaseMemory(): drops the spare copy of the last fit's data and the
// model's training scratch (Model::release_scratch).
Napi::Value ModelWrap::ReleaseMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "releaseMemory");
  spare_dataset_.reset();
  model_->release_scratch();
  return env.Undefined();
}

Napi::Value ModelWrap::RequestAbort(const Napi::CallbackInfo& info) {
  if (busy_) model_->abort_requested.store(true);
  return info.Env().Undefined();
}

Napi::Value ModelWrap::GetStep(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->step()));
}
Napi::Value ModelWrap::GetBusy(const Napi::CallbackInfo& info) {
  return busy_ ? Napi::Value(Napi::String::New(info.Env(), busy_)) : info.Env().Null();
}
Napi::Value ModelWrap::GetLayerCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->layers().size()));
}
Napi::Value ModelWrap::GetParameterCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->parameter_count()));
}

}  // namespace npb
