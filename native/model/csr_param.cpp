#include "model/csr_param.h"

#include <cstring>

namespace np {

const CsrTranspose& CsrParam::transpose(int64_t batch) const {
  // W^T is cols x rows; its column blocks are blocks of W's rows.
  const int64_t block_cols = batch > 0 ? blocked_csr_block_cols(cols, rows, nnz(), batch) : 0;
  if (!transpose_ || transpose_->rows != rows || transpose_->cols != cols || transpose_->nnz != nnz() ||
      transpose_->block_cols != block_cols) {
    auto t = std::make_shared<CsrTranspose>();
    build_csr_transpose(view(), t.get(), block_cols);
    transpose_ = std::move(t);
  }
  return *transpose_;
}

int64_t CsrParam::bytes() const {
  int64_t total = static_cast<int64_t>(indptr.size() * sizeof(int64_t) + indices.size() * sizeof(int32_t));
  for (const auto& s : slots) total += s.size() * static_cast<int64_t>(sizeof(float));
  return total;
}

void CsrParam::allocate_slots(int64_t nnz, int moment_count) {
  moments = moment_count;
  for (int s = 0; s < kSlotCount; ++s) slots[s].resize_discard(has(static_cast<Slot>(s)) ? nnz : 0);
}

void CsrParam::to_dense(Slot s, float* out, int64_t ld) const {
  for (int64_t r = 0; r < rows; ++r) std::memset(out + r * ld, 0, sizeof(float) * cols);
  if (!has(s) || nnz() == 0) return;
  const float* v = slot(s);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) out[r * ld + indices[k]] = v[k];
}

bool CsrParam::valid() const {
  if (static_cast<int64_t>(indptr.size()) != rows + 1 || indptr[0] != 0) return false;
  for (int64_t r = 0; r < rows; ++r) {
    if (indptr[r + 1] < indptr[r]) return false;
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      if (indices[k] < 0 || indices[k] >= cols) return false;
      if (k > indptr[r] && indices[k] <= indices[k - 1]) return false;
    }
  }
  return static_cast<int64_t>(indices.size()) == nnz();
}

}  // namespace np
