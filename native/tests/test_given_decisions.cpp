// Decisions made where the numbers are (a GPU model's), applied by the host:
// magnitude decisions as drop bits (model/magnitude_drops.h): the host's own
// bits against a naive reference (a stable sort), and every operation that
// takes drops against the same operation ranking the host's weights: same
// structure, slots, events and RNG; neuron pruning by given scores and
// continual backprop by given utilities against the host's own. Bad drops,
// scores and utilities are refused before anything changes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/errors.h"
#include "model/model.h"
#include "test.h"

namespace {

constexpr int64_t kInputs = 9;

// Dense (masked after pruning), CSR and dense output layers, trained a few
// steps, then weights rounded to multiples of 1/16 so many magnitudes tie
// (exact zeros and -0 among them). Deterministic: two calls give equal models.
std::unique_ptr<np::Model> tied_model() {
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 40;  // 360 positions: more than one 32-bit word per row group, not a multiple of 32
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.05f;  // stays dense with a mask
  specs[1].units = 11;
  specs[1].activation = np::Activation::kTanh;
  specs[1].density = 0.5;
  specs[1].sparse_threshold = 0.6f;  // CSR
  specs[2].units = 3;
  auto model = std::make_unique<np::Model>(kInputs, 5, specs);
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  model->compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const int64_t n = 40;
  std::vector<float> x(n * kInputs);
  std::vector<int32_t> labels(n), order(n);
  for (int64_t i = 0; i < n * kInputs; ++i) x[i] = static_cast<float>((i * 37) % 23) / 23.0f - 0.4f;
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(i % 3);
    order[i] = static_cast<int32_t>(i);
  }
  np::Targets t;
  t.labels = labels.data();
  for (int s = 0; s < 3; ++s) model->train_batch(x.data(), t, order.data() + 10 * s, 10, nullptr);
  model->prune_weights_magnitude({0}, 0.2, false);  // layer 0 gets a mask
  np::ModelState st = model->export_state();
  for (np::LayerState& l : st.layers)
    for (size_t k = 0; k < l.weight.size(); ++k) {
      l.weight[k] = std::round(l.weight[k] * 16.0f) / 16.0f;
      if (k % 7 == 3 && l.weight[k] == 0.0f) l.weight[k] = -0.0f;
    }
  model->import_state(st);
  return model;
}

// Positions of a layer in storage order with their magnitudes (stored ones only).
struct Stored {
  int64_t layer_order;  // index in the listed layers
  int64_t position;
  float magnitude;
};

void append_stored(const np::LayerState& l, int64_t listed, std::vector<Stored>& out) {
  if (l.csr) {
    for (size_t k = 0; k < l.weight.size(); ++k) out.push_back({listed, static_cast<int64_t>(k), std::fabs(l.weight[k])});
    return;
  }
  for (int64_t p = 0; p < l.units * l.inputs; ++p)
    if (l.mask.empty() || l.mask[p]) out.push_back({listed, p, std::fabs(l.weight[p])});
}

// The naive reference: sort every stored weight by (magnitude, listed order,
// storage order) and drop the first k, per layer or over all of them.
std::vector<np::DropBits> naive_drops(const np::ModelState& st, const std::vector<int64_t>& which,
                                      const np::MagnitudePlan& plan) {
  std::vector<np::DropBits> out;
  for (int64_t l : which) {
    const np::LayerState& s = st.layers[l];
    out.emplace_back(np::drop_words(s.csr ? static_cast<int64_t>(s.weight.size()) : s.units * s.inputs), 0u);
  }
  auto drop_smallest = [&](std::vector<Stored> all, int64_t k) {
    std::stable_sort(all.begin(), all.end(), [](const Stored& a, const Stored& b) {
      if (a.magnitude != b.magnitude) return a.magnitude < b.magnitude;
      return a.layer_order < b.layer_order;  // then storage order (stable)
    });
    for (int64_t i = 0; i < k; ++i) np::set_drop_bit(out[all[i].layer_order], all[i].position);
  };
  if (plan.global >= 0) {
    std::vector<Stored> all;
    for (size_t i = 0; i < which.size(); ++i) append_stored(st.layers[which[i]], static_cast<int64_t>(i), all);
    drop_smallest(all, plan.global);
    return out;
  }
  for (size_t i = 0; i < which.size(); ++i) {
    std::vector<Stored> mine;
    append_stored(st.layers[which[i]], static_cast<int64_t>(i), mine);
    drop_smallest(mine, plan.counts[i]);
  }
  return out;
}

bool same_events(const np::Model& a, const np::Model& b) {
  if (a.events().size() != b.events().size()) return false;
  for (size_t i = 0; i < a.events().size(); ++i) {
    const np::StructuralEvent &x = a.events()[i], &y = b.events()[i];
    if (x.kind != y.kind || x.layer != y.layer || x.criterion != y.criterion || x.count != y.count ||
        x.density_before != y.density_before || x.density_after != y.density_after || x.step != y.step)
      return false;
  }
  return true;
}

// Structure, every slot, RNG and events: what a decision may change.
void check_same_model(const np::Model& a, const np::Model& b, const std::string& what) {
  const np::ModelState x = a.export_state(), y = b.export_state();
  bool same = x.layers.size() == y.layers.size() && std::equal(x.rng, x.rng + 4, y.rng) && x.step == y.step;
  for (size_t l = 0; same && l < x.layers.size(); ++l) {
    const np::LayerState &p = x.layers[l], &q = y.layers[l];
    same = p.units == q.units && p.inputs == q.inputs && p.csr == q.csr && p.weight == q.weight && p.indptr == q.indptr &&
           p.indices == q.indices && p.mask == q.mask && p.alive == q.alive && p.bias == q.bias &&
           p.weight_moments == q.weight_moments && p.bias_moments == q.bias_moments;
  }
  CHECK_MSG(same, "%s: the models differ", what.c_str());
  CHECK_MSG(same_events(a, b), "%s: the event logs differ", what.c_str());
}

bool same_bits(const std::vector<np::DropBits>& a, const std::vector<np::DropBits>& b) { return a == b; }

int64_t count_bits(const std::vector<np::DropBits>& drops) {
  int64_t n = 0;
  for (const np::DropBits& d : drops)
    for (uint32_t w : d) n += __builtin_popcount(w);
  return n;
}

}  // namespace

TEST(magnitude_drops_match_a_stable_sort) {
  const auto model = tied_model();
  const np::ModelState st = model->export_state();
  struct Case {
    std::vector<int64_t> layers;
    np::MagnitudePlan plan;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{0, 1, 2}, model->plan_prune_weights({0, 1, 2}, 0.3, false), "per layer 0.3"},
      {{0, 1, 2}, model->plan_prune_weights({0, 1, 2}, 0.45, true), "global 0.45"},
      {{2, 0}, model->plan_prune_weights({2, 0}, 0.6, true), "global, listed out of order"},
      {{1}, model->plan_prune_weights({1}, 0.0, false), "nothing"},
      {{0, 1}, model->plan_prune_to_sparsity({0, 1}, 0.7, false), "to sparsity 0.7 per layer"},
      {{0, 1, 2}, model->plan_prune_to_sparsity({0, 1, 2}, 0.65, true), "to sparsity 0.65 global"},
      {{0, 1}, model->plan_regrow_drops({0, 1}, 0.25), "regrow 0.25"},
  };
  for (const Case& c : cases) {
    const std::vector<np::DropBits> got = model->magnitude_drops(c.layers, c.plan);
    CHECK_MSG(same_bits(got, naive_drops(st, c.layers, c.plan)), "%s: bits differ from the stable sort", c.what);
    int64_t want = c.plan.global;
    if (want < 0) {
      want = 0;
      for (int64_t k : c.plan.counts) want += k;
    }
    CHECK_MSG(count_bits(got) == want, "%s: %lld bits for a plan of %lld", c.what, static_cast<long long>(count_bits(got)),
              static_cast<long long>(want));
  }
  // The rounding made ties at the cut: a tie must be split somewhere for this test to mean anything.
  const auto per_layer = model->plan_prune_weights({0}, 0.3, false);
  std::vector<float> mags;
  for (size_t p = 0; p < st.layers[0].weight.size(); ++p)
    if (st.layers[0].mask[p]) mags.push_back(std::fabs(st.layers[0].weight[p]));
  std::sort(mags.begin(), mags.end());
  const int64_t k = per_layer.counts[0];
  CHECK(k > 0 && mags[k - 1] == mags[k]);
}

TEST(pruning_with_given_drops_matches_pruning_by_the_hosts_weights) {
  struct Op {
    const char* what;
    np::MagnitudePlan (*plan)(const np::Model&);
    int64_t (*run)(np::Model&, const std::vector<np::DropBits>*);
    std::vector<int64_t> layers;
  };
  const std::vector<Op> ops = {
      {"prune per layer", [](const np::Model& m) { return m.plan_prune_weights({0, 1, 2}, 0.35, false); },
       [](np::Model& m, const std::vector<np::DropBits>* d) { return m.prune_weights_magnitude({0, 1, 2}, 0.35, false, d); },
       {0, 1, 2}},
      {"prune global", [](const np::Model& m) { return m.plan_prune_weights({1, 0}, 0.5, true); },
       [](np::Model& m, const std::vector<np::DropBits>* d) { return m.prune_weights_magnitude({1, 0}, 0.5, true, d); },
       {1, 0}},
      {"to sparsity per layer", [](const np::Model& m) { return m.plan_prune_to_sparsity({0, 1, 2}, 0.6, false); },
       [](np::Model& m, const std::vector<np::DropBits>* d) { return m.prune_weights_to_sparsity({0, 1, 2}, 0.6, false, d); },
       {0, 1, 2}},
      {"to sparsity global", [](const np::Model& m) { return m.plan_prune_to_sparsity({0, 1}, 0.75, true); },
       [](np::Model& m, const std::vector<np::DropBits>* d) { return m.prune_weights_to_sparsity({0, 1}, 0.75, true, d); },
       {0, 1}},
      {"SET regrowth", [](const np::Model& m) { return m.plan_regrow_drops({0, 1}, 0.3); },
       [](np::Model& m, const std::vector<np::DropBits>* d) {
         return m.regrow({0, 1}, 0.3, false, nullptr, nullptr, nullptr, 0, d);
       },
       {0, 1}},
  };
  // RigL: the choice of where to grow made elsewhere too (gradient_growth, as a GPU model's).
  {
    const auto own = tied_model(), given = tied_model();
    std::vector<float> x(12 * kInputs);
    std::vector<int32_t> labels(12);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 53) % 29) / 29.0f - 0.5f;
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 3);
    np::Targets t;
    t.labels = labels.data();
    const np::MagnitudePlan plan = given->plan_regrow_drops({1, 0}, 0.3);
    const std::vector<np::DropBits> drops = given->magnitude_drops({1, 0}, plan);
    const auto grows = given->gradient_growth({1, 0}, plan.counts, nullptr, x.data(), &t, 12);
    const int64_t a = own->regrow({1, 0}, 0.3, true, nullptr, x.data(), &t, 12);
    const int64_t b = given->regrow({1, 0}, 0.3, true, nullptr, x.data(), &t, 12, &drops, &grows);
    CHECK(a == b && a > 0);
    check_same_model(*own, *given, "RigL regrowth by given drops and grows");
    // Drops given, growth chosen by the host itself (its choices made before anything changes).
    const auto own2 = tied_model(), given2 = tied_model();
    const std::vector<np::DropBits> drops2 = given2->magnitude_drops({0, 1}, given2->plan_regrow_drops({0, 1}, 0.2));
    CHECK(own2->regrow({0, 1}, 0.2, true, nullptr, x.data(), &t, 12) ==
          given2->regrow({0, 1}, 0.2, true, nullptr, x.data(), &t, 12, &drops2));
    check_same_model(*own2, *given2, "RigL regrowth by given drops, own growth");
  }
  for (const Op& op : ops) {
    const auto own = tied_model(), given = tied_model();
    const std::vector<np::DropBits> drops = given->magnitude_drops(op.layers, op.plan(*given));
    const int64_t a = op.run(*own, nullptr);
    const int64_t b = op.run(*given, &drops);
    CHECK_MSG(a == b && a > 0, "%s: removed %lld by its weights, %lld by the drops", op.what, static_cast<long long>(a),
              static_cast<long long>(b));
    check_same_model(*own, *given, op.what);
  }
}

TEST(bad_drops_are_refused_before_anything_changes) {
  const auto model = tied_model(), untouched = tied_model();
  const std::vector<int64_t> layers = {0, 1};
  const np::MagnitudePlan plan = model->plan_prune_weights(layers, 0.3, false);
  const std::vector<np::DropBits> good = model->magnitude_drops(layers, plan);
  auto refused = [&](std::vector<np::DropBits> drops, const char* what) {
    bool threw = false;
    try {
      model->prune_weights_magnitude(layers, 0.3, false, &drops);
    } catch (const np::Error& e) {
      threw = e.kind() == np::ErrorKind::kRangeError;
    }
    CHECK_MSG(threw, "%s: not refused with a RangeError", what);
    check_same_model(*model, *untouched, what);
  };
  refused({good[0]}, "one entry for two layers");
  auto shorter = good;
  shorter[0].pop_back();
  refused(shorter, "too few words");
  auto past_end = good;
  past_end[0].back() |= 1u << 31;  // 360 positions: bit 31 of the last word is position 383
  refused(past_end, "a bit past the last position");
  auto unstored = good;
  const np::LayerState l0 = model->export_state().layers[0];
  int64_t hole = 0;
  while (l0.mask[hole]) ++hole;
  unstored[0][hole / 32] |= 1u << (hole % 32);
  unstored[0][0] ^= unstored[0][0] & (~unstored[0][0] + 1);  // one set bit fewer, so the count still fits
  refused(unstored, "a position the mask does not store");
  auto extra = good;
  for (size_t w = 0; w < extra[1].size(); ++w)
    if (~extra[1][w]) {
      extra[1][w] |= ~extra[1][w] & (extra[1][w] + 1);  // one more bit: the plan's count is exceeded
      break;
    }
  refused(extra, "one drop too many");
  // Global: drops that would empty a layer are refused like the host's own cut would be.
  const np::ModelState st = model->export_state();
  const int64_t last = st.layers[2].units * st.layers[2].inputs, csr = static_cast<int64_t>(st.layers[1].weight.size());
  const double amount = 0.6;
  const int64_t count = model->plan_prune_weights({2, 1}, amount, true).global;
  CHECK(count > last);
  std::vector<np::DropBits> emptying = {np::DropBits(np::drop_words(last), 0u), np::DropBits(np::drop_words(csr), 0u)};
  for (int64_t p = 0; p < last; ++p) np::set_drop_bit(emptying[0], p);
  for (int64_t k = 0; k < count - last; ++k) np::set_drop_bit(emptying[1], k);
  bool threw = false;
  try {
    model->prune_weights_magnitude({2, 1}, amount, true, &emptying);
  } catch (const np::Error& e) {
    threw = std::string(e.what()).find("would remove all") != std::string::npos;
  }
  CHECK_MSG(threw, "drops emptying layer 2 in a global prune were not refused");
  check_same_model(*model, *untouched, "global drops emptying a layer");
}

TEST(neuron_pruning_by_given_scores_matches_the_hosts_own) {
  for (const char* criterion : {"l1", "l2", "activation", "taylor"}) {
    const auto own = tied_model(), given = tied_model();
    given->prune_neurons({0}, 0.25, "l1", false);  // dead units: the given scores' entries for them are ignored
    own->prune_neurons({0}, 0.25, "l1", false);
    std::vector<std::vector<double>> scores = {given->neuron_scores(0, criterion), given->neuron_scores(1, criterion)};
    for (double& s : scores[0])
      if (s == -INFINITY) s = 1e30;  // a device scores dead units like any other
    CHECK(own->prune_neurons({0, 1}, 0.3, criterion, true) == given->prune_neurons({0, 1}, 0.3, criterion, true, &scores));
    check_same_model(*own, *given, std::string("neuron pruning by given ") + criterion + " scores");
  }
  const auto model = tied_model(), untouched = tied_model();
  auto refused = [&](std::vector<std::vector<double>> scores, const std::string& criterion, const char* what) {
    bool threw = false;
    try {
      model->prune_neurons({0, 1}, 0.3, criterion, false, &scores);
    } catch (const np::Error& e) {
      threw = e.kind() == np::ErrorKind::kRangeError;
    }
    CHECK_MSG(threw, "%s: not refused with a RangeError", what);
    check_same_model(*model, *untouched, what);
  };
  const std::vector<double> s0 = model->neuron_scores(0, "l1"), s1 = model->neuron_scores(1, "l1");
  refused({s0}, "l1", "one entry for two layers");
  refused({s0, std::vector<double>(s1.begin(), s1.end() - 1)}, "l1", "one score short");
  auto nan = s1;
  nan[2] = NAN;
  refused({s0, nan}, "l1", "a NaN score");
  refused({s0, s1}, "random", "given scores for 'random'");
  refused({s0, s1}, "l7", "an unknown criterion");
  bool output = false;
  try {
    std::vector<std::vector<double>> last = {std::vector<double>(3, 1.0)};
    model->prune_neurons({2}, 0.3, "l1", false, &last);
  } catch (const np::Error& e) {
    output = std::string(e.what()).find("output layer") != std::string::npos;
  }
  CHECK_MSG(output, "given scores for the output layer were not refused");
  check_same_model(*model, *untouched, "scores for the output layer");
}

TEST(continual_backprop_by_given_utilities_matches_the_hosts_own) {
  const auto own = tied_model(), given = tied_model();
  for (np::Model* m : {own.get(), given.get()}) m->set_continual_backprop(0.3, 0);
  std::vector<std::vector<double>> utilities = {given->unit_utility(0), given->unit_utility(1)};
  const int64_t a = own->continual_backprop_step(0.3, 0);
  const int64_t b = given->continual_backprop_step(0.3, 0, &utilities);
  CHECK(a == b && a > 0);
  check_same_model(*own, *given, "continual backprop by given utilities");
  // The compensation record: per replaced layer, its units ascending with their mean outputs.
  const auto& comps = given->last_compensations();
  CHECK(!comps.empty());
  for (const auto& c : comps) {
    CHECK(c.units.size() == c.means.size() && !c.units.empty());
    CHECK(std::is_sorted(c.units.begin(), c.units.end()));
  }
  // Refused before anything changes: a list short, an entry short, NaN.
  const auto model = tied_model(), untouched = tied_model();
  model->set_continual_backprop(0.3, 0);
  untouched->set_continual_backprop(0.3, 0);
  auto refused = [&](std::vector<std::vector<double>> u, const char* what) {
    bool threw = false;
    try {
      model->continual_backprop_step(0.3, 0, &u);
    } catch (const np::Error& e) {
      threw = e.kind() == np::ErrorKind::kRangeError;
    }
    CHECK_MSG(threw, "%s: not refused with a RangeError", what);
    check_same_model(*model, *untouched, what);
  };
  const std::vector<double> u0 = model->unit_utility(0), u1 = model->unit_utility(1);
  refused({u0}, "one list for two hidden layers");
  refused({u0, std::vector<double>(u1.begin(), u1.end() - 1)}, "a utility short");
  auto nan = u0;
  nan[3] = NAN;
  refused({nan, u1}, "a NaN utility");
}

// GradMax from a given reading of the network (gradmax_product, made where the
// weights are) grows exactly what the host's own reading grows: same units,
// weights, slots, biases (the sigmoid-free layers compensate nothing), RNG.
// A reading of the wrong size, with a NaN, or negative squares is refused
// before anything changes.
TEST(gradmax_from_a_given_product_matches_the_hosts_own) {
  const auto own = tied_model(), given = tied_model();
  std::vector<float> x(12 * kInputs);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 13) % 17) / 17.0f - 0.5f;
  std::vector<int32_t> labels(12);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 3);
  np::Targets t;
  t.labels = labels.data();
  for (int64_t layer : {0, 1}) {
    const np::GradMaxProduct p = given->gradmax_product(layer, x.data(), &t, 12, nullptr);
    CHECK(p.weight_squares > 0.0);
    own->grow_units(layer, 3, np::GrowInit::kGradMax, 0.0, x.data(), &t, 12, nullptr);
    given->grow_units(layer, 3, np::GrowInit::kGradMax, 0.0, nullptr, nullptr, 0, nullptr, &p);
    check_same_model(*own, *given, "gradmax from a given product");
  }
  const auto model = tied_model(), untouched = tied_model();
  const np::GradMaxProduct p = model->gradmax_product(0, x.data(), &t, 12, nullptr);
  auto refused = [&](np::GradMaxProduct bad, const char* what) {
    bool threw = false;
    try {
      model->grow_units(0, 2, np::GrowInit::kGradMax, 0.0, nullptr, nullptr, 0, nullptr, &bad);
    } catch (const np::Error& e) {
      threw = e.kind() == np::ErrorKind::kRangeError;
    }
    CHECK_MSG(threw, "%s: not refused with a RangeError", what);
    check_same_model(*model, *untouched, what);
  };
  np::GradMaxProduct shorter = p;
  shorter.m.pop_back();
  refused(shorter, "a product short");
  np::GradMaxProduct nan = p;
  nan.m[5] = NAN;
  refused(nan, "a NaN in the product");
  np::GradMaxProduct negative = p;
  negative.weight_squares = -1.0;
  refused(negative, "negative squares");
}
