// NativeModel's structural methods: pruning, compaction, storage formats,
// the event log and lottery-ticket snapshots. All synchronous, all refused
// while an async operation runs on the model (structure must only change at a
// step boundary).
#include <algorithm>
#include <optional>
#include <string>

#include "binding/args.h"
#include "binding/convert.h"
#include "binding/decision_args.h"
#include "binding/model_wrap.h"
#include "kernels/thread_pool.h"

namespace npb {

std::vector<int64_t> ModelWrap::layer_list_arg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsArray()) throw Napi::TypeError::New(env, "layers must be an array of layer indices");
  Napi::Array a = info[index].As<Napi::Array>();
  std::vector<int64_t> out;
  const int64_t count = static_cast<int64_t>(model_->layers().size());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "layers[" + std::to_string(i) + "] must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < count) || d != static_cast<double>(static_cast<int64_t>(d)))
      throw Napi::RangeError::New(env, "layers[" + std::to_string(i) + "] is not a dense layer index");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

static double fraction_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0.0 && v < 1.0)) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be in [0, 1)");
  return v;
}

std::optional<std::vector<np::DropBits>> ModelWrap::drops_arg(const Napi::CallbackInfo& info, size_t index, size_t layers) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || info[index].IsUndefined()) return std::nullopt;
  if (!info[index].IsArray()) throw Napi::TypeError::New(env, "drops must be an array of Uint32Array, one per layer");
  Napi::Array a = info[index].As<Napi::Array>();
  if (a.Length() != layers)
    throw Napi::RangeError::New(env, "drops has " + std::to_string(a.Length()) + " entries for " + std::to_string(layers) + " layers");
  std::vector<np::DropBits> out(layers);
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw Napi::TypeError::New(env, "drops[" + std::to_string(i) + "] must be a Uint32Array");
    auto words = v.As<Napi::Uint32Array>();
    out[i].assign(words.Data(), words.Data() + words.ElementLength());
  }
  return out;
}

// pruneWeights(layers, amount, global, drops?) -> number removed; drops: the
// decision made where the weights are (a GPU model's), per listed layer
Napi::Value ModelWrap::PruneWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "prune");
  auto layers = layer_list_arg(info, 0);
  const double amount = fraction_arg(info, 1, "amount");
  const bool global = bool_arg(info, 2, "global");
  const auto drops = drops_arg(info, 3, layers.size());
  return Napi::Number::New(env, static_cast<double>(model_->prune_weights_magnitude(layers, amount, global, drops ? &*drops : nullptr)));
}

// pruneWeightsToSparsity(layers, sparsity, global, drops?) -> number removed
Napi::Value ModelWrap::PruneWeightsToSparsity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "prune");
  auto layers = layer_list_arg(info, 0);
  const double sparsity = fraction_arg(info, 1, "sparsity");
  const bool global = bool_arg(info, 2, "global");
  const auto drops = drops_arg(info, 3, layers.size());
  return Napi::Number::New(env, static_cast<double>(model_->prune_weights_to_sparsity(layers, sparsity, global, drops ? &*drops : nullptr)));
}

// planMagnitudeDrops(kind, layers, value, global) -> { counts: number[], global: number }:
// how many stored weights a magnitude decision removes, from the structure
// alone (kind 'prune': pruneWeights' amount; 'sparsity': pruneWeightsToSparsity's;
// 'regrow': regrow's dropFraction, global ignored). global -1: per layer.
Napi::Value ModelWrap::PlanMagnitudeDrops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "planMagnitudeDrops");
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "kind must be a string");
  const std::string kind = info[0].As<Napi::String>().Utf8Value();
  auto layers = layer_list_arg(info, 1);
  np::MagnitudePlan plan;
  if (kind == "prune") plan = model_->plan_prune_weights(layers, fraction_arg(info, 2, "amount"), bool_arg(info, 3, "global"));
  else if (kind == "sparsity") plan = model_->plan_prune_to_sparsity(layers, fraction_arg(info, 2, "sparsity"), bool_arg(info, 3, "global"));
  else if (kind == "regrow") plan = model_->plan_regrow_drops(layers, fraction_arg(info, 2, "dropFraction"));
  else throw Napi::RangeError::New(env, "kind must be 'prune', 'sparsity' or 'regrow'");
  Napi::Object out = Napi::Object::New(env);
  Napi::Array counts = Napi::Array::New(env, plan.counts.size());
  for (uint32_t i = 0; i < plan.counts.size(); ++i) counts.Set(i, Napi::Number::New(env, static_cast<double>(plan.counts[i])));
  out.Set("counts", counts);
  out.Set("global", Napi::Number::New(env, static_cast<double>(plan.global)));
  return out;
}

// magnitudeDrops(layers, { counts, global }) -> Uint32Array per listed layer:
// what this model's own weights say a plan removes (the bits a GPU model's
// device computes from its weights; here for tests and stand-ins)
Napi::Value ModelWrap::MagnitudeDrops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "magnitudeDrops");
  auto layers = layer_list_arg(info, 0);
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "plan must be { counts, global }");
  Napi::Object p = info[1].As<Napi::Object>();
  np::MagnitudePlan plan;
  plan.global = integer_value(env, p.Get("global"), "plan.global", -1);
  plan.counts = integer_list(env, p.Get("counts"), "plan.counts", 0);
  if (plan.global < 0 && plan.counts.size() != layers.size())
    throw Napi::RangeError::New(env, "plan.counts has " + std::to_string(plan.counts.size()) + " entries for " +
                                         std::to_string(layers.size()) + " layers");
  // As a GPU model's device refuses them: counts over what the layers store (the host's cut would clamp).
  int64_t total = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (layers[i] == layers[j]) throw Napi::RangeError::New(env, "layer " + std::to_string(layers[i]) + " is listed twice");
    const int64_t stored = model_->layers()[static_cast<size_t>(layers[i])].nnz();
    total += stored;
    if (plan.global < 0 && plan.counts[i] > stored)
      throw Napi::RangeError::New(env, "plan.counts[" + std::to_string(i) + "] is over the " + std::to_string(stored) +
                                           " weights layer " + std::to_string(layers[i]) + " stores");
  }
  if (plan.global > total)
    throw Napi::RangeError::New(env, "plan.global is over the " + std::to_string(total) + " weights the layers store");
  return uint32_arrays(env, model_->magnitude_drops(layers, plan));
}

// pruneNeurons(layers, amount, criterion, global, scores?) -> number pruned
Napi::Value ModelWrap::PruneNeurons(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "prune");
  auto layers = layer_list_arg(info, 0);
  const double amount = fraction_arg(info, 1, "amount");
  if (info.Length() <= 2 || !info[2].IsString()) throw Napi::TypeError::New(env, "criterion must be a string");
  const std::string criterion = info[2].As<Napi::String>().Utf8Value();
  const bool global = bool_arg(info, 3, "global");
  // scores: one Float64Array per listed layer, computed where the numbers are (a GPU model's neuronScores).
  std::optional<std::vector<std::vector<double>>> scores;
  if (info.Length() > 4 && !info[4].IsUndefined()) scores = float64_lists(env, info[4], "scores");
  return Napi::Number::New(env, static_cast<double>(model_->prune_neurons(layers, amount, criterion, global, scores ? &*scores : nullptr)));
}

// neuronScores(layer, criterion) -> Float64Array (dead units: -Infinity)
Napi::Value ModelWrap::NeuronScores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "neuronScores");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  if (info.Length() <= 1 || !info[1].IsString()) throw Napi::TypeError::New(env, "criterion must be a string");
  const std::string criterion = info[1].As<Napi::String>().Utf8Value();
  auto scores = model_->neuron_scores(layer, criterion);
  auto out = Napi::Float64Array::New(env, scores.size());
  for (size_t i = 0; i < scores.size(); ++i) out[i] = scores[i];
  return out;
}

Napi::Value ModelWrap::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "compact");
  model_->compact(&np::default_pool());
  return env.Undefined();
}

// convertLayer(layer, 'csr' | 'dense')
Napi::Value ModelWrap::ConvertLayer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "convertLayer");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  if (info.Length() <= 1 || !info[1].IsString()) throw Napi::TypeError::New(env, "format must be a string");
  const std::string format = info[1].As<Napi::String>().Utf8Value();
  if (format == "csr") model_->convert_to_csr(layer, "requested");
  else if (format == "dense") model_->convert_to_dense(layer, "requested");
  else throw Napi::RangeError::New(env, "format must be 'csr' or 'dense'");
  return env.Undefined();
}

// setSparseThreshold(layer | -1, density): -1 sets the model default; a
// negative density means "measured crossover".
Napi::Value ModelWrap::SetSparseThreshold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "setSparseThreshold");
  const int64_t layer = int_arg(info, 0, "layer", -1, static_cast<int64_t>(model_->layers().size()) - 1);
  if (info.Length() <= 1 || !info[1].IsNumber()) throw Napi::TypeError::New(env, "density must be a number");
  const double density = info[1].As<Napi::Number>().DoubleValue();
  if (!(density <= 1.0)) throw Napi::RangeError::New(env, "density must be <= 1");
  if (layer < 0) model_->set_default_sparse_threshold(density);
  else model_->set_layer_sparse_threshold(layer, density);
  return env.Undefined();
}

// sparseThreshold(layer) -> the density below which the layer is stored as CSR
Napi::Value ModelWrap::SparseThreshold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "sparseThreshold");
  const int64_t layer = int_arg(info, 0, "layer", 0, static_cast<int64_t>(model_->layers().size()) - 1);
  return Napi::Number::New(env, model_->sparse_threshold(layer, &np::default_pool()));
}

// events(from) -> the structural events from index `from` of the whole
// history on (indices count the events the log's limit discarded; those are
// not returned)
Napi::Value ModelWrap::Events(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& events = model_->events();
  const int64_t from = info.Length() > 0 ? int_arg(info, 0, "from", 0, model_->event_count()) : 0;
  const size_t first = static_cast<size_t>(std::max<int64_t>(0, from - model_->events_dropped()));
  Napi::Array out = Napi::Array::New(env, events.size() - first);
  for (size_t i = first; i < events.size(); ++i) {
    out.Set(static_cast<uint32_t>(i - first), event_to_js(env, events[i]));
  }
  return out;
}

Napi::Value ModelWrap::SetEpoch(const Napi::CallbackInfo& info) {
  model_->set_epoch(int_arg(info, 0, "epoch", 0, INT64_C(1) << 52));
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "snapshot");
  model_->snapshot_weights();
  return Napi::Number::New(env, static_cast<double>(model_->step()));
}

Napi::Value ModelWrap::Rewind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "rewind");
  const int64_t step = int_arg(info, 0, "step", 0, INT64_C(1) << 52);
  model_->rewind(step);
  return env.Undefined();
}

Napi::Value ModelWrap::SnapshotSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto steps = model_->snapshot_steps();
  Napi::Array out = Napi::Array::New(env, steps.size());
  for (size_t i = 0; i < steps.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(steps[i]));
  return out;
}

}  // namespace npb
