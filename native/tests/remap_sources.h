// Test helpers shared by the CPU test of the remap rule (test_remap.cpp) and
// the CUDA restructure test: each new unit's index before a structural change,
// found by neuron id (-1 for a unit the change added), and the column scales
// of a net2wider split, as lib/cuda_model.ts computes them for
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

}  // namespace np_test
