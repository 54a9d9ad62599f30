// Module entry: the NativeModel class and process-wide settings (SIMD level,
// thread count). The only translation units that include napi.h live in this
// folder.
#include <napi.h>

#include "binding/model_wrap.h"
#include "kernels/cache_info.h"
#include "kernels/simd_level.h"
#include "kernels/thread_pool.h"

namespace npb {

namespace {

Napi::Value Runtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", np::simd_level_name(np::active_simd_level()));
  o.Set("simdDetected", np::simd_level_name(np::detected_simd_level()));
  o.Set("threads", np::default_thread_count());
  const np::CacheSizes& sizes = np::cache_sizes();
  Napi::Object cache = Napi::Object::New(env);
  cache.Set("l1d", static_cast<double>(sizes.l1d));
  cache.Set("l2", static_cast<double>(sizes.l2));
  o.Set("cache", cache);
  return o;
}

// setSimdLevel('scalar' | 'avx2' | 'avx512') -> boolean (false if unsupported here)
Napi::Value SetSimdLevel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "level must be a string");
  np::SimdLevel level;
  const std::string text = info[0].As<Napi::String>().Utf8Value();
  if (!np::parse_simd_level(text.c_str(), &level))
    throw Napi::RangeError::New(env, "level must be 'scalar', 'avx2' or 'avx512', got '" + text + "'");
  return Napi::Boolean::New(env, np::set_simd_level(level));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", ModelWrap::Define(env));
  exports.Set("runtime", Napi::Function::New<Runtime>(env, "runtime"));
  exports.Set("setSimdLevel", Napi::Function::New<SetSimdLevel>(env, "setSimdLevel"));
  return exports;
}

}  // namespace npb

// The macro pastes its argument into an identifier, so it needs an unqualified name.
static Napi::Object InitNeuroplastic(Napi::Env env, Napi::Object exports) { return npb::Init(env, exports); }
NODE_API_MODULE(neuroplastic, InitNeuroplastic)
