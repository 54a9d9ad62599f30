// The CUDA tests' additions to native/tests/test.h: CUDA_TEST registers a test
// that needs a device (cuda_test_main.cpp skips it, with the reason, when there
// is none), plus the shared helpers: seeded data, CSR matrices, comparisons.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../tests/test.h"
#include "kernels/sparse.h"

namespace np_cuda_test {

int register_device_test(const char* name, np_test::TestFn fn);

struct Lcg {
  uint64_t s;
  uint32_t u32() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 32);
  }
  float next() { return static_cast<float>(u32() >> 8) / 8388608.0f - 1.0f; }  // [-1, 1)
};

inline std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  Lcg rng{seed};
  std::vector<float> v(n);
  for (float& x : v) x = rng.next() * scale;
  return v;
}

constexpr float kSentinel = 12345.0f;  // padding past the batch: every kernel must leave it alone
const float kNan = std::numeric_limits<float>::quiet_NaN();

// A rows x batch block with row stride ld: random values, kSentinel in the padding.
inline std::vector<float> padded_block(int64_t rows, int64_t batch, int64_t ld, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(rows * ld), kSentinel);
  Lcg rng{seed};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < batch; ++j) v[r * ld + j] = rng.next();
  return v;
}

struct Csr {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  np::CsrView view() const { return np::CsrView{rows, cols, indptr.data(), indices.data(), values.data()}; }
};

// Each entry kept with probability density; every fifth row left empty (the
// kernels' empty-row path), unless density >= 1.
inline Csr random_csr(int64_t rows, int64_t cols, double density, uint64_t seed) {
  Lcg rng{seed};
  Csr w;
  w.rows = rows;
  w.cols = cols;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const bool keep = density >= 1.0 || rng.u32() < density * 4294967296.0;
      if (keep && (r % 5 != 3 || density >= 1.0)) {
        w.indices.push_back(static_cast<int32_t>(c));
        w.values.push_back(rng.next());
      }
    }
    w.indptr.push_back(static_cast<int64_t>(w.indices.size()));
  }
  return w;
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
