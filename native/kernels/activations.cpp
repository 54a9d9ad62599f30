#include "activations.h"
#include "clones.h"

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

// The activation of one value; the compiler inlines it into each loop.
static inline float activate(Activation act, float v) {
  switch (act) {
    case Activation::kRelu: return v > 0.0f ? v : 0.0f;
    case Activation::kTanh: return std::tanh(v);
    case Activation::kSigmoid: return stable_sigmoid(v);
    case Activation::kLinear: break;
  }
  return v;
}

// Its derivative from the output a = act(z).
static inline float derivative_from_output(Activation act, float a) {
  switch (act) {
    case Activation::kRelu: return a > 0.0f ? 1.0f : 0.0f;
    case Activation::kTanh: return 1.0f - a * a;
    case Activation::kSigmoid: return a * (1.0f - a);
    case Activation::kLinear: break;
  }
  return 1.0f;
}

// These loops are memory-bound passes over a layer's outputs (NP_CLONES: per-ISA
// copies picked from cpuid); `omp simd reduction` (enabled by -fopenmp-simd,
// no OpenMP runtime) lets the sums vectorise without -ffast-math.

template <Activation A>
NP_CLONES static void forward_rows(float* y, int64_t ld, const float* bias, int64_t r0, int64_t r1, int64_t batch, float* abs_sum,
                         float* sum) {
  for (int64_t r = r0; r < r1; ++r) {
    float* row = y + r * ld;
    const float b = bias ? bias[r] : 0.0f;
#pragma omp simd
    for (int64_t j = 0; j < batch; ++j) row[j] = activate(A, row[j] + b);
    if (abs_sum) {
      float s_abs = 0.0f, s = 0.0f;
#pragma omp simd reduction(+ : s_abs, s)
      for (int64_t j = 0; j < batch; ++j) {
        s_abs += std::fabs(row[j]);
        s += row[j];
      }
      abs_sum[r] = s_abs;
      if (sum) sum[r] = s;
    }
  }
}

void bias_activation_forward(float* y, int64_t ld, const float* bias, Activation act, int64_t row_begin,
                             int64_t row_end, int64_t batch, float* row_abs_sum, float* row_sum) {
  // One instantiation per activation keeps the switch out of the inner loop.
  switch (act) {
    case Activation::kLinear: forward_rows<Activation::kLinear>(y, ld, bias, row_begin, row_end, batch, row_abs_sum, row_sum); break;
    case Activation::kRelu: forward_rows<Activation::kRelu>(y, ld, bias, row_begin, row_end, batch, row_abs_sum, row_sum); break;
    case Activation::kTanh: forward_rows<Activation::kTanh>(y, ld, bias, row_begin, row_end, batch, row_abs_sum, row_sum); break;
    case Activation::kSigmoid: forward_rows<Activation::kSigmoid>(y, ld, bias, row_begin, row_end, batch, row_abs_sum, row_sum); break;
  }
}

template <Activation A>
NP_CLONES static void backward_rows(float* dy, const float* y, int64_t ld, int64_t r0, int64_t r1, int64_t batch, float* dot,
                          float* dz_sum) {
  for (int64_t r = r0; r < r1; ++r) {
    float* d = dy + r * ld;
    const float* a = y + r * ld;
    if (dot) {
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < batch; ++j) s += a[j] * d[j];
      dot[r] = s;
    }
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < batch; ++j) {
      if (A != Activation::kLinear) d[j] *= derivative_from_output(A, a[j]);
      s += d[j];
    }
    if (dz_sum) dz_sum[r] = s;
  }
}

void activation_backward(float* dy, const float* y, int64_t ld, Activation act, int64_t row_begin,
                         int64_t row_end, int64_t batch, float* row_y_dot_dy, float* row_dz_sum) {
  switch (act) {
    case Activation::kLinear: backward_rows<Activation::kLinear>(dy, y, ld, row_begin, row_end, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kRelu: backward_rows<Activation::kRelu>(dy, y, ld, row_begin, row_end, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kTanh: backward_rows<Activation::kTanh>(dy, y, ld, row_begin, row_end, batch, row_y_dot_dy, row_dz_sum); break;
    case Activation::kSigmoid: backward_rows<Activation::kSigmoid>(dy, y, ld, row_begin, row_end, batch, row_y_dot_dy, row_dz_sum); break;
  }
}

void apply_mask(float* x, const float* mask, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] *= mask[i];
}

}  // namespace np
