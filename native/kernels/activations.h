// Activation, bias and dropout kernels on feature-major blocks (features x batch,
// row stride ld >= batch). These are memory-bound: written as plain loops that
// the compiler vectorises for the baseline, which also makes them their own
// naive reference.
#pragma once

#include <cstdint>

namespace np {

enum class Activation : int { kLinear = 0, kRelu = 1, kTanh = 2, kSigmoid = 3 };

const char* activation_name(Activation act);
bool parse_activation(const char* text, Activation* out);

// y[r, :] = act(y[r, :] + bias[r]) for rows [row_begin, row_end). The forward
// product has already been written into y; this finishes the layer in place.
// Optional per-row outputs gathered in the same pass while the row is in
// cache (nullptr: not wanted): sum |y| and sum y over the batch, which feed
// the per-unit statistics.
void bias_activation_forward(float* y, int64_t ld, const float* bias, Activation act, int64_t row_begin,
                             int64_t row_end, int64_t batch, float* row_abs_sum = nullptr,
                             float* row_sum = nullptr);

// dz = dy * act'(.) computed from the activation's OUTPUT y (every supported
// activation's derivative is a function of its output), in place on dy.
// Optional per-row outputs from the same pass: sum of y * dy (before the
// derivative: the Taylor statistic) and sum of dz (the bias gradient).
void activation_backward(float* dy, const float* y, int64_t ld, Activation act, int64_t row_begin,
                         int64_t row_end, int64_t batch, float* row_y_dot_dy = nullptr,
                         float* row_dz_sum = nullptr);

// x *= mask where mask holds 0 or 1/(1-p): inverted dropout, also used backward.
void apply_mask(float* x, const float* mask, int64_t count);

}  // namespace np
