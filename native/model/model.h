// The model: a stack of dense layers with their parameters, the optimizer and
// loss settings, the global step counter and the random generator. Plain C++:
// the binding owns one Model per JS Sequential and drives it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activations.h"
#include "model/param.h"
#include "model/rng.h"
#include "model/workspace.h"

namespace np {

class ThreadPool;

enum class InitKind : int { kAuto = 0, kHeNormal = 1, kGlorotUniform = 2, kZeros = 3 };
enum class OptimizerKind : int { kNone = 0, kSgd = 1, kAdam = 2 };
enum class LossKind : int { kSoftmaxCrossEntropy = 0, kMeanSquaredError = 1 };

struct LayerSpec {
  int64_t units = 0;
  Activation activation = Activation::kLinear;
  float input_dropout = 0.0f;  // inverted dropout applied to this layer's input while training
  InitKind init = InitKind::kAuto;
  bool use_bias = true;
};

struct DenseLayer {
  int64_t inputs = 0;
  int64_t units = 0;
  Activation activation = Activation::kLinear;
  float input_dropout = 0.0f;
  bool use_bias = true;
  DenseParam weight;  // units x inputs
  DenseParam bias;    // units x 1
  std::vector<int64_t> neuron_ids;  // stable ids, one per unit
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kNone;
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  bool decoupled_weight_decay = false;  // AdamW
};

// Training targets: class labels (one int per sample) or a float matrix
// (n x outputs, row-major).
struct Targets {
  const int32_t* labels = nullptr;
  const float* values = nullptr;
};

struct BatchStats {
  double loss_sum = 0.0;  // sum of per-sample losses
  int64_t correct = 0;
  int64_t samples = 0;
};

class Model {
 public:
  Model(int64_t input_size, uint64_t seed, const std::vector<LayerSpec>& specs);

  void compile(const OptimizerConfig& optimizer, LossKind loss);
  bool compiled() const { return optimizer_.kind != OptimizerKind::kNone; }

  int64_t input_size() const { return input_size_; }
  int64_t output_size() const { return layers_.back().units; }
  int64_t step() const { return step_; }
  const std::vector<DenseLayer>& layers() const { return layers_; }
  DenseLayer& layer(int64_t index);
  const OptimizerConfig& optimizer() const { return optimizer_; }
  LossKind loss() const { return loss_; }
  Rng& rng() { return rng_; }
  int64_t parameter_count() const;

  // Weights as dense row-major arrays (units x inputs, and units).
  void get_weights(int64_t layer, float* weight, float* bias) const;
  void set_weights(int64_t layer, const float* weight, const float* bias);
  void get_gradients(int64_t layer, float* weight, float* bias) const;

  // The order of one epoch's samples: a permutation from the model's generator
  // when shuffle is set, else 0..n-1. Part of the seeded, reproducible state.
  void epoch_order(int64_t n, bool shuffle, int32_t* out);

  // One optimizer step on the samples x[indices[0..batch)]. Throws Error with
  // kind kNonFinite (and changes no weight) if the loss is NaN or infinite.
  BatchStats train_batch(const float* x, const Targets& targets, const int32_t* indices, int64_t batch,
                         ThreadPool* pool);

  // Loss and accuracy over n samples, no dropout, no update.
  BatchStats evaluate(const float* x, const Targets& targets, int64_t n, int64_t batch_size, ThreadPool* pool);

  // Outputs (n x outputs, row-major) of the last layer, no dropout.
  void predict(const float* x, int64_t n, float* out, int64_t batch_size, ThreadPool* pool);

  // Mean gradients over n samples into every parameter's gradient slot, no
  // update, no dropout (so the result is deterministic).
  BatchStats compute_gradients(const float* x, const Targets& targets, int64_t n, ThreadPool* pool);

  // Set from any thread to stop a running train loop at the next batch.
  std::atomic<bool> abort_requested{false};

 private:
  void init_layer_weights(DenseLayer& layer, InitKind init);
  // Forward over columns [0, batch) of the workspace input; dropout only when training.
  void forward(int64_t batch, bool training, ThreadPool* pool);
  BatchStats loss_and_gradient(const Targets& targets, const int32_t* indices, int64_t first, int64_t batch,
                               int64_t grad_divisor, bool want_grad);
  // Backward from the loss gradient in the workspace; beta = 1 accumulates
  // into the gradient slots; training says whether forward applied dropout.
  void backward(int64_t batch, float beta, bool training, ThreadPool* pool);
  void apply_optimizer(ThreadPool* pool);
  void load_batch(const float* x, const int32_t* indices, int64_t first, int64_t batch);

  int64_t input_size_;
  std::vector<DenseLayer> layers_;
  OptimizerConfig optimizer_;
  LossKind loss_ = LossKind::kSoftmaxCrossEntropy;
  int64_t step_ = 0;
  int64_t next_neuron_id_ = 0;
  Rng rng_;
  Workspace ws_;
};

}  // namespace np
