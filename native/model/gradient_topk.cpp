// RigL's regrowth choice (gradient_topk.h): the block-wise gradient scan,
// its sampled starting threshold, and the merge of the threads' candidates.
#include "model/gradient_topk.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/clones.h"
#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "model/radix_select.h"
#include "model/rng.h"

namespace np {

namespace {

// |dL/dw| at (r, c): dZ[r, :] . X[c, :] over the batch (both feature-major).
float gradient_at(const float* dz, const float* input, int64_t batch, int64_t r, int64_t c) {
  const float* d = dz + r * batch;
  const float* x = input + c * batch;
  float lanes[16] = {};  // independent partial sums: the loop vectorises without -ffast-math
  int64_t j = 0;
  for (; j + 16 <= batch; j += 16)
    for (int i = 0; i < 16; ++i) lanes[i] += d[j + i] * x[j + i];
  float acc = 0.0f;
  for (; j < batch; ++j) acc += d[j] * x[j];
  for (float v : lanes) acc += v;
  return std::fabs(acc);
}

// A starting threshold for RigL's scan: the |dL/dw| that about 1.5k of the
// empty positions exceed, estimated from a fixed-seed sample of them. It only
// decides how many candidates the scan keeps (without it, nearly every early
// position passes and the buffers are cut back over and over, which cost more
// than the GEMM); a too-high estimate is caught afterwards and the scan runs
// again from -1, so the choice stays exact. -1 when there is nothing to gain.
float estimated_threshold(const DenseLayer& layer, const float* dz, const float* input, int64_t batch, int64_t k,
                          const uint8_t* closed) {
  const int64_t size = layer.units * layer.inputs;
  const int64_t empty = size - layer.nnz();
  if (empty <= 4 * k) return -1.0f;
  constexpr int64_t kSamples = 4096;
  Rng rng(0x51e7c0de);
  std::vector<float> sample;
  sample.reserve(kSamples);
  for (int64_t tries = 0; tries < 16 * kSamples && static_cast<int64_t>(sample.size()) < kSamples; ++tries) {
    const int64_t pos = static_cast<int64_t>(rng.below(static_cast<uint64_t>(size)));
    const int64_t r = pos / layer.inputs, c = pos % layer.inputs;
    if (layer.unit_alive(r) && !(closed && closed[c]) && !layer.stores(r, c)) sample.push_back(gradient_at(dz, input, batch, r, c));
  }
  if (sample.size() < 256) return -1.0f;
  // Positions above the estimate: about 1.5k of `empty`, i.e. this share of
  // the sample. With 4096 samples the count above it is 1.5k within a few
  // percent, so falling short of k (and rescanning) takes a many-sigma miss.
  const double above = 1.5 * static_cast<double>(k) / static_cast<double>(empty);
  const auto index = static_cast<int64_t>((1.0 - above) * static_cast<double>(sample.size()));
  std::nth_element(sample.begin(), sample.begin() + index, sample.end());
  return sample[index];
}

// pass[c] = 1 where |g[c]| > threshold and c is not stored: one branch-free
// vector pass (most of a row fails the threshold), so the scan's walk over
// the marks (top_gradient_positions) touches only the candidates.
NP_CLONES void mark_candidates(const float* g, const uint8_t* stored, int64_t n, float threshold, uint8_t* pass) {
  for (int64_t c = 0; c < n; ++c) pass[c] = static_cast<uint8_t>((std::fabs(g[c]) > threshold) & (stored[c] == 0));
}

}  // namespace

std::vector<int64_t> top_gradient_positions(const DenseLayer& layer, const float* dz, const float* input,
                                            int64_t batch, int64_t k, ThreadPool* pool,
                                            const float* start_threshold, const uint8_t* closed) {
  if (k <= 0) return {};
  using Item = std::pair<float, int64_t>;  // (|grad|, position)
  const auto better = [](const Item& a, const Item& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const auto cut_to_k = [&](std::vector<Item>& best) {
    std::nth_element(best.begin(), best.begin() + (k - 1), best.end(), better);
    best.resize(k);
  };
  const int64_t rows_per_block = 64;
  const int threads = pool == nullptr ? 1 : static_cast<int>(std::min<int64_t>(pool->size(), (layer.units + rows_per_block - 1) / rows_per_block));
  std::vector<std::vector<Item>> found(threads);
  float start = start_threshold != nullptr ? *start_threshold : estimated_threshold(layer, dz, input, batch, k, closed);
  // A thread scans its positions in ascending order, so a candidate equal to
  // the threshold always loses to it: "<=" below is exact.
  const auto scan = [&](int64_t t) {
    const int64_t r_begin = layer.units * t / threads, r_end = layer.units * (t + 1) / threads;
    std::vector<Item>& best = found[t];
    best.clear();
    float threshold = start;
    std::vector<float> g(rows_per_block * layer.inputs);
    // The row's stored columns, and the closed ones (CSR rows are scattered into it, mask rows copied).
    std::vector<uint8_t> present = closed ? std::vector<uint8_t>(closed, closed + layer.inputs) : std::vector<uint8_t>(layer.inputs, 0);
    std::vector<uint8_t> pass(static_cast<size_t>((layer.inputs + 7) / 8 * 8), 0);  // candidates of the row, padded to words
    for (int64_t r0 = r_begin; r0 < r_end; r0 += rows_per_block) {
      const int64_t rows = std::min(rows_per_block, r_end - r0);
      gemm_f32(Trans::kNo, Trans::kYes, rows, layer.inputs, batch, dz + r0 * batch, batch, input, batch, 0.0f, g.data(),
               layer.inputs, nullptr);
      for (int64_t r = 0; r < rows; ++r) {
        if (!layer.unit_alive(r0 + r)) continue;
        const uint8_t* is_stored = present.data();
        if (layer.format == WeightFormat::kCsr) {
          for (int64_t e = layer.csr.indptr[r0 + r]; e < layer.csr.indptr[r0 + r + 1]; ++e) present[layer.csr.indices[e]] = 1;
        } else if (!layer.mask.empty()) {
          const uint8_t* mask_row = layer.mask.data() + (r0 + r) * layer.inputs;
          if (closed) {
            for (int64_t c = 0; c < layer.inputs; ++c) present[c] = static_cast<uint8_t>(mask_row[c] | closed[c]);
          } else {
            is_stored = mask_row;
          }
        } else {
          continue;  // a dense layer without a mask has no empty position
        }
        const float* grad_row = g.data() + r * layer.inputs;
        mark_candidates(grad_row, is_stored, layer.inputs, threshold, pass.data());
        // Walk the marks 8 bytes at a time: most words are all zero.
        for (int64_t c0 = 0; c0 < layer.inputs; c0 += 8) {
          uint64_t word;
          std::memcpy(&word, pass.data() + c0, sizeof word);
          while (word != 0) {
            const int64_t c = c0 + __builtin_ctzll(word) / 8;
            word &= word - 1;
            const float v = std::fabs(grad_row[c]);
            if (v <= threshold) continue;  // the threshold rose since the row was marked
            best.emplace_back(v, (r0 + r) * layer.inputs + c);
            if (static_cast<int64_t>(best.size()) >= 2 * k) {
              cut_to_k(best);
              threshold = best[k - 1].first;  // the k-th best: everything kept is >= it
            }
          }
        }
        if (layer.format == WeightFormat::kCsr)
          for (int64_t e = layer.csr.indptr[r0 + r]; e < layer.csr.indptr[r0 + r + 1]; ++e)
            present[layer.csr.indices[e]] = closed ? closed[layer.csr.indices[e]] : 0;
      }
    }
  };
  const auto run_scan = [&] {
    if (threads > 1) {
      pool->parallel_for(threads, scan);
    } else {
      scan(0);
    }
  };
  run_scan();
  int64_t collected = 0;
  for (const auto& f : found) collected += static_cast<int64_t>(f.size());
  if (collected < k && start >= 0.0f) {  // the estimate was too high: fewer than k passed it
    start = -1.0f;
    run_scan();
  }
  // Merge: the best k of all threads' candidates, in the same total order.
  // Their k-th best value comes from a radix select; everything above it is
  // in, and ties at it go by position.
  std::vector<float> values;
  for (const auto& f : found)
    for (const Item& it : f) values.push_back(it.first);
  std::vector<int64_t> positions;
  if (static_cast<int64_t>(values.size()) <= k) {
    for (const auto& f : found)
      for (const Item& it : f) positions.push_back(it.second);
  } else {
    const int64_t n = static_cast<int64_t>(values.size());
    const float kth = kth_smallest_magnitude(values, n - k + 1).value;  // the k-th largest
    std::vector<int64_t> ties;
    for (const auto& f : found) {
      for (const Item& it : f) {
        if (it.first > kth) positions.push_back(it.second);
        else if (it.first == kth) ties.push_back(it.second);
      }
    }
    std::sort(ties.begin(), ties.end());
    ties.resize(static_cast<size_t>(k) - positions.size());
    positions.insert(positions.end(), ties.begin(), ties.end());
  }
  radix_sort_positions(positions, layer.units * layer.inputs);
  return positions;
}


}  // namespace np
