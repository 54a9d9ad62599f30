// The emulated device's state that the emulator's files share (device.cpp):
// errors, the device lock, device memory and streams.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>

#include <cuda_runtime.h>

namespace np::cuda::emulator {

// Errors. The last error is per host thread, as in the runtime; a sticky
// error (a fault in a kernel) is the context's, and every later call returns it.
cudaError_t sticky();
// Sets this thread's last error and returns it.
cudaError_t fail(cudaError_t err);
// A kernel fault: said on stderr (the code alone would not say where) and sticky.
void fault(cudaError_t err, const std::string& what);
// cudaGetLastError (take: and clear) and cudaPeekAtLastError: the sticky error first.
cudaError_t last_error(bool take);
// cudaDeviceReset: clears the sticky error and this thread's last error.
void clear_errors();

// One device: kernels, copies, memsets, the emulated cuBLAS and cudaFree run
// one at a time across host threads, as work on one GPU is ordered (and
// cudaFree waits for running work). Blocks also rely on it for __shared__.
std::mutex& device_mutex();

// Whether [p, p + bytes) lies inside one live device allocation.
bool device_range(const void* p, std::size_t bytes);
// The device memory the emulator reports and allows.
std::size_t memory_limit();

// Whether a stream handle is the default stream or a live one.
bool valid_stream(cudaStream_t s);

// Devices: NP_CUDA_EMULATOR_DEVICES of them (default 1, at most 8), sharing
// the host's memory but not each other's: memory and streams belong to the
// device that was current (cudaSetDevice, per host thread) when they were
// made, and a kernel may only take its own device's (no peer access).
int device_count();
int current_device();
bool select_device(int device);
// The device an allocation holding p belongs to, or -1 when p is no device memory.
int allocation_device(const void* p);
// The device a stream belongs to (the default stream: the current device's).
int stream_device(cudaStream_t s);

}  // namespace np::cuda::emulator
