// Loss functions fused with their gradient, on feature-major logits
// (outputs x batch, row stride ld). Each returns the SUM of per-sample losses
// over the batch columns it was given, and writes d(mean loss)/d(logits), i.e.
// already divided by the full batch size, so the weight gradients that follow
// are batch means.
#pragma once

#include <cstdint>

namespace np {

// Softmax cross-entropy against integer labels, numerically stable (max is
// subtracted; log-sum-exp in double). grad may be nullptr (evaluation only).
// correct (optional) receives the number of columns whose argmax == label.
double softmax_cross_entropy_labels(float* grad, const float* logits, int64_t ld, const int32_t* labels,
                                    int64_t outputs, int64_t col_begin, int64_t col_end, int64_t batch,
                                    int64_t* correct);

// Softmax cross-entropy against target distributions (targets feature-major,
// same ld): soft labels or one-hot floats.
double softmax_cross_entropy_targets(float* grad, const float* logits, int64_t ld, const float* targets,
                                     int64_t outputs, int64_t col_begin, int64_t col_end, int64_t batch,
                                     int64_t* correct);

// Mean squared error: per-sample loss is mean over outputs of (y - t)^2, so the
// batch loss matches PyTorch/TF `mean` reduction. correct counts argmax(y) ==
// argmax(t) (meaningful for one-hot targets only).
double mean_squared_error(float* grad, const float* outputs_fm, int64_t ld, const float* targets,
                          int64_t outputs, int64_t col_begin, int64_t col_end, int64_t batch,
                          int64_t* correct);

}  // namespace np
