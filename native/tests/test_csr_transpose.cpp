// W^T's pattern (model/csr_param.h build_csr_transpose, CsrParam::transpose()),
// plain and blocked, against a direct construction, and the backward product
// through it (a forward spmm over the transpose with the values gathered into
// its order) against the naive W^T product; the cache follows pattern changes.
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
  const np::CsrTranspose& t = w.transpose(batch);
  std::vector<float> gathered(t.nnz);
  for (int64_t j = 0; j < t.nnz; ++j) gathered[j] = w.value()[t.perm[j]];
  std::vector<float> dx(w.cols * batch, -7.0f);
  np::spmm_f32_csr_transpose(t, gathered.data(), dy.data(), batch, 0.0f, dx.data(), batch, batch, pool);
  return dx;
}

// Every entry of W once, in its (block, column) run: rows inside the block,
// ascending; block_ptr monotone from 0 to nnz; indptr the per-column totals.
void check_blocked_layout(const np::CsrParam& w, const np::CsrTranspose& t) {
  CHECK(t.block_cols > 0 && t.blocks == (w.rows + t.block_cols - 1) / t.block_cols);
  const int64_t stride = w.cols + 1;
  CHECK(static_cast<int64_t>(t.block_ptr.size()) == t.blocks * stride);
  CHECK(t.block_ptr.front() == 0 && t.block_ptr.back() == w.nnz());
  std::vector<int> seen(w.nnz(), 0);
  std::vector<int64_t> per_column(w.cols, 0);
  for (int64_t b = 0; b < t.blocks; ++b) {
    const int64_t* p = t.block_ptr.data() + b * stride;
    if (b > 0) CHECK(p[0] == p[-1]);  // block b starts where block b - 1 ended
    for (int64_t c = 0; c < w.cols; ++c) {
      CHECK(p[c] <= p[c + 1]);
      per_column[c] += p[c + 1] - p[c];
      for (int64_t j = p[c]; j < p[c + 1]; ++j) {
        const int64_t k = t.perm[j], r = t.indices[j];
        CHECK(r >= b * t.block_cols && r < (b + 1) * t.block_cols);
        CHECK(k >= w.indptr[r] && k < w.indptr[r + 1] && w.indices[k] == c);
        if (j > p[c]) CHECK(t.indices[j] > t.indices[j - 1]);
        ++seen[k];
      }
    }
  }
  for (int s : seen) CHECK(s == 1);
  for (int64_t c = 0; c < w.cols; ++c) CHECK(t.indptr[c + 1] - t.indptr[c] == per_column[c]);
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

TEST(blocked_csr_transpose_lists_every_entry_once_by_block_then_column) {
  const np::CsrParam w = random_csr(37, 53, 0.2, 6);
  for (int64_t bc : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{36}}) {
    np::CsrTranspose t;
    np::build_csr_transpose(w.view(), &t, bc);
    check_blocked_layout(w, t);
  }
  // Blocks as wide as W's rows (or wider) are plain CSR.
  for (int64_t bc : {int64_t{37}, int64_t{100}}) {
    np::CsrTranspose t;
    np::build_csr_transpose(w.view(), &t, bc);
    CHECK(t.block_cols == 0 && t.blocks == 0 && t.block_ptr.empty());
  }
  // Empty rows, empty blocks, no entries at all.
  const np::CsrParam sparse = random_csr(40, 9, 0.02, 7);
  np::CsrTranspose few;
  np::build_csr_transpose(sparse.view(), &few, 8);
  check_blocked_layout(sparse, few);
  np::CsrTranspose none;
  const np::CsrParam empty = random_csr(20, 10, 0.0, 8);
  np::build_csr_transpose(empty.view(), &none, 4);
  check_blocked_layout(empty, none);
}

TEST(blocked_naive_reference_sums_what_the_plain_one_does) {
  const np::CsrParam w = random_csr(45, 70, 0.3, 9);
  np::CsrTranspose t;
  np::build_csr_transpose(w.view(), &t, 11);
  std::vector<float> gathered(t.nnz);
  for (int64_t j = 0; j < t.nnz; ++j) gathered[j] = w.value()[t.perm[j]];
  np::Rng rng(10);
  const int64_t batch = 5;
  std::vector<float> dy(w.rows * batch), want(w.cols * batch), got(w.cols * batch);
  for (float& v : dy) v = rng.normal();
  for (float beta : {0.0f, 0.5f}) {
    for (size_t i = 0; i < want.size(); ++i) want[i] = got[i] = static_cast<float>(i % 7) - 3.0f;
    np::spmm_t_f32_csr_naive(w.view(), dy.data(), batch, beta, want.data(), batch, batch);
    np::spmm_f32_blocked_csr_naive(t.blocked_view(gathered.data()), dy.data(), batch, beta, got.data(), batch, batch);
    double worst = 0.0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]));
    CHECK_MSG(worst < 1e-5, "beta %g: max error %g", beta, worst);
  }
}

TEST(csr_param_blocks_its_transpose_where_the_machine_would) {
  // 1024 rows of dY at batch 128 (512 KB) fill a quarter of any L2 up to 2 MB.
  const np::CsrParam w = random_csr(1024, 200, 0.1, 11);
  const int64_t want = np::blocked_csr_block_cols(w.cols, w.rows, w.nnz(), 128);
  const np::CsrTranspose& t = w.transpose(128);
  CHECK(t.block_cols == want);
  if (want > 0) check_blocked_layout(w, t);
  np::ThreadPool two(2);
  check_backward(w, 128, &two, "blocked for batch 128");
  // Another batch gets the blocks it wants (results depend on a step's own
  // batch only); batch 0 gets plain CSR.
  check_backward(w, 32, nullptr, "batch 32");
  CHECK(w.transpose(32).block_cols == np::blocked_csr_block_cols(w.cols, w.rows, w.nnz(), 32));
  CHECK(w.transpose().block_cols == 0);
  CHECK(w.transpose(128).block_cols == want);
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
