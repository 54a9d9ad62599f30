// The device-resident model's pieces against CPU references: gather +
// transposition, label gathers, gradient masks, dropout (the host copy of the
// generator), mean squared error (native/kernels/losses.cpp); then the whole
// CudaModel against np::Model (native/model): the same state and batch order,
// a few SGD-momentum and Adam steps on a dense + CSR + dense MLP, and the
// weights, moments, losses and predictions compared.
// Tolerances: data movement exact; MSE 1e-5 relative; model parameters after
// 5 steps within 2e-4 * (1 + |w|) (float sums in another order, compounded by
// the optimizer), loss sums 1e-4 relative, predictions 1e-4 absolute.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>
#include <vector>

#if defined(NP_CUDA_EMULATOR)
#include <cuda_runtime.h>  // the emulator's: its memory limit, for the out-of-memory test
#endif

#include "cuda/cuda_model.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "../../tests/remap_sources.h"
#include "cuda_mirror.h"
#include "cuda_test.h"
#include "kernels/losses.h"
#include "kernels/thread_pool.h"
#include "model/errors.h"
#include "model/model.h"

namespace {

using namespace np_cuda_test;
namespace nc = np::cuda;

CUDA_TEST(gather_transpose_f32_cuda_matches_host) {
  nc::Stream s;
  const int64_t n = 77, features = 45, batch = 33, first = 20;
  const std::vector<float> x = random_vector(n * features, 11);
  std::vector<int32_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>((i * 31 + 7) % n);
  nc::DeviceBuffer dx = nc::to_device(x, s), dorder = nc::to_device(order, s);
  const int64_t ldd = batch + 3;
  nc::DeviceBuffer out = nc::to_device(std::vector<float>(features * ldd, kSentinel), s);
  for (bool indexed : {true, false}) {
    nc::gather_transpose_f32_cuda(out.as<float>(), ldd, dx.as<float>(), features, indexed ? dorder.as<int32_t>() : nullptr,
                                  first, batch, features, s);
    const std::vector<float> got = nc::to_host<float>(out, features * ldd, s);
    int bad = 0;
    for (int64_t c = 0; c < features; ++c) {
      for (int64_t j = 0; j < batch; ++j) {
        const int64_t row = indexed ? order[first + j] : first + j;
        bad += got[c * ldd + j] != x[row * features + c];
      }
      for (int64_t j = batch; j < ldd; ++j) bad += got[c * ldd + j] != kSentinel;
    }
    CHECK_MSG(bad == 0, "%s gather: %d wrong entries", indexed ? "indexed" : "plain", bad);
  }
  std::vector<int32_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i * 3);
  nc::DeviceBuffer dl = nc::to_device(labels, s), dlo(batch * sizeof(int32_t));
  nc::gather_i32_cuda(dlo.as<int32_t>(), dl.as<int32_t>(), dorder.as<int32_t>(), first, batch, s);
  const std::vector<int32_t> got = nc::to_host<int32_t>(dlo, batch, s);
  for (int64_t j = 0; j < batch; ++j) CHECK_EQ(got[j], labels[order[first + j]]);
}

CUDA_TEST(mask_and_dropout_cuda_match_host) {
  nc::Stream s;
  const int64_t rows = 19, cols = 37, ld = 40;
  std::vector<float> g = padded_block(rows, cols, ld, 3);
  std::vector<uint8_t> keep(rows * cols);
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = (i * 7) % 3 != 0;
  nc::DeviceBuffer dg = nc::to_device(g, s), dk = nc::to_device(keep, s);
  nc::mask_by_flags_cuda(dg.as<float>(), ld, dk.as<uint8_t>(), rows, cols, s);
  const std::vector<float> got = nc::to_host<float>(dg, g.size(), s);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c) {
      const float want = c < cols && !keep[r * cols + c] ? 0.0f : g[r * ld + c];
      CHECK_MSG(got[r * ld + c] == want, "mask (%lld, %lld)", static_cast<long long>(r), static_cast<long long>(c));
    }

  const int64_t count = 100000;
  const float rate = 0.3f;
  const std::vector<float> in = random_vector(count, 5);
  nc::DeviceBuffer din = nc::to_device(in, s), dd(count * sizeof(float)), dm(count * sizeof(float));
  nc::dropout_forward_cuda(dd.as<float>(), dm.as<float>(), din.as<float>(), count, rate, 42, 7, s);
  const std::vector<float> dropped = nc::to_host<float>(dd, count, s), mask = nc::to_host<float>(dm, count, s);
  int64_t kept = 0, bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float want = nc::dropout_uniform(42, 7, i) >= rate ? 1.0f / (1.0f - rate) : 0.0f;
    bad += mask[i] != want || dropped[i] != in[i] * want;
    kept += want != 0.0f;
  }
  CHECK_MSG(bad == 0, "dropout: %lld entries differ from the host generator", static_cast<long long>(bad));
  CHECK_NEAR(static_cast<double>(kept) / count, 1.0 - rate, 0.01);
  nc::multiply_cuda(din.as<float>(), dm.as<float>(), count, s);
  CHECK(nc::to_host<float>(din, count, s) == dropped);
}

CUDA_TEST(mean_squared_error_cuda_matches_cpu) {
  nc::Stream s;
  const int64_t outputs = 7, batch = 300;
  const std::vector<float> y = random_vector(outputs * batch, 8), t = random_vector(outputs * batch, 9);
  std::vector<float> want_grad(outputs * batch);
  int64_t want_correct = 0;
  const double want = np::mean_squared_error(want_grad.data(), y.data(), batch, t.data(), outputs, 0, batch, batch, &want_correct);
  nc::DeviceBuffer dy = nc::to_device(y, s), dt = nc::to_device(t, s), dg(outputs * batch * sizeof(float)),
                   tot(sizeof(nc::LossTotals)), ws;
  nc::mean_squared_error_cuda(dg.as<float>(), tot.as<nc::LossTotals>(), dy.as<float>(), batch, dt.as<float>(), outputs, batch, ws, s);
  nc::LossTotals got;
  tot.download(&got, sizeof got, s);
  CHECK_NEAR(got.loss, want, 1e-5 * want);
  CHECK_EQ(got.correct, want_correct);
  const std::vector<float> grad = nc::to_host<float>(dg, outputs * batch, s);
  double worst = 0.0;
  for (size_t i = 0; i < grad.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(grad[i]) - want_grad[i]));
  CHECK_MSG(worst <= 1e-7, "MSE gradient differs by %g", worst);
}

// ---- the whole model against np::Model ------------------------------------------

void compare_training(np::OptimizerKind kind, int64_t batch = 32) {
  const int64_t inputs = 20, n = 3 * batch, steps = 5, outputs = 4;
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 24;
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.1f;  // stays dense (with a mask) after the pruning below
  specs[1].units = 16;
  specs[1].activation = np::Activation::kTanh;
  specs[1].density = 0.3;  // built as CSR
  specs[1].sparse_threshold = 0.5f;
  specs[2].units = outputs;
  np::Model cpu(inputs, 7, specs);
  np::OptimizerConfig o;
  o.kind = kind;
  o.learning_rate = kind == np::OptimizerKind::kAdam ? 0.01f : 0.1f;
  o.momentum = 0.9f;
  o.weight_decay = 1e-3f;
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  // Prune a few dense weights of layer 0 so the mask path runs too.
  cpu.prune_weights_magnitude({0}, 0.2, false);
  CHECK(cpu.layers()[1].format == np::WeightFormat::kCsr);
  CHECK(!cpu.layers()[0].mask.empty());

  const np::ModelState st = cpu.export_state();
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < st.layers.size(); ++l) layers.push_back(to_cuda(st.layers[l], cpu.layers()[l]));
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer.kind = kind == np::OptimizerKind::kAdam ? nc::CudaOptimizerKind::kAdam : nc::CudaOptimizerKind::kSgd;
  config.optimizer.learning_rate = o.learning_rate;
  config.optimizer.momentum = o.momentum;
  config.optimizer.weight_decay = o.weight_decay;
  nc::CudaModel gpu(config, st.step, layers);

  const std::vector<float> x = random_vector(n * inputs, 21);
  std::vector<int32_t> labels(n), order(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>((i * 5) % outputs);
    order[i] = static_cast<int32_t>((i * 37 + 11) % n);
  }
  np::ThreadPool pool(1);
  np::Targets targets;
  targets.labels = labels.data();
  double cpu_loss = 0.0;
  int64_t cpu_correct = 0;
  const int64_t batches = n / batch;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t b = s % batches;
    np::BatchStats bs = cpu.train_batch(x.data(), targets, order.data() + b * batch, batch, &pool);
    if (s >= batches) {  // the GPU's last train() call covers the steps after the first epoch
      cpu_loss += bs.loss_sum;
      cpu_correct += bs.correct;
    }
  }
  const int64_t dataset = gpu.add_dataset(x.data(), n, labels.data(), nullptr);
  nc::CudaTrainResult r{};
  for (int64_t done = 0; done < steps; done += r.steps) {
    const int64_t first = done % batches, count = std::min(batches - first, steps - done);
    r = gpu.train(dataset, order.data(), first, count, batch, nullptr);
  }
  CHECK_EQ(gpu.step(), cpu.step());
  CHECK_NEAR(r.totals.loss_sum, cpu_loss, 1e-4 * std::fabs(cpu_loss));
  CHECK_EQ(r.totals.correct, cpu_correct);

  const np::ModelState after = cpu.export_state();
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  for (size_t l = 0; l < got.size(); ++l) {
    auto close = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
      CHECK_MSG(a.size() == b.size(), "layer %zu %s: sizes %zu vs %zu", l, what, a.size(), b.size());
      double worst = 0.0;
      for (size_t i = 0; i < a.size() && i < b.size(); ++i)
        worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::fabs(b[i])));
      CHECK_MSG(worst <= 2e-4, "layer %zu %s differs by %g (scaled)", l, what, worst);
    };
    close(got[l].weight, after.layers[l].weight, "weight");
    close(got[l].bias, after.layers[l].bias, "bias");
    CHECK_EQ(got[l].weight_moments.size(), after.layers[l].weight_moments.size());
    for (size_t m = 0; m < got[l].weight_moments.size(); ++m) {
      close(got[l].weight_moments[m], after.layers[l].weight_moments[m], "weight moment");
      close(got[l].bias_moments[m], after.layers[l].bias_moments[m], "bias moment");
    }
    // Unit statistics: the same EMAs from the same steps (double on both sides, float row sums).
    CHECK_EQ(got[l].stats_updates, after.layers[l].stats_updates);
    const std::pair<const std::vector<double>*, const std::vector<double>*> stats[] = {
        {&got[l].mean_abs_activation, &after.layers[l].mean_abs_activation},
        {&got[l].mean_activation, &after.layers[l].mean_activation},
        {&got[l].taylor, &after.layers[l].taylor}};
    for (const auto& [g, w] : stats) {
      CHECK_MSG(g->size() == w->size() || w->empty(), "layer %zu: statistics sizes %zu vs %zu", l, g->size(), w->size());
      // Relative to the largest entry: a per-unit sum near zero has no meaningful relative error.
      double worst = 0.0, largest = 1e-30;
      for (double v : *w) largest = std::max(largest, std::fabs(v));
      for (size_t i = 0; i < g->size() && i < w->size(); ++i) worst = std::max(worst, std::fabs((*g)[i] - (*w)[i]) / largest);
      CHECK_MSG(worst <= 1e-4, "layer %zu: unit statistics differ by %g of the largest", l, worst);
    }
    if (!after.layers[l].mask.empty())
      for (size_t i = 0; i < got[l].weight.size(); ++i)
        if (!after.layers[l].mask[i]) CHECK_MSG(got[l].weight[i] == 0.0f, "layer %zu: pruned weight %zu moved", l, i);
  }

  std::vector<float> want_out(n * outputs), got_out(n * outputs);
  cpu.predict(x.data(), n, want_out.data(), 50, &pool);
  gpu.predict(x.data(), n, got_out.data(), 50);
  double worst = 0.0;
  for (size_t i = 0; i < got_out.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(got_out[i]) - want_out[i]));
  CHECK_MSG(worst <= 1e-4, "predictions differ by %g", worst);
  const np::BatchStats ev = cpu.evaluate(x.data(), targets, n, 40, &pool);
  const nc::CudaTotals gev = gpu.evaluate(x.data(), labels.data(), nullptr, n, 40);
  CHECK_NEAR(gev.loss_sum, ev.loss_sum, 1e-4 * ev.loss_sum);
  CHECK_EQ(gev.correct, ev.correct);
}

CUDA_TEST(cuda_model_sgd_matches_cpu_model) { compare_training(np::OptimizerKind::kSgd); }
CUDA_TEST(cuda_model_adam_matches_cpu_model) { compare_training(np::OptimizerKind::kAdam); }

// At batch 128 the CSR layer's products (forward, and W^T dY backward) take the
// staged kernel (kernels.h SpmmKernel::kAuto, density 0.3 >= 1/16; the
// emulator counts its launches).
CUDA_TEST(cuda_model_matches_cpu_model_at_batch_128) {
#if defined(NP_CUDA_EMULATOR)
  const int64_t staged_before = np::cuda::emulator::launches_of("spmm_f32_csr_staged_kernel");
#endif
  compare_training(np::OptimizerKind::kAdam, 128);
#if defined(NP_CUDA_EMULATOR)
  if (std::getenv("NEUROPLASTIC_CUDA_SPMM") == nullptr)
    CHECK_MSG(np::cuda::emulator::launches_of("spmm_f32_csr_staged_kernel") >= staged_before + 2 * 5,
              "the staged kernel did not run the CSR layer's products");
#endif
}

// Export -> load round trip keeps every value, and a bad state is rejected
// before anything changes.
CUDA_TEST(cuda_model_export_load_round_trip) {
  std::vector<np::LayerSpec> specs(2);
  specs[0].units = 9;
  specs[0].activation = np::Activation::kSigmoid;
  specs[1].units = 3;
  np::Model cpu(5, 3, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  cpu.compile(o, np::LossKind::kMeanSquaredError);
  const np::ModelState st = cpu.export_state();
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < st.layers.size(); ++l) layers.push_back(to_cuda(st.layers[l], cpu.layers()[l]));
  nc::CudaModelConfig config;
  config.input_size = 5;
  config.optimizer.kind = nc::CudaOptimizerKind::kAdam;
  config.loss = nc::CudaLossKind::kMeanSquaredError;
  nc::CudaModel gpu(config, 12, layers);
  std::vector<nc::CudaLayerState> back = gpu.export_layers();
  CHECK_EQ(gpu.step(), 12);
  for (size_t l = 0; l < back.size(); ++l) {
    CHECK(back[l].weight == layers[l].weight);
    CHECK(back[l].bias == layers[l].bias);
    CHECK_EQ(back[l].weight_moments.size(), size_t{2});
  }
  std::vector<nc::CudaLayerState> broken = layers;
  broken[1].weight.pop_back();
  bool threw = false;
  try {
    gpu.load(99, broken);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  CHECK_EQ(gpu.step(), 12);
  // set_values: numbers in place, what is not given kept; a wrong size changes nothing.
  std::vector<nc::CudaLayerValues> values(2);
  values[1].weight = random_vector(static_cast<int64_t>(layers[1].weight.size()), 9);
  values[1].weight_moments = {std::vector<float>(layers[1].weight.size(), 0.5f), std::vector<float>(layers[1].weight.size(), 0.25f)};
  gpu.set_values(values);
  std::vector<nc::CudaLayerState> set = gpu.export_layers();
  CHECK(set[1].weight == *values[1].weight);
  CHECK(set[1].weight_moments[1] == values[1].weight_moments[1]);
  CHECK(set[1].bias == layers[1].bias);
  CHECK(set[0].weight == layers[0].weight);
  values[0].bias = std::vector<float>{1.0f};
  threw = false;
  try {
    gpu.set_values(values);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(gpu.export_layers()[0].bias == layers[0].bias);
  gpu.load(12, layers);
  // MSE training runs (targets path) and the loss goes down.
  const int64_t n = 64;
  const std::vector<float> x = random_vector(n * 5, 4), t = random_vector(n * 3, 5, 0.5f);
  std::vector<int32_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  const int64_t d = gpu.add_dataset(x.data(), n, nullptr, t.data());
  const double before = gpu.evaluate(x.data(), nullptr, t.data(), n, 64).loss_sum;
  for (int e = 0; e < 20; ++e) gpu.train(d, order.data(), 0, 4, 16, nullptr);
  const double after = gpu.evaluate(x.data(), nullptr, t.data(), n, 64).loss_sum;
  CHECK_MSG(after < before, "MSE loss %g -> %g did not decrease", before, after);
  gpu.release_dataset(d);
  CHECK(!gpu.has_dataset(d));
}

// Labels i % outputs for n samples, taken in order (the tests below).
struct LabelledSamples {
  std::vector<int32_t> labels, order;
  LabelledSamples(int64_t n, int64_t outputs) : labels(n), order(n) {
    for (int64_t i = 0; i < n; ++i) {
      labels[i] = static_cast<int32_t>(i % outputs);
      order[i] = static_cast<int32_t>(i);
    }
  }
  np::Targets targets() const {
    np::Targets t;
    t.labels = labels.data();
    return t;
  }
};

// ---- restructuring on the device against the host's structural operations ----------

// The device model's layers as the host would load them, with `values` or without.
std::vector<nc::CudaLayerState> structure_of(const np::Model& cpu, const np::ModelState& st,
                                             const std::vector<bool>& values) {
  std::vector<nc::CudaLayerState> out;
  for (size_t l = 0; l < st.layers.size(); ++l) {
    nc::CudaLayerState s = to_cuda(st.layers[l], cpu.layers()[l]);
    if (!values[l]) {
      s.weight.clear();
      s.weight_moments.clear();
      s.bias.clear();
      s.bias_moments.clear();
    }
    out.push_back(std::move(s));
  }
  return out;
}

// The layers of an MLP with one hidden relu layer.
std::vector<np::LayerSpec> relu_mlp(int64_t hidden, int64_t outputs) {
  std::vector<np::LayerSpec> specs(2);
  specs[0].units = hidden;
  specs[0].activation = np::Activation::kRelu;
  specs[1].units = outputs;
  return specs;
}

// What lib/cuda_model.ts sends the device after a structural change of the
// CPU model from `before` to `after` (its events from `events_before` on): the new structure,
// the row sources by neuron id, and values for the layers that need them.
struct DeviceChange {
  std::vector<nc::CudaLayerState> layers;
  std::vector<std::vector<int32_t>> sources;
};

DeviceChange device_change(const np::Model& cpu, const np::ModelState& before, const np::ModelState& after,
                           int64_t events_before) {
  auto sources = np_test::row_sources_by_id(before, after);
  // Reinitialised units (same id) are new to the device. Found, as
  // lib/cuda_model.ts finds them, by a new birth step and by the reinit
  // events: a unit reinitialised at the step it was born (nothing trained in
  // between) keeps its birth step. (Continual backprop's bias compensation
  // is the operation's amend: compensated_by_device.)
  auto reinitialised = [&](size_t l, size_t r) { sources[l][r] = -1; };
  for (size_t l = 0; l + 1 < after.layers.size(); ++l)
    for (size_t r = 0; r < sources[l].size(); ++r)
      if (sources[l][r] >= 0 && after.layers[l].birth_step[r] != before.layers[l].birth_step[sources[l][r]])
        reinitialised(l, r);
  for (int64_t i = events_before; i < cpu.event_count(); ++i) {
    const np::StructuralEvent& e = cpu.events()[static_cast<size_t>(i - cpu.events_dropped())];
    if (e.kind != "reinit") continue;
    const std::vector<int64_t>& ids = after.layers[static_cast<size_t>(e.layer)].neuron_ids;
    for (const int64_t id : e.neuron_ids)
      reinitialised(static_cast<size_t>(e.layer), static_cast<size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin()));
  }
  std::vector<bool> values(after.layers.size(), false);
  auto any_new = [](const std::vector<int32_t>& v) { return std::find(v.begin(), v.end(), -1) != v.end(); };
  for (size_t l = 0; l < values.size(); ++l)
    values[l] = any_new(sources[l]) || (l > 0 && any_new(sources[l - 1]));
  return DeviceChange{structure_of(cpu, after, values), std::move(sources)};
}

// A continual-backprop round's or a gradmax growth's amend, as
// lib/cuda_model.ts sends it: the host's compensations, applied by the device
// through its own weights (before the change, or after it for gradmax).
std::function<void(std::vector<nc::CudaLayerState>&)> compensated_by_device(const np::Model& cpu) {
  return [&cpu](std::vector<nc::CudaLayerState>& layers) {
    for (const np::Model::Compensation& c : cpu.last_compensations()) {
      nc::CudaLayerState& next = layers[static_cast<size_t>(c.layer + 1)];
      next.compensate_inputs.assign(c.units.begin(), c.units.end());
      next.compensate_means = c.means;
      next.compensate_new_weights = c.new_weights;
    }
  };
}

// A net2wider growth's amend, as lib/cuda_model.ts sends it: the split's
// column factors and copies, and no values (the device copies its own).
std::function<void(std::vector<nc::CudaLayerState>&)> split_on_device(const np::Model& cpu) {
  return [&cpu](std::vector<nc::CudaLayerState>& layers) {
    const size_t l = static_cast<size_t>(cpu.last_split().layer);
    const np_test::SplitCopies copies = np_test::split_copies(cpu);
    layers[l].row_copy = copies.row_copy[l];
    layers[l + 1].input_scale = np_test::split_scales(cpu)[l + 1];
    layers[l + 1].input_copy = copies.col_copy[l + 1];
    layers[l + 1].input_copy_scale = copies.col_copy_scale[l + 1];
    for (size_t i : {l, l + 1}) {
      layers[i].weight.clear();
      layers[i].weight_moments.clear();
      layers[i].bias.clear();
      layers[i].bias_moments.clear();
    }
  };
}

// Applies `op` to the CPU model and restructure() to the device model, then
// checks that the device holds exactly the CPU model's parameters and slots
// (moves are copies, scaled moves the same float products: no tolerance).
// `amend` adds what lib/cuda_model.ts adds for the operation (net2wider's
// column scales, gradmax's host biases).
template <typename Op>
void restructure_like(np::Model& cpu, nc::CudaModel& gpu, const char* what, Op&& op,
                      const std::function<void(std::vector<nc::CudaLayerState>&)>& amend = {}) {
  const np::ModelState before = cpu.export_state();
  const int64_t events_before = cpu.event_count();
  op();
  const np::ModelState after = cpu.export_state();
  auto [layers, sources] = device_change(cpu, before, after, events_before);
  if (amend) amend(layers);
  gpu.restructure(std::move(layers), sources);
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  CHECK_EQ(got.size(), after.layers.size());
  for (size_t l = 0; l < got.size() && l < after.layers.size(); ++l) {
    const np::LayerState& want = after.layers[l];
    CHECK_MSG(got[l].units == want.units && got[l].csr == want.csr, "%s: layer %zu shape or format", what, l);
    CHECK_MSG(got[l].weight == want.weight, "%s: layer %zu weights differ", what, l);
    CHECK_MSG(got[l].bias == want.bias, "%s: layer %zu biases differ", what, l);
    CHECK_MSG(got[l].weight_moments == want.weight_moments, "%s: layer %zu weight slots differ", what, l);
    CHECK_MSG(got[l].bias_moments == want.bias_moments, "%s: layer %zu bias slots differ", what, l);
    if (want.csr) CHECK_MSG(got[l].indices == want.indices && got[l].indptr == want.indptr, "%s: layer %zu pattern", what, l);
    CHECK_MSG(got[l].mean_abs_activation == want.mean_abs_activation || want.mean_abs_activation.empty(), "%s: layer %zu statistics", what, l);
  }
}

// The device's weights against the CPU model's after the same training,
// each difference scaled by 1 + |w| (float sums in another order).
void check_weights_close(const std::vector<nc::CudaLayerState>& got, const np::ModelState& want, const char* what) {
  for (size_t l = 0; l < got.size() && l < want.layers.size(); ++l) {
    double worst = 0.0;
    for (size_t i = 0; i < got[l].weight.size() && i < want.layers[l].weight.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(got[l].weight[i]) - want.layers[l].weight[i]) /
                                  (1.0 + std::fabs(want.layers[l].weight[i])));
    CHECK_MSG(worst <= 2e-4, "%s: layer %zu differs by %g (scaled)", what, l, worst);
  }
}

CUDA_TEST(cuda_model_restructure_follows_host_structural_ops) {
  const int64_t inputs = 12, n = 64, outputs = 3;
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 20;
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.05f;
  specs[1].units = 15;
  specs[1].activation = np::Activation::kTanh;
  specs[1].density = 0.4;
  specs[1].sparse_threshold = 0.6f;
  specs[2].units = outputs;
  np::Model cpu(inputs, 3, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const std::vector<float> x = random_vector(n * inputs, 8);
  const LabelledSamples samples(n, outputs);
  const std::vector<int32_t>& labels = samples.labels;
  const std::vector<int32_t>& order = samples.order;
  const np::Targets t = samples.targets();
  for (int s = 0; s < 4; ++s) cpu.train_batch(x.data(), t, order.data() + 16 * s, 16, nullptr);  // nonzero moments
  cpu.prune_weights_magnitude({0}, 0.3, false);
  const np::ModelState st = cpu.export_state();
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer.kind = nc::CudaOptimizerKind::kAdam;
  config.optimizer.learning_rate = o.learning_rate;
  nc::CudaModel gpu(config, st.step, structure_of(cpu, st, std::vector<bool>(st.layers.size(), true)));

  restructure_like(cpu, gpu, "random neuron prune", [&] { cpu.prune_neurons({0, 1}, 0.3, "random", false); });
  restructure_like(cpu, gpu, "magnitude pruning", [&] { cpu.prune_weights_magnitude({0, 1, 2}, 0.2, true); });
  restructure_like(cpu, gpu, "SET regrowth", [&] { cpu.regrow({0, 1}, 0.25, false, nullptr); });
  restructure_like(cpu, gpu, "compact", [&] { cpu.compact(nullptr); });
  restructure_like(cpu, gpu, "grow random", [&] {
    cpu.grow_units(0, 4, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr);
    cpu.grow_units(1, 2, np::GrowInit::kZero, 0.0, nullptr, nullptr, 0, nullptr);
  });
  restructure_like(cpu, gpu, "grow net2wider", [&] {
    cpu.grow_units(1, 3, np::GrowInit::kNet2Wider, 0.3, nullptr, nullptr, 0, nullptr);  // dense next layer
  }, split_on_device(cpu));
  restructure_like(cpu, gpu, "grow net2wider into CSR", [&] {
    cpu.grow_units(0, 2, np::GrowInit::kNet2Wider, 0.3, nullptr, nullptr, 0, nullptr);  // CSR next layer
  }, split_on_device(cpu));
  restructure_like(cpu, gpu, "grow gradmax", [&] { cpu.grow_units(0, 2, np::GrowInit::kGradMax, 0.0, x.data(), &t, n, nullptr); },
                   compensated_by_device(cpu));
  restructure_like(cpu, gpu, "sparsify", [&] { cpu.sparsify(0.4, false, {0}, nullptr); },
                   [&](std::vector<nc::CudaLayerState>& layers) {
                     // The thinned layer's kept weights times the host's factor, slots restarted: no values sent.
                     CHECK_EQ(cpu.last_rescales().size(), 1u);
                     CHECK(layers[0].weight.empty());
                     layers[0].restart_scale = cpu.last_rescales()[0].scale;
                   });
  restructure_like(cpu, gpu, "continual backprop round", [&] {
    cpu.set_continual_backprop(0.3, 0);
    CHECK(cpu.continual_backprop_step(0.3, 0) > 0);
    cpu.set_continual_backprop(0.0, 0);
    CHECK(!cpu.last_compensations().empty());
  }, compensated_by_device(cpu));
  restructure_like(cpu, gpu, "ReDo", [&] { cpu.redo(0.8); });
  restructure_like(cpu, gpu, "format changes", [&] {
    cpu.convert_to_csr(0, "test");
    cpu.convert_to_dense(1, "test");
  });
  CHECK_EQ(gpu.step(), cpu.step());
  const std::vector<nc::CudaLayerState> weights_only = gpu.export_layers(false);
  CHECK(weights_only[1].weight_moments.empty() && !weights_only[1].weight.empty());

  // The restructured device model trains like the CPU model from here.
  const int64_t dataset = gpu.add_dataset(x.data(), n, labels.data(), nullptr);
  gpu.train(dataset, order.data(), 0, 2, 16, nullptr);
  for (int s = 0; s < 2; ++s) cpu.train_batch(x.data(), t, order.data() + 16 * s, 16, nullptr);
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  check_weights_close(got, cpu.export_state(), "after training");

  // Bad input changes nothing: a wrong number of sources, a source used twice,
  // values missing where a layer has new units.
  const np::ModelState now = cpu.export_state();
  std::vector<std::vector<int32_t>> same = np_test::row_sources_by_id(now, now);
  auto rejected = [&](std::vector<nc::CudaLayerState> layers, std::vector<std::vector<int32_t>> sources) {
    try {
      gpu.restructure(std::move(layers), sources);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  const std::vector<bool> none(now.layers.size(), false);
  std::vector<std::vector<int32_t>> short_list = same;
  short_list[0].pop_back();
  CHECK(rejected(structure_of(cpu, now, none), short_list));
  std::vector<std::vector<int32_t>> twice = same;
  twice[1][1] = twice[1][0];
  CHECK(rejected(structure_of(cpu, now, none), twice));
  std::vector<std::vector<int32_t>> added = same;
  added[0][0] = -1;
  CHECK(rejected(structure_of(cpu, now, none), added));
  // Continual backprop's compensation: ascending inputs of a layer with inputs that are units, one finite mean each.
  auto compensating = [&](size_t l, std::vector<int32_t> inputs, std::vector<double> means, bool keep = false) {
    std::vector<nc::CudaLayerState> layers = structure_of(cpu, now, none);
    layers[l].compensate_inputs = std::move(inputs);
    layers[l].compensate_means = std::move(means);
    layers[l].keep = keep;
    return layers;
  };
  CHECK(rejected(compensating(0, {1}, {0.5}), same));
  CHECK(rejected(compensating(1, {2, 1}, {0.5, 0.5}), same));
  CHECK(rejected(compensating(1, {1, 2}, {0.5}), same));
  CHECK(rejected(compensating(1, {1}, {NAN}), same));
  CHECK(rejected(compensating(1, {static_cast<int32_t>(now.layers[1].inputs)}, {0.5}), same));
  CHECK(rejected(compensating(1, {1}, {0.5}, true), same));
  CHECK(rejected(compensating(1, {}, {0.5}), same));
  CHECK(gpu.export_layers()[0].weight == got[0].weight);

  // Layers marked kept stay exactly as they are (slots and W^T), next to one
  // that is rebuilt; a kept layer whose shape or sources differ is refused.
  const std::vector<nc::CudaLayerState> held = gpu.export_layers();
  std::vector<nc::CudaLayerState> kept = structure_of(cpu, now, none);
  kept[0].keep = kept[1].keep = kept[2].keep = true;
  // A kept layer's structure is not read: a mask pruning everything, were it
  // applied, would zero the output layer.
  kept[2].mask.assign(static_cast<size_t>(kept[2].units * kept[2].inputs), 0);
  gpu.restructure(kept, same);
  const std::vector<nc::CudaLayerState> after_keep = gpu.export_layers();
  for (size_t l = 0; l < held.size(); ++l) {
    CHECK_MSG(after_keep[l].weight == held[l].weight && after_keep[l].weight_moments == held[l].weight_moments &&
                  after_keep[l].bias == held[l].bias && after_keep[l].bias_moments == held[l].bias_moments &&
                  after_keep[l].mean_abs_activation == held[l].mean_abs_activation && after_keep[l].stats_updates == held[l].stats_updates,
              "layer %zu changed by a restructure that kept it", l);
  }
  // The kept CSR layer's W^T still serves the backward pass: one more step matches the CPU model's.
  const np::ModelState synced = cpu.export_state();
  gpu.load(synced.step, structure_of(cpu, synced, std::vector<bool>(synced.layers.size(), true)));
  std::vector<nc::CudaLayerState> keep_all = structure_of(cpu, synced, none);
  for (auto& l : keep_all) l.keep = true;
  gpu.restructure(keep_all, np_test::row_sources_by_id(synced, synced));
  gpu.train(dataset, order.data(), 0, 1, 16, nullptr);
  cpu.train_batch(x.data(), t, order.data(), 16, nullptr);
  check_weights_close(gpu.export_layers(), cpu.export_state(), "after a step on kept layers");
  std::vector<nc::CudaLayerState> wrong = structure_of(cpu, now, none);
  wrong[1].keep = true;
  wrong[1].activation = np::Activation::kSigmoid;
  CHECK(rejected(wrong, same));
  std::vector<std::vector<int32_t>> moved = same;
  std::swap(moved[0][0], moved[0][1]);
  std::vector<nc::CudaLayerState> kept_moved = structure_of(cpu, now, none);
  kept_moved[1].keep = true;  // its inputs moved
  CHECK(rejected(kept_moved, moved));
}

// Dropin into reserved capacity on the device: the first growth of a dense
// layer reallocates it with spare rows and a wider row pitch (1.5x, as the
// CPU's DenseParam::grow), the next ones fill the spare capacity in place
// (the weight buffer stays where it was) and write only the new positions;
// after each the device holds exactly the CPU model's numbers. On the padded
// layers, training (Adam, SGD with and without momentum), magnitude and
// neuron decisions, utilities, RigL's and gradmax's readings, continual
// backprop, format changes, sparsify and setValues behave as on compact ones,
// and the spare capacity stays zero; pruning and compaction shrink the layers
// back to a compact layout.
void grows_into_reserved_capacity(const np::OptimizerConfig& o, const char* name) {
  const int64_t inputs = 10, n = 48, outputs = 4;
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 16;
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.0f;  // dense throughout
  specs[1].units = 12;
  specs[1].activation = np::Activation::kSigmoid;
  specs[1].sparse_threshold = 0.0f;
  specs[2].units = outputs;
  specs[2].sparse_threshold = 0.0f;
  np::Model cpu(inputs, 9, specs);
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const std::vector<float> x = random_vector(n * inputs, 23);
  const LabelledSamples samples(n, outputs);
  const np::Targets t = samples.targets();
  for (int s = 0; s < 3; ++s) cpu.train_batch(x.data(), t, samples.order.data() + 16 * s, 16, nullptr);
  cpu.prune_weights_magnitude({0, 1}, 0.2, false);  // masks on the padded layers too
  const np::ModelState st = cpu.export_state();
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer = cpu.optimizer();
  nc::CudaModel gpu(config, st.step, structure_of(cpu, st, std::vector<bool>(st.layers.size(), true)));
  CHECK_EQ(gpu.layout(0).stride, inputs);  // loaded compact
  CHECK_EQ(gpu.layout(1).stride, 16);
  auto spare_is_zero = [&](const char* when) {
    for (int64_t l = 0; l < 3; ++l) CHECK_MSG(gpu.layout(l).spare_nonzero == 0, "%s, %s: layer %lld's spare capacity holds nonzeros", name, when, static_cast<long long>(l));
  };

  restructure_like(cpu, gpu, "first growth", [&] { cpu.grow_units(0, 2, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr); });
  const nc::CudaModel::LayerLayout l0 = gpu.layout(0), l1 = gpu.layout(1);
  CHECK_EQ(l0.row_capacity, 32);  // 16 rows -> 18 needed, 24 with headroom, whole lines: 32
  CHECK_EQ(l1.stride, 32);        // 16 inputs -> 18
  CHECK_EQ(l0.stride, inputs);    // the first layer's inputs did not change
  restructure_like(cpu, gpu, "zero growth in place", [&] { cpu.grow_units(0, 3, np::GrowInit::kZero, 0.0, nullptr, nullptr, 0, nullptr); });
  restructure_like(cpu, gpu, "net2wider in place", [&] { cpu.grow_units(0, 2, np::GrowInit::kNet2Wider, 0.3, nullptr, nullptr, 0, nullptr); },
                   split_on_device(cpu));
  restructure_like(cpu, gpu, "gradmax in place", [&] { cpu.grow_units(0, 2, np::GrowInit::kGradMax, 0.0, x.data(), &t, n, nullptr); },
                   compensated_by_device(cpu));
  CHECK_MSG(gpu.layout(0).weight == l0.weight && gpu.layout(1).weight == l1.weight, "%s: a growth within capacity moved the weights", name);
  CHECK_EQ(gpu.layout(0).row_capacity, 32);
  CHECK_EQ(cpu.layers()[0].units, 25);
  // The second hidden layer (sigmoid: gradmax compensates through its outgoing weights) grows:
  // first beyond its rows (reallocated, keeping its wider pitch), then in place, rows and inputs
  // together in one change, with the compensation written through the new weights in place.
  restructure_like(cpu, gpu, "gradmax, second layer", [&] { cpu.grow_units(1, 3, np::GrowInit::kGradMax, 0.0, x.data(), &t, n, nullptr); },
                   compensated_by_device(cpu));
  CHECK_EQ(gpu.layout(1).stride, 32);  // a rebuild keeps the spare columns it had
  const nc::CudaModel::LayerLayout l1b = gpu.layout(1), l2b = gpu.layout(2);
  restructure_like(cpu, gpu, "rows and inputs in one change, in place", [&] {
    cpu.grow_units(0, 1, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr);
    cpu.grow_units(1, 1, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr);
  });
  restructure_like(cpu, gpu, "gradmax, second layer, in place", [&] { cpu.grow_units(1, 2, np::GrowInit::kGradMax, 0.0, x.data(), &t, n, nullptr); },
                   compensated_by_device(cpu));
  CHECK(!cpu.last_compensations().empty() && cpu.last_compensations()[0].new_weights);
  restructure_like(cpu, gpu, "net2wider, second layer, in place", [&] { cpu.grow_units(1, 2, np::GrowInit::kNet2Wider, 0.2, nullptr, nullptr, 0, nullptr); },
                   split_on_device(cpu));
  CHECK_MSG(gpu.layout(1).weight == l1b.weight && gpu.layout(2).weight == l2b.weight, "%s: the second layer's growths moved the weights", name);
  spare_is_zero("after the growths");

  // Decisions read the padded layers as the host reads its own.
  const std::vector<int64_t> all = {0, 1, 2};
  for (const np::MagnitudePlan& plan : {cpu.plan_prune_weights(all, 0.3, true), cpu.plan_regrow_drops({0, 1}, 0.2)}) {
    const std::vector<int64_t> which = plan.counts.size() == 2 ? std::vector<int64_t>{0, 1} : all;
    CHECK_MSG(gpu.magnitude_drops(which, plan) == cpu.magnitude_drops(which, plan), "%s: drop bits on padded layers", name);
  }
  for (const char* criterion : {"l1", "l2", "activation"})
    for (int64_t layer : {0, 1}) CHECK_MSG(gpu.neuron_scores(layer, criterion) == cpu.neuron_scores(layer, criterion), "%s: %s scores", name, criterion);
  CHECK(gpu.unit_utility(0) == cpu.unit_utility(0));
  for (int64_t layer : {0, 1}) {
    const np::GradMaxProduct want = cpu.gradmax_product(layer, x.data(), &t, n, nullptr);
    const np::GradMaxProduct got = gpu.gradmax_product(layer, x.data(), samples.labels.data(), nullptr, n);
    CHECK(std::fabs(got.weight_squares - want.weight_squares) <= 1e-12 * want.weight_squares);
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < want.m.size(); ++i) {
      scale = std::max(scale, static_cast<double>(std::fabs(want.m[i])));
      worst = std::max(worst, std::fabs(static_cast<double>(got.m[i]) - want.m[i]));
    }
    CHECK_MSG(worst <= 1e-5 * scale, "%s: gradmax's M through padded layers differs by %g", name, worst);
  }
  const std::vector<int64_t> counts = cpu.plan_regrow_drops({0, 1}, 0.2).counts;
  const auto grows = gpu.gradient_growth({0, 1}, counts, x.data(), samples.labels.data(), nullptr, n);
  const auto host_grows = cpu.gradient_growth({0, 1}, counts, nullptr, x.data(), &t, n);
  for (size_t i = 0; i < 2; ++i) {
    int64_t same = 0;
    for (int64_t p : grows[i]) same += std::binary_search(host_grows[i].begin(), host_grows[i].end(), p);
    CHECK_MSG(same * 10 >= counts[i] * 9, "%s: RigL through padded layers chose %lld of %lld of the host's positions", name,
              static_cast<long long>(same), static_cast<long long>(counts[i]));
  }

  // Training on the padded layers follows the CPU model, and the spare capacity stays zero.
  const int64_t dataset = gpu.add_dataset(x.data(), n, samples.labels.data(), nullptr);
  gpu.train(dataset, samples.order.data(), 0, 3, 16, nullptr);
  for (int s = 0; s < 3; ++s) cpu.train_batch(x.data(), t, samples.order.data() + 16 * s, 16, nullptr);
  check_weights_close(gpu.export_layers(), cpu.export_state(), "after training on padded layers");
  spare_is_zero("after training");
  // From equal numbers again (the two trained apart: the CPU takes the device's statistics, the
  // device the CPU's parameters, written at the row pitch by setValues), the structural changes
  // that read the old weights.
  np::ModelState synced = cpu.export_state();
  const std::vector<nc::CudaLayerState> device_now = gpu.export_layers();
  for (size_t l = 0; l < synced.layers.size(); ++l) {
    synced.layers[l].mean_abs_activation = device_now[l].mean_abs_activation;
    synced.layers[l].mean_activation = device_now[l].mean_activation;
    synced.layers[l].taylor = device_now[l].taylor;
  }
  cpu.import_state(synced);
  std::vector<nc::CudaLayerValues> values(synced.layers.size());
  for (size_t l = 0; l < values.size(); ++l) {
    values[l].weight = synced.layers[l].weight;
    values[l].bias = synced.layers[l].bias;
    values[l].weight_moments = synced.layers[l].weight_moments;
    values[l].bias_moments = synced.layers[l].bias_moments;
  }
  gpu.set_values(values);
  const std::vector<nc::CudaLayerState> set = gpu.export_layers();
  for (size_t l = 0; l < set.size(); ++l)
    CHECK_MSG(set[l].weight == synced.layers[l].weight && set[l].weight_moments == synced.layers[l].weight_moments, "%s: setValues, layer %zu", name, l);
  restructure_like(cpu, gpu, "continual backprop on padded layers", [&] {
    cpu.set_continual_backprop(0.3, 0);
    CHECK(cpu.continual_backprop_step(0.3, 0) > 0);
    cpu.set_continual_backprop(0.0, 0);
  }, compensated_by_device(cpu));
  restructure_like(cpu, gpu, "sparsify a padded layer", [&] { cpu.sparsify(0.5, false, {1}, nullptr); },
                   [&](std::vector<nc::CudaLayerState>& layers) { layers[1].restart_scale = cpu.last_rescales()[0].scale; });
  restructure_like(cpu, gpu, "a padded layer to CSR and back", [&] { cpu.convert_to_csr(1, "test"); });
  restructure_like(cpu, gpu, "back to dense", [&] { cpu.convert_to_dense(1, "test"); });
  spare_is_zero("after the rebuilds");
  // Shrinking (neuron pruning, then compaction) rebuilds compact layers.
  restructure_like(cpu, gpu, "neuron pruning of a padded layer", [&] { cpu.prune_neurons({0}, 0.3, "random", false); });
  restructure_like(cpu, gpu, "compact", [&] { cpu.compact(nullptr); });
  CHECK_EQ(gpu.layout(0).row_capacity, cpu.layers()[0].units);
  CHECK_EQ(gpu.layout(1).stride, cpu.layers()[1].inputs);
  gpu.train(dataset, samples.order.data(), 0, 1, 16, nullptr);
  cpu.train_batch(x.data(), t, samples.order.data(), 16, nullptr);
  check_weights_close(gpu.export_layers(), cpu.export_state(), "after compaction and a step");
}

CUDA_TEST(cuda_model_grows_into_reserved_capacity) {
  np::OptimizerConfig adam;
  adam.kind = np::OptimizerKind::kAdam;
  adam.learning_rate = 0.01f;
  grows_into_reserved_capacity(adam, "adam");
  np::OptimizerConfig momentum;
  momentum.kind = np::OptimizerKind::kSgd;
  momentum.learning_rate = 0.05f;
  momentum.momentum = 0.9f;
  grows_into_reserved_capacity(momentum, "sgd momentum");
  np::OptimizerConfig plain;
  plain.kind = np::OptimizerKind::kSgd;
  plain.learning_rate = 0.05f;
  grows_into_reserved_capacity(plain, "sgd");
}

// GradMax on the device: what it reads of the network (gradmax_product: the
// batch's M and the next layer's squared norm) against the host's own, to
// float rounding (another GEMM, another order of the sum); then the host grows
// from the device's reading and the device follows with no values but the new
// units' (their outgoing columns: the host's, from M), taking the sigmoid
// units' constant output out of the next biases through the new weights:
// exactly the host's numbers. Next layer CSR, then dense.
CUDA_TEST(cuda_gradmax_grows_from_the_devices_reading) {
  const int64_t inputs = 30, n = 40, outputs = 3;
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 24;
  specs[0].activation = np::Activation::kSigmoid;  // act(0) = 0.5: the biases compensate
  specs[1].units = 12;
  specs[1].activation = np::Activation::kSigmoid;
  specs[1].density = 0.5;
  specs[1].sparse_threshold = 0.6f;  // CSR
  specs[2].units = outputs;
  np::Model cpu(inputs, 5, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const std::vector<float> x = random_vector(n * inputs, 17);
  const LabelledSamples samples(n, outputs);
  const np::Targets t = samples.targets();
  for (int s = 0; s < 2; ++s) cpu.train_batch(x.data(), t, samples.order.data() + 20 * s, 20, nullptr);
  const np::ModelState st = cpu.export_state();
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer = cpu.optimizer();
  nc::CudaModel gpu(config, st.step, structure_of(cpu, st, std::vector<bool>(st.layers.size(), true)));

  for (int64_t layer : {0, 1}) {
    const np::GradMaxProduct want = cpu.gradmax_product(layer, x.data(), &t, n, nullptr);
    const np::GradMaxProduct got = gpu.gradmax_product(layer, x.data(), samples.labels.data(), nullptr, n);
    CHECK_EQ(got.m.size(), want.m.size());
    double scale = 0.0, worst = 0.0;
    for (float v : want.m) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    for (size_t i = 0; i < got.m.size() && i < want.m.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(got.m[i]) - want.m[i]));
    CHECK_MSG(scale > 0.0 && worst <= 1e-5 * scale, "layer %lld: M differs by %g (largest entry %g)", static_cast<long long>(layer),
              worst, scale);
    CHECK_MSG(std::fabs(got.weight_squares - want.weight_squares) <= 1e-12 * want.weight_squares, "layer %lld: squares %.17g vs %.17g",
              static_cast<long long>(layer), got.weight_squares, want.weight_squares);
    // A reading of the wrong size or with a NaN is refused before anything changes.
    const np::ModelState held = cpu.export_state();
    for (int bad = 0; bad < 2; ++bad) {
      np::GradMaxProduct wrong = got;
      if (bad == 0) wrong.m.pop_back();
      else wrong.m[3] = NAN;
      bool refused = false;
      try {
        cpu.grow_units(layer, 2, np::GrowInit::kGradMax, 0.0, nullptr, nullptr, 0, nullptr, &wrong);
      } catch (const np::Error& e) {
        refused = e.kind() == np::ErrorKind::kRangeError;
      }
      CHECK(refused);
      CHECK(cpu.export_state().layers[static_cast<size_t>(layer)].weight == held.layers[static_cast<size_t>(layer)].weight);
      CHECK_EQ(cpu.export_state().layers[static_cast<size_t>(layer)].units, held.layers[static_cast<size_t>(layer)].units);
    }
    restructure_like(cpu, gpu, layer == 0 ? "gradmax into CSR" : "gradmax into dense", [&] {
      cpu.grow_units(layer, 3, np::GrowInit::kGradMax, 0.0, nullptr, nullptr, 0, nullptr, &got);
      CHECK_EQ(cpu.last_compensations().size(), 1u);
      CHECK(cpu.last_compensations()[0].new_weights);
    }, compensated_by_device(cpu));
  }
  // Refused: the output layer, no batch.
  auto refused = [&](int64_t layer, int64_t samples_n) {
    try {
      gpu.gradmax_product(layer, x.data(), samples.labels.data(), nullptr, samples_n);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(refused(2, n));
  CHECK(refused(-1, n));
  CHECK(refused(0, 0));
}

#if defined(NP_CUDA_EMULATOR)
// Out of device memory (the emulator's limit set just above what the model
// holds) in a restructure, a load, a dataset upload and the first training
// step's workspace: each throws CudaError and leaves the model as it was,
// which lib/cuda_model.ts's fallback to the copy path relies on. With memory
// back, the same change goes through.
CUDA_TEST(cuda_model_out_of_memory_leaves_the_model_as_it_was) {
  const int64_t inputs = 12, n = 32, outputs = 3;
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  np::Model cpu(inputs, 3, relu_mlp(20, outputs));
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const std::vector<float> x = random_vector(n * inputs, 8);
  const LabelledSamples samples(n, outputs);
  const np::Targets t = samples.targets();
  cpu.train_batch(x.data(), t, samples.order.data(), 16, nullptr);
  const np::ModelState st = cpu.export_state();
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer.kind = nc::CudaOptimizerKind::kAdam;
  nc::CudaModel gpu(config, st.step, structure_of(cpu, st, std::vector<bool>(st.layers.size(), true)));
  const std::vector<nc::CudaLayerState> held = gpu.export_layers();
  auto unchanged = [&](const char* what) {
    const std::vector<nc::CudaLayerState> now = gpu.export_layers();
    bool same = now.size() == held.size() && gpu.step() == st.step;
    for (size_t l = 0; same && l < now.size(); ++l)
      same = now[l].units == held[l].units && now[l].weight == held[l].weight && now[l].bias == held[l].bias &&
             now[l].weight_moments == held[l].weight_moments && now[l].bias_moments == held[l].bias_moments;
    CHECK_MSG(same, "%s changed the device model", what);
  };
  auto out_of_memory = [&](const char* what, auto&& call) {
    namespace emu = np::cuda::emulator;
    emu::set_memory_limit(emu::memory_in_use() + 64);
    bool threw = false;
    try {
      call();
    } catch (const nc::CudaError& e) {
      threw = e.code() == cudaErrorMemoryAllocation;
    }
    emu::set_memory_limit(size_t{8} << 30);
    CHECK_MSG(threw, "%s did not fail with cudaErrorMemoryAllocation", what);
    unchanged(what);
  };

  const np::ModelState before = cpu.export_state();
  const int64_t events_before = cpu.event_count();
  cpu.grow_units(0, 6, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr);
  const np::ModelState after = cpu.export_state();
  DeviceChange grown = device_change(cpu, before, after, events_before);
  out_of_memory("restructure", [&] { gpu.restructure(grown.layers, grown.sources); });
  out_of_memory("load", [&] { gpu.load(after.step, structure_of(cpu, after, std::vector<bool>(after.layers.size(), true))); });
  int64_t dataset = 0;
  out_of_memory("add_dataset", [&] { dataset = gpu.add_dataset(x.data(), n, samples.labels.data(), nullptr); });
  CHECK(!gpu.has_dataset(1));
  dataset = gpu.add_dataset(x.data(), n, samples.labels.data(), nullptr);
  out_of_memory("train", [&] { gpu.train(dataset, samples.order.data(), 0, 1, 16, nullptr); });

  gpu.restructure(grown.layers, grown.sources);
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  CHECK(got[0].units == 26 && got[0].weight == after.layers[0].weight && got[1].weight == after.layers[1].weight);
  gpu.train(dataset, samples.order.data(), 0, 1, 16, nullptr);
  cpu.train_batch(x.data(), t, samples.order.data(), 16, nullptr);
  check_weights_close(gpu.export_layers(), cpu.export_state(), "a step after the failures");
}

// A kernel that fails in the middle of a restructure (the emulator's
// fail_launch, out of resources: the context lives on).
//   - Before anything was written in place (a rebuilt layer's remap), the
//     model is as it was and usable, and the same change then goes through.
//   - After a growth wrote into reserved capacity (net2wider: the appended
//     units went in, then the split columns' scaling failed), the numbers are
//     neither the old model's nor the new one's: every call that would use or
//     export them is refused with a message that names load(), restructure
//     included, until a load() puts the host's state there; training then
//     follows the CPU model again. lib/cuda_model.ts relies on both.
CUDA_TEST(cuda_model_failed_launch_in_restructure_is_undone_or_refused) {
  namespace emu = np::cuda::emulator;
  const int64_t inputs = 10, n = 48, outputs = 4;
  std::vector<np::LayerSpec> specs(3);
  for (np::LayerSpec& s : specs) s.sparse_threshold = 0.0f;  // dense: growth fits reserved capacity
  specs[0].units = 16;
  specs[0].activation = np::Activation::kRelu;
  specs[1].units = 12;
  specs[1].activation = np::Activation::kRelu;
  specs[2].units = outputs;
  np::Model cpu(inputs, 4, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const std::vector<float> x = random_vector(n * inputs, 31);
  const LabelledSamples samples(n, outputs);
  const np::Targets t = samples.targets();
  cpu.train_batch(x.data(), t, samples.order.data(), 16, nullptr);
  const np::ModelState st = cpu.export_state();
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer = cpu.optimizer();
  nc::CudaModel gpu(config, st.step, structure_of(cpu, st, std::vector<bool>(st.layers.size(), true)));
  const int64_t dataset = gpu.add_dataset(x.data(), n, samples.labels.data(), nullptr);

  // Applies op to the CPU model and gives the device the change with `kernel`'s
  // first launch failing; returns the error's code (cudaSuccess: none thrown).
  auto failing_restructure = [&](const char* kernel, auto&& op, const std::function<void(std::vector<nc::CudaLayerState>&)>& amend) {
    const np::ModelState before = cpu.export_state();
    const int64_t events_before = cpu.event_count();
    op();
    DeviceChange change = device_change(cpu, before, cpu.export_state(), events_before);
    if (amend) amend(change.layers);
    emu::fail_launch(kernel, 0, cudaErrorLaunchOutOfResources);
    cudaError_t code = cudaSuccess;
    try {
      gpu.restructure(change.layers, change.sources);
    } catch (const nc::CudaError& e) {
      code = static_cast<cudaError_t>(e.code());
    } catch (...) {
      emu::clear_launch_failure();  // never left armed for a later test
      throw;
    }
    CHECK_MSG(!emu::launch_failure_pending(), "%s was never launched", kernel);
    emu::clear_launch_failure();
    return std::pair<cudaError_t, DeviceChange>(code, std::move(change));
  };

  // 1. A rebuilt layer (neuron pruning shrinks layer 0: a fresh buffer) fails before any in-place write.
  const std::vector<nc::CudaLayerState> held = gpu.export_layers();
  auto [pruned_code, pruned] = failing_restructure("remap_weights", [&] { cpu.prune_neurons({0}, 0.25, "random", false); }, {});
  CHECK_EQ(pruned_code, cudaErrorLaunchOutOfResources);
  const std::vector<nc::CudaLayerState> after_failure = gpu.export_layers();  // usable: no throw
  CHECK(after_failure.size() == held.size() && after_failure[0].units == held[0].units &&
        after_failure[0].weight == held[0].weight && after_failure[1].weight == held[1].weight &&
        after_failure[0].weight_moments == held[0].weight_moments);
  gpu.restructure(pruned.layers, pruned.sources);  // the same change, now without the fault
  CHECK(gpu.export_layers()[0].weight == cpu.export_state().layers[0].weight);

  // 2. Growth into reserved capacity, failing after the in-place writes began.
  restructure_like(cpu, gpu, "first growth (reserves capacity)", [&] { cpu.grow_units(0, 2, np::GrowInit::kRandom, 0.0, nullptr, nullptr, 0, nullptr); });
  const nc::CudaModel::LayerLayout reserved = gpu.layout(0);
  CHECK(reserved.row_capacity > cpu.layers()[0].units + 2);
  auto [grown_code, grown] = failing_restructure("remap_scale_columns", [&] {
    cpu.grow_units(0, 2, np::GrowInit::kNet2Wider, 0.3, nullptr, nullptr, 0, nullptr);
  }, split_on_device(cpu));
  CHECK_EQ(grown_code, cudaErrorLaunchOutOfResources);
  auto refused = [&](const char* what, auto&& call) {
    bool said_load = false;
    try {
      call();
    } catch (const nc::CudaError&) {
      // not this: a CUDA error would mean the call reached the device
    } catch (const std::runtime_error& e) {
      said_load = std::string(e.what()).find("load()") != std::string::npos;
    }
    CHECK_MSG(said_load, "%s was not refused with a message naming load()", what);
  };
  std::vector<float> out(static_cast<size_t>(n * outputs));
  refused("export_layers", [&] { gpu.export_layers(); });
  refused("export_stats", [&] { gpu.export_stats(); });
  refused("train", [&] { gpu.train(dataset, samples.order.data(), 0, 1, 16, nullptr); });
  refused("predict", [&] { gpu.predict(x.data(), n, out.data(), 16); });
  refused("neuron_scores", [&] { gpu.neuron_scores(0, "l1"); });
  refused("restructure", [&] { gpu.restructure(grown.layers, grown.sources); });

  // A load() of the host's state (the copy path) makes it whole again.
  const np::ModelState now = cpu.export_state();
  gpu.load(now.step, structure_of(cpu, now, std::vector<bool>(now.layers.size(), true)));
  const std::vector<nc::CudaLayerState> loaded = gpu.export_layers();
  CHECK(loaded[0].units == now.layers[0].units && loaded[0].weight == now.layers[0].weight && loaded[1].weight == now.layers[1].weight);
  gpu.train(dataset, samples.order.data(), 1, 1, 16, nullptr);
  cpu.train_batch(x.data(), t, samples.order.data() + 16, 16, nullptr);
  check_weights_close(gpu.export_layers(), cpu.export_state(), "a step after the reload");
}
#endif

// A loss that turns NaN stops the device's updates at that very step: the
// model is left as the CPU model leaves it (weights after the last good step,
// step counter at the bad one), though the device checks only every 50 ms.
CUDA_TEST(cuda_model_non_finite_loss_stops_at_the_bad_step) {
  const int64_t inputs = 10, n = 64, batch = 16, outputs = 3;
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kSgd;
  o.learning_rate = 1e30f;  // the first step makes the weights huge, the second overflows the logits
  np::Model cpu(inputs, 5, relu_mlp(12, outputs));
  cpu.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const np::ModelState st = cpu.export_state();
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < st.layers.size(); ++l) layers.push_back(to_cuda(st.layers[l], cpu.layers()[l]));
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.optimizer.kind = nc::CudaOptimizerKind::kSgd;
  config.optimizer.learning_rate = o.learning_rate;
  nc::CudaModel gpu(config, st.step, layers);
  const std::vector<float> x = random_vector(n * inputs, 9);
  const LabelledSamples samples(n, outputs);
  const std::vector<int32_t>& labels = samples.labels;
  const std::vector<int32_t>& order = samples.order;
  const np::Targets t = samples.targets();
  int64_t cpu_good_steps = 0;
  try {
    for (int64_t b = 0; b < n / batch; ++b, ++cpu_good_steps) cpu.train_batch(x.data(), t, order.data() + b * batch, batch, nullptr);
  } catch (const np::Error&) {
  }
  CHECK_MSG(cpu_good_steps >= 1 && cpu_good_steps < n / batch, "the CPU model ran %lld good steps", static_cast<long long>(cpu_good_steps));
  const int64_t dataset = gpu.add_dataset(x.data(), n, labels.data(), nullptr);
  bool threw = false;
  try {
    gpu.train(dataset, order.data(), 0, n / batch, batch, nullptr);
  } catch (const nc::NonFiniteLoss&) {
    threw = true;
  }
  CHECK(threw);
  CHECK_EQ(gpu.step(), cpu.step());
  const np::ModelState want = cpu.export_state();
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  for (size_t l = 0; l < got.size(); ++l) {
    double worst = 0.0;
    for (size_t i = 0; i < got[l].weight.size(); ++i) {
      const double a = got[l].weight[i], b = want.layers[l].weight[i];
      CHECK_MSG(std::isfinite(a), "layer %zu weight %zu is not finite on the device", l, i);
      worst = std::max(worst, std::fabs(a - b) / (1.0 + std::fabs(b)));
    }
    CHECK_MSG(worst <= 1e-3, "layer %zu weights differ from the CPU model's by %g (scaled)", l, worst);
  }
}

// DropConnect on the device against a host reference with the very same masks
// (dropout_uniform of the device's stream for each layer and step): one SGD
// step must move each stored weight by -lr * dL/d(w m) * m, with the gradient
// of the masked network computed by the CPU model, on a dense and a CSR layer.
CUDA_TEST(cuda_model_drop_connect_matches_host_reference) {
  const int64_t inputs = 10, batch = 24, outputs = 3;
  const float rate = 0.4f, lr = 0.1f;
  const uint64_t seed = 77;
  std::vector<np::LayerSpec> specs(2);
  specs[0].units = 14;
  specs[0].activation = np::Activation::kTanh;
  specs[1].units = outputs;
  specs[1].density = 0.5;  // CSR
  specs[1].sparse_threshold = 0.9f;
  np::Model ref(inputs, 4, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kSgd;
  o.learning_rate = lr;
  ref.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const np::ModelState st = ref.export_state();
  CHECK(st.layers[1].csr);
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < st.layers.size(); ++l) {
    layers.push_back(to_cuda(st.layers[l], ref.layers()[l]));
    layers.back().drop_connect = rate;
  }
  nc::CudaModelConfig config;
  config.input_size = inputs;
  config.dropout_seed = seed;
  config.optimizer.kind = nc::CudaOptimizerKind::kSgd;
  config.optimizer.learning_rate = lr;
  nc::CudaModel gpu(config, st.step, layers);

  // The masks the device draws at this step (its mask_stream rule), applied to the reference's weights.
  std::vector<std::vector<float>> masks(st.layers.size());
  np::ModelState masked = st;
  const float scale = 1.0f / (1.0f - rate);
  for (size_t l = 0; l < st.layers.size(); ++l) {
    const uint64_t stream = static_cast<uint64_t>(st.step) * 4096u + 2048u + l;
    for (size_t i = 0; i < st.layers[l].weight.size(); ++i) {
      masks[l].push_back(nc::dropout_uniform(seed, stream, i) >= rate ? scale : 0.0f);
      masked.layers[l].weight[i] *= masks[l][i];
    }
  }
  ref.import_state(masked);
  const std::vector<float> x = random_vector(batch * inputs, 13);
  const LabelledSamples samples(batch, outputs);
  const std::vector<int32_t>& labels = samples.labels;
  const std::vector<int32_t>& order = samples.order;
  const np::Targets t = samples.targets();
  ref.compute_gradients(x.data(), t, batch, nullptr);

  const int64_t dataset = gpu.add_dataset(x.data(), batch, labels.data(), nullptr);
  gpu.train(dataset, order.data(), 0, 1, batch, nullptr);
  const std::vector<nc::CudaLayerState> got = gpu.export_layers();
  for (size_t l = 0; l < st.layers.size(); ++l) {
    const np::LayerState& s0 = st.layers[l];
    std::vector<float> gw(s0.units * s0.inputs), gb(s0.units);
    ref.get_gradients(static_cast<int64_t>(l), gw.data(), gb.data());
    double worst = 0.0;
    for (int64_t r = 0; r < s0.units; ++r) {
      const int64_t k0 = s0.csr ? s0.indptr[r] : r * s0.inputs, k1 = s0.csr ? s0.indptr[r + 1] : (r + 1) * s0.inputs;
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t c = s0.csr ? s0.indices[k] : k - r * s0.inputs;
        const double want = s0.weight[k] - static_cast<double>(lr) * gw[r * s0.inputs + c] * masks[l][k];
        worst = std::max(worst, std::fabs(got[l].weight[k] - want) / (1.0 + std::fabs(want)));
      }
      const double want_b = s0.bias[r] - static_cast<double>(lr) * gb[r];
      worst = std::max(worst, std::fabs(got[l].bias[r] - want_b) / (1.0 + std::fabs(want_b)));
    }
    CHECK_MSG(worst <= 1e-5, "layer %zu: DropConnect step differs from the host reference by %g (scaled)", l, worst);
  }
  // Evaluation uses the stored weights, unmasked: the same outputs as a CPU model holding them.
  np::ModelState after = st;
  for (size_t l = 0; l < got.size(); ++l) {
    after.layers[l].weight = got[l].weight;
    after.layers[l].bias = got[l].bias;
  }
  after.step = gpu.step();
  ref.import_state(after);
  std::vector<float> want_out(batch * outputs), got_out(batch * outputs);
  ref.predict(x.data(), batch, want_out.data(), batch, nullptr);
  gpu.predict(x.data(), batch, got_out.data(), batch);
  double worst = 0.0;
  for (size_t i = 0; i < got_out.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(got_out[i]) - want_out[i]));
  CHECK_MSG(worst <= 1e-4, "predictions differ by %g", worst);
}

}  // namespace
