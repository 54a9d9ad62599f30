// Test helpers shared by the CPU test of the remap rule (test_remap.cpp) and
// the CUDA restructure test: each new unit's index before a structural change,
// found by neuron id (-1 for a unit the change added), and the column scales
// and copies of a net2wider split, as lib/cuda_model.ts computes them for
// CudaModel::restructure.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "model/model.h"
#include "model/state.h"

namespace np_test {

inline std::vector<std::vector<int32_t>> row_sources_by_id(const np::ModelState& before, const np::ModelState& after) {
  std::vector<std::vector<int32_t>> out;
  for (size_t l = 0; l < after.layers.size(); ++l) {
    std::map<int64_t, int32_t> old_index;
    for (size_t i = 0; i < before.layers[l].neuron_ids.size(); ++i)
      old_index[before.layers[l].neuron_ids[i]] = static_cast<int32_t>(i);
    std::vector<int32_t> src;
    for (int64_t id : after.layers[l].neuron_ids) {
      auto it = old_index.find(id);
      src.push_back(it == old_index.end() ? -1 : it->second);
    }
    out.push_back(src);
  }
  return out;
}

// Per layer, the factor of each input column after the model's last growth:
// net2wider's shares on the split units' columns of the next layer, else
// empty (no scaling).
inline std::vector<std::vector<float>> split_scales(const np::Model& m) {
  std::vector<std::vector<float>> out(m.layers().size());
  const np::Model::UnitSplit& split = m.last_split();
  if (split.layer < 0) return out;
  std::vector<float>& scale = out[split.layer + 1];
  scale.assign(m.layers()[split.layer + 1].inputs, 1.0f);
  for (const auto& [unit, share] : split.shares) scale[unit] = share;
  return out;
}

// What lib/cuda_model.ts sends for a net2wider growth besides the column
// factors: per layer, each new unit's source to copy (row_copy, the grown
// layer) and each new input's source column and share (col_copy and
// col_copy_scale, the next layer); -1 elsewhere, empty for other layers.
struct SplitCopies {
  std::vector<std::vector<int32_t>> row_copy, col_copy;
  std::vector<std::vector<float>> col_copy_scale;
};

inline SplitCopies split_copies(const np::Model& m) {
  const size_t n = m.layers().size();
  SplitCopies out{std::vector<std::vector<int32_t>>(n), std::vector<std::vector<int32_t>>(n), std::vector<std::vector<float>>(n)};
  const np::Model::UnitSplit& split = m.last_split();
  if (split.layer < 0) return out;
  const size_t l = static_cast<size_t>(split.layer);
  const int64_t units = m.layers()[l].units, first = units - static_cast<int64_t>(split.copies.size());
  out.row_copy[l].assign(static_cast<size_t>(units), -1);
  out.col_copy[l + 1].assign(static_cast<size_t>(units), -1);
  out.col_copy_scale[l + 1].assign(static_cast<size_t>(units), 1.0f);
  for (size_t k = 0; k < split.copies.size(); ++k) {
    const size_t unit = static_cast<size_t>(first) + k;
    out.row_copy[l][unit] = static_cast<int32_t>(split.copies[k].first);
    out.col_copy[l + 1][unit] = static_cast<int32_t>(split.copies[k].first);
    out.col_copy_scale[l + 1][unit] = split.copies[k].second;
  }
  return out;
}

}  // namespace np_test
