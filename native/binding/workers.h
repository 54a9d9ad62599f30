// The async operations on a model. Each worker copies what it needs into plain
// fields on the JS thread, keeps the input arrays alive with references, runs
// the core in Execute() without touching JS, and settles a Promise.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "binding/model_wrap.h"
#include "model/errors.h"
#include "model/model.h"

namespace npb {

// Inputs shared by the workers: x (n x inputs) and optional targets.
struct DataRefs {
  Napi::Reference<Napi::Float32Array> x;
  Napi::Reference<Napi::TypedArray> targets;
  const float* x_data = nullptr;
  int64_t n = 0;
  np::Targets t;
};

class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, ModelWrap* wrap, const char* operation);
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() final;
  virtual void Run() = 0;  // the core work; may throw np::Error
  void OnOK() final;
  void OnError(const Napi::Error& e) final;
  virtual Napi::Value Result(Napi::Env env) = 0;

  ModelWrap* wrap_;
  np::Model& model_;
  Napi::ObjectReference wrap_ref_;  // keeps the model alive while we run
  Napi::Promise::Deferred deferred_;
  np::ErrorKind error_kind_ = np::ErrorKind::kError;
  std::string error_message_;
  bool failed_ = false;
};

Napi::Value start_train(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_evaluate(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_predict(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_gradients(const Napi::CallbackInfo& info, ModelWrap* wrap);

}  // namespace npb
