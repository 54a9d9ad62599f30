// Seeded test data shared by the CPU kernel tests and the CUDA kernel tests
// (native/cuda/tests): a small LCG, CSR matrices with empty rows, and the
// sentinel that padding past a batch must keep.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/sparse.h"

namespace np_test {

struct Lcg {
  uint64_t s;
  uint32_t u32() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 32);
  }
  float next() { return static_cast<float>(u32() >> 8) / 8388608.0f - 1.0f; }  // [-1, 1)
};

constexpr float kSentinel = 12345.0f;  // padding past the batch: every kernel must leave it alone
const float kNan = std::numeric_limits<float>::quiet_NaN();

struct Csr {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  np::CsrView view() const { return np::CsrView{rows, cols, indptr.data(), indices.data(), values.data()}; }
  Csr abs() const {
    Csr a = *this;
    for (float& v : a.values) v = std::fabs(v);
    return a;
  }
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

}  // namespace np_test
