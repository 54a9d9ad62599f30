// NativeModel's growth and plasticity methods: dropin, sparse initialisation,
// drop-and-regrow, continual backprop and ReDo. Synchronous and refused while
// an async operation runs (structure changes only at step boundaries).
#include <algorithm>
#include <optional>
#include <string>

#include "binding/args.h"
#include "binding/decision_args.h"
#include "binding/model_wrap.h"
#include "kernels/thread_pool.h"

namespace npb {

namespace {

// An optional batch (x, y) at info[index], info[index + 1]: the samples whose
// gradient gradmax growth and RigL regrowth read instead of the last training batch.
struct SignalBatch {
  const float* x = nullptr;
  np::Targets targets;
  int64_t n = 0;
};

SignalBatch signal_batch_arg(const Napi::CallbackInfo& info, size_t index, const np::Model& model) {
  Napi::Env env = info.Env();
  SignalBatch b;
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return b;
  auto xs = typed_arg<float>(info, index, "x", -1, napi_float32_array, "Float32Array");
  const int64_t in = model.input_size();
  if (xs.ElementLength() == 0 || static_cast<int64_t>(xs.ElementLength()) % in != 0)
    throw Napi::RangeError::New(env, "x must hold a positive multiple of inputSize values");
  b.n = static_cast<int64_t>(xs.ElementLength()) / in;
  b.x = xs.Data();
  if (info.Length() <= index + 1 || !info[index + 1].IsTypedArray())
    throw Napi::TypeError::New(env, "y must be an Int32Array or Float32Array (x was given)");
  auto t = info[index + 1].As<Napi::TypedArray>();
  if (t.TypedArrayType() == napi_int32_array && static_cast<int64_t>(t.ElementLength()) == b.n) {
    b.targets.labels = t.As<Napi::Int32Array>().Data();
  } else if (t.TypedArrayType() == napi_float32_array && static_cast<int64_t>(t.ElementLength()) == b.n * model.output_size()) {
    b.targets.values = t.As<Napi::Float32Array>().Data();
  } else {
    throw Napi::RangeError::New(env, "y must hold one label per sample (Int32Array) or samples x outputs targets (Float32Array)");
  }
  return b;
}

}  // namespace

// grow(layer, count, init, noise, x?, y?, product?) -> Float64Array of the new
// neuron ids. product: gradmax's { m, weightSquares }, read where the weights
// are (a GPU model's gradmaxProduct), instead of this model's own.
Napi::Value ModelWrap::Grow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "grow");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  const int64_t count = int_arg(info, 1, "count", 1, 1 << 20);
  if (info.Length() <= 2 || !info[2].IsString()) throw Napi::TypeError::New(env, "init must be a string");
  const std::string init_name = info[2].As<Napi::String>().Utf8Value();
  np::GrowInit init;
  if (init_name == "zero") init = np::GrowInit::kZero;
  else if (init_name == "net2wider") init = np::GrowInit::kNet2Wider;
  else if (init_name == "gradmax") init = np::GrowInit::kGradMax;
  else if (init_name == "random") init = np::GrowInit::kRandom;
  else throw Napi::RangeError::New(env, "init must be 'zero', 'net2wider', 'gradmax' or 'random'");
  if (info.Length() <= 3 || !info[3].IsNumber()) throw Napi::TypeError::New(env, "noise must be a number");
  const double noise = info[3].As<Napi::Number>().DoubleValue();
  const SignalBatch batch = signal_batch_arg(info, 4, *model_);
  std::optional<np::GradMaxProduct> product;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (init != np::GrowInit::kGradMax) throw Napi::TypeError::New(env, "product is gradmax's; init is '" + init_name + "'");
    product.emplace();
    npb::gradmax_product_of(env, info[6], "product", &product->m, &product->weight_squares);
  }
  auto ids = model_->grow_units(layer, count, init, noise, batch.x, batch.x ? &batch.targets : nullptr, batch.n,
                                &np::default_pool(), product ? &*product : nullptr);
  auto out = Napi::Float64Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = static_cast<double>(ids[i]);
  return out;
}

// lastSplit() -> { layer, units: Int32Array, shares: Float32Array }: the
// source units of the last net2wider growth and the share of its outgoing
// weights each kept (layer -1 after any other growth).
Napi::Value ModelWrap::LastSplit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const np::Model::UnitSplit& split = model_->last_split();
  auto units = Napi::Int32Array::New(env, split.shares.size());
  auto shares = Napi::Float32Array::New(env, split.shares.size());
  for (size_t i = 0; i < split.shares.size(); ++i) {
    units[i] = static_cast<int32_t>(split.shares[i].first);
    shares[i] = split.shares[i].second;
  }
  auto copies = Napi::Int32Array::New(env, split.copies.size());
  auto copy_shares = Napi::Float32Array::New(env, split.copies.size());
  for (size_t k = 0; k < split.copies.size(); ++k) {
    copies[k] = static_cast<int32_t>(split.copies[k].first);
    copy_shares[k] = split.copies[k].second;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("layer", Napi::Number::New(env, static_cast<double>(split.layer)));
  out.Set("units", units);
  out.Set("shares", shares);
  out.Set("copies", copies);
  out.Set("copyShares", copy_shares);
  return out;
}

// gradmaxProduct(layer, x?, y?) -> { m: Float32Array, weightSquares }: what
// grow({ init: 'gradmax' }) reads of the network (Model::gradmax_product),
// from x / y or the kept last batch.
Napi::Value ModelWrap::GradmaxProduct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "gradmaxProduct");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 2);
  const SignalBatch batch = signal_batch_arg(info, 1, *model_);
  const np::GradMaxProduct p =
      model_->gradmax_product(layer, batch.x, batch.x ? &batch.targets : nullptr, batch.n, &np::default_pool());
  return npb::gradmax_product_object(env, p.m, p.weight_squares);
}

// lastRescales() -> { layers: Int32Array, scales: Float32Array }: the layers
// the last sparsify thinned and the factor of each one's kept weights.
Napi::Value ModelWrap::LastRescales(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& all = model_->last_rescales();
  auto layers = Napi::Int32Array::New(env, all.size());
  auto scales = Napi::Float32Array::New(env, all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    layers[i] = static_cast<int32_t>(all[i].layer);
    scales[i] = all[i].scale;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("layers", layers);
  out.Set("scales", scales);
  return out;
}

// sparsify(sparsity, 'erdos-renyi' | 'uniform', layers?)
Napi::Value ModelWrap::Sparsify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "sparsify");
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) throw Napi::TypeError::New(env, "sparsify(sparsity, distribution)");
  const double sparsity = info[0].As<Napi::Number>().DoubleValue();
  const std::string dist = info[1].As<Napi::String>().Utf8Value();
  if (dist != "erdos-renyi" && dist != "uniform") throw Napi::RangeError::New(env, "distribution must be 'erdos-renyi' or 'uniform'");
  std::vector<int64_t> layers;
  if (info.Length() > 2 && !info[2].IsUndefined()) layers = layer_list_arg(info, 2);
  model_->sparsify(sparsity, dist == "erdos-renyi", layers, &np::default_pool());
  return env.Undefined();
}

// Positions per listed layer (an array of Float64Array of integers), or nullopt when undefined.
static std::optional<std::vector<std::vector<int64_t>>> positions_arg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || info[index].IsUndefined()) return std::nullopt;
  std::vector<std::vector<int64_t>> out;
  for (const std::vector<double>& list : float64_lists(env, info[index], "grows")) {
    std::vector<int64_t> p;
    for (double d : list) {
      if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d)))
        throw Napi::RangeError::New(env, "grows must hold non-negative integer positions");
      p.push_back(static_cast<int64_t>(d));
    }
    out.push_back(std::move(p));
  }
  return out;
}

// regrow(layers, dropFraction, byGradient, x?, y?, drops?, grows?) -> number regrown; x/y:
// RigL's batch instead of the last training batch (a GPU model's stays on the
// device); drops / grows: which weights to drop and (RigL) where to grow,
// decided where the weights are
Napi::Value ModelWrap::Regrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "regrow");
  auto layers = layer_list_arg(info, 0);
  if (info.Length() < 3 || !info[1].IsNumber()) throw Napi::TypeError::New(env, "dropFraction must be a number");
  const double fraction = info[1].As<Napi::Number>().DoubleValue();
  const bool by_gradient = bool_arg(info, 2, "byGradient");
  const SignalBatch batch = signal_batch_arg(info, 3, *model_);
  const auto drops = drops_arg(info, 5, layers.size());
  const auto grows = positions_arg(info, 6);
  return Napi::Number::New(env, static_cast<double>(model_->regrow(layers, fraction, by_gradient, &np::default_pool(), batch.x,
                                                                   batch.x ? &batch.targets : nullptr, batch.n,
                                                                   drops ? &*drops : nullptr, grows ? &*grows : nullptr)));
}

// gradientGrowth(layers, counts, x?, y?) -> Float64Array per listed layer: RigL's
// choice (the counts[i] open positions with the largest |dL/dw|) without the
// change, on the kept batch or x/y; the reference for a GPU model's choice.
Napi::Value ModelWrap::GradientGrowth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "gradientGrowth");
  auto layers = layer_list_arg(info, 0);
  const std::vector<int64_t> counts = integer_list(env, info.Length() > 1 ? info[1] : env.Undefined(), "counts", 0);
  const SignalBatch batch = signal_batch_arg(info, 2, *model_);
  return position_arrays(env, model_->gradient_growth(layers, counts, &np::default_pool(), batch.x,
                                                      batch.x ? &batch.targets : nullptr, batch.n));
}

// setContinualBackprop(rate, maturity): rate 0 disables
Napi::Value ModelWrap::SetContinualBackprop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "continualBackprop");
  if (info.Length() < 2 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "rate must be a number");
  const double rate = info[0].As<Napi::Number>().DoubleValue();
  if (!(rate >= 0.0 && rate <= 1.0)) throw Napi::RangeError::New(env, "rate must be in [0, 1]");
  model_->set_continual_backprop(rate, int_arg(info, 1, "maturity", 0, INT64_C(1) << 52));
  return env.Undefined();
}

// Continual backprop for steps run on the GPU (lib/cuda_model.ts):
// continualBackpropDue(fromStep, max) -> steps until a round replaces a unit (0: not within max);
// continualBackpropSkip(fromStep, steps): the carry of rounds that replace nothing;
// continualBackpropStep() -> units replaced by the round at the current step.
Napi::Value ModelWrap::ContinualBackpropDue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "continualBackpropDue");
  const int64_t from = int_arg(info, 0, "fromStep", 0, INT64_C(1) << 52);
  const int64_t max = int_arg(info, 1, "max", 0, INT64_C(1) << 40);
  return Napi::Number::New(env, static_cast<double>(model_->continual_backprop_due(from, max)));
}

Napi::Value ModelWrap::ContinualBackpropSkip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "continualBackpropSkip");
  const int64_t from = int_arg(info, 0, "fromStep", 0, INT64_C(1) << 52);
  model_->continual_backprop_skip(from, int_arg(info, 1, "steps", 0, INT64_C(1) << 40));
  return env.Undefined();
}

// continualBackpropStep(utilities?) -> units replaced; utilities: one
// Float64Array per hidden layer computed where the numbers are (a GPU model's unitUtility)
Napi::Value ModelWrap::ContinualBackpropStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "continualBackpropStep");
  std::optional<std::vector<std::vector<double>>> utilities;
  if (info.Length() > 0 && !info[0].IsUndefined()) utilities = float64_lists(env, info[0], "utilities");
  const np::Model& m = *model_;
  return Napi::Number::New(env, static_cast<double>(model_->continual_backprop_step(m.cbp_rate(), m.cbp_maturity(),
                                                                                    utilities ? &*utilities : nullptr)));
}

// lastCompensations() -> [{ layer, units: Int32Array, means: Float64Array }]:
// the last continual-backprop round's bias compensations (Model::last_compensations)
Napi::Value ModelWrap::LastCompensations(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "lastCompensations");  // training rewrites it at every continual-backprop round
  const auto& all = model_->last_compensations();
  Napi::Array out = Napi::Array::New(env, all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("layer", Napi::Number::New(env, static_cast<double>(all[i].layer)));
    auto units = Napi::Int32Array::New(env, all[i].units.size());
    for (size_t k = 0; k < all[i].units.size(); ++k) units[k] = static_cast<int32_t>(all[i].units[k]);
    o.Set("units", units);
    o.Set("means", float64_array(env, all[i].means));
    o.Set("newWeights", Napi::Boolean::New(env, all[i].new_weights));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// redo(threshold) -> number of units reset
Napi::Value ModelWrap::Redo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "redo");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "threshold must be a number");
  const double threshold = info[0].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(env, static_cast<double>(model_->redo(threshold)));
}

// unitUtility(layer) -> Float64Array (continual-backprop utility; dead units -Infinity)
Napi::Value ModelWrap::UnitUtility(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "unitUtility");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  auto u = model_->unit_utility(layer);
  auto out = Napi::Float64Array::New(env, u.size());
  for (size_t i = 0; i < u.size(); ++i) out[i] = u[i];
  return out;
}

// unitStats(layer) -> { ages, meanAbsActivation, taylor }
Napi::Value ModelWrap::UnitStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "unitStats");
  const int64_t index = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  const np::DenseLayer& l = model_->layers()[index];
  auto ages = Napi::Float64Array::New(env, l.units);
  auto act = Napi::Float64Array::New(env, l.units);
  auto taylor = Napi::Float64Array::New(env, l.units);
  for (int64_t j = 0; j < l.units; ++j) {
    ages[static_cast<size_t>(j)] = static_cast<double>(model_->step() - (j < static_cast<int64_t>(l.birth_step.size()) ? l.birth_step[j] : 0));
    act[static_cast<size_t>(j)] = j < static_cast<int64_t>(l.stats.mean_abs_activation.size()) ? l.stats.mean_abs_activation[j] : 0.0;
    taylor[static_cast<size_t>(j)] = j < static_cast<int64_t>(l.stats.taylor.size()) ? l.stats.taylor[j] : 0.0;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ages", ages);
  o.Set("meanAbsActivation", act);
  o.Set("taylor", taylor);
  return o;
}

Napi::Value ModelWrap::SetKeepLastBatch(const Napi::CallbackInfo& info) {
  model_->set_keep_last_batch(bool_arg(info, 0, "keep"));
  return info.Env().Undefined();
}

Napi::Value ModelWrap::SetStatsDecay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "decay must be a number");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d > 0.0 && d < 1.0)) throw Napi::RangeError::New(env, "decay must be in (0, 1)");
  const double previous = model_->stats_decay();
  model_->set_stats_decay(d);
  return Napi::Number::New(env, previous);
}

}  // namespace npb
