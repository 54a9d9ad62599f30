// GradMax's orthogonal iteration (model/singular_vectors.h) against the plain
// per-column loops it replaced: t = m^T q column by column down the rows, then
// q = m t, one column at a time (the Gram-Schmidt step after them is shared). The fast version reads m row by row, once per
// iteration, with four running sums side by side; every sum still adds its
// terms in the same order, so the vectors must be equal to the bit, for k
// below, at and past a multiple of four. Then what they are: orthonormal, and
// the top singular directions of a matrix built with known ones.
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/rng.h"
#include "model/singular_vectors.h"
#include "test.h"

namespace {

std::vector<double> naive_top_left_singular_vectors(const std::vector<float>& m, int64_t rows, int64_t cols, int64_t k, np::Rng& rng) {
  std::vector<double> q(rows * k), t(cols * k);
  for (auto& v : q) v = rng.normal();
  for (int iter = 0; iter < 30; ++iter) {
    for (int64_t j = 0; j < k; ++j) {
      for (int64_t c = 0; c < cols; ++c) {
        double s = 0.0;
        for (int64_t r = 0; r < rows; ++r) s += static_cast<double>(m[r * cols + c]) * q[j * rows + r];
        t[j * cols + c] = s;
      }
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0.0;
        for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(m[r * cols + c]) * t[j * cols + c];
        q[j * rows + r] = s;
      }
    }
    np::orthonormalise_columns(q, rows, k, rng);  // unchanged: shared
  }
  return q;
}

}  // namespace

TEST(singular_vectors_match_the_per_column_reference_bit_for_bit) {
  const int64_t rows = 37, cols = 23;
  np::Rng fill(5);
  std::vector<float> m(rows * cols);
  for (float& v : m) v = static_cast<float>(fill.normal());
  for (int64_t k : {1, 3, 4, 5, 8, 9}) {
    np::Rng a(11), b(11);
    const std::vector<double> fast = np::top_left_singular_vectors(m, rows, cols, k, a);
    const std::vector<double> naive = naive_top_left_singular_vectors(m, rows, cols, k, b);
    CHECK_MSG(fast == naive, "k = %lld: the vectors differ from the reference", static_cast<long long>(k));
    CHECK_MSG(a.next_u64() == b.next_u64(), "k = %lld: the generators drifted apart", static_cast<long long>(k));
  }
}

TEST(singular_vectors_are_the_top_directions) {
  // m = 5 u1 v1^T + 2 u2 v2^T + small noise: the top two left singular vectors are +-u1, +-u2.
  const int64_t rows = 30, cols = 12;
  std::vector<double> u1(rows), u2(rows), v1(cols), v2(cols);
  for (int64_t r = 0; r < rows; ++r) {
    u1[r] = std::sin(0.3 * static_cast<double>(r) + 0.1);
    u2[r] = std::cos(0.7 * static_cast<double>(r));
  }
  for (int64_t c = 0; c < cols; ++c) {
    v1[c] = 1.0 + 0.1 * static_cast<double>(c);
    v2[c] = (c % 2 ? 1.0 : -1.0);
  }
  auto normalise = [](std::vector<double>& v, const std::vector<double>* against) {
    if (against) {
      double d = 0.0;
      for (size_t i = 0; i < v.size(); ++i) d += v[i] * (*against)[i];
      for (size_t i = 0; i < v.size(); ++i) v[i] -= d * (*against)[i];
    }
    double n = 0.0;
    for (double x : v) n += x * x;
    for (double& x : v) x /= std::sqrt(n);
  };
  normalise(u1, nullptr);
  normalise(u2, &u1);
  normalise(v1, nullptr);
  normalise(v2, &v1);
  np::Rng noise(3);
  std::vector<float> m(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m[r * cols + c] = static_cast<float>(5.0 * u1[r] * v1[c] + 2.0 * u2[r] * v2[c] + 1e-4 * noise.normal());
  np::Rng rng(9);
  const std::vector<double> q = np::top_left_singular_vectors(m, rows, cols, 2, rng);
  for (int64_t j = 0; j < 2; ++j) {
    const std::vector<double>& u = j == 0 ? u1 : u2;
    double dot = 0.0, norm = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      dot += q[j * rows + r] * u[r];
      norm += q[j * rows + r] * q[j * rows + r];
    }
    CHECK_MSG(std::fabs(norm - 1.0) < 1e-12, "column %lld is not unit length: %g", static_cast<long long>(j), norm);
    CHECK_MSG(std::fabs(std::fabs(dot) - 1.0) < 1e-6, "column %lld is not the known direction: |cos| = %g", static_cast<long long>(j), std::fabs(dot));
  }
}
