// The model: a stack of dense layers with their parameters, the optimizer and
// loss settings, the global step counter and the random generator. Plain C++:
// the binding owns one Model per JS Sequential and drives it.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "kernels/activations.h"
#include "model/csr_param.h"
#include "model/events.h"
#include "model/magnitude_drops.h"
#include "model/param.h"
#include "model/rng.h"
#include "model/state.h"
#include "model/workspace.h"

namespace np {

class ThreadPool;

enum class InitKind : int { kAuto = 0, kHeNormal = 1, kGlorotUniform = 2, kZeros = 3 };
enum class GrowInit : int { kZero = 0, kNet2Wider = 1, kGradMax = 2, kRandom = 3 };
enum class OptimizerKind : int { kNone = 0, kSgd = 1, kAdam = 2 };
enum class LossKind : int { kSoftmaxCrossEntropy = 0, kMeanSquaredError = 1 };

struct LayerSpec {
  int64_t units = 0;
  Activation activation = Activation::kLinear;
  float input_dropout = 0.0f;  // inverted dropout applied to this layer's input while training
  float drop_connect = 0.0f;   // DropConnect rate on this layer's weights while training
  InitKind init = InitKind::kAuto;
  bool use_bias = true;
  float sparse_threshold = -1.0f;  // density below which the weights are stored as CSR; < 0: model default
  // Initial weight density: below 1 the layer is built directly as CSR with a
  // random pattern (never materialising the dense matrix), so memory grows
  // with connections, not with width squared.
  double density = 1.0;
};

enum class WeightFormat : int { kDense = 0, kCsr = 1 };

// Per-unit running statistics, updated every training step; the neuron
// pruning criteria (and reinitialisation schemes) read them.
struct NeuronStats {
  std::vector<double> mean_abs_activation;  // EMA of mean |a| over the batch
  std::vector<double> mean_activation;      // EMA of mean a (for bias compensation)
  std::vector<double> taylor;               // EMA of |sum_b a * dL/da|
  int64_t updates = 0;
};

struct DenseLayer {
  int64_t inputs = 0;
  int64_t units = 0;
  Activation activation = Activation::kLinear;
  float input_dropout = 0.0f;
  float drop_connect = 0.0f;
  bool use_bias = true;
  float sparse_threshold = -1.0f;
  WeightFormat format = WeightFormat::kDense;
  DenseParam weight;  // units x inputs (dense format)
  CsrParam csr;       // units x inputs (CSR format)
  // Dense format only: 1 = stored weight, 0 = pruned (held at zero). Empty
  // while nothing is pruned. Row-major units x inputs (no stride).
  std::vector<uint8_t> mask;
  DenseParam bias;    // units x 1
  // 0 marks a unit removed by neuron pruning that compact() has not yet
  // dropped: its weights, bias and outgoing weights are held at zero.
  std::vector<uint8_t> alive;
  std::vector<int64_t> neuron_ids;  // stable ids, one per unit
  std::vector<int64_t> birth_step;  // step each unit was created or last reinitialised (its age is step - birth)
  NeuronStats stats;
  // Continual backprop's fractional replacements carried to the next step
  // (rate x eligible units is rarely whole); saved, so a resumed run matches.
  double cbp_carry = 0.0;

  int64_t nnz() const;
  int64_t weight_bytes() const;
  int64_t dead_units() const;
  // Whether weight (r, c) is stored (CSR: binary search of row r).
  bool stores(int64_t r, int64_t c) const;
  bool unit_alive(int64_t r) const { return alive.empty() || alive[r]; }
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

// What gradmax reads of the network to grow a layer (Model::gradmax_product).
struct GradMaxProduct {
  std::vector<float> m;         // next layer's units x the grown layer's inputs, row-major
  double weight_squares = 0.0;  // sum of the next layer's squared weights
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

  // ---- structure (structure.cpp) ------------------------------------------
  // Removes the `amount` fraction of the currently stored weights with the
  // smallest magnitude, per layer or with one global ranking over `layers`.
  // Returns the number removed. Layers whose density falls below their
  // threshold switch to CSR.
  // drops (one per entry of `layers`, magnitude_drops.h): the decision made
  // where the weights are (a GPU model's), checked against the plan and
  // applied instead of ranking the host's own weights; nullptr: rank them.
  int64_t prune_weights_magnitude(const std::vector<int64_t>& layers, double amount, bool global,
                                  const std::vector<DropBits>* drops = nullptr);
  // Prunes (as above) just enough to reach `sparsity` (fraction of zeros);
  // a layer already sparser is left alone. Used by the gradual schedule.
  int64_t prune_weights_to_sparsity(const std::vector<int64_t>& layers, double sparsity, bool global,
                                    const std::vector<DropBits>* drops = nullptr);
  // The plans of the two calls above and of regrow's drops (from the
  // structure alone: same checks, same counts), and what the host's own
  // weights say each plan removes (the reference for a device's bits).
  MagnitudePlan plan_prune_weights(const std::vector<int64_t>& layers, double amount, bool global) const;
  MagnitudePlan plan_prune_to_sparsity(const std::vector<int64_t>& layers, double sparsity, bool global) const;
  MagnitudePlan plan_regrow_drops(const std::vector<int64_t>& layers, double fraction) const;
  std::vector<DropBits> magnitude_drops(const std::vector<int64_t>& layers, const MagnitudePlan& plan) const;
  // Marks the `amount` fraction of the live units of each hidden layer in
  // `layers` with the lowest criterion score as dead (weights, bias and
  // outgoing weights zeroed and held at zero until compact()). With global,
  // one ranking over all the layers on per-layer normalised scores. At least
  // one unit per layer always stays. Returns the number pruned.
  // scores (one per entry of `layers`, one per unit): the criterion's scores
  // computed where the numbers are (a GPU model's, bit for bit what
  // neuron_scores gives on the same numbers), used instead of the host's;
  // not for 'random', whose scores are this model's generator's.
  int64_t prune_neurons(const std::vector<int64_t>& layers, double amount, const std::string& criterion,
                        bool global, const std::vector<std::vector<double>>* scores = nullptr);
  // Per-unit scores of a criterion for a hidden layer (higher = more useful).
  std::vector<double> neuron_scores(int64_t layer, const std::string& criterion);
  // The checks neuron_scores makes before scoring (layer, criterion, not the output layer).
  void check_neuron_criterion(int64_t layer, const std::string& criterion) const;
  // Physically removes dead units (rows of W_l and b_l, columns of W_l+1, all
  // slots, ids, statistics), drops pruned entries, and stores layers below
  // their density threshold as CSR. Outputs do not change.
  void compact(ThreadPool* pool);
  // Switches a layer's storage format, keeping every slot. Logged.
  void convert_to_csr(int64_t layer, const char* reason);
  void convert_to_dense(int64_t layer, const char* reason);
  // The density below which `layer` is stored as CSR.
  double sparse_threshold(int64_t layer, ThreadPool* pool);
  void set_default_sparse_threshold(double density) { default_sparse_threshold_ = density; }
  double default_sparse_threshold() const { return default_sparse_threshold_; }
  void set_layer_sparse_threshold(int64_t layer, double density);

  // ---- growth and plasticity (growth.cpp, regrowth.cpp, reinit.cpp) ---------
  // Dropin: appends `count` units to hidden layer `layer` in place (rows of
  // W_l and b_l, columns of W_l+1, every slot, fresh optimizer state, new ids).
  // noise: zero/random: unused; net2wider: how unevenly a split unit's
  // outgoing weights are shared (0 = halves, exact symmetry); gradmax: unused.
  // gradmax needs a batch: `x`/`targets` (n samples), or the last training
  // batch when keep_last_batch is on. Returns the new units' ids.
  // product: gradmax's reading of the network, decided where the weights are
  // (a GPU model's gradmax_product); nullptr: computed here (gradmax_product).
  std::vector<int64_t> grow_units(int64_t layer, int64_t count, GrowInit init, double noise, const float* x,
                                  const Targets* targets, int64_t n, ThreadPool* pool,
                                  const GradMaxProduct* product = nullptr);
  // What gradmax reads of the network to grow hidden layer `layer`: M = the
  // sum over the batch of dL/dz_{layer+1} a_{layer-1}^T (next layer's units x
  // this layer's inputs, row-major), from the batch x / targets (n samples) or
  // the kept last batch (x nullptr), and the sum of squares of the next
  // layer's weights (the new outgoing columns get their typical norm). The
  // new units' outgoing weights are M's top left singular vectors.
  GradMaxProduct gradmax_product(int64_t layer, const float* x, const Targets* targets, int64_t n, ThreadPool* pool);
  // How the last grow_units call split units (net2wider): each source unit of
  // the grown layer with the share of its outgoing weights it kept. Its
  // column of the next layer was scaled by that share: value and first
  // moment times it, second moment times its square. layer is -1 after any
  // other growth, a compaction (it renumbers units) or an import; read it
  // right after the growth. The CUDA model scales the same slots on the
  // device with it.
  // copies: per new unit (in order), its source unit and the share of the
  // source's outgoing weights it took (its new column of the next layer is
  // the source's column times that share, its row and bias the source's).
  struct UnitSplit {
    int64_t layer = -1;
    std::vector<std::pair<int64_t, float>> shares;
    std::vector<std::pair<int64_t, float>> copies;
  };
  const UnitSplit& last_split() const { return last_split_; }
  // What the last continual-backprop round's reinitialisations moved into the
  // next layers' biases: per layer whose units were replaced, those units
  // (ascending) and each one's mean output, w * mean added to the next
  // layer's bias b[r] in that order. Cleared when a round, ReDo or a growth
  // starts, and by compact and import_state (they renumber units).
  // A GPU model applies the same with its own weights (compensate_inputs).
  // A gradmax growth records one too (new_weights): its new units emit
  // act(0), taken out through their new outgoing weights (means = -act(0)).
  struct Compensation {
    int64_t layer = -1;
    std::vector<int64_t> units;
    std::vector<double> means;
    bool new_weights = false;  // through the next layer's weights after the change, not before
  };
  const std::vector<Compensation>& last_compensations() const { return last_compensations_; }
  // Random sparse connectivity at `sparsity` overall: 'uniform' (every layer
  // the same) or Erdos-Renyi densities ~ (fan_in + fan_out) / (fan_in x fan_out).
  // `which`: dense-layer indices, empty for all.
  void sparsify(double sparsity, bool erdos_renyi, const std::vector<int64_t>& which, ThreadPool* pool);
  // The layers the last sparsify thinned, each with the factor its kept
  // weights were multiplied by (their slots restarted at zero): a GPU model
  // does the same to its own weights. Cleared by the next sparsify.
  struct Rescale {
    int64_t layer = -1;
    float scale = 1.0f;
  };
  const std::vector<Rescale>& last_rescales() const { return last_rescales_; }
  // Drop-and-regrow: drops `fraction` of each layer's stored weights (smallest
  // magnitude) and grows as many new connections (value 0, fresh optimizer
  // state) at random (SET) or where the dense gradient of the last training
  // batch is largest (RigL, computed block by block), or of `x`/`targets` (n
  // samples) when given. drops: which weights to drop, decided where the
  // weights are (plan_regrow_drops' counts; see prune_weights_magnitude).
  // Returns the number regrown.
  // grows (RigL only): the positions to grow, chosen elsewhere (a GPU
  // model's gradient_growth), one ascending list per layer, checked to be
  // the plan's count of open positions.
  int64_t regrow(const std::vector<int64_t>& layers, double fraction, bool by_gradient, ThreadPool* pool,
                 const float* x = nullptr, const Targets* targets = nullptr, int64_t n = 0,
                 const std::vector<DropBits>* drops = nullptr,
                 const std::vector<std::vector<int64_t>>* grows = nullptr);
  // RigL's choice without the change: per listed layer, the counts[i] open
  // positions with the largest |dL/dw| on the kept batch (or x / targets),
  // ascending; what regrow grows for distinct layers (the reference for a
  // GPU model's choice).
  std::vector<std::vector<int64_t>> gradient_growth(const std::vector<int64_t>& layers, const std::vector<int64_t>& counts,
                                                    ThreadPool* pool, const float* x = nullptr,
                                                    const Targets* targets = nullptr, int64_t n = 0);
  // Reinitialises units of a hidden layer: incoming weights re-drawn, bias 0,
  // outgoing weights 0 (next bias compensated by the units' mean output when
  // `compensate`), ages, statistics and optimizer state reset. Logged with scores.
  void reinit_units(int64_t layer, const std::vector<int64_t>& units, const std::string& criterion,
                    const std::vector<double>& scores, bool compensate);
  // Continual-backprop utility of each unit (Dohare et al. 2024): EMA of |a|
  // times mean |outgoing weight| (bias-corrected). Dead units: -inf.
  std::vector<double> unit_utility(int64_t layer);
  // One continual-backprop replacement round over the hidden layers (called
  // after each step when enabled): replaces a `rate` fraction of the units
  // older than `maturity`, lowest utility first. Returns the number replaced.
  // utilities: one list per hidden layer computed where the numbers are (a
  // GPU model's unit_utility, bit for bit unit_utility's), used instead of
  // this model's.
  int64_t continual_backprop_step(double rate, int64_t maturity,
                                  const std::vector<std::vector<double>>* utilities = nullptr);
  // Continual backprop for a model whose steps run elsewhere (the GPU model):
  // the first of the `max` steps after `from_step` whose replacement round
  // replaces a unit (1..max, by the same ages and carry as the rounds inside
  // train_batch), or 0 when none does; and the carry of `steps` rounds that
  // replace nothing, applied. The replacing round itself is
  // continual_backprop_step at that step. Only the structure is read.
  int64_t continual_backprop_due(int64_t from_step, int64_t max) const;
  void continual_backprop_skip(int64_t from_step, int64_t steps);
  void set_continual_backprop(double rate, int64_t maturity) {
    cbp_rate_ = rate;
    cbp_maturity_ = maturity;
  }
  double cbp_rate() const { return cbp_rate_; }
  int64_t cbp_maturity() const { return cbp_maturity_; }
  // ReDo (Sokar et al. 2023): reinitialises units whose dormancy score
  // mean|a_i| / mean_k mean|a_k| is <= threshold. Returns the number reset.
  int64_t redo(double threshold);
  // Keep a copy of each training batch for gradient-based growth (RigL, GradMax).
  void set_keep_last_batch(bool keep) { keep_last_batch_ = keep; }
  // The training loop marks the batch after which JS may need the growth
  // signals (the last of a native call); only that one is copied.
  void set_batch_may_be_kept(bool may) { batch_may_be_kept_ = may; }
  // Decay of the per-unit statistics' moving averages (default 0.99).
  void set_stats_decay(double decay) { stats_decay_ = decay; }
  double stats_decay() const { return stats_decay_; }
  int64_t next_neuron_id() const { return next_neuron_id_; }

  // Lottery-ticket support: remember the current weights (by neuron id), and
  // later restore the surviving weights to those values with fresh optimizer
  // state, keeping the current sparsity pattern.
  void snapshot_weights();
  std::vector<int64_t> snapshot_steps() const;
  void rewind(int64_t step);

  // Checkpoints (state.cpp): the whole training state out, and back in after
  // checking every size and invariant (nothing changes if a check fails).
  ModelState export_state() const;
  void import_state(ModelState state);
  // The state with the numbers (weights, biases and their moments) of only
  // the layers where with_values[l] is true; the others' are left empty. For
  // a caller that needs the structure, not the numbers.
  ModelState export_state(const std::vector<bool>& with_values) const;
  // Writes numbers in place (state_values.cpp): the step, and for each layer
  // (`layers` empty: none) what it gives; the structure, neuron ids, events
  // and generator stay. For numbers that were changed elsewhere (a GPU) and
  // come back without the structure. Every size is checked, and that pruned
  // positions and dead units hold zeros, before anything changes.
  void set_values(int64_t step, const std::vector<LayerValuesIn>& layers);
  // One slot of a layer's weights (in stored order: dense units x inputs
  // row-major, CSR its values) or of its biases, copied into `out`, which
  // holds stored_weights(layer) or units floats. With export_state(no
  // values), an export straight into the caller's memory, with no temporary.
  int64_t stored_weights(size_t layer) const;
  void copy_slot(size_t layer, bool bias, Slot slot, float* out) const;
  int moment_slots() const { return layers_.empty() ? 0 : layers_[0].bias.moment_slots(); }

  // The event log keeps the newest event_limit() events (0: all); older ones
  // are discarded, and events_dropped() counts them, so index i of the whole
  // history is events()[i - events_dropped()].
  const std::deque<StructuralEvent>& events() const { return events_; }
  int64_t events_dropped() const { return events_dropped_; }
  int64_t event_count() const { return events_dropped_ + static_cast<int64_t>(events_.size()); }
  int64_t event_limit() const { return event_limit_; }
  void set_event_limit(int64_t limit);

  // Frees what training keeps between calls to go faster (the workspace of
  // activations and gradients, the kept last batch, CSR transposes); the next
  // training call rebuilds it. Weights, optimizer state and snapshots stay.
  void release_scratch();
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }

  // Set from any thread to stop a running train loop at the next batch.
  std::atomic<bool> abort_requested{false};

 private:
  void log_event(StructuralEvent event);
  void apply_format_policy(int64_t layer, ThreadPool* pool);
  void kill_units(int64_t layer, const std::vector<int64_t>& units);
  void update_activation_stats(int64_t layer, const float* abs_sum, const float* sum, int64_t batch);
  void update_taylor_stats(int64_t layer, const float* dot);
  void mask_gradients(DenseLayer& layer, ThreadPool* pool);
  const float* drop_connect_weights(size_t layer);
  // Re-runs forward and backward on the kept last training batch (or on the
  // batch in the workspace), capturing each layer's dL/dz in ws_.dz. Returns
  // the batch size.
  int64_t recompute_signals(ThreadPool* pool);
  void load_signal_batch(const float* x, const Targets& targets, int64_t n);
  // recompute_signals on x / targets (n samples), or on the kept batch when x
  // is nullptr; a given batch leaves the kept one as it was. Returns the batch size.
  int64_t signals_of(const float* x, const Targets* targets, int64_t n, ThreadPool* pool);
  void init_incoming_row(DenseLayer& layer, int64_t unit, float scale);
  // Removes the k smallest-magnitude stored weights of a layer (no event, no format change).
  // drops: the decision made elsewhere (checked to remove exactly k).
  int64_t remove_smallest(int64_t layer, int64_t k, const DropBits* drops = nullptr);
  // Checks drops against the plan (sizes, stored positions only, counts) before anything changes.
  void check_drops(const std::vector<int64_t>& layers, const MagnitudePlan& plan, const std::vector<DropBits>& drops) const;
  // How many weights regrow drops (and grows) in a layer: floor(fraction * nnz), at most the open positions.
  int64_t regrow_count(int64_t layer, double fraction) const;
  std::vector<int64_t> rigl_choice(int64_t layer, int64_t k, int64_t batch, ThreadPool* pool) const;
  void init_layer_weights(DenseLayer& layer, InitKind init);
  void init_sparse_layer(DenseLayer& layer, InitKind init, double density);
  // Forward over columns [0, batch) of the workspace input; dropout only when training.
  void forward(int64_t batch, bool training, ThreadPool* pool);
  BatchStats loss_and_gradient(const Targets& targets, const int32_t* indices, int64_t first, int64_t batch,
                               int64_t grad_divisor, bool want_grad);
  // Backward from the loss gradient in the workspace; beta = 1 accumulates
  // into the gradient slots; training says whether forward applied dropout.
  // weight_grads = false skips the weight and bias gradients (signal capture only).
  void backward(int64_t batch, float beta, bool training, ThreadPool* pool, bool capture_dz = false,
                bool weight_grads = true);
  void apply_optimizer(ThreadPool* pool);
  void load_batch(const float* x, const int32_t* indices, int64_t first, int64_t batch, ThreadPool* pool = nullptr);

  int64_t input_size_;
  std::vector<DenseLayer> layers_;
  OptimizerConfig optimizer_;
  LossKind loss_ = LossKind::kSoftmaxCrossEntropy;
  int64_t step_ = 0;
  int64_t next_neuron_id_ = 0;
  UnitSplit last_split_;
  std::vector<Compensation> last_compensations_;
  std::vector<Rescale> last_rescales_;
  Rng rng_;
  Workspace ws_;
  std::deque<StructuralEvent> events_;  // a deque: the oldest leaves in O(1) when the log is full
  int64_t events_dropped_ = 0;
  int64_t event_limit_ = 0;
  void trim_events(int64_t keep);
  int64_t epoch_ = 0;
  double default_sparse_threshold_ = -1.0;  // < 0: measured crossover
  double stats_decay_ = 0.99;
  double cbp_rate_ = 0.0;
  int64_t cbp_maturity_ = 0;
  bool keep_last_batch_ = false;
  bool batch_may_be_kept_ = true;
  int64_t last_batch_ = 0;  // size of the kept training batch (0: none)
  struct Snapshot {
    int64_t step;
    // Per layer: unit ids, input ids and the dense weight values (units x inputs).
    std::vector<std::vector<int64_t>> unit_ids, input_ids;
    std::vector<std::vector<float>> weights, biases;
  };
  std::vector<Snapshot> snapshots_;
};

}  // namespace np
