// Scratch buffers for one forward/backward pass, feature-major (features x
// batch, leading dimension = batch). Kept by the model between steps so a
// training loop allocates only when the batch or a layer grows.
#pragma once

#include <cstdint>
#include <vector>

#include "model/aligned_buffer.h"

namespace np {

struct Workspace {
  int64_t batch = 0;
  // act[0] is the input; act[l + 1] the output of layer l (after activation).
  std::vector<FloatBuffer> act;
  // dropped[l]: layer l's input after its dropout mask (only where dropout > 0).
  std::vector<FloatBuffer> dropped;
  std::vector<FloatBuffer> mask;
  // DropConnect: per-layer weight mask (0 or 1/(1-p)) and masked weights.
  std::vector<FloatBuffer> dc_mask, dc_weight;
  // Gradient ping-pong buffers, sized for the widest layer.
  FloatBuffer grad_a, grad_b;
  // A CSR layer's values in the order of its transpose, for the backward
  // product (training.cpp multiply_by_transpose).
  FloatBuffer transposed_values;
  // Per-row sums gathered by the activation kernels (statistics, bias gradient).
  FloatBuffer row_sums;
  // Targets of the batch in feature-major order (float targets only).
  FloatBuffer targets;
  std::vector<int32_t> labels;
  // dL/dz of each layer for the batch (filled on request: growth signals).
  std::vector<FloatBuffer> dz;
  // A copy of the last training batch (inputs feature-major, and its targets)
  // for gradient-based growth and regrowth.
  FloatBuffer last_x, last_targets;
  std::vector<int32_t> last_labels;
};

}  // namespace np
