// Order statistics by radix passes instead of comparisons, for the structural
// operations that rank tens of thousands of weights at a time (pruning's cut,
// RigL's regrowth positions).
//
// Why: std::nth_element and std::sort on random floats or positions mispredict
// about every other comparison; on 10^5 elements that is a millisecond, more
// than the GEMM of the gradient they rank. A histogram pass has no
// data-dependent branch, and three (select) or a few (sort) of them do the job.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace np {

struct KthSmallest {
  float value = 0.0f;
  int64_t below = 0;  // how many elements are strictly smaller
};

// The k-th smallest (k >= 1, k <= size) of non-negative floats (magnitudes),
// exactly what sorting ascending and taking [k - 1] gives. Non-negative floats
// order like their bit patterns as unsigned integers, so three histogram
// passes over 11 + 11 + 10 bits find those bits, top down.
inline KthSmallest kth_smallest_magnitude(const std::vector<float>& values, int64_t k) {
  struct Pass {
    int shift, width;
  };
  constexpr Pass kPasses[] = {{21, 11}, {10, 11}, {0, 10}};
  std::vector<uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
  std::vector<int64_t> hist(size_t{1} << 11);
  uint32_t prefix = 0, known = 0;  // the bits found so far, and which bits they are
  int64_t rank = k - 1, below = 0;
  for (const Pass& p : kPasses) {
    const uint32_t digit_mask = (1u << p.width) - 1u;
    std::fill(hist.begin(), hist.end(), 0);
    for (uint32_t u : bits) hist[(u >> p.shift) & digit_mask] += (u & known) == prefix;
    uint32_t digit = 0;
    while (rank >= hist[digit]) {
      rank -= hist[digit];
      below += hist[digit];
      ++digit;
    }
    prefix |= digit << p.shift;
    known |= digit_mask << p.shift;
  }
  KthSmallest out;
  std::memcpy(&out.value, &prefix, sizeof(float));
  out.below = below;
  return out;
}

// Sorts non-negative integers below `bound` ascending: least significant digit
// first, 11 bits a pass, only as many passes as `bound` has digits.
inline void radix_sort_positions(std::vector<int64_t>& values, int64_t bound) {
  constexpr int kBits = 11;
  constexpr uint64_t kMask = (1u << kBits) - 1u;
  std::vector<int64_t> scratch(values.size());
  std::vector<int64_t> offset(size_t{1} << kBits);
  for (int shift = 0; shift < 63 && (static_cast<uint64_t>(bound - 1) >> shift) != 0; shift += kBits) {
    std::fill(offset.begin(), offset.end(), 0);
    for (int64_t v : values) ++offset[(static_cast<uint64_t>(v) >> shift) & kMask];
    int64_t sum = 0;
    for (int64_t& o : offset) {
      const int64_t c = o;
      o = sum;
      sum += c;
    }
    for (int64_t v : values) scratch[offset[(static_cast<uint64_t>(v) >> shift) & kMask]++] = v;
    values.swap(scratch);
  }
}

}  // namespace np
