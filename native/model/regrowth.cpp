// Dynamic sparse training: random sparse initialisation (uniform or
// Erdos-Renyi densities) and drop-and-regrow of connections, at random (SET,
// Mocanu et al. 2018) or by gradient magnitude (RigL, Evci et al. 2020). A
// layer stays truly sparse throughout: CSR layers are rebuilt, never densified.
#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/model.h"
#include "model/radix_select.h"
#include "model/rng.h"

namespace np {

namespace {

// Whether (r, c) is stored in the layer.
bool stored(const DenseLayer& layer, int64_t r, int64_t c) {
  if (layer.format == WeightFormat::kCsr) {
    const int32_t* begin = layer.csr.indices.data() + layer.csr.indptr[r];
    const int32_t* end = layer.csr.indices.data() + layer.csr.indptr[r + 1];
    return std::binary_search(begin, end, static_cast<int32_t>(c));
  }
  return layer.mask.empty() || layer.mask[r * layer.inputs + c];
}

bool unit_alive(const DenseLayer& layer, int64_t r) { return layer.alive.empty() || layer.alive[r]; }

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
float estimated_threshold(const DenseLayer& layer, const float* dz, const float* input, int64_t batch, int64_t k) {
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
    if (unit_alive(layer, r) && !stored(layer, r, c)) sample.push_back(gradient_at(dz, input, batch, r, c));
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

// RigL's regrowth choice: the k empty positions (r * inputs + c) of live units
// with the largest |dL/dw|, ascending. dL/dW = dZ * X^T is computed 64 rows at
// a time, so no weight-sized buffer exists; each thread owns a range of rows
// with its own GEMM block and its own candidate buffer, and the buffers merge
// at the end.
//
// A candidate buffer keeps the best seen so far above a threshold: candidates
// above it are appended, and the buffer is cut back to the best k
// (nth_element) whenever it reaches 2k, raising the threshold, so memory stays
// O(k) per thread. Order is (|g| descending, position ascending): a total
// order, so the chosen set does not depend on how the rows were split between
// threads. A thread scans positions in ascending order, so a candidate equal
// to the threshold always loses to it ("<=" below is exact).
std::vector<int64_t> top_gradient_positions(const DenseLayer& layer, const float* dz, const float* input,
                                            int64_t batch, int64_t k, ThreadPool* pool) {
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
  float start = estimated_threshold(layer, dz, input, batch, k);
  const auto scan = [&](int64_t t) {
    const int64_t r_begin = layer.units * t / threads, r_end = layer.units * (t + 1) / threads;
    std::vector<Item>& best = found[t];
    best.clear();
    float threshold = start;
    std::vector<float> g(rows_per_block * layer.inputs);
    std::vector<uint8_t> present(layer.inputs, 0);  // the row's stored columns (CSR rows are scattered into it)
    for (int64_t r0 = r_begin; r0 < r_end; r0 += rows_per_block) {
      const int64_t rows = std::min(rows_per_block, r_end - r0);
      gemm_f32(Trans::kNo, Trans::kYes, rows, layer.inputs, batch, dz + r0 * batch, batch, input, batch, 0.0f, g.data(),
               layer.inputs, nullptr);
      for (int64_t r = 0; r < rows; ++r) {
        if (!unit_alive(layer, r0 + r)) continue;
        const uint8_t* is_stored = present.data();
        if (layer.format == WeightFormat::kCsr) {
          for (int64_t e = layer.csr.indptr[r0 + r]; e < layer.csr.indptr[r0 + r + 1]; ++e) present[layer.csr.indices[e]] = 1;
        } else if (!layer.mask.empty()) {
          is_stored = layer.mask.data() + (r0 + r) * layer.inputs;
        } else {
          continue;  // a dense layer without a mask has no empty position
        }
        const float* grad_row = g.data() + r * layer.inputs;
        for (int64_t c = 0; c < layer.inputs; ++c) {
          const float v = std::fabs(grad_row[c]);
          if (v <= threshold || is_stored[c]) continue;
          best.emplace_back(v, (r0 + r) * layer.inputs + c);
          if (static_cast<int64_t>(best.size()) >= 2 * k) {
            cut_to_k(best);
            threshold = best[k - 1].first;  // the k-th best: everything kept is >= it
          }
        }
        if (layer.format == WeightFormat::kCsr)
          for (int64_t e = layer.csr.indptr[r0 + r]; e < layer.csr.indptr[r0 + r + 1]; ++e) present[layer.csr.indices[e]] = 0;
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
  std::vector<Item> best = std::move(found[0]);
  for (int t = 1; t < threads; ++t) best.insert(best.end(), found[t].begin(), found[t].end());
  if (static_cast<int64_t>(best.size()) > k) cut_to_k(best);
  std::vector<int64_t> positions(best.size());
  for (size_t i = 0; i < best.size(); ++i) positions[i] = best[i].second;
  radix_sort_positions(positions, layer.units * layer.inputs);
  return positions;
}

}  // namespace

void Model::sparsify(double sparsity, bool erdos_renyi, ThreadPool* pool) {
  if (!(sparsity >= 0.0 && sparsity < 1.0)) throw_range("sparsity must be in [0, 1), got " + std::to_string(sparsity));
  const size_t n = layers_.size();
  std::vector<double> density(n, 1.0 - sparsity);
  if (erdos_renyi) {
    // d_l = eps * (fan_in + fan_out) / (fan_in * fan_out), eps chosen so the
    // total matches; layers that would exceed density 1 are capped and the
    // rest rescaled (the ERK recipe of the RigL paper for dense layers).
    std::vector<bool> capped(n, false);
    for (int round = 0; round < static_cast<int>(n) + 1; ++round) {
      double budget = 0.0, raw = 0.0;
      for (size_t l = 0; l < n; ++l) {
        const double size = static_cast<double>(layers_[l].units * layers_[l].inputs);
        budget += (1.0 - sparsity) * size;
        if (capped[l]) budget -= size;
        else raw += static_cast<double>(layers_[l].units + layers_[l].inputs);
      }
      const double eps = raw > 0 ? budget / raw : 0.0;
      bool changed = false;
      for (size_t l = 0; l < n; ++l) {
        if (capped[l]) continue;
        const double d = eps * static_cast<double>(layers_[l].units + layers_[l].inputs) /
                         static_cast<double>(layers_[l].units * layers_[l].inputs);
        if (d >= 1.0) {
          capped[l] = true;
          changed = true;
        }
        density[l] = std::min(1.0, d);
      }
      if (!changed) break;
      for (size_t l = 0; l < n; ++l)
        if (capped[l]) density[l] = 1.0;
    }
  }
  for (size_t l = 0; l < n; ++l) {
    DenseLayer& layer = layers_[l];
    const int64_t size = layer.units * layer.inputs;
    const int64_t keep = std::max<int64_t>(1, std::llround(density[l] * static_cast<double>(size)));
    if (keep >= layer.nnz()) continue;
    // Keep a uniformly random subset of the stored weights, scaled by
    // 1/sqrt(density) so each unit's input variance stays as at init.
    std::vector<float> key;
    std::vector<float> scale_by;
    const float scale = static_cast<float>(1.0 / std::sqrt(density[l]));
    if (layer.format == WeightFormat::kDense && layer.mask.empty()) layer.mask.assign(size, 1);
    std::vector<int64_t> positions;
    for (int64_t r = 0; r < layer.units; ++r)
      for (int64_t c = 0; c < layer.inputs; ++c)
        if (stored(layer, r, c)) positions.push_back(r * layer.inputs + c);
    for (size_t i = 0; i < static_cast<size_t>(keep); ++i)
      std::swap(positions[i], positions[i + rng_.below(positions.size() - i)]);
    std::vector<uint8_t> kept(size, 0);
    for (int64_t i = 0; i < keep; ++i) kept[positions[i]] = 1;
    const double before = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    if (layer.format == WeightFormat::kCsr) {
      csr_filter(layer.csr, [&](int64_t r, int64_t c, int64_t) { return kept[r * layer.inputs + c] != 0; });
      for (int64_t k = 0; k < layer.csr.nnz(); ++k) layer.csr.value()[k] *= scale;
    } else {
      DenseParam& p = layer.weight;
      for (int64_t r = 0; r < layer.units; ++r) {
        for (int64_t c = 0; c < layer.inputs; ++c) {
          const int64_t i = r * layer.inputs + c;
          layer.mask[i] = kept[i];
          for (int s = 0; s < kSlotCount; ++s)
            if (p.has(static_cast<Slot>(s))) p.slots[s][r * p.stride + c] = kept[i] ? (s == 0 ? p.slots[s][r * p.stride + c] * scale : 0.0f) : 0.0f;
        }
      }
    }
    StructuralEvent e;
    e.kind = "prune";
    e.layer = static_cast<int64_t>(l);
    e.criterion = erdos_renyi ? "sparsify-erdos-renyi" : "sparsify-uniform";
    e.count = layer.units * layer.inputs - keep;
    e.density_before = before;
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    log_event(std::move(e));
    apply_format_policy(static_cast<int64_t>(l), pool);
  }
}

int64_t Model::regrow(const std::vector<int64_t>& which, double fraction, bool by_gradient, ThreadPool* pool) {
  if (!(fraction >= 0.0 && fraction < 1.0)) throw_range("dropFraction must be in [0, 1), got " + std::to_string(fraction));
  for (int64_t l : which)
    if (l < 0 || l >= static_cast<int64_t>(layers_.size())) throw_range("dense layer index " + std::to_string(l) + " is out of range");
  // RigL scores missing connections with the gradient of the current weights,
  // so compute it before anything is dropped.
  int64_t batch = 0;
  if (by_gradient) batch = recompute_signals(pool);
  int64_t total = 0;
  for (int64_t l : which) {
    DenseLayer& layer = layers_[l];
    const int64_t nnz = layer.nnz();
    const int64_t size = layer.units * layer.inputs;
    int64_t k = static_cast<int64_t>(std::floor(fraction * static_cast<double>(nnz)));
    k = std::min(k, size - nnz + k);  // cannot regrow more than the empty positions after the drop
    if (k <= 0) continue;

    // 1. Choose what grows, among positions empty now, as sorted positions
    // r * inputs + c (RigL: largest |dL/dw|; SET: uniformly at random). Dead
    // units never regrow.
    std::vector<int64_t> chosen;
    if (by_gradient) {
      chosen = top_gradient_positions(layer, ws_.dz[l].data(), ws_.act[l].data(), batch, k, pool);
    } else {
      const int64_t empty = size - nnz;
      if (empty <= 4 * k) {
        std::vector<int64_t> all;
        for (int64_t r = 0; r < layer.units; ++r)
          for (int64_t c = 0; c < layer.inputs; ++c)
            if (unit_alive(layer, r) && !stored(layer, r, c)) all.push_back(r * layer.inputs + c);
        const int64_t take = std::min<int64_t>(k, all.size());
        for (int64_t i = 0; i < take; ++i) std::swap(all[i], all[i + rng_.below(all.size() - i)]);
        chosen.assign(all.begin(), all.begin() + take);
      } else {
        // Sparse enough that rejection sampling finds empty positions fast.
        std::unordered_set<int64_t> seen;
        while (static_cast<int64_t>(chosen.size()) < k) {
          const int64_t pos = static_cast<int64_t>(rng_.below(size));
          const int64_t r = pos / layer.inputs, c = pos % layer.inputs;
          if (unit_alive(layer, r) && !stored(layer, r, c) && seen.insert(pos).second) chosen.push_back(pos);
        }
      }
      radix_sort_positions(chosen, size);
    }
    std::vector<std::pair<int64_t, int32_t>> grow(chosen.size());
    for (size_t i = 0; i < chosen.size(); ++i)
      grow[i] = {chosen[i] / layer.inputs, static_cast<int32_t>(chosen[i] % layer.inputs)};
    const int64_t grown = static_cast<int64_t>(grow.size());
    if (grown == 0) continue;

    // 2. Drop the same number of the smallest-magnitude stored weights.
    const double before = static_cast<double>(nnz) / static_cast<double>(size);
    remove_smallest(l, grown);

    // 3. Add the new connections: value 0, fresh optimizer state.
    if (layer.format == WeightFormat::kCsr) {
      csr_insert(layer.csr, grow, std::vector<float>(grow.size(), 0.0f));
    } else {
      if (layer.mask.empty()) layer.mask.assign(size, 1);
      for (const auto& [r, c] : grow) {
        layer.mask[r * layer.inputs + c] = 1;
        for (int s = 0; s < kSlotCount; ++s)
          if (layer.weight.has(static_cast<Slot>(s))) layer.weight.slots[s][r * layer.weight.stride + c] = 0.0f;
      }
    }
    StructuralEvent e;
    e.kind = "regrow";
    e.layer = l;
    e.criterion = by_gradient ? "gradient" : "random";
    e.count = grown;
    e.density_before = before;
    e.density_after = static_cast<double>(layer.nnz()) / static_cast<double>(size);
    log_event(std::move(e));
    total += grown;
  }
  return total;
}

}  // namespace np
