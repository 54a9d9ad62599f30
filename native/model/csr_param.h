// A CSR weight matrix with all its slots: the values, their gradient and the
// optimizer moments are arrays aligned with `indices`, so a sparse optimizer
// step is the dense update kernel run over nnz contiguous elements, and a
// structural change rebuilds every slot together. No dense weight or mask is
// kept beside it: a pruned weight is simply not stored.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/sparse.h"
#include "model/aligned_buffer.h"
#include "model/param.h"

namespace np {

struct CsrParam {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> indptr;   // rows + 1
  std::vector<int32_t> indices;  // nnz, sorted within each row
  FloatBuffer slots[kSlotCount]; // each nnz long (moments empty when unused)
  int moments = 0;               // optimizer moment slots in use (0, 1 or 2)

  int64_t nnz() const { return indptr.empty() ? 0 : indptr.back(); }
  float* slot(Slot s) { return slots[static_cast<int>(s)].data(); }
  const float* slot(Slot s) const { return slots[static_cast<int>(s)].data(); }
  // Value and gradient always exist; moments only when the optimizer uses them.
  bool has(Slot s) const { return static_cast<int>(s) < 2 || static_cast<int>(s) - 2 < moments; }
  float* value() { return slot(Slot::kValue); }
  const float* value() const { return slot(Slot::kValue); }
  float* grad() { return slot(Slot::kGrad); }

  CsrView view() const {
    CsrView v;
    v.rows = rows;
    v.cols = cols;
    v.indptr = indptr.data();
    v.indices = indices.data();
    v.values = value();
    return v;
  }

  // Bytes of the structure plus every allocated slot.
  int64_t bytes() const;
  int moment_slots() const { return moments; }

  // Builds from a dense strided parameter, keeping the entries where keep(r, c)
  // is true, with every slot the parameter has.
  template <typename Keep>
  static CsrParam from_dense(const DenseParam& p, Keep keep);

  // Writes the slot into a dense rows x cols array with zeros elsewhere.
  void to_dense(Slot s, float* out, int64_t ld) const;

  // Allocates nnz-long slots: value and grad always, `moments` optimizer slots.
  void allocate_slots(int64_t nnz, int moments);

  // Debug/validation: row pointers monotone, indices in range and sorted.
  bool valid() const;

  // W^T's pattern, built on first use and kept until the pattern changes.
  // Every pattern edit builds a new CsrParam (csr_edit.h), which starts
  // without one; an in-place edit (rows appended, columns added) calls
  // drop_transpose(), and a transpose built for another shape or nnz is
  // rebuilt regardless. Training memory, not the layer's: bytes() leaves it out.
  // Laid out as blocked CSR for `batch` (blocked_csr_block_cols; batch 0:
  // plain CSR), and rebuilt when a batch wants other blocks: blocks change
  // the order of the sums, so a step's result must depend on its own batch
  // only, not on which batch came first (a resumed run matches an
  // uninterrupted one). Most batches of a run want the same blocks; an
  // epoch's short last batch may not, at the cost of two rebuilds an epoch.
  const CsrTranspose& transpose(int64_t batch = 0) const;
  void drop_transpose() { transpose_.reset(); }
  int64_t transpose_bytes() const { return transpose_ ? transpose_->bytes() : 0; }
  // Whether transpose() can index every entry (perm is int32).
  bool transposable() const { return nnz() < (int64_t{1} << 31); }

 private:
  mutable std::shared_ptr<const CsrTranspose> transpose_;
};

template <typename Keep>
CsrParam CsrParam::from_dense(const DenseParam& p, Keep keep) {
  CsrParam c;
  c.rows = p.rows;
  c.cols = p.cols;
  c.indptr.assign(p.rows + 1, 0);
  for (int64_t r = 0; r < p.rows; ++r) {
    int64_t count = 0;
    for (int64_t col = 0; col < p.cols; ++col) count += keep(r, col) ? 1 : 0;
    c.indptr[r + 1] = c.indptr[r] + count;
  }
  const int64_t nnz = c.indptr.back();
  c.indices.resize(nnz);
  c.allocate_slots(nnz, p.moment_slots());
  int64_t k = 0;
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t col = 0; col < p.cols; ++col) {
      if (!keep(r, col)) continue;
      c.indices[k] = static_cast<int32_t>(col);
      for (int s = 0; s < kSlotCount; ++s)
        if (c.has(static_cast<Slot>(s))) c.slots[s][k] = p.slots[s][r * p.stride + col];
      ++k;
    }
  }
  return c;
}

}  // namespace np
