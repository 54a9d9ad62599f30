// Magnitude decisions as data: which stored weights a magnitude pruning (or
// the drop half of drop-and-regrow) removes, one bit per stored position.
//
// Why: the host model makes every structural change, but a GPU model's
// weights live on the device. Instead of copying every weight to the host so
// it can rank them, the device ranks its own (native/cuda/cuda_decisions.cpp)
// and sends these bits, 1/32 of the weights' bytes; the host checks them and
// applies them exactly as it applies its own (issue 6, part 3).
#pragma once

#include <cstdint>
#include <vector>

namespace np {

// Bit i (word i / 32, bit i % 32) set: position i is removed. Positions are a
// layer's storage order: dense r * inputs + c over units x inputs (a position
// the mask does not store is never set), CSR the entry index.
using DropBits = std::vector<uint32_t>;

inline int64_t drop_words(int64_t positions) { return (positions + 31) / 32; }
inline bool drop_bit(const DropBits& bits, int64_t i) { return ((bits[static_cast<size_t>(i >> 5)] >> (i & 31)) & 1u) != 0; }
inline void set_drop_bit(DropBits& bits, int64_t i) { bits[static_cast<size_t>(i >> 5)] |= 1u << (i & 31); }

// How many stored weights a magnitude decision removes: counts[i] of the
// i-th listed layer alone, or (global >= 0) `global` ranked over all the
// listed layers together, ties at the cut going to the layers in the order
// listed and, within a layer, in storage order. The model computes the plan
// (Model::plan_*) from its structure alone, so whoever holds the weights can
// carry it out.
struct MagnitudePlan {
  std::vector<int64_t> counts;
  int64_t global = -1;
};

}  // namespace np
