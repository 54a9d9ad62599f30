#include "model/csr_edit.h"

namespace np {

void csr_select(CsrParam& c, const std::vector<int64_t>& rows, const std::vector<int64_t>& col_map, int64_t new_cols) {
  CsrParam out;
  out.rows = static_cast<int64_t>(rows.size());
  out.cols = new_cols;
  out.indptr.assign(out.rows + 1, 0);
  for (int64_t i = 0; i < out.rows; ++i) {
    const int64_t r = rows[i];
    int64_t count = 0;
    for (int64_t k = c.indptr[r]; k < c.indptr[r + 1]; ++k) count += col_map[c.indices[k]] >= 0;
    out.indptr[i + 1] = out.indptr[i] + count;
  }
  out.indices.resize(out.indptr.back());
  out.allocate_slots(out.indptr.back(), c.moments);
  int64_t j = 0;
  for (int64_t i = 0; i < out.rows; ++i) {
    const int64_t r = rows[i];
    for (int64_t k = c.indptr[r]; k < c.indptr[r + 1]; ++k) {
      const int64_t mapped = col_map[c.indices[k]];
      if (mapped < 0) continue;
      out.indices[j] = static_cast<int32_t>(mapped);
      for (int s = 0; s < kSlotCount; ++s)
        if (out.has(static_cast<Slot>(s))) out.slots[s][j] = c.slots[s][k];
      ++j;
    }
  }
  c = std::move(out);
}

}  // namespace np
