// NP_HOST_DEVICE marks a function that nvcc compiles for both the host and
// the GPU and any other compiler sees as plain C++: the rules the kernels and
// their host references (and the CPU-only tests) must share word for word.
#pragma once

#if defined(__CUDACC__)
#define NP_HOST_DEVICE __host__ __device__
#else
#define NP_HOST_DEVICE
#endif
