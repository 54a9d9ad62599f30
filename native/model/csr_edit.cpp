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

namespace np {

void csr_insert(CsrParam& c, const std::vector<std::pair<int64_t, int32_t>>& entries, const std::vector<float>& values) {
  if (entries.empty()) return;
  CsrParam out;
  out.rows = c.rows;
  out.cols = c.cols;
  out.indptr.assign(c.rows + 1, 0);
  const int64_t total = c.nnz() + static_cast<int64_t>(entries.size());
  out.indices.resize(total);
  out.allocate_slots(total, c.moments);
  size_t e = 0;
  int64_t j = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    int64_t k = c.indptr[r];
    const int64_t end = c.indptr[r + 1];
    // Merge the row's existing entries with the new ones for this row.
    while (k < end || (e < entries.size() && entries[e].first == r)) {
      const bool take_new = e < entries.size() && entries[e].first == r && (k >= end || entries[e].second < c.indices[k]);
      if (take_new) {
        out.indices[j] = entries[e].second;
        for (int s = 0; s < kSlotCount; ++s)
          if (out.has(static_cast<Slot>(s))) out.slots[s][j] = s == 0 ? values[e] : 0.0f;
        ++e;
      } else {
        out.indices[j] = c.indices[k];
        for (int s = 0; s < kSlotCount; ++s)
          if (out.has(static_cast<Slot>(s))) out.slots[s][j] = c.slots[s][k];
        ++k;
      }
      ++j;
    }
    out.indptr[r + 1] = j;
  }
  c = std::move(out);
}

void csr_append_rows(CsrParam& c, int64_t count) {
  const int64_t nnz = c.nnz();
  if (c.indptr.empty()) c.indptr.push_back(0);
  for (int64_t i = 0; i < count; ++i) c.indptr.push_back(nnz);
  c.rows += count;
  c.drop_transpose();
}

}  // namespace np
