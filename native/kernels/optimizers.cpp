#include "optimizers.h"

#include "clones.h"

#include <cmath>

namespace np {

// Same formulas as torch.optim.SGD: v = mu v + g; step = nesterov ? g + mu v : v.
NP_CLONES void sgd_update(float* value, float* velocity, const float* grad, int64_t count, const SgdParams& p) {
  const float lr = p.learning_rate, mu = p.momentum, wd = p.weight_decay;
  if (mu == 0.0f || velocity == nullptr) {
    for (int64_t i = 0; i < count; ++i) value[i] -= lr * (grad[i] + wd * value[i]);
    return;
  }
  if (p.nesterov) {
    for (int64_t i = 0; i < count; ++i) {
      const float g = grad[i] + wd * value[i];
      const float v = mu * velocity[i] + g;
      velocity[i] = v;
      value[i] -= lr * (g + mu * v);
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      const float g = grad[i] + wd * value[i];
      const float v = mu * velocity[i] + g;
      velocity[i] = v;
      value[i] -= lr * v;
    }
  }
}

// torch.optim.Adam / AdamW: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t),
// w -= lr * m_hat / (sqrt(v_hat) + eps).
NP_CLONES void adam_update(float* value, float* m, float* v, const float* grad, int64_t count, const AdamParams& p) {
  const float b1 = p.beta1, b2 = p.beta2, eps = p.epsilon, lr = p.learning_rate;
  const float step = lr / p.bias_correction1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(p.bias_correction2);
  const float coupled_wd = p.decoupled ? 0.0f : p.weight_decay;
  const float decay = p.decoupled ? 1.0f - lr * p.weight_decay : 1.0f;
  for (int64_t i = 0; i < count; ++i) {
    const float g = grad[i] + coupled_wd * value[i];
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    value[i] = value[i] * decay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace np
