// NativeModel: the JS object that owns one np::Model. Every method checks its
// arguments again (never trusting a length from JS) and refuses to touch the
// model while an async operation on it is running.
#pragma once

#include <napi.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "binding/errors.h"
#include "model/model.h"

namespace npb {

struct Dataset;  // workers.h

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);

  np::Model& model() { return *model_; }

  // Claimed by an async worker when it is queued (on the JS thread), released
  // when it completes (also on the JS thread).
  void claim(Napi::Env env, const char* operation);
  // An abort request that arrived after the operation's last check is dropped
  // with it; kept, it would stop the NEXT fit before its first batch.
  void release() {
    busy_ = nullptr;
    model_->abort_requested.store(false);
  }

  // Training data copied for fit(), owned by the model (see createDataset).
  int64_t keep_dataset(std::shared_ptr<Dataset> data);
  std::shared_ptr<const Dataset> dataset(int64_t handle) const;
  // The buffers of the last released dataset, for the next createDataset to refill.
  std::shared_ptr<Dataset> take_spare_dataset() { return std::move(spare_dataset_); }

 private:
  // Every method and accessor is registered through this: an exception from
  // the core (np::Error, std::bad_alloc, ...) thrown anywhere below becomes a
  // JS error of the matching class instead of terminating the process, since
  // node-addon-api itself only catches Napi::Error. Methods therefore call the
  // core directly; only the constructor, which is not a method, guards itself.
  template <Napi::Value (ModelWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guarded(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (this->*Method)(info); });
  }

  void ensure_idle(Napi::Env env, const char* operation);
  std::vector<int64_t> layer_list_arg(const Napi::CallbackInfo& info, size_t index);
  // Optional drops (an array of Uint32Array, one per listed layer; magnitude_drops.h): nullopt when undefined.
  static std::optional<std::vector<np::DropBits>> drops_arg(const Napi::CallbackInfo& info, size_t index, size_t layers);
  Napi::Object weight_pair(Napi::Env env, const Napi::CallbackInfo& info, bool gradients);

  Napi::Value Compile(const Napi::CallbackInfo& info);
  Napi::Value EpochOrder(const Napi::CallbackInfo& info);
  Napi::Value CreateDataset(const Napi::CallbackInfo& info);
  Napi::Value ReleaseDataset(const Napi::CallbackInfo& info);
  Napi::Value TrainBatches(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value ComputeGradients(const Napi::CallbackInfo& info);
  Napi::Value GetWeights(const Napi::CallbackInfo& info);
  Napi::Value SetWeights(const Napi::CallbackInfo& info);
  Napi::Value GetGradients(const Napi::CallbackInfo& info);
  Napi::Value LayerInfo(const Napi::CallbackInfo& info);
  Napi::Value RequestAbort(const Napi::CallbackInfo& info);
  Napi::Value ReleaseMemory(const Napi::CallbackInfo& info);
  Napi::Value GetStep(const Napi::CallbackInfo& info);
  Napi::Value GetBusy(const Napi::CallbackInfo& info);
  Napi::Value GetLayerCount(const Napi::CallbackInfo& info);
  Napi::Value GetParameterCount(const Napi::CallbackInfo& info);
  Napi::Value GetEventCount(const Napi::CallbackInfo& info);
  Napi::Value GetEventsDropped(const Napi::CallbackInfo& info);
  Napi::Value NeuronIds(const Napi::CallbackInfo& info);

  // Structural operations (structure_methods.cpp).
  Napi::Value PruneWeights(const Napi::CallbackInfo& info);
  Napi::Value PruneWeightsToSparsity(const Napi::CallbackInfo& info);
  Napi::Value PlanMagnitudeDrops(const Napi::CallbackInfo& info);
  Napi::Value MagnitudeDrops(const Napi::CallbackInfo& info);
  Napi::Value PruneNeurons(const Napi::CallbackInfo& info);
  Napi::Value NeuronScores(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value ConvertLayer(const Napi::CallbackInfo& info);
  Napi::Value SetSparseThreshold(const Napi::CallbackInfo& info);
  Napi::Value SparseThreshold(const Napi::CallbackInfo& info);
  Napi::Value Events(const Napi::CallbackInfo& info);
  Napi::Value SetEpoch(const Napi::CallbackInfo& info);
  Napi::Value Snapshot(const Napi::CallbackInfo& info);
  Napi::Value Rewind(const Napi::CallbackInfo& info);
  Napi::Value SnapshotSteps(const Napi::CallbackInfo& info);

  // Growth and plasticity (growth_methods.cpp).
  Napi::Value Grow(const Napi::CallbackInfo& info);
  Napi::Value LastSplit(const Napi::CallbackInfo& info);
  Napi::Value GradmaxProduct(const Napi::CallbackInfo& info);
  Napi::Value LastRescales(const Napi::CallbackInfo& info);
  Napi::Value LastCompensations(const Napi::CallbackInfo& info);
  Napi::Value Sparsify(const Napi::CallbackInfo& info);
  Napi::Value Regrow(const Napi::CallbackInfo& info);
  Napi::Value GradientGrowth(const Napi::CallbackInfo& info);
  Napi::Value SetContinualBackprop(const Napi::CallbackInfo& info);
  Napi::Value ContinualBackpropDue(const Napi::CallbackInfo& info);
  Napi::Value ContinualBackpropSkip(const Napi::CallbackInfo& info);
  Napi::Value ContinualBackpropStep(const Napi::CallbackInfo& info);
  Napi::Value Redo(const Napi::CallbackInfo& info);
  Napi::Value UnitUtility(const Napi::CallbackInfo& info);
  Napi::Value UnitStats(const Napi::CallbackInfo& info);
  Napi::Value SetKeepLastBatch(const Napi::CallbackInfo& info);
  Napi::Value SetStatsDecay(const Napi::CallbackInfo& info);

  // Checkpoints (state_methods.cpp).
  Napi::Value ExportState(const Napi::CallbackInfo& info);
  Napi::Value ImportState(const Napi::CallbackInfo& info);
  Napi::Value SetValues(const Napi::CallbackInfo& info);

  std::unique_ptr<np::Model> model_;
  std::map<int64_t, std::shared_ptr<Dataset>> datasets_;
  std::shared_ptr<Dataset> spare_dataset_;
  int64_t next_dataset_ = 1;
  const char* busy_ = nullptr;  // name of the running async operation, if any
};

}  // namespace npb
