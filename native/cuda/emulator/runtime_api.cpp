// The runtime calls of include/cuda_runtime.h other than memory and streams
// (device.cpp): error strings, the device's description, copies and memsets.
#include <cstdio>
#include <cstring>
#include <mutex>

#include <cuda_runtime.h>

#include "device.h"

using namespace np::cuda::emulator;

namespace {

struct ErrorText {
  cudaError_t code;
  const char* name;
  const char* text;
};

constexpr ErrorText kErrors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources", "too many resources requested for launch"},
    {cudaErrorMisalignedAddress, "cudaErrorMisalignedAddress", "misaligned address"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
};

const ErrorText* error_text(cudaError_t err) {
  for (const ErrorText& e : kErrors)
    if (e.code == err) return &e;
  return nullptr;
}

}  // namespace

#define NP_EMULATOR_STICKY_CHECK()                                          \
  do {                                                                      \
    if (const cudaError_t s = sticky(); s != cudaSuccess) return fail(s); \
  } while (0)

const char* cudaGetErrorString(cudaError_t err) {
  const ErrorText* e = error_text(err);
  return e ? e->text : "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t err) {
  const ErrorText* e = error_text(err);
  return e ? e->name : "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() { return last_error(true); }

cudaError_t cudaPeekAtLastError() { return last_error(false); }

cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = device_count();
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU)");
  prop->totalGlobalMem = memory_limit();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return select_device(device) ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaDeviceReset() {
  clear_errors();
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  NP_EMULATOR_STICKY_CHECK();
  if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  using np::cuda::emulator::is_device_pointer;
  const bool dst_device = device_range(dst, bytes), src_device = device_range(src, bytes);
  // A side that starts in device memory must lie in it whole (cudaMemcpyDefault infers the kinds).
  const bool dst_whole = dst_device || !is_device_pointer(dst), src_whole = src_device || !is_device_pointer(src);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_device && !is_device_pointer(src); break;
    case cudaMemcpyDeviceToHost: ok = src_device && !is_device_pointer(dst); break;
    case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
    case cudaMemcpyHostToHost: ok = !is_device_pointer(dst) && !is_device_pointer(src); break;
    case cudaMemcpyDefault: ok = dst_whole && src_whole; break;
    default: return fail(cudaErrorInvalidMemcpyDirection);
  }
  // The areas may not overlap (CUDA's documentation); memmove below would hide it.
  const auto d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
  const bool overlap = d - s < bytes || s - d < bytes;  // unsigned: no sum to overflow
  if (!ok || overlap) {
    std::fprintf(stderr, "CUDA emulator: cudaMemcpyAsync of %zu bytes (kind %d): %s\n", bytes, static_cast<int>(kind),
                 overlap ? "the areas overlap" : "a side is not the memory its kind says, or does not hold that many bytes");
    return fail(cudaErrorInvalidValue);
  }
  const std::lock_guard<std::mutex> device(device_mutex());
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  NP_EMULATOR_STICKY_CHECK();
  if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!device_range(ptr, bytes)) {
    std::fprintf(stderr, "CUDA emulator: cudaMemsetAsync of %zu bytes outside device memory\n", bytes);
    return fail(cudaErrorInvalidValue);
  }
  const std::lock_guard<std::mutex> device(device_mutex());
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
