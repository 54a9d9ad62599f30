// The async operations on a model. Each worker copies what it needs into plain
// fields on the JS thread, keeps the input arrays alive with references, runs
// the core in Execute() without touching JS, and settles a Promise.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "binding/model_wrap.h"
#include "model/errors.h"
#include "model/model.h"

namespace npb {

// The samples (and targets) an async operation reads, copied out of the JS
// arrays on the JS thread. A copy, not a reference: JS could transfer or
// detach an ArrayBuffer while the worker runs, and Node-API cannot pin one.
// fit() copies its data once (createDataset) and shares it across the
// epoch's calls through the shared_ptr.
struct Dataset {
  int64_t n = 0;
  std::vector<float> x;           // n x inputs
  std::vector<int32_t> labels;    // n, or empty
  std::vector<float> values;      // n x outputs, or empty
  np::Targets targets() const {
    np::Targets t;
    if (!labels.empty()) t.labels = labels.data();
    if (!values.empty()) t.values = values.data();
    return t;
  }
};
using DatasetPtr = std::shared_ptr<const Dataset>;

// Reads x (a Float32Array of n x inputSize values) and, when targets_index >=
// 0, its targets (Int32Array labels or Float32Array n x outputs), checked and copied.
// `reuse` (optional) is refilled instead of allocating a new one.
std::shared_ptr<Dataset> read_dataset(const Napi::CallbackInfo& info, const np::Model& model, size_t x_index,
                                      int targets_index, std::shared_ptr<Dataset> reuse = nullptr);

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

Napi::Value create_dataset(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_train(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_evaluate(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_predict(const Napi::CallbackInfo& info, ModelWrap* wrap);
Napi::Value start_gradients(const Napi::CallbackInfo& info, ModelWrap* wrap);

}  // namespace npb
