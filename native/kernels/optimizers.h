// Optimizer updates on one parameter's slots (value, gradient, moments), all
// sharing one layout: `count` contiguous elements. Rows of a strided weight are
// updated one call per row, so padding is never touched.
#pragma once

#include <cstdint>

namespace np {

struct SgdParams {
  float learning_rate;
  float momentum;      // 0 disables the velocity slot
  bool nesterov;
  float weight_decay;  // L2 added to the gradient (coupled)
};

// velocity may be nullptr when momentum == 0.
void sgd_update(float* value, float* velocity, const float* grad, int64_t count, const SgdParams& p);

struct AdamParams {
  float learning_rate;
  float beta1;
  float beta2;
  float epsilon;
  float weight_decay;
  bool decoupled;         // AdamW: decay the weights directly instead of adding to the gradient
  float bias_correction1; // 1 - beta1^t
  float bias_correction2; // 1 - beta2^t
};

void adam_update(float* value, float* m, float* v, const float* grad, int64_t count, const AdamParams& p);

}  // namespace np
