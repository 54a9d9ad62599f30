// GradMax's direction finder: the top-k left singular vectors of a small
// dense matrix by orthogonal iteration (growth.cpp; the naive per-column
// reference is in native/tests/test_singular_vectors.cpp, equal to the bit).
#pragma once

#include <cstdint>
#include <vector>

#include "model/rng.h"

namespace np {

// Top-k left singular vectors of m (rows x cols, row-major) by 30 steps of
// orthogonal iteration on m m^T from a normal start drawn from rng: q (rows
// x k, column j contiguous at q[j * rows]).
std::vector<double> top_left_singular_vectors(const std::vector<float>& m, int64_t rows, int64_t cols, int64_t k, Rng& rng);

// One Gram-Schmidt pass over q's k columns (rows each, column j at q[j *
// rows]), in order: each made orthogonal to the ones before and unit length;
// a column that vanishes restarts from rng's normals. Each iteration's last step.
void orthonormalise_columns(std::vector<double>& q, int64_t rows, int64_t k, Rng& rng);

}  // namespace np
