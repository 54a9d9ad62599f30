// RigL's regrowth choice: which empty weight positions have the largest
// |dL/dw|, without ever holding a dense weight-sized gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace np {

class ThreadPool;

// The k empty positions (r * inputs + c) of live units with the largest
// |dL/dw|, ascending. dL/dW = dZ * X^T is computed 64 rows at
// a time, so no weight-sized buffer exists; each thread owns a range of rows
// with its own GEMM block and its own candidate buffer, and the buffers merge
// at the end.
//
// A candidate buffer keeps the best seen so far above a threshold: candidates
// above it are appended, and the buffer is cut back to the best k
// (nth_element) whenever it reaches 2k, raising the threshold, so memory stays
// O(k) per thread. Order is (|g| descending, position ascending): a total
// order, so the chosen set does not depend on how the rows were split between
// threads. The starting threshold is sampled (see gradient_topk.cpp); when
// fewer than k candidates pass it, the scan runs again from -1, so the
// result is exact either way.
//
// dz: the layer's pre-activation gradient (units x batch), input: its input
// activations (inputs x batch), both feature-major. start_threshold: tests
// only, overrides the sampled estimate (a value above the k-th best forces
// the rescan). closed_inputs: null, or one flag per input, 1 where nothing
// may grow (the input comes from a pruned unit of the layer below).
std::vector<int64_t> top_gradient_positions(const DenseLayer& layer, const float* dz, const float* input,
                                            int64_t batch, int64_t k, ThreadPool* pool,
                                            const float* start_threshold = nullptr,
                                            const uint8_t* closed_inputs = nullptr);

}  // namespace np
