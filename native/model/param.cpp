#include "param.h"

#include <algorithm>
#include <cstring>

namespace np {

const char* slot_name(Slot slot) {
  switch (slot) {
    case Slot::kValue: return "value";
    case Slot::kGrad: return "grad";
    case Slot::kMoment1: return "moment1";
    case Slot::kMoment2: return "moment2";
  }
  return "unknown";
}

void DenseParam::allocate(int64_t r, int64_t c) {
  rows = r;
  cols = c;
  stride = c;
  row_capacity = r;
  slots[0].resize_discard(r * c);
  slots[1].resize_discard(r * c);
  for (int s = 2; s < kSlotCount; ++s) slots[s].resize_discard(0);
}

void DenseParam::set_moment_slots(int count) {
  for (int s = 0; s < 2; ++s) {
    const int index = 2 + s;
    if (s < count) {
      if (slots[index].size() != row_capacity * stride) slots[index].resize_discard(row_capacity * stride);
      else slots[index].zero();
    } else {
      slots[index].resize_discard(0);
    }
  }
}

int DenseParam::moment_slots() const { return (slots[2].size() > 0) + (slots[3].size() > 0); }

void DenseParam::grow(int64_t new_rows, int64_t new_cols) {
  if (new_rows <= row_capacity && new_cols <= stride) {
    // In place: the spare region may hold stale values (compaction keeps none,
    // but be safe), so clear exactly the new entries of every slot.
    for (int s = 0; s < kSlotCount; ++s) {
      if (slots[s].size() == 0) continue;
      float* base = slots[s].data();
      // Only the new entries: O(new rows x cols + rows x new cols), so adding
      // rows alone never touches the existing ones.
      if (new_cols > cols)
        for (int64_t r = 0; r < rows; ++r) std::memset(base + r * stride + cols, 0, sizeof(float) * (new_cols - cols));
      for (int64_t r = rows; r < new_rows; ++r) std::memset(base + r * stride, 0, sizeof(float) * new_cols);
    }
    rows = new_rows;
    cols = new_cols;
    return;
  }
  auto headroom = [](int64_t need, int64_t have) {
    if (need <= have) return have;
    const int64_t grown = have + have / 2;
    return ((std::max(need, grown) + 15) / 16) * 16;  // whole cache lines per row
  };
  const int64_t new_stride = headroom(new_cols, stride);
  const int64_t new_capacity = headroom(new_rows, row_capacity);
  for (int s = 0; s < kSlotCount; ++s) {
    if (slots[s].size() == 0) continue;
    FloatBuffer bigger(new_capacity * new_stride);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(bigger.data() + r * new_stride, slots[s].data() + r * stride, sizeof(float) * cols);
    slots[s] = std::move(bigger);
  }
  rows = new_rows;
  cols = new_cols;
  stride = new_stride;
  row_capacity = new_capacity;
}

void DenseParam::read(Slot s, float* out) const {
  const float* src = slot(s);
  if (stride == cols) {
    std::memcpy(out, src, sizeof(float) * rows * cols);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * cols, src + r * stride, sizeof(float) * cols);
}

void DenseParam::write(Slot s, const float* in) {
  float* dst = slot(s);
  if (stride == cols) {
    std::memcpy(dst, in, sizeof(float) * rows * cols);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * stride, in + r * cols, sizeof(float) * cols);
}

void DenseParam::zero(Slot s) {
  if (has(s)) slots[static_cast<int>(s)].zero();
}

}  // namespace np
