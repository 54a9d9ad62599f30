// NativeModel: the JS object that owns one np::Model. Every method checks its
// arguments again (never trusting a length from JS) and refuses to touch the
// model while an async operation on it is running.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "model/model.h"

namespace npb {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);

  np::Model& model() { return *model_; }

  // Claimed by an async worker when it is queued (on the JS thread), released
  // when it completes (also on the JS thread).
  void claim(Napi::Env env, const char* operation);
  void release() { busy_ = nullptr; }

 private:
  void ensure_idle(Napi::Env env, const char* operation);

  Napi::Value Compile(const Napi::CallbackInfo& info);
  Napi::Value EpochOrder(const Napi::CallbackInfo& info);
  Napi::Value TrainBatches(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value ComputeGradients(const Napi::CallbackInfo& info);
  Napi::Value GetWeights(const Napi::CallbackInfo& info);
  Napi::Value SetWeights(const Napi::CallbackInfo& info);
  Napi::Value GetGradients(const Napi::CallbackInfo& info);
  Napi::Value LayerInfo(const Napi::CallbackInfo& info);
  Napi::Value RequestAbort(const Napi::CallbackInfo& info);
  Napi::Value GetStep(const Napi::CallbackInfo& info);
  Napi::Value GetBusy(const Napi::CallbackInfo& info);
  Napi::Value GetLayerCount(const Napi::CallbackInfo& info);
  Napi::Value GetParameterCount(const Napi::CallbackInfo& info);

  std::unique_ptr<np::Model> model_;
  const char* busy_ = nullptr;  // name of the running async operation, if any
};

}  // namespace npb
