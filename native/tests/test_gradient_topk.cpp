// RigL's regrowth choice (model/gradient_topk.h) against brute force: the full
// dense gradient, sorted by (|g| descending, position ascending), first k empty
// positions of live units. Covers one thread and a 2-thread pool (the merge),
// CSR and masked dense layers, dead units, ties (zero input rows give whole
// columns of zero gradient) and a forced too-high start (the rescan).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/thread_pool.h"
#include "model/gradient_topk.h"
#include "model/model.h"
#include "model/rng.h"
#include "test.h"

namespace {

struct Case {
  np::DenseLayer layer;
  std::vector<float> dz, input;  // units x batch, inputs x batch
  int64_t batch = 0;
};

Case make_case(int64_t units, int64_t inputs, int64_t batch, double density, bool csr, uint64_t seed) {
  np::Rng rng(seed);
  Case c;
  c.batch = batch;
  np::DenseLayer& l = c.layer;
  l.units = units;
  l.inputs = inputs;
  l.alive.assign(units, 1);
  for (int64_t r = 0; r < units; r += 7) l.alive[r] = 0;  // some dead units never regrow
  std::vector<uint8_t> mask(units * inputs);
  for (auto& m : mask) m = rng.uniform() < density ? 1 : 0;
  if (csr) {
    l.format = np::WeightFormat::kCsr;
    l.csr.rows = units;
    l.csr.cols = inputs;
    l.csr.indptr.assign(1, 0);
    for (int64_t r = 0; r < units; ++r) {
      for (int64_t col = 0; col < inputs; ++col)
        if (mask[r * inputs + col]) l.csr.indices.push_back(static_cast<int32_t>(col));
      l.csr.indptr.push_back(static_cast<int64_t>(l.csr.indices.size()));
    }
    l.csr.allocate_slots(l.csr.nnz(), 0);
  } else {
    l.format = np::WeightFormat::kDense;
    l.mask = mask;
  }
  c.dz.resize(units * batch);
  c.input.resize(inputs * batch);
  for (float& v : c.dz) v = rng.normal();
  for (int64_t i = 0; i < inputs; ++i)
    for (int64_t j = 0; j < batch; ++j) c.input[i * batch + j] = i % 5 == 0 ? 0.0f : rng.normal();  // ties at 0
  return c;
}

std::vector<int64_t> brute_force(const Case& c, int64_t k) {
  const np::DenseLayer& l = c.layer;
  std::vector<std::pair<float, int64_t>> all;
  for (int64_t r = 0; r < l.units; ++r) {
    if (!l.unit_alive(r)) continue;
    for (int64_t col = 0; col < l.inputs; ++col) {
      if (l.stores(r, col)) continue;
      // The same float sum the GEMM computes may differ in the last bits, so
      // compare with a double product rounded once; cases keep values apart.
      double g = 0.0;
      for (int64_t j = 0; j < c.batch; ++j) g += static_cast<double>(c.dz[r * c.batch + j]) * c.input[col * c.batch + j];
      all.emplace_back(static_cast<float>(std::fabs(g)), r * l.inputs + col);
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<int64_t> out;
  for (int64_t i = 0; i < k && i < static_cast<int64_t>(all.size()); ++i) out.push_back(all[i].second);
  std::sort(out.begin(), out.end());
  return out;
}

// Positions whose |g| is within rounding of the k-th best may legitimately
// swap between the fast path's float GEMM and the double reference, so the
// check is: same count, and every chosen position's |g| >= the k-th best
// minus a tolerance, and at most a handful differ.
void check(const Case& c, int64_t k, np::ThreadPool* pool, const float* start, const char* what) {
  const std::vector<int64_t> got = np::top_gradient_positions(c.layer, c.dz.data(), c.input.data(), c.batch, k, pool, start);
  const std::vector<int64_t> want = brute_force(c, k);
  CHECK_MSG(got.size() == want.size(), "%s: %zu positions, want %zu", what, got.size(), want.size());
  CHECK_MSG(std::is_sorted(got.begin(), got.end()), "%s: positions not ascending", what);
  std::vector<int64_t> diff;
  std::set_symmetric_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(diff));
  CHECK_MSG(diff.size() <= 4, "%s: %zu positions differ from brute force", what, diff.size());
  for (int64_t pos : got) {
    const int64_t r = pos / c.layer.inputs, col = pos % c.layer.inputs;
    CHECK_MSG(c.layer.unit_alive(r) && !c.layer.stores(r, col), "%s: position %lld is stored or dead", what,
              static_cast<long long>(pos));
  }
}

}  // namespace

TEST(gradient_topk_matches_brute_force) {
  np::ThreadPool two(2);
  for (bool csr : {true, false}) {
    const Case c = make_case(200, 90, 48, 0.1, csr, csr ? 1 : 2);
    const char* fmt = csr ? "csr" : "dense+mask";
    for (int64_t k : {int64_t{1}, int64_t{37}, int64_t{900}}) {
      check(c, k, nullptr, nullptr, fmt);
      check(c, k, &two, nullptr, fmt);
    }
    // Nearly full: fewer empty positions than 4k, so no sampled estimate.
    const Case dense = make_case(130, 40, 16, 0.9, csr, 3);
    check(dense, 300, &two, nullptr, "nearly full");
    // More than every empty position: all of them.
    check(dense, 100000, &two, nullptr, "k beyond the empty positions");
  }
}

TEST(gradient_topk_rescans_when_the_start_threshold_is_too_high) {
  np::ThreadPool two(2);
  const Case c = make_case(150, 70, 32, 0.2, true, 4);
  const float too_high = 1e30f;
  check(c, 50, nullptr, &too_high, "forced rescan, 1 thread");
  check(c, 50, &two, &too_high, "forced rescan, 2 threads");
  const float too_low = -1.0f;
  check(c, 50, &two, &too_low, "start from -1 (every candidate enters, buffers cut)");
}

TEST(gradient_topk_breaks_ties_by_position) {
  // Every gradient zero (zero inputs): the k smallest empty positions.
  Case c = make_case(70, 30, 8, 0.3, true, 5);
  std::fill(c.input.begin(), c.input.end(), 0.0f);
  np::ThreadPool two(2);
  const std::vector<int64_t> got = np::top_gradient_positions(c.layer, c.dz.data(), c.input.data(), c.batch, 25, &two);
  std::vector<int64_t> want;
  for (int64_t pos = 0; pos < 70 * 30 && static_cast<int64_t>(want.size()) < 25; ++pos)
    if (c.layer.unit_alive(pos / 30) && !c.layer.stores(pos / 30, pos % 30)) want.push_back(pos);
  CHECK(got == want);
}
