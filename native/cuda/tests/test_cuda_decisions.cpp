// Magnitude decisions on the device (CudaModel::magnitude_drops,
// magnitude.cu) against the host's (np::Model::magnitude_drops, itself
// checked against a stable sort in native/tests/test_given_decisions.cpp):
// the same bits, exactly, for per-layer, global, to-sparsity and regrowth
// plans over a masked dense layer, a CSR layer and a dense one, with many
// tied magnitudes (weights rounded to multiples of 1/16, zeros and -0 among
// them). The first layer has 60000 positions, so the tie scan runs over more
// words than its block has threads. Then the host applies the device's bits
// and ends exactly where its own decision takes it. Neuron scores
// (CudaModel::neuron_scores): l1 / l2 norms bit for bit the host's, over
// dense -> CSR and CSR -> dense layer pairs; the statistics as the host has them.
// The select itself (magnitude_smallest_cuda) against a stable sort, smallest
// and largest first; RigL's choice (CudaModel::gradient_growth) against the
// host's on the same batch (its own GEMM rounds differently: most positions).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cuda_model.h"
#include "cuda_mirror.h"
#include "cuda_test.h"
#include "model/model.h"

namespace {

using namespace np_cuda_test;
namespace nc = np::cuda;

constexpr int64_t kInputs = 300;

// tie: round the weights to multiples of 1/16 (ties for the magnitude tests;
// without, sums of the weights are inexact, so their order shows).
std::unique_ptr<np::Model> tied_model(bool tie = true) {
  std::vector<np::LayerSpec> specs(4);
  specs[0].units = 200;
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.05f;  // dense with a mask after pruning
  specs[1].units = 40;
  specs[1].activation = np::Activation::kTanh;
  specs[1].density = 0.5;
  specs[1].sparse_threshold = 0.6f;  // CSR
  specs[2].units = 60;               // dense: layer 1's outgoing columns run over 60 rows
  specs[2].activation = np::Activation::kRelu;
  specs[3].units = 3;
  auto model = std::make_unique<np::Model>(kInputs, 11, specs);
  np::Model& m = *model;
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kSgd;
  o.learning_rate = 0.05f;
  o.momentum = 0.9f;
  m.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const int64_t n = 16;
  const std::vector<float> x = random_vector(n * kInputs, 5);
  std::vector<int32_t> labels(n), order(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(i % 3);
    order[i] = static_cast<int32_t>(i);
  }
  np::Targets t;
  t.labels = labels.data();
  m.train_batch(x.data(), t, order.data(), n, nullptr);
  m.prune_weights_magnitude({0}, 0.2, false);
  np::ModelState st = m.export_state();
  for (np::LayerState& l : st.layers)
    if (tie)
    for (size_t k = 0; k < l.weight.size(); ++k) {
      l.weight[k] = std::round(l.weight[k] * 16.0f) / 16.0f;
      if (k % 5 == 1 && l.weight[k] == 0.0f) l.weight[k] = -0.0f;
    }
  m.import_state(st);
  return model;
}

nc::CudaModel mirror(const np::Model& cpu) {
  const np::ModelState st = cpu.export_state();
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < st.layers.size(); ++l) layers.push_back(to_cuda(st.layers[l], cpu.layers()[l]));
  nc::CudaModelConfig config;
  config.input_size = kInputs;
  config.optimizer = cpu.optimizer();
  return nc::CudaModel(config, st.step, std::move(layers));
}

}  // namespace

CUDA_TEST(cuda_magnitude_drops_match_the_hosts) {
  const auto model = tied_model();
  const np::Model& cpu = *model;
  nc::CudaModel gpu = mirror(cpu);
  struct Case {
    std::vector<int64_t> layers;
    np::MagnitudePlan plan;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{0, 1, 2}, cpu.plan_prune_weights({0, 1, 2}, 0.3, false), "per layer 0.3"},
      {{0, 1, 2}, cpu.plan_prune_weights({0, 1, 2}, 0.45, true), "global 0.45"},
      {{3, 2, 1, 0}, cpu.plan_prune_weights({3, 2, 1, 0}, 0.8, true), "global, listed backwards"},
      {{1}, cpu.plan_prune_weights({1}, 0.0, false), "nothing"},
      {{0, 1}, cpu.plan_prune_to_sparsity({0, 1}, 0.7, false), "to sparsity per layer"},
      {{0, 1, 2}, cpu.plan_prune_to_sparsity({0, 1, 2}, 0.65, true), "to sparsity global"},
      {{0, 1}, cpu.plan_regrow_drops({0, 1}, 0.25), "regrow"},
  };
  for (const Case& c : cases) {
    const std::vector<np::DropBits> want = cpu.magnitude_drops(c.layers, c.plan);
    const std::vector<np::DropBits> got = gpu.magnitude_drops(c.layers, c.plan);
    CHECK_MSG(got == want, "%s: the device's drop bits differ from the host's", c.what);
  }
  // The host applies the device's bits and ends where its own ranking takes it.
  const auto own_model = tied_model(), given_model = tied_model();
  np::Model &own = *own_model, &given = *given_model;
  const std::vector<np::DropBits> drops = gpu.magnitude_drops({0, 1, 2}, given.plan_prune_to_sparsity({0, 1, 2}, 0.6, true));
  const int64_t a = own.prune_weights_to_sparsity({0, 1, 2}, 0.6, true);
  const int64_t b = given.prune_weights_to_sparsity({0, 1, 2}, 0.6, true, &drops);
  CHECK(a == b && a > 0);
  const np::ModelState x = own.export_state(), y = given.export_state();
  for (size_t l = 0; l < x.layers.size(); ++l)
    CHECK_MSG(x.layers[l].weight == y.layers[l].weight && x.layers[l].mask == y.layers[l].mask &&
                  x.layers[l].indices == y.layers[l].indices && x.layers[l].indptr == y.layers[l].indptr,
              "layer %zu differs after pruning by the device's bits", l);
}

CUDA_TEST(cuda_magnitude_drops_refuse_bad_plans) {
  const auto model = tied_model();
  const np::Model& cpu = *model;
  nc::CudaModel gpu = mirror(cpu);
  auto refused = [&](const std::vector<int64_t>& layers, const np::MagnitudePlan& plan, const char* what) {
    bool threw = false;
    try {
      gpu.magnitude_drops(layers, plan);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK_MSG(threw, "%s: not refused", what);
  };
  np::MagnitudePlan two;
  two.counts = {1, 1};
  refused({}, np::MagnitudePlan{}, "no layer");
  refused({0, 4}, two, "layer out of range");
  refused({1, 1}, two, "a layer twice");
  refused({0}, two, "two counts for one layer");
  np::MagnitudePlan too_many;
  too_many.counts = {static_cast<int64_t>(cpu.layers()[2].nnz()) + 1};
  refused({2}, too_many, "more drops than stored weights");
  np::MagnitudePlan global;
  global.global = cpu.layers()[1].nnz() + cpu.layers()[2].nnz() + 1;
  refused({1, 2}, global, "a global count over the stored total");
  // Still usable afterwards.
  CHECK(gpu.magnitude_drops({2}, cpu.plan_prune_weights({2}, 0.5, false)) ==
        cpu.magnitude_drops({2}, cpu.plan_prune_weights({2}, 0.5, false)));
}

// With dead units in every hidden layer (their scores are -inf on both sides).
std::unique_ptr<np::Model> model_with_dead_units() {
  auto model = tied_model(false);
  model->prune_neurons({0, 1, 2}, 0.1, "random", false);
  return model;
}

CUDA_TEST(cuda_neuron_scores_match_the_hosts) {
  const auto model = model_with_dead_units();
  np::Model& cpu = *model;
  nc::CudaModel gpu = mirror(cpu);
  for (int64_t l : {0, 1, 2})  // dense (masked) -> CSR, CSR -> dense, dense -> dense
    for (const char* criterion : {"l1", "l2", "activation", "taylor"}) {
      const std::vector<double> want = cpu.neuron_scores(l, criterion), got = gpu.neuron_scores(l, criterion);
      bool same = got.size() == want.size();
      for (size_t j = 0; same && j < got.size(); ++j) same = got[j] == want[j];
      CHECK_MSG(same, "layer %lld %s: the device's scores differ from the host's", static_cast<long long>(l), criterion);
      CHECK(std::count(got.begin(), got.end(), -INFINITY) > 0);
    }
  // Continual backprop's utilities and the statistics the host reads besides them.
  for (int64_t l : {0, 1, 2}) {
    const std::vector<double> want = cpu.unit_utility(l), got = gpu.unit_utility(l);
    CHECK_MSG(got == want, "layer %lld: the device's utilities differ from the host's", static_cast<long long>(l));
  }
  const np::ModelState st = cpu.export_state();
  const std::vector<nc::CudaLayerState> stats = gpu.export_stats();
  for (size_t l = 0; l < stats.size(); ++l)
    CHECK_MSG(stats[l].mean_abs_activation == st.layers[l].mean_abs_activation && stats[l].mean_activation == st.layers[l].mean_activation &&
                  stats[l].taylor == st.layers[l].taylor && stats[l].stats_updates == st.layers[l].stats_updates && stats[l].weight.empty(),
              "layer %zu: export_stats", l);
  // Pruning by the device's scores is pruning by the host's.
  const auto own_model = model_with_dead_units(), given_model = model_with_dead_units();
  const std::vector<std::vector<double>> scores = {gpu.neuron_scores(0, "l2"), gpu.neuron_scores(1, "l2"), gpu.neuron_scores(2, "l2")};
  CHECK(own_model->prune_neurons({0, 1, 2}, 0.3, "l2", true) == given_model->prune_neurons({0, 1, 2}, 0.3, "l2", true, &scores));
  const np::ModelState x = own_model->export_state(), y = given_model->export_state();
  for (size_t l = 0; l < x.layers.size(); ++l)
    CHECK_MSG(x.layers[l].alive == y.layers[l].alive && x.layers[l].mask == y.layers[l].mask && x.layers[l].indices == y.layers[l].indices,
              "layer %zu differs after pruning neurons by the device's scores", l);
  // Refused: the output layer, the host's random scores, statistics no step updated.
  auto refused = [&](nc::CudaModel& m, int64_t l, const char* criterion) {
    try {
      m.neuron_scores(l, criterion);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(refused(gpu, 3, "l1"));
  bool output_utility = false;
  try {
    gpu.unit_utility(3);
  } catch (const std::invalid_argument&) {
    output_utility = true;
  }
  CHECK(output_utility);
  CHECK(refused(gpu, -1, "l1"));
  CHECK(refused(gpu, 0, "random"));
  CHECK(refused(gpu, 0, "l3"));
  np::ModelState fresh = cpu.export_state();
  for (np::LayerState& l : fresh.layers) {
    l.stats_updates = 0;
    l.mean_abs_activation.clear();
    l.mean_activation.clear();
    l.taylor.clear();
  }
  std::vector<nc::CudaLayerState> layers;
  for (size_t l = 0; l < fresh.layers.size(); ++l) layers.push_back(to_cuda(fresh.layers[l], cpu.layers()[l]));
  gpu.load(fresh.step, std::move(layers));
  CHECK(refused(gpu, 0, "taylor"));
  CHECK(!refused(gpu, 0, "l1"));
}

CUDA_TEST(magnitude_smallest_cuda_matches_a_stable_sort) {
  nc::Stream stream;
  nc::DeviceBuffer scratch;
  for (int64_t count : {1, 33, 70001}) {
    // Values on a coarse grid (ties), a mask storing about 80%, k over the whole range.
    np_test::Lcg rng{static_cast<uint64_t>(count)};
    std::vector<float> values(count);
    std::vector<uint8_t> mask(count);
    int64_t stored = 0;
    for (int64_t i = 0; i < count; ++i) {
      values[i] = std::round(rng.next() * 40.0f) / 16.0f;
      mask[i] = rng.next() > -0.6f;
      stored += mask[i];
    }
    nc::DeviceBuffer dv = nc::to_device(values, stream), dm = nc::to_device(mask, stream);
    for (bool largest : {false, true})
      for (int64_t k : {int64_t{0}, int64_t{1}, stored / 3, stored}) {
        nc::MagnitudeView v{dv.as<float>(), dm.as<uint8_t>(), count, largest};
        const np::DropBits got = nc::magnitude_smallest_cuda(v, k, scratch, stream);
        std::vector<int64_t> order;
        for (int64_t i = 0; i < count; ++i)
          if (mask[i]) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          return largest ? std::fabs(values[a]) > std::fabs(values[b]) : std::fabs(values[a]) < std::fabs(values[b]);
        });
        np::DropBits want(np::drop_words(count), 0u);
        for (int64_t i = 0; i < k; ++i) np::set_drop_bit(want, order[i]);
        CHECK_MSG(got == want, "count %lld, k %lld, %s first: bits differ from the stable sort", static_cast<long long>(count),
                  static_cast<long long>(k), largest ? "largest" : "smallest");
      }
  }
}

CUDA_TEST(cuda_gradient_growth_follows_the_hosts_rigl_choice) {
  const auto model = tied_model(false);
  np::Model& cpu = *model;
  cpu.prune_neurons({0}, 0.2, "random", false);  // dead rows in layer 0, closed inputs in layer 1
  nc::CudaModel gpu = mirror(cpu);
  const int64_t n = 24;
  const std::vector<float> x = random_vector(n * kInputs, 21);
  std::vector<int32_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>((i * 7) % 3);
  np::Targets t;
  t.labels = labels.data();
  const std::vector<int64_t> layers = {1, 0};
  const std::vector<int64_t> counts = cpu.plan_regrow_drops(layers, 0.3).counts;
  CHECK(counts[0] > 0 && counts[1] > 0);
  const std::vector<nc::CudaLayerState> before = gpu.export_layers();
  const auto got = gpu.gradient_growth(layers, counts, x.data(), labels.data(), nullptr, n);
  const auto want = cpu.gradient_growth(layers, counts, nullptr, x.data(), &t, n);
  const np::ModelState st = cpu.export_state();
  for (size_t i = 0; i < layers.size(); ++i) {
    const np::DenseLayer& layer = cpu.layers()[layers[i]];
    CHECK_EQ(static_cast<int64_t>(got[i].size()), counts[i]);
    int64_t same = 0, valid = 0;
    for (size_t j = 0; j < got[i].size(); ++j) {
      const int64_t p = got[i][j], r = p / layer.inputs, c = p % layer.inputs;
      const bool open_input = layers[i] == 0 || cpu.layers()[layers[i] - 1].unit_alive(c);
      valid += (j == 0 || p > got[i][j - 1]) && layer.unit_alive(r) && open_input && !layer.stores(r, c);
      same += std::binary_search(want[i].begin(), want[i].end(), p);
    }
    CHECK_MSG(valid == counts[i], "layer %lld: %lld of %lld positions valid", static_cast<long long>(layers[i]),
              static_cast<long long>(valid), static_cast<long long>(counts[i]));
    // The gradients agree to float rounding: only near-ties at the cut may go the other way.
    CHECK_MSG(same * 10 >= counts[i] * 9, "layer %lld: %lld of %lld positions are the host's", static_cast<long long>(layers[i]),
              static_cast<long long>(same), static_cast<long long>(counts[i]));
  }
  // Nothing on the device changed: weights, slots, statistics.
  const std::vector<nc::CudaLayerState> after = gpu.export_layers();
  for (size_t l = 0; l < after.size(); ++l)
    CHECK_MSG(after[l].weight == before[l].weight && after[l].weight_moments == before[l].weight_moments &&
                  after[l].bias == before[l].bias && after[l].taylor == before[l].taylor &&
                  after[l].mean_abs_activation == before[l].mean_abs_activation && after[l].stats_updates == before[l].stats_updates,
              "layer %zu changed", l);
  CHECK_EQ(gpu.step(), cpu.step());
  // Refused: more than the open positions, a layer twice, no batch.
  auto refused = [&](const std::vector<int64_t>& l, const std::vector<int64_t>& k, int64_t samples) {
    try {
      gpu.gradient_growth(l, k, x.data(), labels.data(), nullptr, samples);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(refused({1}, {1000000}, n));
  CHECK(refused({1, 1}, {1, 1}, n));
  CHECK(refused({1}, {1}, 0));
  CHECK(refused({4}, {1}, n));
}
