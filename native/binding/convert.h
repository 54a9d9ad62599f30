// Conversions between core structs and JS values shared by the binding's
// method files.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "model/events.h"

namespace npb {

template <typename T>
Napi::TypedArrayOf<T> to_js(Napi::Env env, const std::vector<T>& v) {
  auto out = Napi::TypedArrayOf<T>::New(env, v.size());
  std::copy(v.begin(), v.end(), out.Data());
  return out;
}

// A structural event as a plain object (ids and scores as number arrays).
inline Napi::Object event_to_js(Napi::Env env, const np::StructuralEvent& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", static_cast<double>(e.step));
  o.Set("epoch", static_cast<double>(e.epoch));
  o.Set("kind", e.kind);
  o.Set("layer", static_cast<double>(e.layer));
  o.Set("criterion", e.criterion);
  o.Set("count", static_cast<double>(e.count));
  o.Set("densityBefore", e.density_before);
  o.Set("densityAfter", e.density_after);
  Napi::Array ids = Napi::Array::New(env, e.neuron_ids.size());
  for (size_t k = 0; k < e.neuron_ids.size(); ++k) ids.Set(static_cast<uint32_t>(k), static_cast<double>(e.neuron_ids[k]));
  o.Set("neuronIds", ids);
  Napi::Array scores = Napi::Array::New(env, e.scores.size());
  for (size_t k = 0; k < e.scores.size(); ++k) scores.Set(static_cast<uint32_t>(k), static_cast<double>(e.scores[k]));
  o.Set("scores", scores);
  return o;
}

// The inverse, checking every field's type.
np::StructuralEvent event_from_js(Napi::Env env, Napi::Value value, size_t index);

}  // namespace npb
