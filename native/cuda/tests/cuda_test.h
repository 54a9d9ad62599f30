// The CUDA tests' additions to native/tests/test.h: CUDA_TEST registers a test
// that needs a device (cuda_test_main.cpp skips it, with the reason, when there
// is none), plus the shared helpers: seeded data, CSR matrices, comparisons.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../tests/test.h"
#include "../../tests/test_data.h"
#include "kernels/sparse.h"

namespace np_cuda_test {

int register_device_test(const char* name, np_test::TestFn fn);

using np_test::Csr;
using np_test::kNan;
using np_test::kSentinel;
using np_test::Lcg;
using np_test::random_csr;

inline std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  Lcg rng{seed};
  std::vector<float> v(n);
  for (float& x : v) x = rng.next() * scale;
  return v;
}

// A rows x batch block with row stride ld: random values, kSentinel in the padding.
inline std::vector<float> padded_block(int64_t rows, int64_t batch, int64_t ld, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(rows * ld), kSentinel);
  Lcg rng{seed};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < batch; ++j) v[r * ld + j] = rng.next();
  return v;
}

inline std::vector<float> abs_of(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// Largest |got - want| / (abs_scale + 1), where abs_scale is the same product
// on absolute values (what float rounding is proportional to); NaN if any
// value is not finite.
inline double max_scaled_error(const std::vector<float>& got, const std::vector<float>& want,
                               const std::vector<float>& abs_scale) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i]) && !(got[i] == want[i])) return std::numeric_limits<double>::quiet_NaN();
    const double e = std::fabs(static_cast<double>(got[i]) - want[i]) / (std::fabs(abs_scale[i]) + 1.0);
    if (e > worst) worst = e;
  }
  return worst;
}

}  // namespace np_cuda_test

#define CUDA_TEST(name)                                                                                  \
  static void np_cuda_test_##name();                                                                     \
  static const int np_cuda_test_reg_##name = np_cuda_test::register_device_test(#name, np_cuda_test_##name); \
  static void np_cuda_test_##name()
