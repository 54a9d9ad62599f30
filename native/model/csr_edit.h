// Rebuilding CSR parameters: filtering entries and remapping rows/columns,
// always carrying every slot along (value, gradient, moments).
#pragma once

#include <cstdint>
#include <vector>

#include "model/csr_param.h"

namespace np {

// Keeps the entries for which keep(row, col, k) is true (k = entry index).
template <typename Keep>
void csr_filter(CsrParam& c, Keep keep) {
  CsrParam out;
  out.rows = c.rows;
  out.cols = c.cols;
  out.indptr.assign(c.rows + 1, 0);
  std::vector<uint8_t> kept(c.nnz());
  for (int64_t r = 0; r < c.rows; ++r) {
    int64_t count = 0;
    for (int64_t k = c.indptr[r]; k < c.indptr[r + 1]; ++k) {
      kept[k] = keep(r, static_cast<int64_t>(c.indices[k]), k) ? 1 : 0;
      count += kept[k];
    }
    out.indptr[r + 1] = out.indptr[r] + count;
  }
  out.indices.resize(out.indptr.back());
  out.allocate_slots(out.indptr.back(), c.moments);
  int64_t j = 0;
  for (int64_t k = 0; k < c.nnz(); ++k) {
    if (!kept[k]) continue;
    out.indices[j] = c.indices[k];
    for (int s = 0; s < kSlotCount; ++s)
      if (out.has(static_cast<Slot>(s))) out.slots[s][j] = c.slots[s][k];
    ++j;
  }
  c = std::move(out);
}

// Keeps rows `rows` (in that order) and the columns with col_map[col] >= 0,
// renumbered to col_map[col] (which must preserve order); new_cols columns.
void csr_select(CsrParam& c, const std::vector<int64_t>& rows, const std::vector<int64_t>& col_map, int64_t new_cols);

}  // namespace np

namespace np {

// Inserts new entries (row, col) with the given values (all other slots
// zero), keeping rows sorted. `entries` must be sorted by (row, col), unique,
// and absent from the matrix. O(nnz + new entries).
void csr_insert(CsrParam& c, const std::vector<std::pair<int64_t, int32_t>>& entries, const std::vector<float>& values);

// Appends `count` empty rows (all slots).
void csr_append_rows(CsrParam& c, int64_t count);

}  // namespace np
