// The CudaModel class of neuroplastic_cuda.node: the device-resident model
// (native/cuda/cuda_model.h) as a JS object. lib/cuda_model.ts drives it next
// to the CPU model, which keeps the structure, ids, events and RNG.
//
//   new CudaModel(config, state)   config { inputSize, seed, loss, optimizer, device, statsDecay? }
//                                  state  { step, layers: [{ units, inputs, activation, inputDropout,
//                                           dropConnect?, useBias, format, weight, indptr?, indices?, weightMoments,
//                                           bias, biasMoments, mask?, alive? }] }
//   load(state)                    replaces every parameter and the step (after a structural change)
//   restructure(state, rowSources) follows a structural change made on the host without copying the
//                                  parameters: state.layers as for load (step ignored), values only for
//                                  layers with new units in their rows or inputs, shape and settings
//                                  only for a layer with keep: true (unchanged); rowSources[l]: an
//                                  Int32Array, the current index of each new unit of layer l or -1
//   setValues({ layers })         numbers over the unchanged structure, in place: each layer's weight,
//                                  bias, weightMoments, biasMoments optional (absent or empty: kept)
//   exportState(withMoments = true) { step, layers: [{ weight, weightMoments, bias, biasMoments,
//                                  meanAbsActivation, meanActivation, taylor, statsUpdates }] }
//                                  (false: weight and bias only, moment lists empty)
//   setOptimizer(optimizer), setStatsDecay(decay)
//   createDataset(x, y) -> handle  (copied to the device once) / releaseDataset(handle)
//   trainBatches(handle, order, firstBatch, batchCount, batchSize, progress?) -> Promise
//   evaluate(x, y, batchSize) -> Promise<{ lossSum, correct, samples }>
//   predict(x, batchSize) -> Promise<Float32Array>
//   requestAbort(), dispose(); getters step, busy, deviceBytes
// Long calls run in AsyncWorkers (Execute never touches JS); one at a time.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binding/decision_args.h"
#include "cuda/cuda_model.h"
#include "cuda/runtime.h"

namespace {

namespace nc = np::cuda;

Napi::Error to_js_error(Napi::Env env, const char* code, const std::string& message, bool range = false) {
  Napi::Error e = range ? Napi::RangeError::New(env, message) : Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// What a caught exception becomes in JS: (code, message, is RangeError).
struct Failure {
  std::string code = "ERR_NEUROPLASTIC";
  std::string message;
  bool range = false;
};

template <typename Fn>
bool capture(Failure& out, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const nc::NonFiniteLoss& e) {
    out = {"ERR_NEUROPLASTIC_NONFINITE_LOSS", e.what(), false};
  } catch (const nc::CudaError& e) {
    out = {"ERR_NEUROPLASTIC_CUDA", e.what(), false};
  } catch (const std::invalid_argument& e) {
    out = {"ERR_OUT_OF_RANGE", e.what(), true};
  } catch (const std::bad_alloc&) {
    out = {"ERR_NEUROPLASTIC", "out of host memory", false};
  } catch (const std::exception& e) {
    out = {"ERR_NEUROPLASTIC", e.what(), false};
  }
  return false;
}

// Runs fn on the JS thread, turning native exceptions into JS errors.
template <typename Fn>
void on_js_thread(Napi::Env env, Fn&& fn) {
  Failure f;
  if (!capture(f, fn)) throw to_js_error(env, f.code.c_str(), f.message, f.range);
}

template <typename Array>
Array typed(Napi::Env env, Napi::Value v, napi_typedarray_type type, const std::string& name, const char* type_name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, "CudaModel: " + name + " must be a " + type_name);
  return v.As<Array>();
}

template <typename T, typename Array>
std::vector<T> copy_of(const Array& a) {
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

double number(Napi::Env env, Napi::Object o, const char* key, double fallback, bool required = false) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("CudaModel: ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool boolean(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

// A flag that is a boolean or left out (fallback false); anything else is a TypeError naming it.
bool strict_flag(Napi::Env env, Napi::Object o, const char* key, const std::string& at) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) throw Napi::TypeError::New(env, "CudaModel: " + at + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

np::Activation activation_of(Napi::Env env, const std::string& name) {
  if (name == "linear") return np::Activation::kLinear;
  if (name == "relu") return np::Activation::kRelu;
  if (name == "tanh") return np::Activation::kTanh;
  if (name == "sigmoid") return np::Activation::kSigmoid;
  throw Napi::RangeError::New(env, "CudaModel: unknown activation '" + name + "'");
}

nc::CudaOptimizer optimizer_of(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "CudaModel: optimizer must be an object");
  Napi::Object o = v.As<Napi::Object>();
  nc::CudaOptimizer out;
  const std::string kind = o.Get("kind").IsString() ? o.Get("kind").As<Napi::String>().Utf8Value() : "";
  if (kind == "sgd") out.kind = nc::CudaOptimizerKind::kSgd;
  else if (kind == "adam") out.kind = nc::CudaOptimizerKind::kAdam;
  else throw Napi::RangeError::New(env, "CudaModel: optimizer.kind must be 'sgd' or 'adam'");
  out.learning_rate = static_cast<float>(number(env, o, "learningRate", 0.01, true));
  out.momentum = static_cast<float>(number(env, o, "momentum", 0.0));
  out.nesterov = boolean(o, "nesterov", false);
  out.weight_decay = static_cast<float>(number(env, o, "weightDecay", 0.0));
  out.beta1 = static_cast<float>(number(env, o, "beta1", 0.9));
  out.beta2 = static_cast<float>(number(env, o, "beta2", 0.999));
  out.epsilon = static_cast<float>(number(env, o, "epsilon", 1e-8));
  out.decoupled_weight_decay = boolean(o, "decoupledWeightDecay", false);
  // The CPU model's compile() checks (its binding's and np::Model's), so a bad
  // config is refused the same on both devices.
  auto check = [&](bool ok, const char* what) {
    if (!ok) throw Napi::RangeError::New(env, std::string("CudaModel: optimizer.") + what);
  };
  check(std::isfinite(out.learning_rate) && out.learning_rate > 0, "learningRate must be a positive finite number");
  check(out.momentum >= 0 && out.momentum < 1, "momentum must be in [0, 1)");
  check(out.weight_decay >= 0, "weightDecay must be >= 0");
  check(out.beta1 >= 0 && out.beta1 < 1 && out.beta2 >= 0 && out.beta2 < 1, "beta1 and beta2 must be in [0, 1)");
  check(out.epsilon > 0, "epsilon must be > 0");
  return out;
}

// values_optional: a layer may leave out weight, bias and their slots (restructure).
std::vector<nc::CudaLayerState> layers_of(Napi::Env env, Napi::Value v, int64_t* step, bool values_optional = false) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "CudaModel: state must be an object");
  Napi::Object state = v.As<Napi::Object>();
  *step = static_cast<int64_t>(number(env, state, "step", 0, !values_optional));
  if (*step < 0) throw Napi::RangeError::New(env, "CudaModel: state.step must be >= 0");
  if (!state.Get("layers").IsArray()) throw Napi::TypeError::New(env, "CudaModel: state.layers must be an array");
  Napi::Array arr = state.Get("layers").As<Napi::Array>();
  std::vector<nc::CudaLayerState> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, "CudaModel: state.layers[i] must be objects");
    Napi::Object l = arr.Get(i).As<Napi::Object>();
    const std::string at = "layers[" + std::to_string(i) + "].";
    nc::CudaLayerState s;
    s.units = static_cast<int64_t>(number(env, l, "units", 0, true));
    s.inputs = static_cast<int64_t>(number(env, l, "inputs", 0, true));
    s.activation = activation_of(env, l.Get("activation").IsString() ? l.Get("activation").As<Napi::String>().Utf8Value() : "?");
    s.input_dropout = static_cast<float>(number(env, l, "inputDropout", 0.0));
    s.drop_connect = static_cast<float>(number(env, l, "dropConnect", 0.0));
    s.use_bias = boolean(l, "useBias", true);
    s.csr = l.Get("format").IsString() && l.Get("format").As<Napi::String>().Utf8Value() == "csr";
    // restructure: a layer the change left as it was carries its shape and settings only.
    s.keep = values_optional && boolean(l, "keep", false);
    if (s.keep) {
      // A kept layer stays as the device has it: numbers or scales for it would be lost.
      for (const char* key : {"weight", "bias", "weightMoments", "biasMoments", "inputScale", "rowCopy", "inputCopy", "inputCopyScale",
                              "restartScale", "compensateInputs", "compensateMeans"})
        if (!l.Get(key).IsUndefined()) throw Napi::TypeError::New(env, "CudaModel: " + at + "keep is set, so " + key + " must be left out");
      if (strict_flag(env, l, "compensateNewWeights", at))
        throw Napi::TypeError::New(env, "CudaModel: " + at + "keep is set, so compensateNewWeights must be false");
      out.push_back(std::move(s));
      continue;
    }
    if (s.csr) {
      s.indptr = copy_of<int64_t>(typed<Napi::BigInt64Array>(env, l.Get("indptr"), napi_bigint64_array, at + "indptr", "BigInt64Array"));
      s.indices = copy_of<int32_t>(typed<Napi::Int32Array>(env, l.Get("indices"), napi_int32_array, at + "indices", "Int32Array"));
    }
    if (l.Get("mask").IsTypedArray())
      s.mask = copy_of<uint8_t>(typed<Napi::Uint8Array>(env, l.Get("mask"), napi_uint8_array, at + "mask", "Uint8Array"));
    if (l.Get("alive").IsTypedArray())
      s.alive = copy_of<uint8_t>(typed<Napi::Uint8Array>(env, l.Get("alive"), napi_uint8_array, at + "alive", "Uint8Array"));
    // Unit statistics: optional (zeros when absent).
    const std::pair<const char*, std::vector<double>*> stats[] = {
        {"meanAbsActivation", &s.mean_abs_activation}, {"meanActivation", &s.mean_activation}, {"taylor", &s.taylor}};
    for (const auto& [key, dst] : stats)
      if (!l.Get(key).IsUndefined())
        *dst = copy_of<double>(typed<Napi::Float64Array>(env, l.Get(key), napi_float64_array, at + key, "Float64Array"));
    s.stats_updates = static_cast<int64_t>(number(env, l, "statsUpdates", 0.0));
    if (!l.Get("inputScale").IsUndefined())
      s.input_scale = copy_of<float>(typed<Napi::Float32Array>(env, l.Get("inputScale"), napi_float32_array, at + "inputScale", "Float32Array"));
    if (values_optional && !l.Get("rowCopy").IsUndefined())
      s.row_copy = copy_of<int32_t>(typed<Napi::Int32Array>(env, l.Get("rowCopy"), napi_int32_array, at + "rowCopy", "Int32Array"));
    if (values_optional && !l.Get("inputCopy").IsUndefined())
      s.input_copy = copy_of<int32_t>(typed<Napi::Int32Array>(env, l.Get("inputCopy"), napi_int32_array, at + "inputCopy", "Int32Array"));
    if (values_optional && !l.Get("inputCopyScale").IsUndefined())
      s.input_copy_scale =
          copy_of<float>(typed<Napi::Float32Array>(env, l.Get("inputCopyScale"), napi_float32_array, at + "inputCopyScale", "Float32Array"));
    if (values_optional && !l.Get("restartScale").IsUndefined()) {
      if (!l.Get("restartScale").IsNumber()) throw Napi::TypeError::New(env, "CudaModel: " + at + "restartScale must be a number");
      s.restart_scale = l.Get("restartScale").As<Napi::Number>().FloatValue();
    }
    s.compensate_new_weights = values_optional && strict_flag(env, l, "compensateNewWeights", at);
    if (values_optional && !l.Get("compensateInputs").IsUndefined())
      s.compensate_inputs = copy_of<int32_t>(typed<Napi::Int32Array>(env, l.Get("compensateInputs"), napi_int32_array, at + "compensateInputs", "Int32Array"));
    if (values_optional && !l.Get("compensateMeans").IsUndefined())
      s.compensate_means = copy_of<double>(typed<Napi::Float64Array>(env, l.Get("compensateMeans"), napi_float64_array, at + "compensateMeans", "Float64Array"));
    if (values_optional && l.Get("weight").IsUndefined()) {
      out.push_back(std::move(s));
      continue;
    }
    s.weight = copy_of<float>(typed<Napi::Float32Array>(env, l.Get("weight"), napi_float32_array, at + "weight", "Float32Array"));
    s.bias = copy_of<float>(typed<Napi::Float32Array>(env, l.Get("bias"), napi_float32_array, at + "bias", "Float32Array"));
    for (const char* key : {"weightMoments", "biasMoments"}) {
      Napi::Value mv = l.Get(key);
      if (!mv.IsArray()) throw Napi::TypeError::New(env, "CudaModel: " + at + key + " must be an array");
      Napi::Array m = mv.As<Napi::Array>();
      auto& dst = std::string(key) == "weightMoments" ? s.weight_moments : s.bias_moments;
      for (uint32_t k = 0; k < m.Length(); ++k)
        dst.push_back(copy_of<float>(typed<Napi::Float32Array>(env, m.Get(k), napi_float32_array, at + key, "Float32Array")));
    }
    out.push_back(std::move(s));
  }
  return out;
}

// x (n x inputs) and y (labels or n x outputs targets), copied and checked on the JS thread.
struct HostData {
  int64_t n = 0;
  std::vector<float> x;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  bool has_labels = false;
};

HostData data_of(const Napi::CallbackInfo& info, const nc::CudaModel& m, bool with_targets) {
  Napi::Env env = info.Env();
  HostData d;
  auto x = typed<Napi::Float32Array>(env, info[0], napi_float32_array, "x", "Float32Array");
  const int64_t in = m.input_size(), len = static_cast<int64_t>(x.ElementLength());
  if (len == 0 || len % in != 0)
    throw Napi::RangeError::New(env, "CudaModel: x has " + std::to_string(len) + " elements, not a positive multiple of inputSize " + std::to_string(in));
  d.n = len / in;
  d.x = copy_of<float>(x);
  for (int64_t i = 0; i < len; ++i)
    if (!std::isfinite(d.x[i]))
      throw Napi::RangeError::New(env, "x[" + std::to_string(i) + "] (sample " + std::to_string(i / in) + ") is not finite; inputs must be finite");
  if (!with_targets) return d;
  if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto y = info[1].As<Napi::Int32Array>();
    if (static_cast<int64_t>(y.ElementLength()) != d.n)
      throw Napi::RangeError::New(env, "y has " + std::to_string(y.ElementLength()) + " labels for " + std::to_string(d.n) + " samples");
    d.labels = copy_of<int32_t>(y);
    d.has_labels = true;
    if (m.loss() != nc::CudaLossKind::kSoftmaxCrossEntropy)
      throw Napi::TypeError::New(env, "integer class labels need the 'softmaxCrossEntropy' loss; use Float32Array targets for 'meanSquaredError'");
    for (int64_t j = 0; j < d.n; ++j)
      if (d.labels[j] < 0 || d.labels[j] >= m.output_size())
        throw Napi::RangeError::New(env, "label " + std::to_string(d.labels[j]) + " of sample " + std::to_string(j) +
                                             " is out of range [0, " + std::to_string(m.output_size()) + ")");
  } else if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto y = info[1].As<Napi::Float32Array>();
    if (static_cast<int64_t>(y.ElementLength()) != d.n * m.output_size())
      throw Napi::RangeError::New(env, "y has " + std::to_string(y.ElementLength()) + " values, expected " +
                                           std::to_string(d.n * m.output_size()) + " (samples x outputs)");
    d.targets = copy_of<float>(y);
    for (float v : d.targets)
      if (!std::isfinite(v)) throw Napi::RangeError::New(env, "y holds a value that is not finite; targets must be finite");
  } else {
    throw Napi::TypeError::New(env, "y must be an Int32Array or Float32Array");
  }
  return d;
}

// A layer's per-unit statistics on its JS object (exportState, exportStats).
void set_stats(Napi::Env env, Napi::Object& o, const nc::CudaLayerState& l) {
  o.Set("meanAbsActivation", npb::float64_array(env, l.mean_abs_activation));
  o.Set("meanActivation", npb::float64_array(env, l.mean_activation));
  o.Set("taylor", npb::float64_array(env, l.taylor));
  o.Set("statsUpdates", Napi::Number::New(env, static_cast<double>(l.stats_updates)));
}

Napi::Object totals_object(Napi::Env env, const nc::CudaTotals& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("lossSum", t.loss_sum);
  o.Set("correct", static_cast<double>(t.correct));
  o.Set("samples", static_cast<double>(t.samples));
  return o;
}

class CudaModelWrap;

// One async operation on the model: claims it, runs Work() off the JS thread,
// settles a Promise.
class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, CudaModelWrap* wrap, const char* op);
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() final {
    if (!capture(failure_, [&] { Work(); })) SetError(failure_.message);
  }
  void OnOK() final;
  void OnError(const Napi::Error&) final;
  virtual void Work() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

  // Members initialise in this order: the reference and the promise (either
  // may throw when out of memory) before model_, whose initialiser claims the
  // model, so a failed construction never leaves the model marked busy.
  CudaModelWrap* wrap_;
  Napi::ObjectReference ref_;
  Napi::Promise::Deferred deferred_;
  nc::CudaModel& model_;
  Failure failure_;
};

class CudaModelWrap : public Napi::ObjectWrap<CudaModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CudaModel",
                       {InstanceMethod("load", &CudaModelWrap::Load), InstanceMethod("exportState", &CudaModelWrap::ExportState),
                        InstanceMethod("restructure", &CudaModelWrap::Restructure),
                        InstanceMethod("setValues", &CudaModelWrap::SetValues),
                        InstanceMethod("magnitudeDrops", &CudaModelWrap::MagnitudeDrops),
                        InstanceMethod("neuronScores", &CudaModelWrap::NeuronScores),
                        InstanceMethod("gradientGrowth", &CudaModelWrap::GradientGrowth),
                        InstanceMethod("gradmaxProduct", &CudaModelWrap::GradmaxProduct),
                        InstanceMethod("unitUtility", &CudaModelWrap::UnitUtility),
                        InstanceMethod("exportStats", &CudaModelWrap::ExportStats),
                        InstanceMethod("setOptimizer", &CudaModelWrap::SetOptimizer),
                        InstanceMethod("setStatsDecay", &CudaModelWrap::SetStatsDecay),
                        InstanceMethod("createDataset", &CudaModelWrap::CreateDataset),
                        InstanceMethod("releaseDataset", &CudaModelWrap::ReleaseDataset),
                        InstanceMethod("trainBatches", &CudaModelWrap::TrainBatches),
                        InstanceMethod("evaluate", &CudaModelWrap::Evaluate), InstanceMethod("predict", &CudaModelWrap::Predict),
                        InstanceMethod("requestAbort", &CudaModelWrap::RequestAbort),
                        InstanceMethod("dispose", &CudaModelWrap::Dispose),
                        InstanceAccessor("step", &CudaModelWrap::Step, nullptr),
                        InstanceAccessor("busy", &CudaModelWrap::Busy, nullptr),
                        InstanceAccessor("deviceBytes", &CudaModelWrap::DeviceBytes, nullptr)});
  }

  explicit CudaModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaModelWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "CudaModel: config must be an object");
    Napi::Object c = info[0].As<Napi::Object>();
    nc::CudaModelConfig config;
    config.input_size = static_cast<int64_t>(number(env, c, "inputSize", 0, true));
    config.dropout_seed = static_cast<uint64_t>(number(env, c, "seed", 0));
    config.stats_decay = number(env, c, "statsDecay", 0.99);
    config.device = static_cast<int>(number(env, c, "device", 0));
    const std::string loss = c.Get("loss").IsString() ? c.Get("loss").As<Napi::String>().Utf8Value() : "";
    if (loss == "softmaxCrossEntropy") config.loss = nc::CudaLossKind::kSoftmaxCrossEntropy;
    else if (loss == "meanSquaredError") config.loss = nc::CudaLossKind::kMeanSquaredError;
    else throw Napi::RangeError::New(env, "CudaModel: loss must be 'softmaxCrossEntropy' or 'meanSquaredError'");
    config.optimizer = optimizer_of(env, c.Get("optimizer"));
    int64_t step = 0;
    std::vector<nc::CudaLayerState> layers = layers_of(env, info[1], &step);
    on_js_thread(env, [&] { model_ = std::make_unique<nc::CudaModel>(config, step, std::move(layers)); });
  }

  nc::CudaModel& model() { return *model_; }
  void claim(Napi::Env env, const char* op) {
    if (!model_) throw Napi::Error::New(env, std::string("CudaModel.") + op + "(): the model was disposed");
    if (busy_) throw to_js_error(env, "ERR_NEUROPLASTIC_BUSY", std::string("CudaModel.") + op + "(): " + busy_ + "() is running on this model; await it first");
    busy_ = op;
  }
  void release() {
    busy_ = nullptr;
    // An abort request that arrived after the worker's last batch check is
    // dropped with the call, or it would stop the NEXT trainBatches() at once.
    if (model_) model_->abort_requested = false;
  }

 private:
  Napi::Value Load(const Napi::CallbackInfo& info) {
    idle(info.Env(), "load");
    int64_t step = 0;
    std::vector<nc::CudaLayerState> layers = layers_of(info.Env(), info[0], &step);
    idle(info.Env(), "load");  // again: a getter above may have disposed the model or started a call
    on_js_thread(info.Env(), [&] { model_->load(step, std::move(layers)); });
    return info.Env().Undefined();
  }

  Napi::Value Restructure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "restructure");
    int64_t step = 0;
    std::vector<nc::CudaLayerState> layers = layers_of(env, info[0], &step, true);
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "CudaModel: rowSources must be an array of Int32Array");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<std::vector<int32_t>> sources;
    for (uint32_t i = 0; i < arr.Length(); ++i)
      sources.push_back(copy_of<int32_t>(
          typed<Napi::Int32Array>(env, arr.Get(i), napi_int32_array, "rowSources[" + std::to_string(i) + "]", "Int32Array")));
    idle(env, "restructure");  // again: a getter above may have disposed the model or started a call
    on_js_thread(env, [&] { model_->restructure(std::move(layers), sources); });
    return env.Undefined();
  }

  Napi::Value SetValues(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "setValues");
    const Napi::Value given = info[0].IsObject() ? info[0].As<Napi::Object>().Get("layers") : Napi::Value();
    if (given.IsEmpty() || !given.IsArray()) throw Napi::TypeError::New(env, "CudaModel: setValues takes { layers: [...] }");
    Napi::Array arr = given.As<Napi::Array>();
    std::vector<nc::CudaLayerValues> layers;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const Napi::Value item = arr.Get(i);
      if (!item.IsObject()) throw Napi::TypeError::New(env, "CudaModel: setValues layers[i] must be objects");
      Napi::Object l = item.As<Napi::Object>();
      const std::string at = "layers[" + std::to_string(i) + "].";
      nc::CudaLayerValues v;
      // Copies, each made as its array is read: a later getter cannot change what was taken.
      auto floats = [&](const char* key) -> std::optional<std::vector<float>> {
        Napi::Value x = l.Get(key);
        if (x.IsUndefined()) return std::nullopt;
        return copy_of<float>(typed<Napi::Float32Array>(env, x, napi_float32_array, at + key, "Float32Array"));
      };
      auto lists = [&](const char* key) {
        std::vector<std::vector<float>> out;
        Napi::Value x = l.Get(key);
        if (x.IsUndefined()) return out;
        if (!x.IsArray()) throw Napi::TypeError::New(env, "CudaModel: " + at + key + " must be an array of Float32Array");
        Napi::Array a = x.As<Napi::Array>();
        for (uint32_t k = 0; k < a.Length(); ++k)
          out.push_back(copy_of<float>(typed<Napi::Float32Array>(env, a.Get(k), napi_float32_array, at + key, "Float32Array")));
        return out;
      };
      v.weight = floats("weight");
      v.bias = floats("bias");
      v.weight_moments = lists("weightMoments");
      v.bias_moments = lists("biasMoments");
      layers.push_back(std::move(v));
    }
    idle(env, "setValues");  // again: a getter above may have disposed the model or started a call
    on_js_thread(env, [&] { model_->set_values(layers); });
    return env.Undefined();
  }

  // magnitudeDrops(layers, { counts, global }) -> Uint32Array per listed layer:
  // the host's magnitude plan carried out on the device's weights (np::DropBits).
  Napi::Value MagnitudeDrops(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "magnitudeDrops");
    const std::vector<int64_t> layers = npb::integer_list(env, info[0], "CudaModel: layers", 0);
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "CudaModel: plan must be { counts, global }");
    Napi::Object p = info[1].As<Napi::Object>();
    np::MagnitudePlan plan;
    plan.counts = npb::integer_list(env, p.Get("counts"), "CudaModel: plan.counts", 0);
    plan.global = npb::integer_value(env, p.Get("global"), "CudaModel: plan.global", -1);
    idle(env, "magnitudeDrops");  // again: a getter above may have disposed the model or started a call
    std::vector<np::DropBits> drops;
    on_js_thread(env, [&] { drops = model_->magnitude_drops(layers, plan); });
    return npb::uint32_arrays(env, drops);
  }

  // neuronScores(layer, criterion) -> Float64Array: neuron pruning's scores from the device's numbers.
  Napi::Value NeuronScores(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "neuronScores");
    const int64_t layer = npb::integer_value(env, info[0], "CudaModel: layer", 0);
    if (!info[1].IsString()) throw Napi::TypeError::New(env, "CudaModel: criterion must be a string");
    const std::string criterion = info[1].As<Napi::String>().Utf8Value();
    std::vector<double> scores;
    on_js_thread(env, [&] { scores = model_->neuron_scores(layer, criterion); });
    return npb::float64_array(env, scores);
  }

  // gradientGrowth(x, y, layers, counts) -> Float64Array of positions per listed layer: RigL's choice on the device.
  Napi::Value GradientGrowth(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "gradientGrowth");
    HostData d = data_of(info, *model_, true);
    const std::vector<int64_t> layers = npb::integer_list(env, info[2], "CudaModel: layers", 0);
    const std::vector<int64_t> counts = npb::integer_list(env, info[3], "CudaModel: counts", 0);
    idle(env, "gradientGrowth");  // again: a getter above may have disposed the model or started a call
    std::vector<std::vector<int64_t>> grows;
    on_js_thread(env, [&] {
      grows = model_->gradient_growth(layers, counts, d.x.data(), d.has_labels ? d.labels.data() : nullptr,
                                      d.has_labels ? nullptr : d.targets.data(), d.n);
    });
    return npb::position_arrays(env, grows);
  }

  // gradmaxProduct(x, y, layer) -> { m: Float32Array, weightSquares }: what gradmax reads to grow `layer`, on the device.
  Napi::Value GradmaxProduct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "gradmaxProduct");
    HostData d = data_of(info, *model_, true);
    const int64_t layer = npb::integer_value(env, info[2], "CudaModel: layer", 0);
    idle(env, "gradmaxProduct");  // again: a getter above may have disposed the model or started a call
    np::GradMaxProduct p;
    on_js_thread(env, [&] {
      p = model_->gradmax_product(layer, d.x.data(), d.has_labels ? d.labels.data() : nullptr,
                                  d.has_labels ? nullptr : d.targets.data(), d.n);
    });
    return npb::gradmax_product_object(env, p.m, p.weight_squares);
  }

  // unitUtility(layer) -> Float64Array: continual backprop's utility from the device's numbers.
  Napi::Value UnitUtility(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "unitUtility");
    const int64_t layer = npb::integer_value(env, info[0], "CudaModel: layer", 0);
    std::vector<double> u;
    on_js_thread(env, [&] { u = model_->unit_utility(layer); });
    return npb::float64_array(env, u);
  }

  // exportStats() -> { step, layers: [{ meanAbsActivation, meanActivation, taylor, statsUpdates }] }
  Napi::Value ExportStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "exportStats");
    std::vector<nc::CudaLayerState> layers;
    on_js_thread(env, [&] { layers = model_->export_stats(); });
    Napi::Array arr = Napi::Array::New(env, layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      set_stats(env, o, layers[i]);
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return state_object(env, arr);
  }

  Napi::Value SetStatsDecay(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "setStatsDecay");
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "CudaModel: decay must be a number");
    const double decay = info[0].As<Napi::Number>().DoubleValue();
    on_js_thread(env, [&] { model_->set_stats_decay(decay); });
    return env.Undefined();
  }

  Napi::Value ExportState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    idle(env, "exportState");
    std::vector<nc::CudaLayerState> layers;
    // exportState(false): weights and biases only (empty moment lists).
    const bool with_moments = !(info.Length() > 0 && info[0].IsBoolean() && !info[0].As<Napi::Boolean>().Value());
    on_js_thread(env, [&] { layers = model_->export_layers(with_moments); });
    auto floats = [&](const std::vector<float>& v) {
      auto a = Napi::Float32Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      return a;
    };
    Napi::Array arr = Napi::Array::New(env, layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("weight", floats(layers[i].weight));
      o.Set("bias", floats(layers[i].bias));
      Napi::Array wm = Napi::Array::New(env), bm = Napi::Array::New(env);
      for (size_t m = 0; m < layers[i].weight_moments.size(); ++m) {
        wm.Set(static_cast<uint32_t>(m), floats(layers[i].weight_moments[m]));
        bm.Set(static_cast<uint32_t>(m), floats(layers[i].bias_moments[m]));
      }
      o.Set("weightMoments", wm);
      o.Set("biasMoments", bm);
      set_stats(env, o, layers[i]);
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return state_object(env, arr);
  }

  Napi::Value SetOptimizer(const Napi::CallbackInfo& info) {
    idle(info.Env(), "setOptimizer");
    nc::CudaOptimizer o = optimizer_of(info.Env(), info[0]);
    on_js_thread(info.Env(), [&] { model_->set_optimizer(o); });
    return info.Env().Undefined();
  }

  Napi::Value CreateDataset(const Napi::CallbackInfo& info) {
    idle(info.Env(), "createDataset");
    HostData d = data_of(info, *model_, true);
    int64_t handle = 0;
    on_js_thread(info.Env(), [&] {
      handle = model_->add_dataset(d.x.data(), d.n, d.has_labels ? d.labels.data() : nullptr,
                                   d.has_labels ? nullptr : d.targets.data());
    });
    return Napi::Number::New(info.Env(), static_cast<double>(handle));
  }

  Napi::Value ReleaseDataset(const Napi::CallbackInfo& info) {
    // Refused while a worker runs: trainBatches holds a reference to the
    // dataset (host struct and device buffers), so erasing it meanwhile would
    // be a use-after-free on both sides (and a map mutated across threads).
    if (model_ && busy_) idle(info.Env(), "releaseDataset");
    if (model_ && info[0].IsNumber()) model_->release_dataset(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  }

  Napi::Value TrainBatches(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);

  Napi::Value RequestAbort(const Napi::CallbackInfo& info) {
    // Only while a call runs (as the CPU model's binding): fit() also calls this
    // from an AbortSignal between two calls, and a flag left set there would
    // abort the model's next fit() at its first batch.
    if (model_ && busy_) model_->abort_requested = true;
    return info.Env().Undefined();
  }

  // Frees the device memory now instead of at garbage collection.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    idle(info.Env(), "dispose");
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->step()) : 0.0);
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) {
    return busy_ ? Napi::Value(Napi::String::New(info.Env(), busy_)) : info.Env().Null();
  }
  Napi::Value DeviceBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? static_cast<double>(model_->parameter_bytes()) : 0.0);
  }

  // { step, layers } (exportState, exportStats): the layers with the device's step.
  Napi::Object state_object(Napi::Env env, Napi::Array layers) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("step", static_cast<double>(model_->step()));
    out.Set("layers", layers);
    return out;
  }

  void idle(Napi::Env env, const char* op) {
    if (!model_) throw Napi::Error::New(env, std::string("CudaModel.") + op + "(): the model was disposed");
    if (busy_) throw to_js_error(env, "ERR_NEUROPLASTIC_BUSY", std::string("CudaModel.") + op + "(): " + busy_ + "() is running on this model; await it first");
  }

  std::unique_ptr<nc::CudaModel> model_;
  const char* busy_ = nullptr;
};

Worker::Worker(Napi::Env env, CudaModelWrap* wrap, const char* op)
    : Napi::AsyncWorker(env, op),
      wrap_(wrap),
      ref_(Napi::Persistent(wrap->Value())),
      deferred_(Napi::Promise::Deferred::New(env)),
      model_((wrap->claim(env, op), wrap->model())) {}

void Worker::OnOK() {
  wrap_->release();
  Napi::HandleScope scope(Env());
  deferred_.Resolve(Result(Env()));
}

void Worker::OnError(const Napi::Error&) {
  wrap_->release();
  Napi::HandleScope scope(Env());
  deferred_.Reject(to_js_error(Env(), failure_.code.c_str(), failure_.message, failure_.range).Value());
}

struct Progress {
  int64_t steps;
  nc::CudaTotals totals;
};

class TrainWorker : public Worker {
 public:
  TrainWorker(Napi::Env env, CudaModelWrap* wrap, int64_t dataset, std::vector<int32_t> order, int64_t first,
              int64_t count, int64_t batch_size)
      : Worker(env, wrap, "trainBatches"), dataset_(dataset), order_(std::move(order)), first_(first), count_(count),
        batch_size_(batch_size) {}
  void set_progress(Napi::ThreadSafeFunction fn) {
    tsfn_ = fn;
    has_progress_ = true;
  }

 protected:
  void Work() override {
    struct Release {
      TrainWorker* w;
      ~Release() {
        if (w->has_progress_) w->tsfn_.Release();
      }
    } guard{this};
    std::function<void(int64_t, const nc::CudaTotals&)> report;
    if (has_progress_) {
      report = [this](int64_t steps, const nc::CudaTotals& t) {
        auto* p = new Progress{steps, t};
        napi_status st = tsfn_.NonBlockingCall(p, [](Napi::Env env, Napi::Function fn, Progress* p) {
          std::unique_ptr<Progress> owned(p);
          if (env != nullptr && fn != nullptr)
            fn.Call({Napi::Number::New(env, static_cast<double>(p->steps)), Napi::Number::New(env, p->totals.loss_sum),
                     Napi::Number::New(env, static_cast<double>(p->totals.correct)),
                     Napi::Number::New(env, static_cast<double>(p->totals.samples))});
        });
        if (st != napi_ok) delete p;
      };
    }
    nc::set_device(model_.device());
    result_ = model_.train(dataset_, order_.data(), first_, count_, batch_size_, report);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = totals_object(env, result_.totals);
    o.Set("steps", static_cast<double>(result_.steps));
    o.Set("aborted", result_.aborted);
    return o;
  }

 private:
  int64_t dataset_;
  std::vector<int32_t> order_;
  int64_t first_, count_, batch_size_;
  Napi::ThreadSafeFunction tsfn_;
  bool has_progress_ = false;
  nc::CudaTrainResult result_;
};

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("CudaModel: ") + name + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || v != std::floor(v))
    throw Napi::RangeError::New(info.Env(), std::string("CudaModel: ") + name + " must be an integer in [" + std::to_string(lo) +
                                                ", " + std::to_string(hi) + "], got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

Napi::Value CudaModelWrap::TrainBatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  idle(env, "trainBatches");
  const int64_t handle = int_arg(info, 0, "dataset", 0, INT32_MAX);
  const int64_t n = model_->dataset_size(handle);
  if (n < 0) throw Napi::RangeError::New(env, "CudaModel: dataset is not a live handle from createDataset() on this model");
  auto order = typed<Napi::Int32Array>(env, info[1], napi_int32_array, "order", "Int32Array");
  if (static_cast<int64_t>(order.ElementLength()) != n)
    throw Napi::RangeError::New(env, "CudaModel: order must have " + std::to_string(n) + " entries");
  for (int64_t i = 0; i < n; ++i)
    if (order.Data()[i] < 0 || order.Data()[i] >= n)
      throw Napi::RangeError::New(env, "CudaModel: order[" + std::to_string(i) + "] is out of range");
  const int64_t batch_size = int_arg(info, 4, "batchSize", 1, 1 << 30);
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const int64_t first = int_arg(info, 2, "firstBatch", 0, batches);
  const int64_t count = int_arg(info, 3, "batchCount", 0, batches - first);
  // The worker claims the model; if making the progress callback fails (out
  // of memory), the worker never runs, so the claim is dropped with it.
  std::unique_ptr<TrainWorker> worker(new TrainWorker(env, this, handle, copy_of<int32_t>(order), first, count, batch_size));
  if (info.Length() > 5 && info[5].IsFunction()) {
    try {
      worker->set_progress(Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "neuroplastic.cuda.progress", 0, 1));
    } catch (...) {
      release();
      throw;
    }
  }
  Napi::Promise p = worker->promise();
  worker.release()->Queue();  // napi owns it from here and deletes it when done
  return p;
}

class EvaluateWorker : public Worker {
 public:
  EvaluateWorker(Napi::Env env, CudaModelWrap* wrap, HostData data, int64_t batch_size)
      : Worker(env, wrap, "evaluate"), data_(std::move(data)), batch_size_(batch_size) {}

 protected:
  void Work() override {
    nc::set_device(model_.device());
    totals_ = model_.evaluate(data_.x.data(), data_.has_labels ? data_.labels.data() : nullptr,
                              data_.has_labels ? nullptr : data_.targets.data(), data_.n, batch_size_);
  }
  Napi::Value Result(Napi::Env env) override { return totals_object(env, totals_); }

 private:
  HostData data_;
  int64_t batch_size_;
  nc::CudaTotals totals_;
};

class PredictWorker : public Worker {
 public:
  PredictWorker(Napi::Env env, CudaModelWrap* wrap, HostData data, int64_t batch_size)
      : Worker(env, wrap, "predict"), data_(std::move(data)), batch_size_(batch_size) {}

 protected:
  // The output is allocated on the worker thread: running out of host memory
  // rejects the promise and releases the model instead of terminating.
  void Work() override {
    out_.resize(static_cast<size_t>(data_.n * model_.output_size()));
    nc::set_device(model_.device());
    model_.predict(data_.x.data(), data_.n, out_.data(), batch_size_);
  }
  Napi::Value Result(Napi::Env env) override {
    auto a = Napi::Float32Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), a.Data());
    return a;
  }

 private:
  HostData data_;
  int64_t batch_size_;
  std::vector<float> out_;
};

Napi::Value CudaModelWrap::Evaluate(const Napi::CallbackInfo& info) {
  idle(info.Env(), "evaluate");
  HostData d = data_of(info, *model_, true);
  const int64_t batch_size = int_arg(info, 2, "batchSize", 1, 1 << 30);
  auto* w = new EvaluateWorker(info.Env(), this, std::move(d), batch_size);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value CudaModelWrap::Predict(const Napi::CallbackInfo& info) {
  idle(info.Env(), "predict");
  HostData d = data_of(info, *model_, false);
  const int64_t batch_size = int_arg(info, 1, "batchSize", 1, 1 << 30);
  auto* w = new PredictWorker(info.Env(), this, std::move(d), batch_size);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

namespace npc {

void init_cuda_model(Napi::Env env, Napi::Object exports) { exports.Set("CudaModel", CudaModelWrap::Define(env)); }

}  // namespace npc
