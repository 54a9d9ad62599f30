// NativeModel.exportState() / importState(state): the checkpoint state as JS
// typed arrays (copies), for lib/checkpoint to write as safetensors. The
// import re-checks every size and CSR invariant in the core before applying.
#include <string>

#include "binding/args.h"
#include "binding/convert.h"
#include "binding/model_wrap.h"

namespace npb {

namespace {

template <typename T>
std::vector<T> from_js(Napi::Env env, Napi::Value v, napi_typedarray_type type, const std::string& name, bool optional = false) {
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, "state: " + name + " has the wrong array type");
  auto a = v.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<std::vector<float>> from_js_list(Napi::Env env, Napi::Value v, const std::string& name) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "state: " + name + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::vector<float>> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(from_js<float>(env, a.Get(i), napi_float32_array, name));
  return out;
}

double num(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("state: ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string str(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("state: ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace

np::StructuralEvent event_from_js(Napi::Env env, Napi::Value value, size_t index) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, "state: events[" + std::to_string(index) + "] must be an object");
  Napi::Object o = value.As<Napi::Object>();
  np::StructuralEvent e;
  e.step = static_cast<int64_t>(num(o, "step"));
  e.epoch = static_cast<int64_t>(num(o, "epoch"));
  e.kind = str(o, "kind");
  e.layer = static_cast<int64_t>(num(o, "layer"));
  e.criterion = str(o, "criterion");
  e.count = static_cast<int64_t>(num(o, "count"));
  e.density_before = num(o, "densityBefore");
  e.density_after = num(o, "densityAfter");
  for (const char* key : {"neuronIds", "scores"}) {
    Napi::Value list = o.Get(key);
    if (!list.IsArray()) throw Napi::TypeError::New(env, "state: events[" + std::to_string(index) + "]." + key + " must be an array");
    Napi::Array a = list.As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); ++k) {
      if (!a.Get(k).IsNumber()) throw Napi::TypeError::New(env, "state: event ids and scores must be numbers");
      const double v = a.Get(k).As<Napi::Number>().DoubleValue();
      if (key[0] == 'n') e.neuron_ids.push_back(static_cast<int64_t>(v));
      else e.scores.push_back(static_cast<float>(v));
    }
  }
  return e;
}

// exportState(valuesOf?): valuesOf, a list of layer indices, limits the
// numbers (weights, biases, their moments) to those layers; the others come
// with empty arrays (the structure without the cost of copying the numbers).
Napi::Value ModelWrap::ExportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "save");
  std::vector<bool> with_values(model_->layers().size(), true);
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    with_values.assign(with_values.size(), false);
    for (int64_t l : layer_list_arg(info, 0)) with_values[l] = true;
  }
  // The structure from the core, the numbers copied straight into the typed
  // arrays (one copy, not two: this is most of a checkpoint's time).
  const np::ModelState s = model_->export_state(std::vector<bool>(with_values.size(), false));
  const np::Model& model = *model_;
  auto slot_array = [&](size_t layer, bool bias, np::Slot slot) {
    auto a = Napi::Float32Array::New(env, static_cast<size_t>(bias ? model.layers()[layer].units : model.stored_weights(layer)));
    model.copy_slot(layer, bias, slot, a.Data());
    return a;
  };
  auto moments_array = [&](size_t layer, bool bias) {
    const int moments = with_values[layer] ? model.moment_slots() : 0;
    Napi::Array out = Napi::Array::New(env, moments);
    for (int m = 0; m < moments; ++m) out.Set(static_cast<uint32_t>(m), slot_array(layer, bias, static_cast<np::Slot>(2 + m)));
    return out;
  };
  auto empty = [&]() { return Napi::Float32Array::New(env, 0); };
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", static_cast<double>(s.step));
  o.Set("epoch", static_cast<double>(s.epoch));
  o.Set("nextNeuronId", static_cast<double>(s.next_neuron_id));
  auto rng = Napi::BigUint64Array::New(env, 4);
  for (int i = 0; i < 4; ++i) rng[i] = s.rng[i];
  o.Set("rng", rng);
  o.Set("rngHasSpare", s.rng_has_spare);
  o.Set("rngSpare", s.rng_spare);
  o.Set("defaultSparseThreshold", s.default_sparse_threshold);
  o.Set("statsDecay", s.stats_decay);
  Napi::Array layers = Napi::Array::New(env, s.layers.size());
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const np::LayerState& l = s.layers[i];
    Napi::Object lo = Napi::Object::New(env);
    lo.Set("units", static_cast<double>(l.units));
    lo.Set("inputs", static_cast<double>(l.inputs));
    lo.Set("format", l.csr ? "csr" : "dense");
    lo.Set("weight", with_values[i] ? slot_array(i, false, np::Slot::kValue) : empty());
    if (l.csr) {
      lo.Set("indptr", to_js(env, l.indptr));
      lo.Set("indices", to_js(env, l.indices));
    }
    lo.Set("weightMoments", moments_array(i, false));
    lo.Set("bias", with_values[i] ? slot_array(i, true, np::Slot::kValue) : empty());
    lo.Set("biasMoments", moments_array(i, true));
    if (!l.mask.empty()) lo.Set("mask", to_js(env, l.mask));
    if (!l.alive.empty()) lo.Set("alive", to_js(env, l.alive));
    lo.Set("neuronIds", to_js(env, l.neuron_ids));
    lo.Set("meanAbsActivation", to_js(env, l.mean_abs_activation));
    lo.Set("meanActivation", to_js(env, l.mean_activation));
    lo.Set("birthStep", to_js(env, l.birth_step));
    lo.Set("taylor", to_js(env, l.taylor));
    lo.Set("statsUpdates", static_cast<double>(l.stats_updates));
    lo.Set("cbpCarry", l.cbp_carry);
    lo.Set("sparseThreshold", l.sparse_threshold);
    layers.Set(static_cast<uint32_t>(i), lo);
  }
  o.Set("layers", layers);
  Napi::Array events = Napi::Array::New(env, s.events.size());
  for (size_t i = 0; i < s.events.size(); ++i) events.Set(static_cast<uint32_t>(i), event_to_js(env, s.events[i]));
  o.Set("events", events);
  o.Set("eventsDropped", static_cast<double>(s.events_dropped));
  return o;
}

Napi::Value ModelWrap::ImportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "load");
  Napi::Object o = object_arg(info, 0, "state");
  np::ModelState s;
  s.step = static_cast<int64_t>(num(o, "step"));
  s.epoch = static_cast<int64_t>(num(o, "epoch"));
  s.next_neuron_id = static_cast<int64_t>(num(o, "nextNeuronId"));
  auto rng = from_js<uint64_t>(env, o.Get("rng"), napi_biguint64_array, "rng");
  if (rng.size() != 4) throw Napi::RangeError::New(env, "state: rng must have 4 words");
  for (int i = 0; i < 4; ++i) s.rng[i] = rng[i];
  s.rng_has_spare = bool_prop(o, "rngHasSpare", false);
  s.rng_spare = static_cast<float>(number_prop(o, "rngSpare", 0));
  s.default_sparse_threshold = number_prop(o, "defaultSparseThreshold", -1);
  s.stats_decay = number_prop(o, "statsDecay", 0.99);
  Napi::Value lv = o.Get("layers");
  if (!lv.IsArray()) throw Napi::TypeError::New(env, "state: layers must be an array");
  Napi::Array layers = lv.As<Napi::Array>();
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    if (!layers.Get(i).IsObject()) throw Napi::TypeError::New(env, "state: layers[" + std::to_string(i) + "] must be an object");
    Napi::Object lo = layers.Get(i).As<Napi::Object>();
    np::LayerState l;
    l.units = static_cast<int64_t>(num(lo, "units"));
    l.inputs = static_cast<int64_t>(num(lo, "inputs"));
    const std::string format = str(lo, "format");
    if (format != "csr" && format != "dense") throw Napi::RangeError::New(env, "state: format must be 'csr' or 'dense'");
    l.csr = format == "csr";
    l.weight = from_js<float>(env, lo.Get("weight"), napi_float32_array, "weight");
    if (l.csr) {
      l.indptr = from_js<int64_t>(env, lo.Get("indptr"), napi_bigint64_array, "indptr");
      l.indices = from_js<int32_t>(env, lo.Get("indices"), napi_int32_array, "indices");
    }
    l.weight_moments = from_js_list(env, lo.Get("weightMoments"), "weightMoments");
    l.bias = from_js<float>(env, lo.Get("bias"), napi_float32_array, "bias");
    l.bias_moments = from_js_list(env, lo.Get("biasMoments"), "biasMoments");
    l.mask = from_js<uint8_t>(env, lo.Get("mask"), napi_uint8_array, "mask", true);
    l.alive = from_js<uint8_t>(env, lo.Get("alive"), napi_uint8_array, "alive", true);
    l.neuron_ids = from_js<int64_t>(env, lo.Get("neuronIds"), napi_bigint64_array, "neuronIds");
    l.mean_abs_activation = from_js<double>(env, lo.Get("meanAbsActivation"), napi_float64_array, "meanAbsActivation", true);
    l.taylor = from_js<double>(env, lo.Get("taylor"), napi_float64_array, "taylor", true);
    l.mean_activation = from_js<double>(env, lo.Get("meanActivation"), napi_float64_array, "meanActivation", true);
    l.birth_step = from_js<int64_t>(env, lo.Get("birthStep"), napi_bigint64_array, "birthStep", true);
    l.stats_updates = static_cast<int64_t>(number_prop(lo, "statsUpdates", 0));
    l.cbp_carry = number_prop(lo, "cbpCarry", 0);
    l.sparse_threshold = static_cast<float>(number_prop(lo, "sparseThreshold", -1));
    s.layers.push_back(std::move(l));
  }
  Napi::Value ev = o.Get("events");
  if (!ev.IsUndefined()) {
    if (!ev.IsArray()) throw Napi::TypeError::New(env, "state: events must be an array");
    Napi::Array events = ev.As<Napi::Array>();
    for (uint32_t i = 0; i < events.Length(); ++i) s.events.push_back(event_from_js(env, events.Get(i), i));
  }
  const double dropped = number_prop(o, "eventsDropped", 0);
  if (!(dropped >= 0 && dropped <= 9007199254740991.0) || dropped != static_cast<double>(static_cast<int64_t>(dropped)))
    throw Napi::RangeError::New(env, "state: eventsDropped must be a non-negative integer");
  s.events_dropped = static_cast<int64_t>(dropped);
  model_->import_state(std::move(s));
  return env.Undefined();
}

namespace {

// Every JS value setValues reads, fetched before any data pointer is taken:
// a property read may run a getter, which could detach or shrink an array
// whose pointer is already held. After this, no JS runs until the copy ends.
struct LayerValuesJs {
  Napi::Value weight, bias, mean_abs_activation, mean_activation, taylor, stats_updates;
  std::vector<Napi::Value> weight_moments, bias_moments;  // empty: kept
};

std::vector<Napi::Value> elements_of(Napi::Env env, Napi::Value v, const std::string& name) {
  std::vector<Napi::Value> out;
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(env, "setValues: " + name + " must be an array of Float32Array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i));
  return out;
}

// A view of a typed array (no copy). Arrays over a SharedArrayBuffer are
// refused: another thread could change them between the checks and the copy.
template <typename T>
np::ValuesView<T> view_of(Napi::Env env, Napi::Value v, napi_typedarray_type type, const std::string& name, const char* type_name) {
  np::ValuesView<T> out;
  if (v.IsUndefined()) return out;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, "setValues: " + name + " must be a " + type_name);
  auto a = v.As<Napi::TypedArrayOf<T>>();
  if (!a.ArrayBuffer().IsArrayBuffer()) throw Napi::TypeError::New(env, "setValues: " + name + " must not be backed by a SharedArrayBuffer");
  out.data = a.Data();
  out.size = static_cast<int64_t>(a.ElementLength());
  return out;
}

}  // namespace

// setValues({ step, layers }): numbers written in place (Model::set_values);
// each layer's weight, weightMoments, bias, biasMoments, meanAbsActivation,
// meanActivation, taylor and statsUpdates are optional, layers may be empty.
// The arrays are read during the call, not kept.
Napi::Value ModelWrap::SetValues(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ensure_idle(env, "setValues");
  Napi::Object o = object_arg(info, 0, "values");
  const double step = num(o, "step");
  if (!(step >= 0 && step <= 9007199254740991.0) || step != static_cast<double>(static_cast<int64_t>(step)))
    throw Napi::RangeError::New(env, "setValues: step must be a non-negative integer");
  Napi::Value lv = o.Get("layers");
  if (!lv.IsArray()) throw Napi::TypeError::New(env, "setValues: layers must be an array");
  Napi::Array layers = lv.As<Napi::Array>();
  // ---- every JS read first -------------------------------------------------
  std::vector<LayerValuesJs> js;
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    Napi::Value item = layers.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(env, "setValues: layers[" + std::to_string(i) + "] must be an object");
    Napi::Object lo = item.As<Napi::Object>();
    const std::string at = "layers[" + std::to_string(i) + "].";
    LayerValuesJs l;
    l.weight = lo.Get("weight");
    l.bias = lo.Get("bias");
    l.mean_abs_activation = lo.Get("meanAbsActivation");
    l.mean_activation = lo.Get("meanActivation");
    l.taylor = lo.Get("taylor");
    l.stats_updates = lo.Get("statsUpdates");
    l.weight_moments = elements_of(env, lo.Get("weightMoments"), at + "weightMoments");
    l.bias_moments = elements_of(env, lo.Get("biasMoments"), at + "biasMoments");
    js.push_back(std::move(l));
  }
  // ---- then the views (no JS runs from here to the end of the copy) --------
  std::vector<np::LayerValuesIn> in;
  for (size_t i = 0; i < js.size(); ++i) {
    const LayerValuesJs& l = js[i];
    const std::string at = "layers[" + std::to_string(i) + "].";
    np::LayerValuesIn v;
    v.weight = view_of<float>(env, l.weight, napi_float32_array, at + "weight", "Float32Array");
    v.bias = view_of<float>(env, l.bias, napi_float32_array, at + "bias", "Float32Array");
    for (size_t k = 0; k < l.weight_moments.size(); ++k)
      v.weight_moments.push_back(view_of<float>(env, l.weight_moments[k], napi_float32_array, at + "weightMoments[" + std::to_string(k) + "]", "Float32Array"));
    for (size_t k = 0; k < l.bias_moments.size(); ++k)
      v.bias_moments.push_back(view_of<float>(env, l.bias_moments[k], napi_float32_array, at + "biasMoments[" + std::to_string(k) + "]", "Float32Array"));
    v.mean_abs_activation = view_of<double>(env, l.mean_abs_activation, napi_float64_array, at + "meanAbsActivation", "Float64Array");
    v.mean_activation = view_of<double>(env, l.mean_activation, napi_float64_array, at + "meanActivation", "Float64Array");
    v.taylor = view_of<double>(env, l.taylor, napi_float64_array, at + "taylor", "Float64Array");
    if (!l.stats_updates.IsUndefined()) {
      const double u = l.stats_updates.IsNumber() ? l.stats_updates.As<Napi::Number>().DoubleValue() : -1.0;
      if (!(u >= 0 && u <= 9007199254740991.0) || u != static_cast<double>(static_cast<int64_t>(u)))
        throw Napi::RangeError::New(env, "setValues: " + at + "statsUpdates must be a non-negative integer");
      v.stats_updates = static_cast<int64_t>(u);
    }
    in.push_back(std::move(v));
  }
  model_->set_values(static_cast<int64_t>(step), in);
  return env.Undefined();
}

}  // namespace npb
