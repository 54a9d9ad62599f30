// The radix order statistics (model/radix_select.h) against std::sort on
// random data, heavy ties, zeros, one element, and values across the whole
// float range.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "model/radix_select.h"
#include "model/rng.h"
#include "test.h"

namespace {

void check_kth(const std::vector<float>& values) {
  std::vector<float> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const int64_t n = static_cast<int64_t>(values.size());
  for (int64_t k : {int64_t{1}, n / 3 + 1, n / 2 + 1, n}) {
    if (k < 1 || k > n) continue;
    const np::KthSmallest got = np::kth_smallest_magnitude(values, k);
    const float want = sorted[k - 1];
    const int64_t below = std::lower_bound(sorted.begin(), sorted.end(), want) - sorted.begin();
    CHECK_MSG(got.value == want, "n %ld k %ld: got %g want %g", static_cast<long>(n), static_cast<long>(k),
              got.value, want);
    CHECK_MSG(got.below == below, "n %ld k %ld: below %ld want %ld", static_cast<long>(n), static_cast<long>(k),
              static_cast<long>(got.below), static_cast<long>(below));
  }
}

}  // namespace

TEST(radix_kth_smallest_matches_sorting) {
  np::Rng rng(11);
  std::vector<float> v;
  for (int i = 0; i < 10000; ++i) v.push_back(std::fabs(rng.normal()) * 0.01f);
  check_kth(v);
  std::vector<float> ties;  // few distinct values, many zeros
  for (int i = 0; i < 5000; ++i) ties.push_back(static_cast<float>(rng.below(4)) * 0.5f);
  check_kth(ties);
  check_kth({3.0f});
  check_kth({0.0f, 0.0f, 0.0f});
  check_kth({std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(), 1.0f,
             std::numeric_limits<float>::infinity(), 0.0f, 1e-30f, 1e30f});
}

TEST(radix_sort_positions_matches_std_sort) {
  np::Rng rng(12);
  for (int64_t bound : {int64_t{1}, int64_t{7}, int64_t{2048}, int64_t{2049}, int64_t{1} << 22, int64_t{1} << 40}) {
    std::vector<int64_t> v;
    for (int i = 0; i < 3000; ++i) v.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(bound))));
    std::vector<int64_t> want = v;
    std::sort(want.begin(), want.end());
    np::radix_sort_positions(v, bound);
    CHECK_MSG(v == want, "bound %lld", static_cast<long long>(bound));
  }
  std::vector<int64_t> empty;
  np::radix_sort_positions(empty, 100);
  CHECK(empty.empty());
}
