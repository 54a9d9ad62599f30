// The CUDA emulator's own tests: it runs kernels as a GPU would where our code
// can tell (barriers, shuffles, per-thread copies of the arguments), and it
// refuses what would fault or hang on a GPU (a barrier some threads never
// reach, a host pointer given to a kernel, a copy in the wrong direction, a
// write past an allocation's end). Built into neuroplastic_cuda_emulated_tests only.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "../../tests/test.h"
#include "cuda/check.cuh"
#include "cuda/runtime.h"

namespace {

namespace nc = np::cuda;

constexpr int kBlock = 256;

// Thread 0 reads what every other thread wrote before the barrier, and the
// last thread what thread 0 wrote: both directions need the barrier.
__global__ void block_sum_kernel(const int* in, int* out) {
  __shared__ int cell[kBlock];
  cell[threadIdx.x] = in[blockIdx.x * kBlock + threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    int s = 0;
    for (int i = 0; i < kBlock; ++i) s += cell[i];
    cell[0] = s;
  }
  __syncthreads();
  if (threadIdx.x == kBlock - 1) out[blockIdx.x] = cell[0];
}

__global__ void warp_sum_kernel(const float* in, float* out, int width) {
  float v = in[threadIdx.x];
  for (int off = width / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off, width);
  out[threadIdx.x] = v;
}

// Each lane takes the value of lane (lane * 3 + 1) % width of its segment.
__global__ void gather_lanes_kernel(const int* in, int* out, int width) {
  const int me = static_cast<int>(threadIdx.x);
  out[me] = __shfl_sync(0xffffffffu, in[me], (me % 32) * 3 + 1, width);
}

// Lanes 0-15 take lane 20's value with a mask of themselves: outside it.
__global__ void gather_outside_mask_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1, 20);
}

// A 16-byte access at base + offset floats.
__global__ void vector_access_kernel(float* base, int offset) {
  if (np::cuda::emulator::check_aligned(base + offset, 16))
    *reinterpret_cast<float4*>(base + offset) = make_float4(1.0f, 2.0f, 3.0f, 4.0f);
}

// Lanes below 16 shuffle while the others wait at __syncthreads: a hang on a GPU.
__global__ void divergent_kernel(float* out) {
  float v = 1.0f;
  if (threadIdx.x < 16)
    v = __shfl_down_sync(0xffffffffu, v, 1);
  else
    __syncthreads();
  out[threadIdx.x] = v;
}

// Reads shared memory it never wrote, then writes it.
__global__ void unwritten_shared_kernel(int* out) {
  __shared__ int cell[32];
  out[blockIdx.x * 32 + threadIdx.x] = cell[threadIdx.x];
  cell[threadIdx.x] = 7;
}

// Lanes 0-15 shuffle with a mask of themselves; lanes 8-15 read from 16-23, outside it.
__global__ void narrow_mask_kernel(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0f, 8);
}

// Each thread changes its own copy of the argument.
__global__ void own_argument_kernel(int* out, int base) {
  base += static_cast<int>(threadIdx.x);
  out[threadIdx.x] = base;
}

__global__ void write_kernel(float* out, int64_t index) { out[index] = 1.0f; }

// Thread t reads what thread t + 1 writes, with no barrier between: a race.
__global__ void racy_kernel(int* out) {
  __shared__ int cell[32];
  cell[threadIdx.x] = -1;
  __syncthreads();
  cell[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[threadIdx.x] = cell[(threadIdx.x + 1) % 32];
}

// A launch that fails leaves a sticky error, as on a GPU; the tests clear it
// (cudaDeviceReset) so the next test starts clean.
void clear_sticky_error() {
  cudaDeviceReset();
  cudaGetLastError();
}

TEST(emulator_barriers_order_shared_memory_between_threads) {
  nc::Stream s;
  const int blocks = 3;
  std::vector<int> in(blocks * kBlock);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 97);
  nc::DeviceBuffer din = nc::to_device(in, s), dout(blocks * sizeof(int));
  NP_LAUNCH(blocks, kBlock, 0, nc::raw(s), block_sum_kernel)(din.as<int>(), dout.as<int>());
  NP_CUDA_CHECK_LAUNCH();
  std::vector<int> out(blocks);
  dout.download(out.data(), out.size() * sizeof(int), s);
  for (int b = 0; b < blocks; ++b) {
    int want = 0;
    for (int i = 0; i < kBlock; ++i) want += in[b * kBlock + i];
    CHECK_EQ(out[b], want);
  }
}

TEST(emulator_shuffles_exchange_values_within_a_warp) {
  nc::Stream s;
  std::vector<float> in(64);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  nc::DeviceBuffer din = nc::to_device(in, s), dout(in.size() * sizeof(float));
  for (const int width : {32, 16}) {
    NP_LAUNCH(1, 64, 0, nc::raw(s), warp_sum_kernel)(din.as<float>(), dout.as<float>(), width);
    NP_CUDA_CHECK_LAUNCH();
    std::vector<float> out(in.size());
    dout.download(out.data(), out.size() * sizeof(float), s);
    // The same tree reduction on the host, every lane: a lane whose source is
    // past its width-wide segment keeps its own value.
    std::vector<float> want(in);
    for (int off = width / 2; off > 0; off /= 2) {
      std::vector<float> next(want);
      for (size_t i = 0; i < want.size(); ++i)
        if (static_cast<int>(i % width) + off < width) next[i] = want[i] + want[i + off];
        else next[i] = want[i] + want[i];
      want = next;
    }
    for (size_t i = 0; i < in.size(); ++i)
      CHECK_MSG(out[i] == want[i], "width %d, lane %zu: %g, want %g", width, i, out[i], want[i]);
    // Lane 0 of each segment holds the segment's sum.
    for (size_t seg = 0; seg < in.size(); seg += static_cast<size_t>(width)) {
      float sum = 0.0f;
      for (int i = 0; i < width; ++i) sum += in[seg + i];
      CHECK_MSG(out[seg] == sum, "width %d, segment at %zu: %g, want %g", width, seg, out[seg], sum);
    }
  }
}

// __shfl_sync reads the source lane modulo the width, within the caller's
// segment; a source outside the mask fails the launch.
TEST(emulator_indexed_shuffles_read_the_lane_asked_for) {
  nc::Stream s;
  std::vector<int> in(64);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(100 + i);
  nc::DeviceBuffer din = nc::to_device(in, s), dout(in.size() * sizeof(int));
  for (const int width : {32, 8}) {
    NP_LAUNCH(1, 64, 0, nc::raw(s), gather_lanes_kernel)(din.as<int>(), dout.as<int>(), width);
    NP_CUDA_CHECK_LAUNCH();
    std::vector<int> out(in.size());
    dout.download(out.data(), out.size() * sizeof(int), s);
    for (int i = 0; i < 64; ++i) {
      const int source = i / width * width + ((i % 32) * 3 + 1) % width;
      CHECK_MSG(out[i] == in[source], "width %d, lane %d: %d, want lane %d's %d", width, i, out[i], source, in[source]);
    }
  }
  NP_LAUNCH(1, 32, 0, nc::raw(s), gather_outside_mask_kernel)(dout.as<int>());
  CHECK_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  clear_sticky_error();
}

// A 16-byte vector access must be 16-byte aligned, as on a GPU (x86 would not mind).
TEST(emulator_faults_on_a_misaligned_vector_access) {
  nc::Stream s;
  nc::DeviceBuffer d(64 * sizeof(float));
  NP_LAUNCH(1, 1, 0, nc::raw(s), vector_access_kernel)(d.as<float>(), 4);
  NP_CUDA_CHECK_LAUNCH();
  std::vector<float> out(8);
  d.download(out.data(), out.size() * sizeof(float), s);
  CHECK(out[4] == 1.0f && out[7] == 4.0f);
  NP_LAUNCH(1, 1, 0, nc::raw(s), vector_access_kernel)(d.as<float>(), 2);
  CHECK_EQ(cudaGetLastError(), cudaErrorMisalignedAddress);
  clear_sticky_error();
}

// Two GPUs: each kernel takes its own device's memory and streams only, as
// without peer access on hardware; copies between devices are allowed.
TEST(emulator_keeps_each_devices_memory_and_streams_to_itself) {
  namespace emu = np::cuda::emulator;
  struct OneDeviceAfter {  // whatever happens below, later tests see one device
    ~OneDeviceAfter() {
      cudaSetDevice(0);
      emu::set_device_count(1);
    }
  } restore;
  emu::set_device_count(2);
  int count = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 2);
  CHECK_EQ(cudaSetDevice(2), cudaErrorInvalidDevice);
  cudaGetLastError();
  CHECK_EQ(cudaSetDevice(0), cudaSuccess);
  nc::Stream s0;
  nc::DeviceBuffer on0(32 * sizeof(int));
  CHECK_EQ(cudaSetDevice(1), cudaSuccess);
  nc::Stream s1;
  nc::DeviceBuffer on1(32 * sizeof(int));
  NP_LAUNCH(1, 32, 0, nc::raw(s1), own_argument_kernel)(on1.as<int>(), 3);  // its own: fine
  NP_CUDA_CHECK_LAUNCH();
  NP_LAUNCH(1, 32, 0, nc::raw(s0), own_argument_kernel)(on1.as<int>(), 3);  // device 0's stream
  CHECK_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
  NP_LAUNCH(1, 32, 0, nc::raw(s1), own_argument_kernel)(on0.as<int>(), 3);  // device 0's memory
  CHECK_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  clear_sticky_error();
  CHECK_EQ(cudaMemcpyAsync(on0.data(), on1.data(), 32 * sizeof(int), cudaMemcpyDeviceToDevice, nc::raw(s1)), cudaSuccess);
  std::vector<int> out(32);
  CHECK_EQ(cudaSetDevice(0), cudaSuccess);
  on0.download(out.data(), out.size() * sizeof(int), s0);
  CHECK_EQ(out[31], 34);
  CHECK_EQ(emu::memory_in_use_on(1), 32 * sizeof(int));
}

TEST(emulator_gives_every_thread_its_own_arguments) {
  nc::Stream s;
  nc::DeviceBuffer d(32 * sizeof(int));
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 100);
  std::vector<int> out(32);
  d.download(out.data(), out.size() * sizeof(int), s);
  for (int i = 0; i < 32; ++i) CHECK_EQ(out[i], 100 + i);
}

TEST(emulator_fails_a_launch_whose_threads_wait_at_different_barriers) {
  nc::Stream s;
  nc::DeviceBuffer d(32 * sizeof(float));
  NP_LAUNCH(1, 32, 0, nc::raw(s), divergent_kernel)(d.as<float>());
  bool threw = false;
  try {
    s.synchronize();
  } catch (const nc::CudaError& e) {
    threw = e.code() == cudaErrorLaunchFailure;
  }
  CHECK(threw);
  clear_sticky_error();
}

TEST(emulator_shows_a_race_between_threads_in_one_of_its_two_orders) {
  nc::Stream s;
  nc::DeviceBuffer d(32 * sizeof(int));
  NP_LAUNCH(1, 32, 0, nc::raw(s), racy_kernel)(d.as<int>());
  std::vector<int> out(32);
  d.download(out.data(), out.size() * sizeof(int), s);
  const char* order = std::getenv("NP_CUDA_EMULATOR_ORDER");
  const bool reverse = order && std::strcmp(order, "reverse") == 0;
  // First to last, thread 0 reads before thread 1 writes; last to first, thread 31 before thread 0.
  CHECK_EQ(out[reverse ? 31 : 0], -1);
  CHECK_EQ(out[reverse ? 0 : 31], reverse ? 1 : 0);
}

TEST(emulator_shared_memory_starts_as_garbage_in_every_block) {
  nc::Stream s;
  nc::DeviceBuffer d(2 * 32 * sizeof(int));
  NP_LAUNCH(2, 32, 0, nc::raw(s), unwritten_shared_kernel)(d.as<int>());
  NP_CUDA_CHECK_LAUNCH();
  std::vector<int> out(64);
  d.download(out.data(), out.size() * sizeof(int), s);
  // Not zero, and not the 7 the first block left: 0xFF bytes in each block.
  for (int i = 0; i < 64; ++i) CHECK_MSG(out[i] == -1, "block %d, thread %d read %d", i / 32, i % 32, out[i]);
}

TEST(emulator_fails_a_shuffle_from_a_lane_outside_the_mask) {
  nc::Stream s;
  nc::DeviceBuffer d(32 * sizeof(float));
  NP_LAUNCH(1, 32, 0, nc::raw(s), narrow_mask_kernel)(d.as<float>());
  CHECK_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  clear_sticky_error();
}

TEST(emulator_refuses_a_freed_pointer_even_when_its_size_is_allocated_again) {
  nc::Stream s;
  void* stale = nullptr;
  {
    nc::DeviceBuffer a(40 * sizeof(int));
    stale = a.data();
  }
  nc::DeviceBuffer b(40 * sizeof(int));
  CHECK(b.data() != stale);  // freed memory is kept out of reach for a while, not handed out again
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(static_cast<int*>(stale), 0);
  CHECK_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  clear_sticky_error();
  CHECK_EQ(cudaFree(stale), cudaErrorInvalidDevicePointer);  // and freeing it twice is refused
  cudaGetLastError();
}

TEST(emulator_refuses_host_pointers_and_bad_launch_sizes) {
  nc::Stream s;
  std::vector<int> host(32);
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(host.data(), 0);
  CHECK_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  CHECK_EQ(host[1], 0);  // the kernel did not run
  clear_sticky_error();

  nc::DeviceBuffer d(32 * sizeof(int));
  NP_LAUNCH(1, 2048, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 0);  // more than 1024 threads
  bool threw = false;
  try {
    NP_CUDA_CHECK_LAUNCH();
  } catch (const nc::CudaError& e) {
    threw = e.code() == cudaErrorInvalidConfiguration;
  }
  CHECK(threw);
  // Not sticky: the next launch works.
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 7);
  NP_CUDA_CHECK_LAUNCH();
  std::vector<int> out(32);
  d.download(out.data(), out.size() * sizeof(int), s);
  CHECK_EQ(out[31], 38);
}

// fail_launch: the chosen launch of the named kernel fails and does not run,
// the others run; out of resources is that launch's alone, a fault is sticky.
TEST(emulator_fails_the_launch_a_test_asks_it_to) {
  namespace emu = np::cuda::emulator;
  nc::Stream s;
  nc::DeviceBuffer d(32 * sizeof(int));
  std::vector<int> out(32);
  emu::fail_launch("own_argument", 1, cudaErrorLaunchOutOfResources);
  NP_LAUNCH(1, 32, 0, nc::raw(s), write_kernel)(static_cast<float*>(d.data()), 0);  // another kernel: not counted
  CHECK(emu::launch_failure_pending());
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 1);  // skipped over
  NP_CUDA_CHECK_LAUNCH();
  CHECK(emu::launch_failure_pending());
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 100);  // fails
  CHECK(!emu::launch_failure_pending());
  CHECK_EQ(cudaGetLastError(), cudaErrorLaunchOutOfResources);
  d.download(out.data(), out.size() * sizeof(int), s);  // not sticky: the context works
  CHECK_EQ(out[31], 32);  // the second launch's numbers: the third did not run

  emu::fail_launch("own_argument", 0, cudaErrorIllegalAddress);
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 5);
  bool sticky = false;
  try {
    s.synchronize();
  } catch (const nc::CudaError& e) {
    sticky = e.code() == cudaErrorIllegalAddress;
  }
  CHECK(sticky);
  CHECK_EQ(cudaMemsetAsync(d.data(), 0, 4, nc::raw(s)), cudaErrorIllegalAddress);  // every later call
  clear_sticky_error();

  emu::fail_launch("own_argument", 0, cudaErrorLaunchOutOfResources);
  emu::clear_launch_failure();
  NP_LAUNCH(1, 32, 0, nc::raw(s), own_argument_kernel)(d.as<int>(), 9);
  NP_CUDA_CHECK_LAUNCH();
  d.download(out.data(), out.size() * sizeof(int), s);
  CHECK_EQ(out[0], 9);
}

TEST(emulator_memory_is_not_zeroed_and_copies_check_their_direction) {
  nc::Stream s;
  nc::DeviceBuffer d(16 * sizeof(float));
  std::vector<float> out(16, 0.0f);
  d.download(out.data(), out.size() * sizeof(float), s);
  CHECK(std::isnan(out[0]) && std::isnan(out[15]));  // as cudaMalloc: garbage, here NaN

  std::vector<float> host(16, 2.0f);
  CHECK_EQ(cudaMemcpyAsync(host.data(), d.data(), 64, cudaMemcpyHostToDevice, nc::raw(s)), cudaErrorInvalidValue);
  CHECK_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  CHECK_EQ(host[0], 2.0f);
  CHECK_EQ(cudaMemcpyAsync(d.data(), host.data(), 128, cudaMemcpyHostToDevice, nc::raw(s)), cudaErrorInvalidValue);
  cudaGetLastError();

  // cudaMemcpyDefault infers the kinds, but a device side must still hold the bytes; areas may not overlap.
  CHECK_EQ(cudaMemcpyAsync(d.data(), host.data(), 128, cudaMemcpyDefault, nc::raw(s)), cudaErrorInvalidValue);
  CHECK_EQ(cudaMemcpyAsync(d.data(), host.data(), 64, cudaMemcpyDefault, nc::raw(s)), cudaSuccess);
  CHECK_EQ(cudaMemcpyAsync(d.as<float>() + 2, d.data(), 32, cudaMemcpyDeviceToDevice, nc::raw(s)), cudaErrorInvalidValue);
  cudaGetLastError();

  void* p = nullptr;
  CHECK_EQ(cudaMalloc(&p, size_t{1} << 50), cudaErrorMemoryAllocation);
  cudaGetLastError();
  bool threw = false;
  try {
    nc::DeviceBuffer huge(size_t{1} << 50);
  } catch (const nc::CudaError& e) {
    threw = e.code() == cudaErrorMemoryAllocation;
  }
  CHECK(threw);
}

TEST(emulator_faults_on_a_write_past_an_allocations_end) {
  // In a child process: the fault ends it, as a GPU fault ends a context.
  std::printf("    the child process below faults on purpose:\n");
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    nc::Stream s;
    nc::DeviceBuffer d(10 * sizeof(float));
    NP_LAUNCH(1, 1, 0, nc::raw(s), write_kernel)(d.as<float>(), 10 + 4);  // past the 16-byte rounding too
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer takes the fault over: it reports it and ends the child its own way.
  CHECK_MSG(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0), "the child ended with status %d", status);
#else
  CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the child ended with status %d", status);
#endif

  // In bounds it is an ordinary write.
  nc::Stream s;
  nc::DeviceBuffer d(10 * sizeof(float));
  NP_LAUNCH(1, 1, 0, nc::raw(s), write_kernel)(d.as<float>(), 9);
  NP_CUDA_CHECK_LAUNCH();
}

TEST(emulator_cublas_checks_its_arguments_as_documented) {
  const char* hidden = std::getenv("NP_CUDA_EMULATOR_NO_LIBRARIES");
  if (hidden && std::strcmp(hidden, "1") == 0) {
    std::printf("    NP_CUDA_EMULATOR_NO_LIBRARIES=1: no emulated cuBLAS to check\n");
    return;
  }
  std::string loaded, why;
  void* lib = nc::open_cuda_library({"libcublas.so.13"}, {"cublasSgemm_v2"}, &loaded, &why);
  CHECK(lib != nullptr);
  if (!lib) return;
  using Sgemm = int (*)(void*, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
  using Create = int (*)(void**);
  using Destroy = int (*)(void*);
  auto sgemm = reinterpret_cast<Sgemm>(nc::cuda_library_symbol(lib, "cublasSgemm_v2"));
  auto create = reinterpret_cast<Create>(nc::cuda_library_symbol(lib, "cublasCreate_v2"));
  auto destroy = reinterpret_cast<Destroy>(nc::cuda_library_symbol(lib, "cublasDestroy_v2"));
  void* handle = nullptr;
  CHECK_EQ(create(&handle), 0);
  nc::Stream s;
  // Column-major 2x3 A times 3x2 B.
  const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{1, 0, 1, 0, 1, 1};
  nc::DeviceBuffer da = nc::to_device(a, s), db = nc::to_device(b, s), dc(4 * sizeof(float));
  const float one = 1.0f, zero = 0.0f;
  CHECK_EQ(sgemm(handle, 0, 0, 2, 2, 3, &one, da.as<float>(), 2, db.as<float>(), 3, &zero, dc.as<float>(), 2), 0);
  std::vector<float> c(4);
  dc.download(c.data(), c.size() * sizeof(float), s);
  // C = A B: column 0 = A[:,0] + A[:,2] = (6, 8); column 1 = A[:,1] + A[:,2] = (8, 10).
  CHECK(c[0] == 6 && c[1] == 8 && c[2] == 8 && c[3] == 10);
  // lda below the rows of A: CUBLAS_STATUS_INVALID_VALUE.
  CHECK_EQ(sgemm(handle, 0, 0, 2, 2, 3, &one, da.as<float>(), 1, db.as<float>(), 3, &zero, dc.as<float>(), 2), 7);
  CHECK_EQ(destroy(handle), 0);
}

}  // namespace
