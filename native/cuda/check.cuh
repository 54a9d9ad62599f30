// CUDA-side helpers shared by the .cu files (nvcc, or g++ in the CUDA
// emulator build; never included by the binding or the tests): error checking
// that throws np::cuda::CudaError, the launch macro, and launch-size arithmetic.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/runtime.h"

namespace np::cuda {

// Throws CudaError naming the error, the call and the place.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

}  // namespace np::cuda

#define NP_CUDA_CHECK(call)                                                            \
  do {                                                                                 \
    const cudaError_t np_cuda_err = (call);                                            \
    if (np_cuda_err != cudaSuccess) ::np::cuda::throw_cuda_error(np_cuda_err, #call, __FILE__, __LINE__); \
  } while (0)

// A kernel launch: NP_LAUNCH(grid, block, shared, stream, kernel)(args) is
// kernel<<<grid, block, shared, stream>>>(args), written so that g++ can
// compile the same source for the CUDA emulator (native/cuda/emulator), which
// runs every thread of the grid on the CPU.
#if defined(NP_CUDA_EMULATOR)
#define NP_LAUNCH(grid, block, shared, stream, ...) \
  ::np::cuda::emulator::launch((grid), (block), (shared), (stream), &__VA_ARGS__, #__VA_ARGS__)
#else
#define NP_LAUNCH(grid, block, shared, stream, ...) __VA_ARGS__<<<(grid), (block), (shared), (stream)>>>
#endif

// After a launch: a bad configuration shows up here, a fault in the
// kernel later, at the next synchronising call (Stream::synchronize, download).
#define NP_CUDA_CHECK_LAUNCH() NP_CUDA_CHECK(cudaGetLastError())

namespace np::cuda {

inline cudaStream_t raw(Stream& s) { return static_cast<cudaStream_t>(s.handle()); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grids are at most 2^31 - 1 blocks in x and 65535 in y and z.
constexpr int64_t kMaxGridX = 2147483647;
constexpr int64_t kMaxGridY = 65535;

}  // namespace np::cuda
