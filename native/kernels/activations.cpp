#include "activations.h"

#include <cmath>
#include <cstring>

namespace np {

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::kLinear: return "linear";
    case Activation::kRelu: return "relu";
    case Activation::kTanh: return "tanh";
    case Activation::kSigmoid: return "sigmoid";
  }
  return "unknown";
}

bool parse_activation(const char* text, Activation* out) {
  static const Activation all[] = {Activation::kLinear, Activation::kRelu, Activation::kTanh, Activation::kSigmoid};
  for (Activation a : all) {
    if (std::strcmp(text, activation_name(a)) == 0) {
      *out = a;
      return true;
    }
  }
  return false;
}

namespace {
// The logistic function without overflow for large |x|.
inline float stable_sigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}
}  // namespace

void bias_activation_forward(float* y, int64_t ld, const float* bias, Activation act, int64_t row_begin,
                             int64_t row_end, int64_t batch) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* row = y + r * ld;
    const float b = bias ? bias[r] : 0.0f;
    switch (act) {
      case Activation::kLinear:
        for (int64_t j = 0; j < batch; ++j) row[j] += b;
        break;
      case Activation::kRelu:
        for (int64_t j = 0; j < batch; ++j) {
          const float v = row[j] + b;
          row[j] = v > 0.0f ? v : 0.0f;
        }
        break;
      case Activation::kTanh:
        for (int64_t j = 0; j < batch; ++j) row[j] = std::tanh(row[j] + b);
        break;
      case Activation::kSigmoid:
        for (int64_t j = 0; j < batch; ++j) row[j] = stable_sigmoid(row[j] + b);
        break;
    }
  }
}

void activation_backward(float* dy, const float* y, int64_t ld, Activation act, int64_t row_begin,
                         int64_t row_end, int64_t batch) {
  if (act == Activation::kLinear) return;
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* d = dy + r * ld;
    const float* a = y + r * ld;
    switch (act) {
      case Activation::kRelu:
        for (int64_t j = 0; j < batch; ++j) d[j] = a[j] > 0.0f ? d[j] : 0.0f;
        break;
      case Activation::kTanh:
        for (int64_t j = 0; j < batch; ++j) d[j] *= 1.0f - a[j] * a[j];
        break;
      case Activation::kSigmoid:
        for (int64_t j = 0; j < batch; ++j) d[j] *= a[j] * (1.0f - a[j]);
        break;
      case Activation::kLinear:
        break;
    }
  }
}

void bias_backward(float* db, const float* dz, int64_t ld, int64_t row_begin, int64_t row_end, int64_t batch,
                   float beta) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* d = dz + r * ld;
    float s = 0.0f;
    for (int64_t j = 0; j < batch; ++j) s += d[j];
    db[r] = beta == 0.0f ? s : beta * db[r] + s;
  }
}

void apply_mask(float* x, const float* mask, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] *= mask[i];
}

}  // namespace np
