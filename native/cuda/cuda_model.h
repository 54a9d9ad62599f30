// The device-resident model: every dense layer's parameters with all their
// slots (value, gradient, optimizer moments), the activations of one batch and
// their gradients, and the training data, on one GPU, driven on one stream.
// Plain C++ over runtime.h and kernels.h (no CUDA header, no napi.h).
//
// It is a mirror, not an owner of the model's structure: the CPU np::Model
// (through lib/cuda_model.ts) keeps neuron ids, events, the RNG and every
// structural operation. The device model is built from the CPU model's
// exported state (CudaLayerState: the same arrays as np::LayerState), trains,
// and exports its parameters and step back. A structural change rebuilds it,
// or (a growth that fits a dense layer's spare capacity) fills it in place.
//
// Layouts are the CPU model's: dense weights row-major units x inputs with a
// row pitch >= inputs and spare rows (Layer::stride, row_capacity; the host
// arrays are always compact), CSR = int64 row pointers, int32 column indices,
// float values, optimizer slots aligned with the values; activations
// feature-major (features x batch, ld = batch).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "model/model.h"
#include "model/state.h"

namespace np::cuda {

// The CPU model's optimizer and loss settings, as they are: a model moves
// between the devices with the same configuration.
using CudaOptimizer = np::OptimizerConfig;
using CudaOptimizerKind = np::OptimizerKind;
using CudaLossKind = np::LossKind;

// Optimizer slots per parameter: SGD 1 with momentum (else 0), Adam 2.
inline int optimizer_moments(const CudaOptimizer& o) {
  return o.kind == CudaOptimizerKind::kAdam ? 2 : (o.momentum != 0.0f ? 1 : 0);
}

// One layer's architecture and parameters, host side (in and out): the CPU
// model's parameters and slots plus the settings the device step needs.
struct CudaLayerState : np::LayerParams {
  Activation activation = Activation::kLinear;
  float input_dropout = 0.0f;
  float drop_connect = 0.0f;  // DropConnect rate on the stored weights while training
  bool use_bias = true;
  // Per-unit running statistics (np::NeuronStats): units entries each, or
  // empty for zeros; updates = training steps they have seen.
  std::vector<double> mean_abs_activation, mean_activation, taylor;
  int64_t stats_updates = 0;
  // restructure(): per input, the factor of the weights moved into its column
  // (net2wider's split, remap.h); empty: none.
  std::vector<float> input_scale;
  // restructure(): per unit, the current unit whose weights and bias a new
  // unit copies, value only (net2wider's copies), -1 for none; empty: none.
  std::vector<int32_t> row_copy;
  // restructure(): per input, the current input whose column a new input
  // copies times input_copy_scale, value only (net2wider's copies' share of
  // their sources' outgoing weights), -1 for none; empty: none.
  std::vector<int32_t> input_copy;
  std::vector<float> input_copy_scale;
  // restructure(): every moved weight is multiplied by this and its slots
  // restart at zero (sparsify's kept weights); the biases move. Unset: none.
  std::optional<float> restart_scale;
  // restructure(): these units of the layer below changed their output (their
  // current indices, ascending; compensate_new_weights: their indices after
  // the change), which this layer's biases absorb, b[r] += w[r][j] * mean in
  // float (compensate_means, the host's, one per unit), as the CPU does.
  // Continual backprop: the reinitialised units' mean outputs, through the
  // device's weights before the change. GradMax (compensate_new_weights):
  // its new units' constant output act(0) (means -act(0)), through the new
  // outgoing weights. The host's biases are not needed.
  std::vector<int32_t> compensate_inputs;
  std::vector<double> compensate_means;
  bool compensate_new_weights = false;
  // restructure(): the change left this layer as it was (same units in the
  // same order, same inputs, same pattern): the device keeps it, W^T and all,
  // and the host sends its shape and settings only.
  bool keep = false;
};

// A layer's numbers for CudaModel::set_values, in its stored order (dense:
// units x inputs; CSR: its values); what is not given is left as it is.
struct CudaLayerValues {
  std::optional<std::vector<float>> weight, bias;
  std::vector<std::vector<float>> weight_moments, bias_moments;  // empty: kept; else one per optimizer moment
};

struct CudaModelConfig {
  int64_t input_size = 0;
  CudaOptimizer optimizer;
  CudaLossKind loss = CudaLossKind::kSoftmaxCrossEntropy;
  uint64_t dropout_seed = 0;  // the dropout masks are a function of (seed, step, layer)
  double stats_decay = 0.99;  // of the per-unit running statistics, as the CPU model's
  int device = 0;
};

// Loss sums and hits over some samples (the CPU BatchStats).
struct CudaTotals {
  double loss_sum = 0.0;
  int64_t correct = 0;
  int64_t samples = 0;
};

struct CudaTrainResult {
  CudaTotals totals;
  int64_t steps = 0;
  bool aborted = false;
};

// Training data copied to the device once: x row-major n x features, labels
// (n) or targets (n x outputs, row-major).
struct DeviceDataset {
  int64_t n = 0;
  int64_t features = 0;
  int64_t outputs = 0;
  bool has_labels = false;
  DeviceBuffer x, labels, targets;
};

class CudaModel {
 public:
  // Checks every size (throws std::invalid_argument naming the layer and the
  // array), then allocates and uploads. Nothing is kept on failure.
  CudaModel(const CudaModelConfig& config, int64_t step, std::vector<CudaLayerState> layers);
  // Selects the model's GPU before its members free their memory, streams and
  // cuBLAS handle (a handle's device must be current when it is destroyed).
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // Replaces every parameter and the step (the architecture may differ: a
  // structural change on the host); same checks as the constructor.
  void load(int64_t step, std::vector<CudaLayerState> layers);
  // Parameters and moments back to the host (waits for the stream); without
  // with_moments, the weights and biases only (what a host decision reads).
  std::vector<CudaLayerState> export_layers(bool with_moments = true);

  // Rebuilds every layer to a structure the host changed, moving the device's
  // own parameters and optimizer slots by the rule in remap.h, with no copy
  // of them to the host and back (issue 6, part 3; cuda_restructure.cpp).
  // layers[l]: the new structure (sizes, CSR pattern, mask, alive, settings).
  // row_sources[l][r]: the current index of new unit r of layer l, or -1 for a
  // unit the host added; layer l's inputs follow layer l - 1's units. A layer
  // with new units in its rows or inputs also carries the host's values
  // (weight, bias and every slot; they are read only at the new positions),
  // unless row_copy / input_copy give every new position its value; the
  // others carry none. A unit the host reinitialised counts as new (-1).
  // layers[l].input_scale scales the weights moved into each column
  // (net2wider's split of a source unit's outgoing weights), restart_scale
  // every moved weight (sparsify). A dense layer that only gains units or
  // inputs (appended) within its spare capacity is grown in place; one that
  // grows beyond it is reallocated with headroom. Gradients restart at zero;
  // the step is kept.
  // Throws std::invalid_argument before anything changes, and CudaError for
  // want of memory before anything changes; after a failure past a write in
  // place the model refuses every call until load().
  void restructure(std::vector<CudaLayerState> layers, const std::vector<std::vector<int32_t>>& row_sources);

  // Numbers the host changed without changing the structure (setWeights,
  // rewind), written over the device's in place: no structure or W^T rebuilt
  // (cuda_set_values.cpp). `layers`: one per layer, what each gives.
  // Throws std::invalid_argument before anything changes.
  void set_values(const std::vector<CudaLayerValues>& layers);

  // A magnitude decision on the device's weights (cuda_decisions.cpp): which
  // stored weights the plan (np::Model::plan_*, from the host's structure,
  // which is this model's) removes, one DropBits per listed layer, exactly
  // the bits np::Model::magnitude_drops gives on the same weights (for
  // weights that are not NaN). The host applies them (prune_weights_magnitude
  // and friends, drops argument) instead of reading the weights. Waits for
  // the stream. Throws std::invalid_argument on a bad layer list or a plan
  // that does not fit the stored counts.
  std::vector<np::DropBits> magnitude_drops(const std::vector<int64_t>& layers, const np::MagnitudePlan& plan);
  // Neuron pruning's scores for hidden layer `layer` from the device's
  // numbers: l1 / l2 norms of each unit's incoming and outgoing weights (bit
  // for bit np::Model::neuron_scores on the same weights), or the running
  // statistics for 'activation' / 'taylor'; dead units -inf, as the host
  // scores them. 'random' is the host's generator's:
  // refused, like an output layer or a statistic no step has updated
  // (std::invalid_argument). Waits for the stream.
  std::vector<double> neuron_scores(int64_t layer, const std::string& criterion);
  // RigL's choice on the device: for each listed layer, the counts[i] open
  // positions (live unit, open input, nothing stored) with the largest
  // |dL/dw| on the batch x (n x inputs, row-major; labels or targets) at the
  // current weights, without dropout, ties by position, ascending: what
  // np::Model::gradient_growth / regrow choose from the same gradient. Changes
  // nothing on the device but the batch workspace. Throws
  // std::invalid_argument on a bad layer list or a count over the open positions.
  std::vector<std::vector<int64_t>> gradient_growth(const std::vector<int64_t>& layers, const std::vector<int64_t>& counts,
                                                    const float* x, const int32_t* labels, const float* targets, int64_t n);
  // Where layer `layer`'s weights live on the device: its row pitch, rows
  // allocated, the weight buffer's address (tests: a growth into reserved
  // capacity keeps the address) and whether its spare capacity is all zero
  // (reads every buffer back: for tests).
  struct LayerLayout {
    int64_t stride = 0, row_capacity = 0;
    const void* weight = nullptr;
    int64_t spare_nonzero = 0;  // entries of the spare capacity (weight, moments, biases) that are not zero
  };
  LayerLayout layout(int64_t layer);
  // GradMax's reading of the network for growing hidden layer `layer` on the
  // batch x (as gradient_growth): M = dL/dz_{layer+1} a_{layer-1}^T summed
  // over the batch, and the next layer's sum of squared weights (summed in
  // blocks, so not the CPU's order: it may differ in the last bits), what
  // np::Model::gradmax_product gives the host. The host computes the new
  // units from them (grow_units' product argument). Changes nothing on the
  // device but the batch workspace. Throws std::invalid_argument on a layer
  // that is not hidden or a bad batch.
  np::GradMaxProduct gradmax_product(int64_t layer, const float* x, const int32_t* labels, const float* targets, int64_t n);
  // Continual backprop's utility of each unit of hidden layer `layer` from
  // the device's numbers: mean |a| / (1 - decay^t) times the mean |w| of its
  // outgoing weights, -inf for dead units, zeros before any statistics: bit
  // for bit np::Model::unit_utility on the same numbers.
  std::vector<double> unit_utility(int64_t layer);
  // The per-unit running statistics only (units, inputs and the statistics
  // set; no weights): what continual backprop and ReDo read besides utilities.
  std::vector<CudaLayerState> export_stats();

  int64_t step() const { return step_; }
  int64_t input_size() const { return config_.input_size; }
  int64_t output_size() const { return layers_.empty() ? 0 : layers_.back().units; }
  int device() const { return config_.device; }
  CudaLossKind loss() const { return config_.loss; }
  void set_optimizer(const CudaOptimizer& o);
  // Decay of the per-unit statistics' moving averages, in (0, 1).
  void set_stats_decay(double decay);
  // Device bytes held by parameters, slots and transposes, spare capacity included (not activations or data).
  int64_t parameter_bytes() const;

  // Datasets: handles for train(); freed by release_dataset or with the model.
  // Labels are checked to be in [0, outputs) by the caller.
  int64_t add_dataset(const float* x, int64_t n, const int32_t* labels, const float* targets);
  void release_dataset(int64_t handle);
  bool has_dataset(int64_t handle) const { return datasets_.count(handle) != 0; }
  int64_t dataset_size(int64_t handle) const;

  // Steps over batches [first, first + count) of the epoch order (order: the
  // n sample indices of the whole epoch, host). progress(steps, totals) is
  // called from this thread at most every 50 ms (it syncs the stream to read
  // the totals). A non-finite batch loss stops all updates on the device at
  // that step (no sync per step); it is seen at those reads and at the end:
  // throws np::cuda::NonFiniteLoss with the step rolled back to the bad one,
  // so weights, slots and step are those before it, as on the CPU.
  CudaTrainResult train(int64_t dataset, const int32_t* order, int64_t first, int64_t count, int64_t batch_size,
                        const std::function<void(int64_t, const CudaTotals&)>& progress);
  CudaTotals evaluate(const float* x, const int32_t* labels, const float* targets, int64_t n, int64_t batch_size);
  void predict(const float* x, int64_t n, float* out, int64_t batch_size);

  std::atomic<bool> abort_requested{false};

 private:
  struct Layer {
    int64_t units = 0, inputs = 0;
    Activation activation = Activation::kLinear;
    float input_dropout = 0.0f;
    float drop_connect = 0.0f;
    bool use_bias = true;
    bool csr = false;
    int64_t count = 0;  // stored weights: units x inputs or nnz
    // Dense: the row pitch (>= inputs) and the rows allocated (>= units) of
    // the weight, its gradient and slots (the biases: row_capacity entries).
    // Spare capacity appears when a growth reallocates (1.5x, as the CPU's
    // DenseParam::grow) so the next growth fills it in place; it is always
    // zero in every slot. CSR: inputs and units. A layer with DropConnect
    // keeps none (its masks are drawn per compact position).
    int64_t stride = 0, row_capacity = 0;
    int64_t allocated() const { return csr ? count : row_capacity * stride; }
    bool strided() const { return !csr && stride != inputs; }
    DeviceBuffer weight, weight_grad, bias, bias_grad;
    DeviceBuffer weight_moments[2], bias_moments[2];
    DeviceBuffer indptr, indices;                  // CSR
    DeviceBuffer t_col_ptr, t_row_idx, t_value_pos; // CSR: W^T structure (built on the device per structure)
    DeviceBuffer mask, alive;                       // empty when unused
    DeviceBuffer dc_weight, dc_mask;                // DropConnect: this step's masked weights and mask (count)
    DeviceBuffer stats;                             // doubles: mean |a|, mean a, taylor (units each)
    int64_t stats_updates = 0;
    double* stat(int i) const { return stats.as<double>() + i * units; }
    CsrView view(const float* values = nullptr) const;  // values: another array in W's order (DropConnect)
    CsrTransposeView transpose_view() const;
  };
  static NormWeights norm_weights(const Layer& layer);
  // The layer's per-unit statistics into s (waits for the stream).
  void read_stats(const Layer& l, CudaLayerState& s);
  // scores with the layer's dead units at -inf (neuron_scores).
  std::vector<double> dead_units_last(const Layer& layer, std::vector<double> scores);

  // Whether restructure can grow `old` into the state `s` in place (cuda_restructure.cpp).
  static bool grows_in_place(const Layer& old, const CudaLayerState& s, const std::vector<int32_t>& rows,
                             const std::vector<int32_t>* cols);
  static void check_structure(size_t i, const CudaLayerState& l, int64_t inputs);
  static void check_values(size_t i, const CudaLayerState& l, size_t moments);
  void check_layers(const std::vector<CudaLayerState>& layers) const;
  // A layer with its settings, structure (and W^T's), no values yet; dense:
  // with the given row pitch and rows (0: inputs and units, no spare
  // capacity); zero gradients unless `gradients` is false (a growth in place
  // keeps the layer's own).
  Layer build_structure(const CudaLayerState& s, int64_t stride = 0, int64_t row_capacity = 0, bool gradients = true);
  // A dense slot (weight, gradient, moment) of `l` in compact order (units x
  // inputs), from its buffer with spare capacity; the buffer as it is otherwise.
  std::vector<float> download_weights(const Layer& l, const DeviceBuffer& b);
  // Waits for the stream, then swaps in `built` and drops the workspace.
  void replace_layers(std::vector<Layer> built, int64_t step);
  // The swap alone, once the stream is known to be done: nothing in it can fail.
  void swap_layers(std::vector<Layer> built, int64_t step) noexcept;
  int moment_slots() const;
  void ensure_workspace(int64_t batch);
  void forward(int64_t batch, bool training);
  // A decision's batch (gradient_growth, gradmax_product): forward without
  // dropout and dL/dy into grad_a_; returns the batch's device copy.
  std::unique_ptr<DeviceDataset> signal_pass(const float* x, const int32_t* labels, const float* targets, int64_t n);
  void loss(const int32_t* labels, const float* targets, int64_t batch, bool want_grad);
  void backward(int64_t batch);
  void apply_optimizer();
  CudaTotals read_totals(int64_t samples);
  std::unique_ptr<DeviceDataset> upload_dataset(const float* x, int64_t n, const int32_t* labels,
                                                const float* targets);

  // Throws std::runtime_error while unusable_ says why (a restructure failed
  // after changing a layer in place); load() makes the model whole again.
  void ensure_usable() const;
  std::string unusable_;
  CudaModelConfig config_;
  // Atomic: JS reads step() (the model's step getter) while a worker trains.
  std::atomic<int64_t> step_{0};
  // The stream belongs to the device current when it is created: select it first.
  bool device_selected_ = (set_device(config_.device), true);
  Stream stream_;
  std::vector<Layer> layers_;
  std::map<int64_t, std::unique_ptr<DeviceDataset>> datasets_;
  int64_t next_dataset_ = 1;
  // Workspace for one batch, grown as needed.
  int64_t ws_batch_ = 0;
  std::vector<DeviceBuffer> act_, dropped_, drop_mask_;
  DeviceBuffer grad_a_, grad_b_, labels_, targets_, order_, out_;
  DeviceBuffer row_abs_, row_sum_, row_dot_;  // per-unit sums of one layer's batch (statistics)
  DeviceBuffer totals_;  // two LossTotals: [0] this batch, [1] running sum
  DeviceBuffer halt_;    // NonFiniteStep of the current train() call
  DeviceBuffer loss_ws_;
  DeviceBuffer transpose_scratch_;  // csr_transpose_cuda's table of row-block cursors
};

// The loss was NaN or infinite during a train() call.
class NonFiniteLoss : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace np::cuda
