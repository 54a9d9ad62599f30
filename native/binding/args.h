// Argument checks for the binding. The TypeScript layer validates first with
// friendlier messages; these checks exist so that a caller going straight to
// the addon can never make the core read or write out of bounds.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace npb {

inline void check(bool ok, Napi::Env env, const std::string& message) {
  if (!ok) throw Napi::RangeError::New(env, message);
}

inline Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
  return info[i].As<Napi::Object>();
}

inline int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= static_cast<double>(min) && v <= static_cast<double>(max)) || v != static_cast<double>(static_cast<int64_t>(v)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer in [" + std::to_string(min) + ", " +
                                                std::to_string(max) + "], got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

inline bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

inline double number_prop(Napi::Object obj, const char* key, double fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(obj.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool bool_prop(Napi::Object obj, const char* key, bool fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(obj.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string string_prop(Napi::Object obj, const char* key, const std::string& fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// A typed array of the given element type with exactly `length` elements.
template <typename T>
Napi::TypedArrayOf<T> typed_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t length,
                                napi_typedarray_type type, const char* type_name) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a " + type_name);
  auto array = info[i].As<Napi::TypedArrayOf<T>>();
  if (length >= 0 && static_cast<int64_t>(array.ElementLength()) != length)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must have " + std::to_string(length) +
                                                " elements, got " + std::to_string(array.ElementLength()));
  return array;
}

}  // namespace npb
