// The CUDA emulator's stand-in for <cuda_runtime.h>: enough of the CUDA
// language and runtime for g++ to compile our own .cu files unchanged (but for
// NP_LAUNCH, check.cuh) and run them on the CPU (native/cuda/emulator/).
//
// Why: CI and most development machines have nvcc but no GPU, so the kernels
// would otherwise only ever be compiled. Emulated, every CUDA test runs in CI
// against the CPU references, and so does the device model behind
// `device: 'cuda'`. What the emulator checks and what it cannot see is in
// native/cuda/emulator/README.md; in short: it checks the kernels' logic,
// indexing, barriers and shuffles, launch sizes, the arguments given to
// kernels and copies, and every device allocation's bounds (guard pages); it
// says nothing about speed, the memory model across threads between barriers,
// or the real cuBLAS and driver.
//
// Only this build sees this header: its include folder comes before the
// toolkit's, and it defines NP_CUDA_EMULATOR.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef NP_CUDA_EMULATOR
#error "native/cuda/emulator/include/cuda_runtime.h is for the CUDA emulator build only"
#endif

// ---- the language: qualifiers -----------------------------------------------------
// __shared__: one instance per running block. Blocks run one at a time in the
// whole process (the emulator's device lock), so a static will do; all of them
// sit in one section, which the emulator fills with 0xFF bytes before each
// block, because shared memory starts out as garbage on a GPU and a kernel
// that reads it before writing must not pass by finding zeros or the previous
// block's values.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static __attribute__((section("np_cuda_shared")))

#define CUDART_VERSION 13000

struct uint3 {
  unsigned int x, y, z;
};

// CUDA's 16-byte vector type: a load or store of one is a single 16-byte
// access, which faults on a GPU unless the address is a multiple of 16. Here
// x86 would not care, so our kernels' vector accesses call check_aligned
// (below) in the emulator build.
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

// Set by the scheduler before it switches to a thread (scheduler.cpp). __thread
// rather than thread_local: constant-initialised, so no C++ TLS wrapper call,
// whose null check GCC 12's UBSan gets wrong across a fiber switch.
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;

// ---- the runtime's types ------------------------------------------------------------
// The numbers are the real runtime's, so codes in messages read the same.
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

typedef struct CUstream_st* cudaStream_t;
#define cudaStreamNonBlocking 0x01

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major;
  int minor;
  int multiProcessorCount;
};

const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
// Clears a sticky error so a test can go on; unlike the runtime's, it keeps
// every allocation and stream (the emulator has no context to destroy).
cudaError_t cudaDeviceReset();
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);

// ---- the emulator's interface (scheduler.cpp, device.cpp, cublas.cpp) ------------------
namespace np::cuda::emulator {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

// Runs body(closure) once per thread of the grid, with threadIdx and friends
// set; checks the configuration first (as the runtime does, into the last error).
void run_grid(const LaunchConfig& config, const char* kernel, void (*body)(void*), void* closure);
// Whether p lies in a live device allocation (one past the end counts).
bool is_device_pointer(const void* p);
// A kernel argument that is not device memory: the launch fails (illegal address).
void bad_kernel_argument(const char* kernel, size_t index, const void* p);
// Whether device memory p belongs to the current device, and the fault when it does not.
bool on_current_device(const void* p);
void wrong_device_argument(const char* kernel, size_t index, const void* p);
// A warp's lanes exchange `bits` (down by delta within width); all of mask's lanes must take part.
uint64_t shuffle_down(unsigned mask, uint64_t bits, unsigned delta, int width);
// A kernel's vector access at p: true if p is a multiple of alignment, else a
// fault (misaligned address, sticky) and false; the caller must then skip the
// access (x86 faults on a misaligned aligned-vector instruction too).
bool check_aligned(const void* p, size_t alignment);
// A warp's lanes read `bits` from lane src_lane of their width-wide segment; all of mask's lanes must take part.
uint64_t shuffle_index(unsigned mask, uint64_t bits, int src_lane, int width);
void sync_threads();

template <typename... Params>
class Launch {
 public:
  Launch(const LaunchConfig& config, void (*kernel)(Params...), const char* name)
      : config_(config), kernel_(kernel), name_(name) {}

  // Converted to the kernel's parameter types once, as a launch does; every
  // thread then gets its own copy of them, as on the device.
  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel launched with the wrong number of arguments");
    std::tuple<Params...> params(std::forward<Args>(args)...);
    if (!check_pointers(params, std::index_sequence_for<Params...>{})) return;
    Closure closure{kernel_, &params};
    run_grid(config_, name_, &Launch::run_thread, &closure);
  }

 private:
  struct Closure {
    void (*kernel)(Params...);
    const std::tuple<Params...>* params;
  };
  static void run_thread(void* c) {
    const Closure* closure = static_cast<const Closure*>(c);
    std::tuple<Params...> own = *closure->params;
    std::apply(closure->kernel, own);
  }
  // Raw pointer arguments must point into device memory (a host pointer given
  // to a kernel faults on a GPU); pointers inside struct arguments are not seen.
  template <size_t... I>
  bool check_pointers(const std::tuple<Params...>& params, std::index_sequence<I...>) const {
    bool ok = true;
    ((ok = ok && check_pointer(std::get<I>(params), I)), ...);
    return ok;
  }
  template <typename T>
  bool check_pointer(const T& value, size_t index) const {
    if constexpr (std::is_pointer_v<T>) {
      if (value != nullptr && !is_device_pointer(value)) {
        bad_kernel_argument(name_, index, value);
        return false;
      }
      if (value != nullptr && !on_current_device(value)) {
        wrong_device_argument(name_, index, value);
        return false;
      }
    }
    return true;
  }

  LaunchConfig config_;
  void (*kernel_)(Params...);
  const char* name_;
};

template <typename... Params>
Launch<Params...> launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, void (*kernel)(Params...),
                         const char* name) {
  return Launch<Params...>(LaunchConfig{grid, block, shared_bytes, stream}, kernel, name);
}

// Device memory in use, and the limit beyond which cudaMalloc fails with
// cudaErrorMemoryAllocation (NP_CUDA_EMULATOR_MEMORY, else 8 GiB): tests set it
// to run a model out of memory at a chosen point.
size_t memory_in_use();
void set_memory_limit(size_t bytes);

// Emulated GPUs: NP_CUDA_EMULATOR_DEVICES (default 1, at most 8); tests change it here. Memory
// and streams belong to the device current when they were made (cudaSetDevice, per host
// thread), and a kernel takes only its own device's: another's memory is an illegal address
// (no peer access), another's stream an invalid resource handle.
void set_device_count(int count);
// Device memory in use on one emulated GPU.
size_t memory_in_use_on(int device);

// A launch failure on demand, for tests of what our code does after one: the
// (skip + 1)-th later launch of a kernel whose name contains `kernel` does not
// run and fails with `err`. cudaErrorLaunchOutOfResources fails that launch
// alone (the runtime returns it at launch and the context lives on);
// cudaErrorLaunchFailure or cudaErrorIllegalAddress is a fault, sticky as on a
// GPU, until cudaDeviceReset. One injection is armed at a time; a new one
// replaces it, and clear_launch_failure() disarms it. Returns nothing: whether
// it fired shows in launch_failure_pending().
void fail_launch(const char* kernel, int skip, cudaError_t err);
// How many launches of kernels whose name contains `kernel` have started (those
// refused at launch not counted) since the process began: tests ask which
// kernel ran.
int64_t launches_of(const char* kernel);
bool launch_failure_pending();
void clear_launch_failure();

// Library entry points the emulator stands in for (open_cuda_library, runtime.cu):
// libcublas's four, nothing else.
void* open_library(const char* soname);
void* library_symbol(void* library, const char* name);

}  // namespace np::cuda::emulator

// ---- the language: intrinsics and device functions --------------------------------------
// CUDA's math library is global; the host's <cmath> has these in std only.
using std::isfinite;
using std::isinf;
using std::isnan;

inline void __syncthreads() { np::cuda::emulator::sync_threads(); }

// Double arithmetic rounded to nearest, never fused into an FMA: the emulator
// is compiled with -ffp-contract=off (CMakeLists.txt), so plain operators round
// as the GPU's intrinsics do on every target.
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

// The bits of a float as an unsigned integer (a reinterpretation, no conversion).
inline unsigned int __float_as_uint(float x) {
  unsigned int u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

// Atomics: a block's threads are fibers that switch only at barriers and
// shuffles, and blocks run one at a time, so a plain read-modify-write is
// atomic here. (The order in which threads get their slots is one of the
// orders a GPU could give.)
template <typename T>
T atomicAdd(T* address, T value) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, unsigned int> || std::is_same_v<T, unsigned long long> ||
                    std::is_same_v<T, float> || std::is_same_v<T, double>,
                "atomicAdd: a type CUDA's atomicAdd takes");
  const T old = *address;
  *address = old + value;
  return old;
}

namespace np::cuda::emulator {
// A shuffled value goes through the scheduler as its bits.
template <typename T, typename Exchange>
T shuffle_as_bits(T value, Exchange&& exchange) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a warp shuffle moves a value of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = exchange(bits);
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
}  // namespace np::cuda::emulator

template <typename T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  return np::cuda::emulator::shuffle_as_bits(
      value, [&](uint64_t bits) { return np::cuda::emulator::shuffle_index(mask, bits, src_lane, width); });
}

template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return np::cuda::emulator::shuffle_as_bits(
      value, [&](uint64_t bits) { return np::cuda::emulator::shuffle_down(mask, bits, delta, width); });
}
