// W^T's pattern (model/csr_param.h build_csr_transpose, CsrParam::transpose())
// against a direct construction, and the backward product through it (a
// forward spmm over the transpose with the values gathered into its order)
// against the naive W^T product; the cache follows pattern changes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/sparse.h"
#include "kernels/thread_pool.h"
#include "model/csr_edit.h"
#include "model/csr_param.h"
#include "model/rng.h"
#include "test.h"

namespace {

np::CsrParam random_csr(int64_t rows, int64_t cols, double density, uint64_t seed) {
  np::Rng rng(seed);
  np::CsrParam c;
  c.rows = rows;
  c.cols = cols;
  c.indptr.assign(1, 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t col = 0; col < cols; ++col)
      if (rng.uniform() < density) c.indices.push_back(static_cast<int32_t>(col));
    c.indptr.push_back(static_cast<int64_t>(c.indices.size()));
  }
  c.allocate_slots(c.nnz(), 0);
  for (int64_t k = 0; k < c.nnz(); ++k) c.value()[k] = rng.normal();
  return c;
}

// dX = W^T dY through the transpose, as training.cpp does it.
std::vector<float> backward_through_transpose(const np::CsrParam& w, const std::vector<float>& dy, int64_t batch,
                                              np::ThreadPool* pool) {
  const np::CsrTranspose& t = w.transpose();
  std::vector<float> gathered(t.nnz);
  for (int64_t j = 0; j < t.nnz; ++j) gathered[j] = w.value()[t.perm[j]];
  const np::CsrView view{t.cols, t.rows, t.indptr.data(), t.indices.data(), gathered.data()};
  std::vector<float> dx(w.cols * batch, -7.0f);
  np::spmm_f32_csr(view, dy.data(), batch, 0.0f, dx.data(), batch, batch, pool);
  return dx;
}

void check_backward(const np::CsrParam& w, int64_t batch, np::ThreadPool* pool, const char* what) {
  np::Rng rng(99);
  std::vector<float> dy(w.rows * batch);
  for (float& v : dy) v = rng.normal();
  const std::vector<float> got = backward_through_transpose(w, dy, batch, pool);
  std::vector<float> want(w.cols * batch);
  np::spmm_t_f32_csr_naive(w.view(), dy.data(), batch, 0.0f, want.data(), batch, batch);
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i])));
  CHECK_MSG(worst < 1e-5, "%s: max relative error %g", what, worst);
}

}  // namespace

TEST(csr_transpose_lists_every_entry_once_by_column_rows_ascending) {
  const np::CsrParam w = random_csr(37, 53, 0.2, 1);
  const np::CsrTranspose& t = w.transpose();
  CHECK(t.indptr.size() == 54 && t.indptr.back() == w.nnz());
  std::vector<int> seen(w.nnz(), 0);
  for (int64_t c = 0; c < w.cols; ++c) {
    for (int64_t j = t.indptr[c]; j < t.indptr[c + 1]; ++j) {
      const int64_t k = t.perm[j], r = t.indices[j];
      CHECK(k >= w.indptr[r] && k < w.indptr[r + 1]);  // entry k is in row r
      CHECK(w.indices[k] == c);                        // and in column c
      if (j > t.indptr[c]) CHECK(t.indices[j] > t.indices[j - 1]);
      ++seen[k];
    }
  }
  for (int s : seen) CHECK(s == 1);
}

TEST(csr_backward_through_the_transpose_matches_naive) {
  np::ThreadPool two(2);
  const np::CsrParam w = random_csr(300, 784, 0.1, 2);
  for (int64_t batch : {int64_t{1}, int64_t{33}, int64_t{128}}) {
    check_backward(w, batch, nullptr, "1 thread");
    check_backward(w, batch, &two, "2 threads");
  }
  check_backward(random_csr(5, 40, 0.0, 3), 16, &two, "no entries");
  check_backward(random_csr(64, 3, 0.9, 4), 16, &two, "few columns");
}

TEST(csr_transpose_follows_pattern_changes) {
  np::CsrParam w = random_csr(40, 30, 0.3, 5);
  const int64_t before = w.transpose().nnz;
  CHECK(before == w.nnz());
  // A rebuild (same nnz: drop one entry, insert another) starts without a transpose.
  np::csr_filter(w, [](int64_t r, int64_t, int64_t k) { return !(r == 0 && k == 0); });
  int32_t free_col = 0;
  while (std::binary_search(w.indices.begin() + w.indptr[3], w.indices.begin() + w.indptr[4], free_col)) ++free_col;
  np::csr_insert(w, {{3, free_col}}, {0.5f});
  CHECK(w.nnz() == before);
  check_backward(w, 16, nullptr, "after filter + insert");
  // In-place growth: rows appended, then columns widened.
  np::csr_append_rows(w, 3);
  check_backward(w, 16, nullptr, "after appended rows");
  w.cols += 2;
  w.drop_transpose();
  check_backward(w, 16, nullptr, "after added columns");
  CHECK(w.transpose().indptr.size() == static_cast<size_t>(w.cols + 1));
}
