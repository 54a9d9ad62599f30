// The CUDA runtime seen from plain C++: device discovery, one stream, device
// buffers, errors as exceptions. Implemented in runtime.cu; this header pulls in
// no CUDA header, so the Node binding (g++, napi.h) and the native tests include
// it without nvcc.
//
// Every call that can fail throws CudaError, whose message carries the CUDA
// error string, its name, the call and the source line:
//   "CUDA error: out of memory (cudaErrorMemoryAllocation) in cudaMalloc at runtime.cu:88"
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace np::cuda {

class CudaError : public std::runtime_error {
 public:
  CudaError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }  // the cudaError_t value

 private:
  int code_;
};

// What the runtime reports before any work: whether a driver and a device are
// there, and if not, why. probe() never throws.
struct Probe {
  int device_count = 0;
  int error_code = 0;             // cudaError_t of cudaGetDeviceCount (0: success)
  std::string error;              // its cudaGetErrorString, empty on success
  std::string error_name;         // its cudaGetErrorName, empty on success
  int driver_version = 0;         // cudaDriverGetVersion: 0 when no driver is installed
  int runtime_version = 0;        // the CUDA runtime this addon was built with (static cudart)
};
Probe probe();

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::size_t total_memory = 0;  // bytes
  int major = 0;                 // compute capability
  int minor = 0;
};
// Empty when probe() finds no device; throws only on an unexpected failure.
std::vector<DeviceInfo> devices();

// Makes `index` the current device of the calling thread.
void set_device(int index);

// dlopen()s the first of `sonames` that loads (RTLD_NOW | RTLD_LOCAL), with the
// symbols `required` resolving: by bare name (the loader's search path), then
// from the toolkit's library folders ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda:
// lib64 and targets/<arch>-linux/lib), because a toolkit installed without an
// ld.so.conf entry (the runfile installer, a tarball) is not on the loader's
// path and cuBLAS / cuSPARSE would otherwise silently never load. Returns the
// handle and the name or path that loaded, or nullptr with *error saying why.
// `companions` (e.g. "libcublasLt.so") are preloaded from the same folder with
// the soname's version suffix, so a library whose dependencies are not on the
// loader's path either still resolves them (the loader matches loaded sonames);
// a companion that names its own version ("libnvJitLink.so.13") is loaded as named.
// In the CUDA emulator build, the libraries the emulator stands in for
// (cuBLAS) instead, and no others.
void* open_cuda_library(const std::vector<std::string>& sonames, const std::vector<std::string>& required,
                        std::string* loaded, std::string* error, const std::vector<std::string>& companions = {});
// dlsym() on a handle from open_cuda_library (the emulator's own table in its build).
void* cuda_library_symbol(void* library, const char* name);

// The one stream all kernels of a model run on, and the per-stream cuBLAS
// handle when cuBLAS was found at run time (see gemm.cu). Move-only.
class Stream {
 public:
  Stream();  // a non-blocking stream on the current device
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void* handle() const { return stream_; }  // a cudaStream_t
  // Waits for all queued work; throws the first asynchronous error (a fault in
  // a kernel) as CudaError.
  void synchronize() const;

  // The cuBLAS handle bound to this stream, created on first use (gemm.cu);
  // nullptr when cuBLAS is not loaded.
  void* blas_handle();

 private:
  void release() noexcept;
  void* stream_ = nullptr;
  void* blas_ = nullptr;
  bool blas_tried_ = false;  // blas_handle() tries cuBLAS once per stream
};

// Device memory with one owner. Contents are uninitialised after allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  std::size_t size() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

  // At least `bytes` long afterwards; growing drops the old contents (scratch space).
  void reserve(std::size_t bytes);

  // Copies on `stream`, ordered with the kernels queued on it. upload() returns
  // once the host memory may be reused; download() waits for the copy (and so
  // for every kernel queued before it). Offsets and sizes are checked.
  void upload(const void* host, std::size_t bytes, Stream& stream, std::size_t offset = 0);
  void download(void* host, std::size_t bytes, Stream& stream, std::size_t offset = 0) const;
  void fill_zero(Stream& stream);

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// A host vector copied into a new device buffer.
template <typename T>
DeviceBuffer to_device(const std::vector<T>& host, Stream& stream) {
  DeviceBuffer buffer(host.size() * sizeof(T));
  if (!host.empty()) buffer.upload(host.data(), host.size() * sizeof(T), stream);
  return buffer;
}

// A device buffer's first `count` elements copied back (waits for the stream).
template <typename T>
std::vector<T> to_host(const DeviceBuffer& buffer, std::size_t count, Stream& stream) {
  std::vector<T> host(count);
  if (count) buffer.download(host.data(), count * sizeof(T), stream);
  return host;
}

}  // namespace np::cuda
