// The values that carry a structural decision between the two addons: made
// where the numbers are (a GPU model's device: drop bits, scores, positions)
// and applied by the host model. Header-only, so the CPU binding and the CUDA
// binding (neuroplastic_cuda.node) read and write them the same way.
#pragma once

#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace npb {

// A number that is an integer in [lowest, 2^53) (exact as a double).
inline int64_t integer_value(Napi::Env env, Napi::Value v, const std::string& name, int64_t lowest) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lowest) && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::RangeError::New(env, name + " must be an integer >= " + std::to_string(lowest));
  return static_cast<int64_t>(d);
}

// An array of such integers; entries are named name[i] in errors.
inline std::vector<int64_t> integer_list(Napi::Env env, Napi::Value v, const std::string& name, int64_t lowest) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, name + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(integer_value(env, a.Get(i), name + "[" + std::to_string(i) + "]", lowest));
  return out;
}

// An array of Float64Array (scores, utilities), copied.
inline std::vector<std::vector<double>> float64_lists(Napi::Env env, Napi::Value v, const std::string& name) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, name + " must be an array of Float64Array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::vector<double>> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, name + "[" + std::to_string(i) + "] must be a Float64Array");
    auto f = e.As<Napi::Float64Array>();
    out.emplace_back(f.Data(), f.Data() + f.ElementLength());
  }
  return out;
}

inline Napi::Float64Array float64_array(Napi::Env env, const std::vector<double>& v) {
  auto out = Napi::Float64Array::New(env, v.size());
  std::copy(v.begin(), v.end(), out.Data());
  return out;
}

// Drop bits (np::DropBits), one Uint32Array per layer.
inline Napi::Array uint32_arrays(Napi::Env env, const std::vector<std::vector<uint32_t>>& lists) {
  Napi::Array out = Napi::Array::New(env, lists.size());
  for (size_t i = 0; i < lists.size(); ++i) {
    auto words = Napi::Uint32Array::New(env, lists[i].size());
    std::copy(lists[i].begin(), lists[i].end(), words.Data());
    out.Set(static_cast<uint32_t>(i), words);
  }
  return out;
}

// Positions (r * inputs + c), one Float64Array per layer (exact below 2^53).
inline Napi::Array position_arrays(Napi::Env env, const std::vector<std::vector<int64_t>>& lists) {
  Napi::Array out = Napi::Array::New(env, lists.size());
  for (size_t i = 0; i < lists.size(); ++i) {
    auto a = Napi::Float64Array::New(env, lists[i].size());
    for (size_t j = 0; j < lists[i].size(); ++j) a[j] = static_cast<double>(lists[i][j]);
    out.Set(static_cast<uint32_t>(i), a);
  }
  return out;
}

// gradmax's reading of the network (np::GradMaxProduct): { m: Float32Array, weightSquares: number }.
inline Napi::Object gradmax_product_object(Napi::Env env, const std::vector<float>& m, double weight_squares) {
  Napi::Object out = Napi::Object::New(env);
  auto a = Napi::Float32Array::New(env, m.size());
  std::copy(m.begin(), m.end(), a.Data());
  out.Set("m", a);
  out.Set("weightSquares", Napi::Number::New(env, weight_squares));
  return out;
}

inline void gradmax_product_of(Napi::Env env, Napi::Value v, const std::string& name, std::vector<float>* m, double* weight_squares) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, name + " must be an object { m: Float32Array, weightSquares: number }");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value mv = o.Get("m");
  if (!mv.IsTypedArray() || mv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, name + ".m must be a Float32Array");
  auto f = mv.As<Napi::Float32Array>();
  m->assign(f.Data(), f.Data() + f.ElementLength());
  if (!o.Get("weightSquares").IsNumber()) throw Napi::TypeError::New(env, name + ".weightSquares must be a number");
  *weight_squares = o.Get("weightSquares").As<Napi::Number>().DoubleValue();
}

}  // namespace npb
