// The CUDA emulator's kernel launches (include/cuda_runtime.h; README.md).
//
// Scheduling. A grid's blocks run one after another on the launching thread.
// A block's threads are fibers (fiber.h) started in order; each runs until it
// finishes or waits at __syncthreads or a shuffle, then the next runs. When
// none can run, the waits are resolved: a warp whose lanes all wait at a
// shuffle goes on; if every thread waits at __syncthreads, they all go on;
// anything else (some threads at a barrier the others never reach, or have
// passed by finishing) is a hang or undefined behaviour on a GPU, and fails
// the launch.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "device.h"
#include "fiber.h"

// The CUDA built-in variables (declared in include/cuda_runtime.h).
__thread uint3 threadIdx{0, 0, 0};
__thread uint3 blockIdx{0, 0, 0};
__thread dim3 blockDim;
__thread dim3 gridDim;

namespace np::cuda::emulator {
namespace {

size_t page_size() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// ---- fibers and the block scheduler -----------------------------------------------------
constexpr size_t kStackBytes = 256 * 1024;
constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxBlockThreads = 1024;

enum class Wait : uint8_t { kRunnable, kBarrier, kShuffle, kDone };

struct Block {
  const char* kernel = "";
  void (*body)(void*) = nullptr;
  void* closure = nullptr;
  unsigned threads = 0;
  unsigned current = 0;
  std::vector<Wait> wait;
  std::vector<uint3> index;
  std::vector<Fiber> fiber;
  Fiber scheduler;
  std::vector<uint64_t> offered;   // the value each thread gives its current shuffle
  std::vector<unsigned> mask;      // the mask of each thread's current shuffle
  std::deque<unsigned> ready;      // threads that may run, in the order they will
  unsigned done = 0, at_barrier = 0;
  // Per warp: lanes waiting at a shuffle, and the lanes their masks name.
  std::vector<unsigned> shuffle_waiting, shuffle_named;
};

// Per host thread: the block running and the fiber stacks (kept between
// launches; each with an inaccessible page below it, so an overflow faults).
thread_local Block* t_block = nullptr;
thread_local std::vector<char*> t_stacks;

char* stack_for(unsigned i) {
  while (t_stacks.size() <= i) {
    const size_t guard = page_size();
    void* m = mmap(nullptr, kStackBytes + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "CUDA emulator: no memory for a thread's stack\n");
      std::abort();
    }
    mprotect(m, guard, PROT_NONE);
    t_stacks.push_back(static_cast<char*>(m) + guard);
  }
  return t_stacks[i];
}

[[noreturn]] void fiber_main() {
  Block* b = t_block;
  b->body(b->closure);
  b->wait[b->current] = Wait::kDone;
  exit_fiber(b->fiber[b->current], b->scheduler);
}

// The running thread stops here until the scheduler lets it go on.
void wait_as(Wait why, const char* what) {
  Block* b = t_block;
  if (!b) {
    std::fprintf(stderr, "CUDA emulator: %s called outside a kernel\n", what);
    std::abort();
  }
  const unsigned me = b->current;
  b->wait[me] = why;
  switch_fiber(b->fiber[me], b->scheduler);
}

std::string block_name(const Block& b) {
  return std::string("kernel ") + b.kernel + ", block (" + std::to_string(blockIdx.x) + "," +
         std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + ")";
}

// NP_CUDA_EMULATOR_ORDER=reverse runs a block's threads last to first. A
// kernel that reads another thread's write without a barrier between gets the
// old value in one of the two orders, so a test that passes in both has no
// such race among the threads it runs (the native test script runs both).
bool reverse_order() {
  static const bool reverse = [] {
    const char* env = std::getenv("NP_CUDA_EMULATOR_ORDER");
    return env && std::strcmp(env, "reverse") == 0;
  }();
  return reverse;
}

void make_ready(Block& b, unsigned t) {
  b.wait[t] = Wait::kRunnable;
  b.ready.push_back(t);
}

// Threads [first, first + count), those `named` (a lane mask, bit i = first + i) or all, made
// ready in the block's order.
void make_ready_in_order(Block& b, unsigned first, unsigned count, uint64_t named = ~uint64_t{0}) {
  for (unsigned i = 0; i < count; ++i) {
    const unsigned k = reverse_order() ? count - 1 - i : i;
    if (named >> (k % 64) & 1u) make_ready(b, first + k);
  }
}

// The lanes named by the masks of a warp's lanes that wait at a shuffle.
unsigned shuffle_lanes(const Block& b, unsigned w0) {
  unsigned mask = 0;
  for (unsigned lane = 0; lane < kWarpSize && w0 + lane < b.threads; ++lane)
    if (b.wait[w0 + lane] == Wait::kShuffle) mask |= b.mask[w0 + lane];
  return mask;
}

// Thread t has stopped: finished, or waiting at __syncthreads or a shuffle.
// The last thread to reach __syncthreads, or the last lane a shuffle names,
// lets them all go on.
void on_stop(Block& b, unsigned t) {
  switch (b.wait[t]) {
    case Wait::kDone:
      ++b.done;
      break;
    case Wait::kBarrier:
      if (++b.at_barrier == b.threads) {
        b.at_barrier = 0;
        make_ready_in_order(b, 0, b.threads);
      }
      break;
    case Wait::kShuffle: {
      // Every lane's mask names itself (shuffle_down checks), so the waiting
      // lanes are the named ones once there are as many.
      const unsigned w = t / kWarpSize;
      b.shuffle_named[w] |= b.mask[t];
      if (++b.shuffle_waiting[w] == static_cast<unsigned>(__builtin_popcount(b.shuffle_named[w]))) {
        const unsigned named = b.shuffle_named[w];
        b.shuffle_waiting[w] = b.shuffle_named[w] = 0;
        make_ready_in_order(b, w * kWarpSize, std::min(kWarpSize, b.threads - w * kWarpSize), named);
      }
      break;
    }
    case Wait::kRunnable:
      break;
  }
}

// A failed block's threads never run again.
bool abandon_block(Block& b) {
  for (unsigned t = 0; t < b.threads; ++t)
    if (b.wait[t] != Wait::kDone) abandon_fiber(b.fiber[t]);
  return false;
}

// No thread can run, and not all have finished: says why, fails the launch.
bool fail_stuck_block(Block& b) {
  for (unsigned w0 = 0; w0 < b.threads; w0 += kWarpSize) {
    const unsigned mask = shuffle_lanes(b, w0);
    for (unsigned lane = 0; lane < kWarpSize && mask; ++lane) {
      const unsigned t = w0 + lane;
      if (!(mask >> lane & 1u) || (t < b.threads && b.wait[t] == Wait::kShuffle)) continue;
      fault(cudaErrorLaunchFailure,
            block_name(b) + ": a shuffle's mask names lane " + std::to_string(lane) + " of warp " +
                std::to_string(w0 / kWarpSize) + ", which " +
                (t >= b.threads ? "does not exist" : b.wait[t] == Wait::kDone ? "has finished" : "waits at __syncthreads"));
      return abandon_block(b);
    }
  }
  if (b.at_barrier + b.done == b.threads) {
    // CUDA allows __syncthreads in conditional code only where the condition
    // is the same across the block; GPUs may hang or go on, so it is refused.
    fault(cudaErrorLaunchFailure, block_name(b) + ": " + std::to_string(b.done) +
                                      " threads finished without reaching a __syncthreads the other " +
                                      std::to_string(b.at_barrier) + " wait at (a barrier in divergent code)");
    return abandon_block(b);
  }
  fault(cudaErrorLaunchFailure, block_name(b) + ": threads wait at different barriers (" +
                                    std::to_string(b.at_barrier) + " at __syncthreads, " + std::to_string(b.done) +
                                    " finished, the rest at a shuffle): the kernel would hang on a GPU");
  return abandon_block(b);
}

// Thread t, ready to start at the kernel's first line.
void start_fiber(Block& b, unsigned t) { prepare_fiber(b.fiber[t], stack_for(t), kStackBytes, fiber_main); }

// Every __shared__ variable (include/cuda_runtime.h) lies between these; weak,
// for a program with none.
extern "C" __attribute__((weak)) char __start_np_cuda_shared[];
extern "C" __attribute__((weak)) char __stop_np_cuda_shared[];

// Garbage in shared memory before each block, byte by byte: under
// AddressSanitizer the section also holds the redzones between the variables,
// which a memset (checked by ASan) would be reported for.
__attribute__((no_sanitize_address)) void scramble_shared_memory() {
  if (!__start_np_cuda_shared || !__stop_np_cuda_shared) return;
  for (volatile char* p = __start_np_cuda_shared; p < __stop_np_cuda_shared; ++p) *p = static_cast<char>(0xFF);
}

// Runs one block to the end: each ready thread in turn until it stops.
// Returns false when the launch failed.
bool run_block(Block& b) {
  b.ready.clear();
  b.done = b.at_barrier = 0;
  b.shuffle_waiting.assign((b.threads + kWarpSize - 1) / kWarpSize, 0);
  b.shuffle_named.assign(b.shuffle_waiting.size(), 0);
  scramble_shared_memory();
  for (unsigned t = 0; t < b.threads; ++t) start_fiber(b, t);
  make_ready_in_order(b, 0, b.threads);
  while (!b.ready.empty()) {
    const unsigned t = b.ready.front();
    b.ready.pop_front();
    b.current = t;
    threadIdx = b.index[t];
    switch_fiber(b.scheduler, b.fiber[t]);
    on_stop(b, t);
  }
  return b.done == b.threads ? true : fail_stuck_block(b);
}

// ---- memory faults inside kernels ------------------------------------------------------------
// A fault in an emulated kernel says which kernel, block and thread before the
// process dies as it would have without the handler.
thread_local bool t_fault_reporting = false;

struct sigaction g_previous_segv, g_previous_bus;

void on_fault(int sig, siginfo_t* info, void* context) {
  if (const Block* b = t_block) {
    char line[512];
    const int n = std::snprintf(line, sizeof line,
                                "CUDA emulator: memory fault in kernel %s, block (%u,%u,%u), thread (%u,%u,%u): an "
                                "index outside a device allocation, freed memory, or host memory the kernel may "
                                "not touch\n",
                                b->kernel, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    if (n > 0) (void)!write(2, line, static_cast<size_t>(n));
  }
  // Whatever handled the signal before (node's WebAssembly traps, AddressSanitizer) handles it
  // now; with none, the default action ends the process when the access runs again.
  const struct sigaction& previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) return previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    return previous.sa_handler(sig);
  }
  signal(sig, SIG_DFL);
}

// The handler runs on an alternate stack, since a fault may be a fiber's stack
// overflowing. A thread that has one already (AddressSanitizer gives every
// thread its own, and frees it at the thread's end) keeps it; otherwise it
// gets one that is never freed, because a thread may not free the stack it
// has registered (libuv's few pool threads and the test's own: a few 64 KiB).
void install_fault_reporting() {
  if (t_fault_reporting) return;
  t_fault_reporting = true;
  stack_t current{};
  if (sigaltstack(nullptr, &current) != 0 || (current.ss_flags & SS_DISABLE)) {
    const size_t bytes = 64 * 1024;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      stack_t ss{};
      ss.ss_sp = m;
      ss.ss_size = bytes;
      sigaltstack(&ss, nullptr);
    }
  }
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

// The armed launch failure (fail_launch), shared by every host thread.
struct InjectedFailure {
  std::string kernel;
  int skip = 0;
  cudaError_t err = cudaSuccess;  // cudaSuccess: none armed
};
std::mutex g_injection_mutex;
InjectedFailure g_injection;

// Launches run so far, by kernel name (launches_of).
std::mutex g_launch_count_mutex;
std::vector<std::pair<std::string, int64_t>> g_launch_counts;

void count_launch(const char* kernel) {
  const std::lock_guard<std::mutex> lock(g_launch_count_mutex);
  for (auto& [name, count] : g_launch_counts)
    if (name == kernel) {
      ++count;
      return;
    }
  g_launch_counts.emplace_back(kernel, 1);
}

// Whether this launch is the one fail_launch asked to fail (and then disarms it).
bool injected_failure(const char* kernel, cudaError_t* err) {
  const std::lock_guard<std::mutex> lock(g_injection_mutex);
  if (g_injection.err == cudaSuccess || std::strstr(kernel, g_injection.kernel.c_str()) == nullptr) return false;
  if (g_injection.skip-- > 0) return false;
  *err = g_injection.err;
  g_injection = InjectedFailure{};
  return true;
}

}  // namespace

void fail_launch(const char* kernel, int skip, cudaError_t err) {
  const bool known = err == cudaErrorLaunchOutOfResources || err == cudaErrorLaunchFailure || err == cudaErrorIllegalAddress;
  if (kernel == nullptr || *kernel == '\0' || skip < 0 || !known) {
    std::fprintf(stderr, "CUDA emulator: fail_launch needs a kernel name, skip >= 0 and a launch error\n");
    std::abort();
  }
  const std::lock_guard<std::mutex> lock(g_injection_mutex);
  g_injection = InjectedFailure{kernel, skip, err};
}

int64_t launches_of(const char* kernel) {
  const std::lock_guard<std::mutex> lock(g_launch_count_mutex);
  int64_t total = 0;
  for (const auto& [name, count] : g_launch_counts)
    if (name.find(kernel) != std::string::npos) total += count;
  return total;
}

bool launch_failure_pending() {
  const std::lock_guard<std::mutex> lock(g_injection_mutex);
  return g_injection.err != cudaSuccess;
}

void clear_launch_failure() {
  const std::lock_guard<std::mutex> lock(g_injection_mutex);
  g_injection = InjectedFailure{};
}

bool on_current_device(const void* p) { return allocation_device(p) == current_device(); }

void wrong_device_argument(const char* kernel, size_t index, const void* p) {
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", p);
  fault(cudaErrorIllegalAddress, std::string("kernel ") + kernel + ": argument " + std::to_string(index) + " (" + addr +
                                     ") is memory of device " + std::to_string(allocation_device(p)) +
                                     ", the kernel runs on device " + std::to_string(current_device()) + " (no peer access)");
}

void bad_kernel_argument(const char* kernel, size_t index, const void* p) {
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", p);
  fault(cudaErrorIllegalAddress, std::string("kernel ") + kernel + ": argument " + std::to_string(index) + " (" +
                                     addr + ") is not device memory");
}

void sync_threads() { wait_as(Wait::kBarrier, "__syncthreads"); }

// One warp shuffle: every lane offers `bits` and takes the value of the lane
// source(lane) names (its own when source says none), after all of mask's
// lanes have offered. `name` is the intrinsic, for messages.
template <typename Source>
uint64_t shuffle(const char* name, unsigned mask, uint64_t bits, int width, Source&& source_of) {
  Block* b = t_block;
  if (!b) {
    std::fprintf(stderr, "CUDA emulator: %s called outside a kernel\n", name);
    std::abort();
  }
  const unsigned me = b->current;
  const unsigned lane = me % kWarpSize;
  // Undefined in CUDA, so the launch fails (the lane goes on with its own value).
  if (!(mask >> lane & 1u)) {
    fault(cudaErrorLaunchFailure, block_name(*b) + ": lane " + std::to_string(lane) + " calls " + name +
                                      " with a mask that leaves it out");
    mask |= 1u << lane;
  }
  if (width < 1 || width > static_cast<int>(kWarpSize) || (width & (width - 1)) != 0) {
    fault(cudaErrorLaunchFailure, block_name(*b) + ": " + name + " width " + std::to_string(width) +
                                      " is not a power of two from 1 to 32");
    width = static_cast<int>(kWarpSize);
  }
  b->offered[me] = bits;
  b->mask[me] = mask;
  wait_as(Wait::kShuffle, name);  // every lane has offered its value
  uint64_t got = bits;
  const int64_t from_lane = source_of(lane, static_cast<unsigned>(width));  // < 0: its own value
  if (from_lane >= 0) {
    const uint64_t source = me - lane + static_cast<uint64_t>(from_lane);
    // The source lane must exist and take part: otherwise the value is undefined on a GPU.
    if (source >= b->threads || !(mask >> (source % kWarpSize) & 1u))
      fault(cudaErrorLaunchFailure, block_name(*b) + ": lane " + std::to_string(lane) + " calls " + name + " from lane " +
                                        std::to_string(source % kWarpSize) + ", which " +
                                        (source >= b->threads ? "does not exist" : "its mask leaves out"));
    else
      got = b->offered[source];
  }
  wait_as(Wait::kShuffle, name);  // every lane has read before any offers again
  return got;
}

bool check_aligned(const void* p, size_t alignment) {
  if (reinterpret_cast<uintptr_t>(p) % alignment == 0) return true;
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", p);
  const std::string where = t_block ? block_name(*t_block) : std::string("host code");
  fault(cudaErrorMisalignedAddress, where + ": a " + std::to_string(alignment) + "-byte access at " + addr + " is not aligned to it");
  return false;
}

uint64_t shuffle_down(unsigned mask, uint64_t bits, unsigned delta, int width) {
  return shuffle("__shfl_down_sync", mask, bits, width, [delta](unsigned lane, unsigned w) -> int64_t {
    // A source past the lane's width-wide segment: its own value.
    return uint64_t{lane % w} + delta < w ? static_cast<int64_t>(lane) + delta : -1;
  });
}

uint64_t shuffle_index(unsigned mask, uint64_t bits, int src_lane, int width) {
  return shuffle("__shfl_sync", mask, bits, width, [src_lane](unsigned lane, unsigned w) -> int64_t {
    // CUDA takes srcLane modulo the width, within the caller's segment.
    return static_cast<int64_t>(lane / w * w + static_cast<unsigned>(src_lane) % w);
  });
}

void run_grid(const LaunchConfig& config, const char* kernel, void (*body)(void*), void* closure) {
  if (const cudaError_t s = sticky(); s != cudaSuccess) {
    fail(s);
    return;
  }
  const dim3 g = config.grid, k = config.block;
  const uint64_t threads = uint64_t{k.x} * k.y * k.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0 || threads > kMaxBlockThreads || k.z > 64 ||
      g.x > 2147483647u || g.y > 65535u || g.z > 65535u) {
    std::fprintf(stderr, "CUDA emulator: kernel %s launched with grid (%u,%u,%u) and block (%u,%u,%u)\n", kernel, g.x,
                 g.y, g.z, k.x, k.y, k.z);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (config.shared_bytes != 0) {  // none of our kernels uses dynamic shared memory
    std::fprintf(stderr, "CUDA emulator: kernel %s asks for dynamic shared memory, which is not emulated\n", kernel);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (!valid_stream(config.stream)) {
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  if (stream_device(config.stream) != current_device()) {
    std::fprintf(stderr, "CUDA emulator: kernel %s launched on device %d into a stream of device %d\n", kernel,
                 current_device(), stream_device(config.stream));
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  if (cudaError_t injected; injected_failure(kernel, &injected)) {
    const std::string what = std::string("kernel ") + kernel + " failed on purpose (fail_launch): " + cudaGetErrorName(injected);
    if (injected == cudaErrorLaunchOutOfResources) {
      fail(injected);  // refused at launch; the context lives on
    } else {
      fault(injected, what);
    }
    return;
  }
  if (t_block) {
    std::fprintf(stderr, "CUDA emulator: kernel %s launched from inside a kernel\n", kernel);
    std::abort();
  }
  install_fault_reporting();
  count_launch(kernel);
  const std::lock_guard<std::mutex> device(device_mutex());
  Block b;
  b.kernel = kernel;
  b.body = body;
  b.closure = closure;
  b.threads = static_cast<unsigned>(threads);
  b.wait.resize(b.threads);
  b.index.resize(b.threads);
  b.fiber.resize(b.threads);
  b.offered.resize(b.threads);
  b.mask.resize(b.threads);
  for (unsigned z = 0, t = 0; z < k.z; ++z)
    for (unsigned y = 0; y < k.y; ++y)
      for (unsigned x = 0; x < k.x; ++x) b.index[t++] = uint3{x, y, z};
  gridDim = g;
  blockDim = k;
  t_block = &b;
  bool ok = true;
  for (unsigned z = 0; ok && z < g.z; ++z)
    for (unsigned y = 0; ok && y < g.y; ++y)
      for (unsigned x = 0; ok && x < g.x; ++x) {
        blockIdx = uint3{x, y, z};
        ok = run_block(b);
      }
  t_block = nullptr;
}

}  // namespace np::cuda::emulator
