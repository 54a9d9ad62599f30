// The structural event log: every grow, prune, compact, reinit, regrow,
// densify and sparsify, with when it happened, where, which neurons, and why.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace np {

struct StructuralEvent {
  int64_t step = 0;
  int64_t epoch = 0;
  std::string kind;       // grow | prune | compact | reinit | regrow | densify | sparsify
  int64_t layer = -1;     // dense-layer index (-1: the whole model)
  std::string criterion;  // e.g. magnitude, l2, taylor; or the reason for a format change
  std::vector<int64_t> neuron_ids;
  std::vector<float> scores;  // one per neuron id, when the criterion scores neurons
  int64_t count = 0;          // weights or neurons affected
  double density_before = 0.0;
  double density_after = 0.0;
};

}  // namespace np
