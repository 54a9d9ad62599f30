#include "losses.h"

#include <cmath>
#include <vector>

namespace np {

namespace {

// Column j of a feature-major block: element (r, j) is at r * ld + j.
int64_t argmax_column(const float* m, int64_t ld, int64_t rows, int64_t j) {
  int64_t best = 0;
  float best_v = m[j];
  for (int64_t r = 1; r < rows; ++r) {
    const float v = m[r * ld + j];
    if (v > best_v) {
      best_v = v;
      best = r;
    }
  }
  return best;
}

// Shared by the two cross-entropy variants: target(r, j) gives the target mass.
template <typename TargetFn>
double softmax_ce(float* grad, const float* logits, int64_t ld, int64_t outputs, int64_t col_begin,
                  int64_t col_end, int64_t batch, TargetFn target) {
  const float inv_b = 1.0f / static_cast<float>(batch);
  double total = 0.0;
  for (int64_t j = col_begin; j < col_end; ++j) {
    float mx = logits[j];
    for (int64_t r = 1; r < outputs; ++r) mx = std::fmax(mx, logits[r * ld + j]);
    double sum = 0.0;
    for (int64_t r = 0; r < outputs; ++r) sum += std::exp(static_cast<double>(logits[r * ld + j] - mx));
    const double log_sum = std::log(sum);
    double loss = 0.0;
    for (int64_t r = 0; r < outputs; ++r) {
      const double logp = static_cast<double>(logits[r * ld + j] - mx) - log_sum;
      const float t = target(r, j);
      if (t != 0.0f) loss -= t * logp;
      if (grad) grad[r * ld + j] = (static_cast<float>(std::exp(logp)) - t) * inv_b;
    }
    total += loss;
  }
  return total;
}

}  // namespace

double softmax_cross_entropy_labels(float* grad, const float* logits, int64_t ld, const int32_t* labels,
                                    int64_t outputs, int64_t col_begin, int64_t col_end, int64_t batch,
                                    int64_t* correct) {
  if (correct) {
    int64_t c = 0;
    for (int64_t j = col_begin; j < col_end; ++j) c += argmax_column(logits, ld, outputs, j) == labels[j];
    *correct = c;
  }
  return softmax_ce(grad, logits, ld, outputs, col_begin, col_end, batch,
                    [&](int64_t r, int64_t j) { return labels[j] == r ? 1.0f : 0.0f; });
}

double softmax_cross_entropy_targets(float* grad, const float* logits, int64_t ld, const float* targets,
                                     int64_t outputs, int64_t col_begin, int64_t col_end, int64_t batch,
                                     int64_t* correct) {
  if (correct) {
    int64_t c = 0;
    for (int64_t j = col_begin; j < col_end; ++j)
      c += argmax_column(logits, ld, outputs, j) == argmax_column(targets, ld, outputs, j);
    *correct = c;
  }
  return softmax_ce(grad, logits, ld, outputs, col_begin, col_end, batch,
                    [&](int64_t r, int64_t j) { return targets[r * ld + j]; });
}

double mean_squared_error(float* grad, const float* y, int64_t ld, const float* targets, int64_t outputs,
                          int64_t col_begin, int64_t col_end, int64_t batch, int64_t* correct) {
  const float scale = 2.0f / static_cast<float>(batch * outputs);
  double total = 0.0;
  for (int64_t j = col_begin; j < col_end; ++j) {
    double loss = 0.0;
    for (int64_t r = 0; r < outputs; ++r) {
      const float d = y[r * ld + j] - targets[r * ld + j];
      loss += static_cast<double>(d) * d;
      if (grad) grad[r * ld + j] = scale * d;
    }
    total += loss / static_cast<double>(outputs);
  }
  if (correct) {
    int64_t c = 0;
    for (int64_t j = col_begin; j < col_end; ++j)
      c += argmax_column(y, ld, outputs, j) == argmax_column(targets, ld, outputs, j);
    *correct = c;
  }
  return total;
}

}  // namespace np
