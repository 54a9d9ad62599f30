// Magnitude decisions where the weights are: the histogram passes of a radix
// select over |w|, the count of weights below and at a cut, and the drop
// bits (magnitude_drops.h) with ties taken in storage order. The host model
// gets the bits, not the weights (cuda_decisions.cpp). RigL's choice ranks a
// dense gradient with the same kernels (largest first, over the open
// positions growth_candidates_cuda marks).
//
// |w| is compared as the bit pattern w & 0x7fffffff: for non-negative floats
// that orders like the value (the CPU's radix_select.h relies on the same),
// and a pass is a histogram with no data-dependent branch. Ranking ties in
// storage order needs each 32-position word's count of ties before it: one
// thread per word counts, a one-block scan (sparse.cu) adds them up, and one
// thread per word then sets its bits.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int kHistogramBins = 1 << 11;  // the widest digit of the select (11 bits)

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(1, ceil_div(n, kBlock)), 4096));
}

__device__ inline bool stored_at(const MagnitudeView& w, int64_t i) { return w.mask == nullptr || w.mask[i] != 0; }
// The ranking key: |w| bits, or their complement to 0x7fffffff when ranking from the largest.
__device__ inline uint32_t magnitude_bits(const MagnitudeView& w, int64_t i) {
  const int64_t at = w.stride == 0 || w.stride == w.cols ? i : (i / w.cols) * w.stride + i % w.cols;
  const uint32_t u = __float_as_uint(w.values[at]) & 0x7fffffffu;
  return w.largest ? 0x7fffffffu - u : u;
}

// Block-local histogram in shared memory, then one atomic per non-empty bin.
__global__ void __launch_bounds__(kBlock)
    magnitude_histogram_kernel(MagnitudeView w, uint32_t prefix, uint32_t known, int shift, uint32_t digit_mask,
                               unsigned long long* __restrict__ hist) {
  __shared__ unsigned int local[kHistogramBins];
  for (int b = threadIdx.x; b <= static_cast<int>(digit_mask); b += kBlock) local[b] = 0;
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; i < w.count; i += stride) {
    if (!stored_at(w, i)) continue;
    const uint32_t u = magnitude_bits(w, i);
    if ((u & known) == prefix) atomicAdd(&local[(u >> shift) & digit_mask], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b <= static_cast<int>(digit_mask); b += kBlock)
    if (local[b] != 0) atomicAdd(&hist[b], static_cast<unsigned long long>(local[b]));
}

// counts[0] += stored weights below the cut, counts[1] += at it.
__global__ void __launch_bounds__(kBlock)
    magnitude_census_kernel(MagnitudeView w, uint32_t threshold, unsigned long long* __restrict__ counts) {
  __shared__ unsigned int below, equal;
  if (threadIdx.x == 0) below = equal = 0;
  __syncthreads();
  unsigned int my_below = 0, my_equal = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; i < w.count; i += stride) {
    if (!stored_at(w, i)) continue;
    const uint32_t u = magnitude_bits(w, i);
    my_below += u < threshold;
    my_equal += u == threshold;
  }
  atomicAdd(&below, my_below);
  atomicAdd(&equal, my_equal);
  __syncthreads();
  if (threadIdx.x == 0) {
    atomicAdd(&counts[0], static_cast<unsigned long long>(below));
    atomicAdd(&counts[1], static_cast<unsigned long long>(equal));
  }
}

// ties[word] = stored weights at the cut among the word's 32 positions.
__global__ void __launch_bounds__(kBlock)
    word_ties_kernel(MagnitudeView w, uint32_t threshold, int64_t* __restrict__ ties, int64_t words) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t word = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; word < words; word += stride) {
    const int64_t end = 32 * word + 32 < w.count ? 32 * word + 32 : w.count;
    int64_t n = 0;
    for (int64_t i = 32 * word; i < end; ++i) n += stored_at(w, i) && magnitude_bits(w, i) == threshold;
    ties[word] = n;
  }
}

// bits[word]: below the cut, or at it and among the first `ties_to_drop`
// in storage order (ties_through: the inclusive scan of word_ties).
__global__ void __launch_bounds__(kBlock)
    drop_bits_kernel(MagnitudeView w, uint32_t threshold, int64_t ties_to_drop, const int64_t* __restrict__ ties_through,
                     uint32_t* __restrict__ bits, int64_t words) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t word = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; word < words; word += stride) {
    const int64_t begin = 32 * word, end = begin + 32 < w.count ? begin + 32 : w.count;
    int64_t tie_rank = word > 0 ? ties_through[word - 1] : 0;  // ties in earlier words
    uint32_t out = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (!stored_at(w, i)) continue;
      const uint32_t u = magnitude_bits(w, i);
      bool drop = u < threshold;
      if (u == threshold) drop = tie_rank++ < ties_to_drop;
      if (drop) out |= 1u << (i - begin);
    }
    bits[word] = out;
  }
}

// One thread per position: open unless the row or input is dead or a weight is stored there.
__global__ void __launch_bounds__(kBlock)
    growth_candidates_kernel(uint8_t* __restrict__ open, int64_t units, int64_t inputs, const uint8_t* alive_rows,
                             const uint8_t* alive_inputs, const uint8_t* mask, bool csr) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; p < units * inputs; p += stride) {
    const int64_t r = p / inputs, c = p % inputs;
    const bool empty = csr ? true : (mask != nullptr && mask[p] == 0);
    open[p] = empty && (alive_rows == nullptr || alive_rows[r] != 0) && (alive_inputs == nullptr || alive_inputs[c] != 0);
  }
}

// CSR: one thread per row clears the positions its entries occupy.
__global__ void __launch_bounds__(kBlock)
    clear_stored_kernel(uint8_t* __restrict__ open, int64_t units, int64_t inputs, const int64_t* __restrict__ indptr,
                        const int32_t* __restrict__ indices) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; r < units; r += stride)
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) open[r * inputs + indices[k]] = 0;
}

}  // namespace

void growth_candidates_cuda(uint8_t* open, int64_t units, int64_t inputs, const uint8_t* alive_rows,
                            const uint8_t* alive_inputs, const uint8_t* mask, const int64_t* indptr,
                            const int32_t* indices, Stream& stream) {
  if (units <= 0 || inputs <= 0) return;
  const bool csr = indptr != nullptr;
  NP_LAUNCH(grid_for(units * inputs), kBlock, 0, raw(stream), growth_candidates_kernel)(open, units, inputs, alive_rows,
                                                                                         alive_inputs, mask, csr);
  NP_CUDA_CHECK_LAUNCH();
  if (csr) {
    NP_LAUNCH(grid_for(units), kBlock, 0, raw(stream), clear_stored_kernel)(open, units, inputs, indptr, indices);
    NP_CUDA_CHECK_LAUNCH();
  }
}

void magnitude_histogram_cuda(const MagnitudeView& w, uint32_t prefix, uint32_t known, int shift, int width,
                              unsigned long long* hist, Stream& stream) {
  if (width < 1 || width > 11) throw std::invalid_argument("magnitude_histogram_cuda: width must be in [1, 11]");
  if (w.count <= 0) return;
  NP_LAUNCH(grid_for(w.count), kBlock, 0, raw(stream), magnitude_histogram_kernel)(w, prefix, known, shift,
                                                                                   (1u << width) - 1u, hist);
  NP_CUDA_CHECK_LAUNCH();
}

void magnitude_census_cuda(const MagnitudeView& w, uint32_t threshold_bits, unsigned long long* counts, Stream& stream) {
  if (w.count <= 0) return;
  NP_LAUNCH(grid_for(w.count), kBlock, 0, raw(stream), magnitude_census_kernel)(w, threshold_bits, counts);
  NP_CUDA_CHECK_LAUNCH();
}

void magnitude_drop_bits_cuda(const MagnitudeView& w, uint32_t threshold_bits, int64_t ties_to_drop, uint32_t* bits,
                              DeviceBuffer& scratch, Stream& stream) {
  const int64_t words = ceil_div(w.count, 32);
  if (words <= 0) return;
  scratch.reserve(static_cast<size_t>(words) * sizeof(int64_t));
  int64_t* ties = scratch.as<int64_t>();
  NP_LAUNCH(grid_for(words), kBlock, 0, raw(stream), word_ties_kernel)(w, threshold_bits, ties, words);
  NP_CUDA_CHECK_LAUNCH();
  inclusive_scan_i64_cuda(ties, words, stream);
  NP_LAUNCH(grid_for(words), kBlock, 0, raw(stream), drop_bits_kernel)(w, threshold_bits, ties_to_drop, ties, bits, words);
  NP_CUDA_CHECK_LAUNCH();
}

// ---- the select, driven from the host ------------------------------------------

MagnitudeCut magnitude_select_cuda(const std::vector<MagnitudeView>& group, int64_t k, Stream& stream) {
  // The host's kth_smallest_magnitude (radix_select.h): three passes of 11 +
  // 11 + 10 bits, top down, one histogram per pass over the whole group.
  struct Pass {
    int shift, width;
  };
  constexpr Pass kPasses[] = {{21, 11}, {10, 11}, {0, 10}};
  if (k < 1) throw std::invalid_argument("magnitude_select_cuda: k must be at least 1");
  DeviceBuffer hist(sizeof(unsigned long long) << 11);
  std::vector<unsigned long long> counts;
  uint32_t prefix = 0, known = 0;
  int64_t rank = k - 1, below = 0;
  for (const Pass& p : kPasses) {
    hist.fill_zero(stream);
    for (const MagnitudeView& v : group)
      magnitude_histogram_cuda(v, prefix, known, p.shift, p.width, hist.as<unsigned long long>(), stream);
    counts = to_host<unsigned long long>(hist, size_t{1} << p.width, stream);
    uint32_t digit = 0;
    while (rank >= static_cast<int64_t>(counts[digit])) {
      rank -= static_cast<int64_t>(counts[digit]);
      below += static_cast<int64_t>(counts[digit]);
      if (++digit == counts.size()) throw std::invalid_argument("magnitude_select_cuda: k is above the stored count");
    }
    prefix |= digit << p.shift;
    known |= ((1u << p.width) - 1u) << p.shift;
  }
  return MagnitudeCut{prefix, below};
}

np::DropBits magnitude_drop_bits_host(const MagnitudeView& v, uint32_t threshold_bits, int64_t ties_to_drop,
                                      DeviceBuffer& scratch, Stream& stream) {
  const int64_t words = np::drop_words(v.count);
  if (words == 0) return {};
  DeviceBuffer bits(static_cast<size_t>(words) * sizeof(uint32_t));
  magnitude_drop_bits_cuda(v, threshold_bits, ties_to_drop, bits.as<uint32_t>(), scratch, stream);
  return to_host<uint32_t>(bits, static_cast<size_t>(words), stream);
}

np::DropBits magnitude_smallest_cuda(const MagnitudeView& v, int64_t k, DeviceBuffer& scratch, Stream& stream) {
  if (k == 0) return np::DropBits(static_cast<size_t>(np::drop_words(v.count)), 0u);
  const MagnitudeCut cut = magnitude_select_cuda({v}, k, stream);
  return magnitude_drop_bits_host(v, cut.threshold, k - cut.below, scratch, stream);
}

}  // namespace np::cuda
