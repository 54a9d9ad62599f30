// The device restructuring rule (native/cuda/remap.h) against np::Model's own
// structural operations, on the CPU: for each operation the device follows
// (magnitude and neuron pruning, SET regrowth, compact, growth with 'zero' /
// 'random', format changes), every stored weight the host's operation
// produced must be what the rule says: the old weight and optimizer slots at
// the rule's source, zero in every slot, or (fresh) a position of a new unit's
// row or column. Sources come from neuron ids, as lib/cuda_model.ts computes them.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda/remap.h"
#include "model/model.h"
#include "remap_sources.h"
#include "test.h"

namespace {

namespace nc = np::cuda;

struct Counts {
  int64_t moved = 0, fresh = 0, zero = 0;
  int64_t scaled = 0;  // moved with a column factor other than 1
  int64_t copied = 0;  // new positions whose value the rule copies (net2wider)
};

// What an operation adds to the rule, per layer (empty: none): a net2wider
// split's column factors and copies, sparsify's restart factors (NaN: none).
struct Extras {
  std::vector<std::vector<float>> scales;
  np_test::SplitCopies copies;
  std::vector<float> restart;
};

template <typename T>
const T* data_or_null(const std::vector<std::vector<T>>& v, size_t l) {
  return l < v.size() && !v[l].empty() ? v[l].data() : nullptr;
}

// Checks every layer of `after` against the rule; returns what the rule chose.
Counts check_rule(const np::ModelState& before, const np::ModelState& after, const std::string& what, const Extras& extras = {}) {
  const auto sources = np_test::row_sources_by_id(before, after);
  Counts n;
  for (size_t l = 0; l < after.layers.size(); ++l) {
    const np::LayerState& o = before.layers[l];
    const np::LayerState& a = after.layers[l];
    nc::RemapView v;
    v.old_units = o.units;
    v.old_inputs = o.inputs;
    v.old_csr = o.csr;
    v.old_indptr = o.indptr.data();
    v.old_indices = o.indices.data();
    v.units = a.units;
    v.inputs = a.inputs;
    v.csr = a.csr;
    v.indptr = a.indptr.data();
    v.indices = a.indices.data();
    v.mask = a.mask.empty() ? nullptr : a.mask.data();
    v.alive = a.alive.empty() ? nullptr : a.alive.data();
    v.row_source = sources[l].data();
    v.col_source = l == 0 ? nullptr : sources[l - 1].data();
    v.col_scale = data_or_null(extras.scales, l);
    v.row_copy = data_or_null(extras.copies.row_copy, l);
    v.col_copy = data_or_null(extras.copies.col_copy, l);
    v.col_copy_scale = data_or_null(extras.copies.col_copy_scale, l);
    v.restart = l < extras.restart.size() && !std::isnan(extras.restart[l]);
    if (v.restart) v.restart_scale = extras.restart[l];
    CHECK_EQ(v.count(), static_cast<int64_t>(a.weight.size()));
    CHECK_EQ(o.weight_moments.size(), a.weight_moments.size());
    for (int64_t k = 0; k < v.count(); ++k) {
      const int64_t src = nc::remap_weight_source(v, k);
      const int64_t r = nc::remap_row_of(v, k), c = nc::remap_col_of(v, k, r);
      float copy_scale = 1.0f;
      const int64_t copy = src == nc::kRemapFresh ? nc::remap_weight_copy(v, r, c, &copy_scale) : nc::kRemapFresh;
      if (copy != nc::kRemapFresh) {
        ++n.copied;
        bool same = a.weight[k] == (copy >= 0 ? o.weight[copy] * copy_scale : 0.0f);
        for (const auto& m : a.weight_moments) same = same && m[k] == 0.0f;
        CHECK_MSG(same, "%s: layer %zu (%lld, %lld) copied from %lld: %g, was %g x %g", what.c_str(), l, static_cast<long long>(r),
                  static_cast<long long>(c), static_cast<long long>(copy), a.weight[k], copy >= 0 ? o.weight[copy] : 0.0f, copy_scale);
      } else if (src >= 0) {
        ++n.moved;
        n.scaled += nc::remap_slot_scale(v, c, 0) != 1.0f || v.restart;
        bool same = a.weight[k] == nc::remap_moved_slot(v, c, 0, o.weight[src]);
        for (size_t m = 0; m < a.weight_moments.size(); ++m)
          same = same && a.weight_moments[m][k] == nc::remap_moved_slot(v, c, 1 + static_cast<int>(m), o.weight_moments[m][src]);
        CHECK_MSG(same, "%s: layer %zu (%lld, %lld) moved from %lld: %g, was %g", what.c_str(), l, static_cast<long long>(r),
                  static_cast<long long>(c), static_cast<long long>(src), a.weight[k], o.weight[src]);
      } else if (src == nc::kRemapZero) {
        ++n.zero;
        bool zero = a.weight[k] == 0.0f;
        for (const auto& m : a.weight_moments) zero = zero && m[k] == 0.0f;
        CHECK_MSG(zero, "%s: layer %zu (%lld, %lld) should be zero in every slot, weight %g", what.c_str(), l,
                  static_cast<long long>(r), static_cast<long long>(c), a.weight[k]);
      } else {
        ++n.fresh;
        const bool new_row = sources[l][r] < 0, new_col = l > 0 && sources[l - 1][c] < 0;
        CHECK_MSG(src == nc::kRemapFresh && (new_row || new_col), "%s: layer %zu (%lld, %lld): source %lld", what.c_str(), l,
                  static_cast<long long>(r), static_cast<long long>(c), static_cast<long long>(src));
      }
    }
    for (int64_t r = 0; r < a.units; ++r) {
      const int64_t src = nc::remap_bias_source(v, r);
      const int64_t copy = src == nc::kRemapFresh ? nc::remap_bias_copy(v, r) : nc::kRemapFresh;
      if (copy != nc::kRemapFresh) {
        bool same = a.bias[r] == o.bias[copy];
        for (const auto& m : a.bias_moments) same = same && m[r] == 0.0f;
        CHECK_MSG(same, "%s: layer %zu bias %lld copied from %lld", what.c_str(), l, static_cast<long long>(r), static_cast<long long>(copy));
      } else if (src >= 0) {
        bool same = a.bias[r] == o.bias[src];
        for (size_t m = 0; m < a.bias_moments.size(); ++m) same = same && a.bias_moments[m][r] == o.bias_moments[m][src];
        CHECK_MSG(same, "%s: layer %zu bias %lld moved from %lld", what.c_str(), l, static_cast<long long>(r), static_cast<long long>(src));
      } else if (src == nc::kRemapZero) {
        bool zero = a.bias[r] == 0.0f;
        for (const auto& m : a.bias_moments) zero = zero && m[r] == 0.0f;
        CHECK_MSG(zero, "%s: layer %zu dead unit %lld's bias is not zero", what.c_str(), l, static_cast<long long>(r));
      } else {
        CHECK_MSG(sources[l][r] < 0, "%s: layer %zu bias %lld fresh but its unit is old", what.c_str(), l, static_cast<long long>(r));
      }
    }
  }
  return n;
}

// A trained model (nonzero Adam moments everywhere): a dense hidden layer, a
// CSR hidden layer, a dense output layer.
std::unique_ptr<np::Model> trained_model() {
  std::vector<np::LayerSpec> specs(3);
  specs[0].units = 14;
  specs[0].activation = np::Activation::kRelu;
  specs[0].sparse_threshold = 0.05f;  // stays dense with a mask after weight pruning
  specs[1].units = 11;
  specs[1].activation = np::Activation::kTanh;
  specs[1].density = 0.4;
  specs[1].sparse_threshold = 0.6f;
  specs[2].units = 3;
  auto model = std::make_unique<np::Model>(9, 5, specs);
  np::Model& m = *model;
  np::OptimizerConfig o;
  o.kind = np::OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  m.compile(o, np::LossKind::kSoftmaxCrossEntropy);
  const int64_t n = 40;
  std::vector<float> x(n * 9);
  std::vector<int32_t> labels(n), order(n);
  for (int64_t i = 0; i < n * 9; ++i) x[i] = static_cast<float>((i * 37) % 23) / 23.0f - 0.4f;
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(i % 3);
    order[i] = static_cast<int32_t>(i);
  }
  np::Targets t;
  t.labels = labels.data();
  for (int s = 0; s < 4; ++s) m.train_batch(x.data(), t, order.data() + 10 * s, 10, nullptr);
  return model;
}

TEST(remap_rule_matches_neuron_pruning_and_compact) {
  const auto model = trained_model();
  np::Model& m = *model;
  m.prune_weights_magnitude({0}, 0.3, false);  // a masked dense layer
  np::ModelState s0 = m.export_state();
  m.prune_neurons({0, 1}, 0.3, "random", false);
  np::ModelState s1 = m.export_state();
  const Counts pruned = check_rule(s0, s1, "prune_neurons");
  CHECK(pruned.zero > 0);
  CHECK_EQ(pruned.fresh, 0);
  m.compact(nullptr);
  np::ModelState s2 = m.export_state();
  CHECK(s2.layers[0].units < s1.layers[0].units);
  const Counts compacted = check_rule(s1, s2, "compact");
  CHECK(compacted.moved > 0);
  CHECK_EQ(compacted.fresh, 0);
}

TEST(remap_rule_matches_magnitude_pruning_and_set_regrowth) {
  const auto model = trained_model();
  np::Model& m = *model;
  np::ModelState s0 = m.export_state();
  m.prune_weights_magnitude({0}, 0.3, false);  // dense: a mask
  m.prune_weights_magnitude({0, 1, 2}, 0.2, true);  // global; the CSR layer loses entries
  np::ModelState s1 = m.export_state();
  const Counts pruned = check_rule(s0, s1, "magnitude pruning");
  CHECK(pruned.zero > 0);
  CHECK_EQ(pruned.fresh, 0);
  CHECK(s1.layers[1].indices.size() < s0.layers[1].indices.size());
  m.prune_neurons({1}, 0.2, "l1", false);
  np::ModelState s2 = m.export_state();
  CHECK_EQ(check_rule(s1, s2, "l1 neuron pruning").fresh, 0);
  // SET: drops the smallest stored weights, grows as many empty positions at 0 with fresh slots.
  CHECK(m.regrow({0, 1}, 0.25, false, nullptr) > 0);
  np::ModelState s3 = m.export_state();
  const Counts regrown = check_rule(s2, s3, "SET regrowth");
  CHECK(regrown.zero > 0);
  CHECK_EQ(regrown.fresh, 0);
}

TEST(remap_rule_matches_growth_zero_and_random) {
  for (np::GrowInit init : {np::GrowInit::kZero, np::GrowInit::kRandom}) {
    const auto model = trained_model();
    np::Model& m = *model;
    m.prune_weights_magnitude({0}, 0.25, false);
    np::ModelState s0 = m.export_state();
    m.grow_units(0, 3, init, 0.0, nullptr, nullptr, 0, nullptr);  // dense layer; the CSR layer gains columns
    m.grow_units(1, 2, init, 0.0, nullptr, nullptr, 0, nullptr);  // CSR layer; the output layer gains columns
    np::ModelState s1 = m.export_state();
    CHECK_EQ(s1.layers[0].units, s0.layers[0].units + 3);
    CHECK(s1.layers[1].csr);
    const Counts c = check_rule(s0, s1, init == np::GrowInit::kZero ? "grow zero" : "grow random");
    CHECK(c.moved > 0);
    CHECK(c.fresh > 0);
  }
}

// net2wider: new units copy their sources' rows and biases (value only: the
// rule's copies, so the device needs none of the host's values), each new
// outgoing column takes its share of its source's column, and each source's
// column keeps a share of its value and moments (moved and scaled).
// gradmax: new rows and columns fresh, the rest moved unchanged.
TEST(remap_rule_matches_net2wider_and_gradmax_growth) {
  const auto model = trained_model();
  np::Model& m = *model;
  m.prune_weights_magnitude({0}, 0.25, false);
  for (int64_t layer : {0, 1}) {  // the next layer: CSR, then dense
    np::ModelState s0 = m.export_state();
    m.grow_units(layer, 4, np::GrowInit::kNet2Wider, 0.3, nullptr, nullptr, 0, nullptr);
    const auto scales = np_test::split_scales(m);
    CHECK_EQ(m.last_split().layer, layer);
    CHECK_EQ(m.last_split().copies.size(), 4u);
    int64_t uneven = 0;
    for (float f : scales[layer + 1]) uneven += f != 1.0f && f != 0.5f;
    CHECK(uneven > 0);  // noise 0.3: shares other than halves
    // Without the copies the new positions are the host's values.
    const Counts host = check_rule(s0, m.export_state(), "net2wider", Extras{scales, {}, {}});
    CHECK(host.fresh > 0);
    const Counts c = check_rule(s0, m.export_state(), "net2wider with copies", Extras{scales, np_test::split_copies(m), {}});
    CHECK(c.moved > 0);
    CHECK(c.scaled > 0);  // the sources' columns: exact only with their factors
    CHECK(c.copied > 0);
    CHECK_EQ(c.fresh, 0);  // every new position is a copy
  }
  std::vector<float> x(8 * 9);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) / 7.0f - 0.5f;
  std::vector<int32_t> labels = {0, 1, 2, 0, 1, 2, 0, 1};
  np::Targets t;
  t.labels = labels.data();
  np::ModelState s2 = m.export_state();
  m.grow_units(0, 2, np::GrowInit::kGradMax, 0.0, x.data(), &t, 8, nullptr);
  CHECK_EQ(m.last_split().layer, -1);
  CHECK(m.last_split().copies.empty());
  const Counts g = check_rule(s2, m.export_state(), "gradmax");
  CHECK(g.moved > 0);
  CHECK(g.fresh > 0);
}

// sparsify: a thinned layer's kept weights move with its factor and restart
// their slots at zero; pruned positions are zero; the biases and the layers
// it leaves alone move as they were.
TEST(remap_rule_matches_sparsify) {
  const auto model = trained_model();
  np::Model& m = *model;
  np::ModelState s0 = m.export_state();
  m.sparsify(0.5, false, {0, 1}, nullptr);  // layer 1 (CSR at density 0.4) is already sparser: left alone
  np::ModelState s1 = m.export_state();
  CHECK(s1.layers[0].mask.size() > 0 || s1.layers[0].csr);
  CHECK(s1.layers[1].weight == s0.layers[1].weight);
  CHECK_EQ(m.last_rescales().size(), 1u);
  CHECK_EQ(m.last_rescales()[0].layer, 0);
  CHECK(m.last_rescales()[0].scale > 1.0f);
  std::vector<float> restart(s1.layers.size(), NAN);
  restart[0] = m.last_rescales()[0].scale;
  const Counts c = check_rule(s0, s1, "sparsify", Extras{{}, {}, restart});
  CHECK_EQ(c.fresh, 0);
  CHECK(c.scaled > 0);  // the kept weights of layer 0
  CHECK(c.zero > 0);    // its pruned positions
  // Every moment of the thinned layer starts at zero.
  for (const auto& slot : s1.layers[0].weight_moments)
    for (float v : slot) CHECK_EQ(v, 0.0f);
}

TEST(remap_rule_matches_format_changes) {
  const auto model = trained_model();
  np::Model& m = *model;
  m.prune_weights_magnitude({0}, 0.5, false);
  np::ModelState s0 = m.export_state();
  m.convert_to_csr(0, "test");     // masked dense -> CSR: pruned positions are not stored
  m.convert_to_dense(1, "test");   // CSR -> dense with a mask
  np::ModelState s1 = m.export_state();
  CHECK(s1.layers[0].csr);
  CHECK(!s1.layers[1].csr);
  const Counts c = check_rule(s0, s1, "convert");
  CHECK(c.moved > 0);
  CHECK(c.zero > 0);  // layer 1's positions the CSR did not store
  CHECK_EQ(c.fresh, 0);
  np::ModelState s2 = s1;
  m.convert_to_dense(0, "test");
  m.convert_to_csr(1, "test");
  s2 = m.export_state();
  const Counts back = check_rule(s1, s2, "convert back");
  CHECK_EQ(back.fresh, 0);
}

// The rule itself on a hand-made case: CSR rows that are empty, a position
// the old row did not store, a new unit, a dead unit, new and moved inputs.
TEST(remap_rule_hand_case) {
  const std::vector<int64_t> old_indptr = {0, 2, 2, 4};  // 3 x 4, row 1 empty
  const std::vector<int32_t> old_indices = {0, 3, 1, 2};
  const std::vector<int64_t> indptr = {0, 0, 2, 3, 5};  // 4 x 4, row 0 empty
  const std::vector<int32_t> indices = {0, 2, 1, 1, 2};
  const std::vector<int32_t> rows = {1, 0, -1, 2};  // unit 2 is new
  nc::RemapView v;
  v.old_units = 3;
  v.old_inputs = 4;
  v.old_csr = true;
  v.old_indptr = old_indptr.data();
  v.old_indices = old_indices.data();
  v.units = 4;
  v.inputs = 4;
  v.csr = true;
  v.indptr = indptr.data();
  v.indices = indices.data();
  v.row_source = rows.data();
  CHECK_EQ(v.count(), 5);
  CHECK_EQ(nc::remap_row_of(v, 0), 1);  // past the empty row 0
  CHECK_EQ(nc::remap_row_of(v, 4), 3);
  CHECK_EQ(nc::remap_weight_source(v, 0), 0);                // (1, 0) <- old (0, 0)
  CHECK_EQ(nc::remap_weight_source(v, 1), nc::kRemapZero);   // (1, 2): old (0, 2) was not stored
  CHECK_EQ(nc::remap_weight_source(v, 2), nc::kRemapFresh);  // the new unit
  CHECK_EQ(nc::remap_weight_source(v, 3), 2);                // (3, 1) <- old (2, 1)
  CHECK_EQ(nc::remap_weight_source(v, 4), 3);                // (3, 2) <- old (2, 2)
  const std::vector<uint8_t> alive = {1, 1, 1, 0};  // unit 3 dead
  v.alive = alive.data();
  CHECK_EQ(nc::remap_weight_source(v, 3), nc::kRemapZero);
  CHECK_EQ(nc::remap_bias_source(v, 3), nc::kRemapZero);
  CHECK_EQ(nc::remap_bias_source(v, 2), nc::kRemapFresh);
  CHECK_EQ(nc::remap_bias_source(v, 0), 1);
  v.alive = nullptr;
  const std::vector<int32_t> cols = {0, -1, 1, 3};  // input 1 is new, input 2 was input 1
  v.col_source = cols.data();
  CHECK_EQ(nc::remap_weight_source(v, 1), nc::kRemapZero);   // (1, 2) <- old (0, 1): not stored
  CHECK_EQ(nc::remap_weight_source(v, 3), nc::kRemapFresh);  // (3, 1): a new input
  CHECK_EQ(nc::remap_weight_source(v, 4), 2);                // (3, 2) <- old (2, 1)
  // A dense old layer: row-major positions without stride.
  v.old_csr = false;
  CHECK_EQ(nc::remap_weight_source(v, 4), 2 * 4 + 1);
}

}  // namespace
