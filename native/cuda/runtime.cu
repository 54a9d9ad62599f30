// Device discovery, the stream, device buffers and error conversion (runtime.h).
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "cuda/check.cuh"
#include "cuda/runtime.h"

namespace np::cuda {

void release_blas_handle(void* handle) noexcept;  // gemm.cu
void* create_blas_handle(void* stream);           // gemm.cu: nullptr without cuBLAS

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  // Reset the runtime's last-error slot, or the next launch check would report
  // this (non-sticky) error again. A sticky error (a kernel fault) stays: the
  // context is unusable and every later call says so.
  cudaGetLastError();
  const char* base = std::strrchr(file, '/');
  std::string message = std::string("CUDA error: ") + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) +
                        ") in " + call + " at " + (base ? base + 1 : file) + ":" + std::to_string(line);
  throw CudaError(static_cast<int>(err), message);
}

Probe probe() {
  Probe p;
  p.runtime_version = CUDART_VERSION;
  int driver = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess) p.driver_version = driver;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    p.error_code = static_cast<int>(err);
    p.error = cudaGetErrorString(err);
    p.error_name = cudaGetErrorName(err);
    cudaGetLastError();  // do not leave the failure for the next call to report
    return p;
  }
  p.device_count = count;
  return p;
}

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> out;
  const Probe p = probe();
  for (int i = 0; i < p.device_count; ++i) {
    cudaDeviceProp prop;
    NP_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    DeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.total_memory = prop.totalGlobalMem;
    d.major = prop.major;
    d.minor = prop.minor;
    out.push_back(std::move(d));
  }
  return out;
}

void set_device(int index) { NP_CUDA_CHECK(cudaSetDevice(index)); }

void* cuda_library_symbol(void* library, const char* name) {
#if defined(NP_CUDA_EMULATOR)
  return emulator::library_symbol(library, name);
#else
  return dlsym(library, name);
#endif
}

void* open_cuda_library(const std::vector<std::string>& sonames, const std::vector<std::string>& required,
                        std::string* loaded, std::string* error, const std::vector<std::string>& companions) {
#if defined(NP_CUDA_EMULATOR)
  for (const std::string& name : sonames) {
    void* lib = emulator::open_library(name.c_str());
    if (!lib) continue;
    bool complete = true;
    for (const std::string& sym : required) complete = complete && emulator::library_symbol(lib, sym.c_str());
    if (!complete) continue;
    if (loaded) *loaded = name + " (emulated)";
    return lib;
  }
  if (error) *error = "the CUDA emulator provides none of them";
  return nullptr;
#else
  std::vector<std::string> dirs{""};  // "" = the bare soname, through the loader's search path
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    const char* root = std::getenv(var);
    if (root && *root) dirs.push_back(std::string(root) + "/lib64/");
  }
  dirs.push_back("/usr/local/cuda/lib64/");
#if defined(__aarch64__)
  dirs.push_back("/usr/local/cuda/targets/sbsa-linux/lib/");
#else
  dirs.push_back("/usr/local/cuda/targets/x86_64-linux/lib/");
#endif
  std::string why;
  for (const std::string& name : sonames) {
    for (const std::string& dir : dirs) {
      const std::string path = dir + name;
      if (!dir.empty()) {
        // Kept loaded on purpose (the library about to load may need them); a miss is harmless.
        const size_t so = name.find(".so");
        const std::string suffix = so == std::string::npos ? "" : name.substr(so + 3);
        for (const std::string& c : companions) {
          // A companion named with its own version ("libnvJitLink.so.13") is taken as is: the
          // soname's suffix is not always the companion's (CUDA 13 ships libcusparse.so.12,
          // which links libnvJitLink.so.13).
          const bool versioned = c.find(".so.") != std::string::npos;
          dlopen((dir + c + (versioned ? std::string() : suffix)).c_str(), RTLD_NOW | RTLD_LOCAL);
        }
      }
      void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lib) {
        if (why.empty()) {
          const char* e = dlerror();
          why = e ? e : path + ": not found";
        }
        continue;
      }
      bool complete = true;
      for (const std::string& sym : required) {
        if (!dlsym(lib, sym.c_str())) {
          why = path + " lacks " + sym;
          complete = false;
          break;
        }
      }
      if (complete) {
        if (loaded) *loaded = path;
        return lib;
      }
      dlclose(lib);
    }
  }
  if (error) *error = why.empty() ? "no library name given" : why;
  return nullptr;
#endif
}

// ---- Stream -------------------------------------------------------------------

Stream::Stream() {
  cudaStream_t s = nullptr;
  NP_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
}

Stream::~Stream() { release(); }

void Stream::release() noexcept {
  if (blas_) release_blas_handle(blas_);
  blas_ = nullptr;
  blas_tried_ = false;
  // Errors are dropped: a destructor cannot report them, and at process exit
  // the driver may already be gone.
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  stream_ = nullptr;
}

Stream::Stream(Stream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)),
      blas_(std::exchange(other.blas_, nullptr)),
      blas_tried_(std::exchange(other.blas_tried_, false)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    release();
    stream_ = std::exchange(other.stream_, nullptr);
    blas_ = std::exchange(other.blas_, nullptr);
    blas_tried_ = std::exchange(other.blas_tried_, false);
  }
  return *this;
}

void Stream::synchronize() const { NP_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_))); }

// Created on first use, and tried once: when cuBLAS is there but cannot make
// a handle (no device memory left, say), every GEMM on this stream takes the
// own kernel instead of retrying; gemm_backend() then says why.
void* Stream::blas_handle() {
  if (!blas_tried_) {
    blas_tried_ = true;
    blas_ = create_blas_handle(stream_);
  }
  return blas_;
}

// ---- DeviceBuffer -----------------------------------------------------------

DeviceBuffer::DeviceBuffer(std::size_t bytes) {
  if (bytes) NP_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reserve(std::size_t bytes) {
  if (bytes <= bytes_) return;
  DeviceBuffer bigger(bytes);
  *this = std::move(bigger);
}

namespace {
void check_range(std::size_t offset, std::size_t bytes, std::size_t size, const char* what) {
  if (offset > size || bytes > size - offset)
    throw std::out_of_range(std::string("DeviceBuffer::") + what + ": " + std::to_string(bytes) + " bytes at offset " +
                            std::to_string(offset) + " do not fit a buffer of " + std::to_string(size) + " bytes");
}
}  // namespace

void DeviceBuffer::upload(const void* host, std::size_t bytes, Stream& stream, std::size_t offset) {
  check_range(offset, bytes, bytes_, "upload");
  if (!bytes) return;
  // From pageable memory the copy is staged before the call returns, so the
  // caller may reuse `host` at once.
  NP_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice, raw(stream)));
}

void DeviceBuffer::download(void* host, std::size_t bytes, Stream& stream, std::size_t offset) const {
  check_range(offset, bytes, bytes_, "download");
  if (!bytes) return;
  NP_CUDA_CHECK(cudaMemcpyAsync(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost, raw(stream)));
  stream.synchronize();
}

void DeviceBuffer::fill_zero(Stream& stream) {
  if (bytes_) NP_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, bytes_, raw(stream)));
}

}  // namespace np::cuda
