// A parameter is a group of slots that share one layout: the value, its
// gradient and every optimizer slot (SGD velocity, Adam first and second
// moments). Structural operations (grow, prune, compact, reinit) act on the
// whole group at once, so a weight can never lose track of its moments.
//
// Layout: rows x cols, row-major, row stride `stride` >= cols. The spare
// columns leave room for a following layer to gain inputs in place; spare rows
// (row_capacity) for this layer to gain neurons in place.
#pragma once

#include <cstdint>

#include "aligned_buffer.h"

namespace np {

enum class Slot : int { kValue = 0, kGrad = 1, kMoment1 = 2, kMoment2 = 3 };
constexpr int kSlotCount = 4;

const char* slot_name(Slot slot);

struct DenseParam {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;
  int64_t row_capacity = 0;
  FloatBuffer slots[kSlotCount];

  // Allocates value and gradient (zeroed) for rows x cols with no spare room.
  void allocate(int64_t rows, int64_t cols);

  // Allocates (zeroed) or drops the optimizer moment slots.
  void set_moment_slots(int count);
  int moment_slots() const;

  float* slot(Slot s) { return slots[static_cast<int>(s)].data(); }
  const float* slot(Slot s) const { return slots[static_cast<int>(s)].data(); }
  bool has(Slot s) const { return slots[static_cast<int>(s)].size() > 0; }

  float* value() { return slot(Slot::kValue); }
  const float* value() const { return slot(Slot::kValue); }
  float* grad() { return slot(Slot::kGrad); }
  const float* grad() const { return slot(Slot::kGrad); }

  int64_t count() const { return rows * cols; }

  // Grows to new_rows x new_cols keeping every slot's contents; new entries are
  // zero. Fits in the spare capacity when it can (no copy); otherwise
  // reallocates with 1.5x headroom, so repeated growth is amortised O(new
  // entries) rather than a copy per insertion.
  void grow(int64_t new_rows, int64_t new_cols);

  // Copies between the strided slot and a dense row-major rows x cols array.
  void read(Slot s, float* out) const;
  void write(Slot s, const float* in);
  void zero(Slot s);
};

}  // namespace np
