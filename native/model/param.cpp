#include "param.h"

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
