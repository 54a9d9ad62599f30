// The CUDA emulator (include/cuda_runtime.h; README.md): kernels run on the
// CPU with every CUDA thread a fiber, device memory is guarded host memory,
// and the runtime calls our code makes are checked as the real runtime would
// (and somewhat stricter).
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
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "fiber.h"

// The CUDA built-in variables (declared in include/cuda_runtime.h).
__thread uint3 threadIdx{0, 0, 0};
__thread uint3 blockIdx{0, 0, 0};
__thread dim3 blockDim;
__thread dim3 gridDim;

struct CUstream_st {
  unsigned flags = 0;
};

namespace np::cuda::emulator {
namespace {

// ---- errors -----------------------------------------------------------------------------
// The last error is per host thread, as in the runtime; a sticky error (a
// fault in a kernel) is the context's, and every later call returns it.
thread_local cudaError_t t_last_error = cudaSuccess;
std::atomic<int> g_sticky_error{cudaSuccess};

cudaError_t sticky() { return static_cast<cudaError_t>(g_sticky_error.load()); }

cudaError_t fail(cudaError_t err) {
  t_last_error = err;
  return err;
}

// A kernel fault: said on stderr (the error code alone would not say where)
// and sticky, as on a GPU.
void fault(cudaError_t err, const std::string& what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what.c_str());
  int expected = cudaSuccess;
  g_sticky_error.compare_exchange_strong(expected, err);
  t_last_error = err;
}

// ---- device memory ------------------------------------------------------------------------
// Every allocation gets its own mapping, ending flush against an inaccessible
// page, so a kernel that reads or writes past the end faults at once; freed
// memory is unmapped, so a use after free faults too. New memory is filled
// with 0xFF bytes (NaN as float, -1 as integer), because cudaMalloc's memory
// is not zeroed and code that forgets to initialise must not pass by luck.
struct Allocation {
  size_t bytes = 0;
  char* map_base = nullptr;
  size_t map_bytes = 0;
};

std::mutex g_memory_mutex;
// One device: kernels, copies, memsets and cudaFree run one at a time, as work
// on one GPU from several host threads would be ordered (and cudaFree waits).
std::mutex g_device_mutex;
std::map<uintptr_t, Allocation> g_allocations;  // by start address
size_t g_allocated = 0;

size_t page_size() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// NP_CUDA_EMULATOR_MEMORY (bytes) lets a test run out of device memory; 8 GiB
// otherwise; set_memory_limit() changes it. Caller holds the mutex.
size_t& limit_bytes() {
  static size_t limit = [] {
    const char* env = std::getenv("NP_CUDA_EMULATOR_MEMORY");
    return env && *env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : (size_t{8} << 30);
  }();
  return limit;
}

size_t memory_limit() {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return limit_bytes();
}

// The allocation holding [p, p + bytes), or nullptr. Caller holds the mutex.
const Allocation* find_allocation(const void* p, size_t bytes, uintptr_t* start) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  if (a > it->first + it->second.bytes || bytes > it->first + it->second.bytes - a) return nullptr;
  if (start) *start = it->first;
  return &it->second;
}

// Freed mappings stay inaccessible for a while before they are unmapped, so
// that a stale pointer faults instead of reaching a newer allocation that got
// the same address (restructuring frees and allocates buffers of equal sizes).
// Caller holds the memory mutex.
constexpr size_t kQuarantineBytes = size_t{256} << 20;
std::deque<Allocation> g_quarantine;
size_t g_quarantined = 0;

void quarantine(const Allocation& a) {
  mprotect(a.map_base, a.map_bytes, PROT_NONE);
  g_quarantine.push_back(a);
  g_quarantined += a.map_bytes;
  while (g_quarantined > kQuarantineBytes || g_quarantine.size() > 4096) {
    munmap(g_quarantine.front().map_base, g_quarantine.front().map_bytes);
    g_quarantined -= g_quarantine.front().map_bytes;
    g_quarantine.pop_front();
  }
}

bool device_range(const void* p, size_t bytes) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return find_allocation(p, bytes, nullptr) != nullptr;
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

// The lanes a warp's waiting shuffle names, and whether all of them wait at it.
unsigned shuffle_lanes(const Block& b, unsigned w0, bool* complete) {
  unsigned mask = 0;
  for (unsigned lane = 0; lane < kWarpSize && w0 + lane < b.threads; ++lane)
    if (b.wait[w0 + lane] == Wait::kShuffle) mask |= b.mask[w0 + lane];
  *complete = mask != 0;
  for (unsigned lane = 0; lane < kWarpSize && *complete; ++lane)
    if (mask >> lane & 1u) *complete = w0 + lane < b.threads && b.wait[w0 + lane] == Wait::kShuffle;
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
    bool complete = false;
    const unsigned mask = shuffle_lanes(b, w0, &complete);
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

// ---- streams ---------------------------------------------------------------------------------
std::mutex g_stream_mutex;
std::set<cudaStream_t> g_streams;

bool valid_stream(cudaStream_t s) {
  if (s == nullptr) return true;  // the default stream
  const std::lock_guard<std::mutex> lock(g_stream_mutex);
  return g_streams.count(s) != 0;
}

}  // namespace

// ---- the interface of include/cuda_runtime.h ------------------------------------------------
bool is_device_pointer(const void* p) { return device_range(p, 0); }

size_t memory_in_use() {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return g_allocated;
}

void set_memory_limit(size_t bytes) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  limit_bytes() = bytes;
}

void bad_kernel_argument(const char* kernel, size_t index, const void* p) {
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", p);
  fault(cudaErrorIllegalAddress, std::string("kernel ") + kernel + ": argument " + std::to_string(index) + " (" +
                                     addr + ") is not device memory");
}

void sync_threads() { wait_as(Wait::kBarrier, "__syncthreads"); }

uint64_t shuffle_down(unsigned mask, uint64_t bits, unsigned delta, int width) {
  Block* b = t_block;
  if (!b) {
    std::fprintf(stderr, "CUDA emulator: __shfl_down_sync called outside a kernel\n");
    std::abort();
  }
  const unsigned me = b->current;
  const unsigned lane = me % kWarpSize;
  // Undefined in CUDA, so the launch fails (the lane goes on with its own value).
  if (!(mask >> lane & 1u)) {
    fault(cudaErrorLaunchFailure, block_name(*b) + ": lane " + std::to_string(lane) +
                                      " calls __shfl_down_sync with a mask that leaves it out");
    mask |= 1u << lane;
  }
  if (width < 1 || width > static_cast<int>(kWarpSize) || (width & (width - 1)) != 0) {
    fault(cudaErrorLaunchFailure, block_name(*b) + ": __shfl_down_sync width " + std::to_string(width) +
                                      " is not a power of two from 1 to 32");
    width = static_cast<int>(kWarpSize);
  }
  b->offered[me] = bits;
  b->mask[me] = mask;
  wait_as(Wait::kShuffle, "__shfl_down_sync");  // every lane has offered its value
  const uint64_t w = static_cast<uint64_t>(width);
  uint64_t got = bits;  // a source past the lane's width-wide segment: its own value
  if (lane % w + delta < w) {
    const uint64_t source = me + static_cast<uint64_t>(delta);
    // The source lane must exist and take part: otherwise the value is undefined on a GPU.
    if (source >= b->threads || !(mask >> (source % kWarpSize) & 1u))
      fault(cudaErrorLaunchFailure, block_name(*b) + ": lane " + std::to_string(lane) + " shuffles down from lane " +
                                        std::to_string(source % kWarpSize) + ", which " +
                                        (source >= b->threads ? "does not exist" : "its mask leaves out"));
    else
      got = b->offered[source];
  }
  wait_as(Wait::kShuffle, "__shfl_down_sync");  // every lane has read before any offers again
  return got;
}

void run_grid(const LaunchConfig& config, const char* kernel, void (*body)(void*), void* closure) {
  if (const cudaError_t s = sticky(); s != cudaSuccess) {
    t_last_error = s;
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
  if (t_block) {
    std::fprintf(stderr, "CUDA emulator: kernel %s launched from inside a kernel\n", kernel);
    std::abort();
  }
  install_fault_reporting();
  const std::lock_guard<std::mutex> device(g_device_mutex);
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

// ---- cuBLAS, the part gemm.cu uses ----------------------------------------------------------
// Column-major C = alpha op(A) op(B) + beta C with the checks and statuses the
// cuBLAS documentation gives, so our row-major mapping onto it is tested.
namespace {

constexpr int kBlasSuccess = 0, kBlasNotInitialized = 1, kBlasInvalidValue = 7, kBlasExecutionFailed = 13;

struct BlasHandle {
  cudaStream_t stream = nullptr;
};

int blas_create(void** handle) {
  if (!handle) return kBlasInvalidValue;
  *handle = new BlasHandle();
  return kBlasSuccess;
}

int blas_destroy(void* handle) {
  if (!handle) return kBlasNotInitialized;
  delete static_cast<BlasHandle*>(handle);
  return kBlasSuccess;
}

int blas_set_stream(void* handle, cudaStream_t stream) {
  if (!handle) return kBlasNotInitialized;
  if (!valid_stream(stream)) return kBlasInvalidValue;
  static_cast<BlasHandle*>(handle)->stream = stream;
  return kBlasSuccess;
}

int blas_sgemm(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
               const float* b, int ldb, const float* beta, float* c, int ldc) {
  if (!handle) return kBlasNotInitialized;
  const auto valid_op = [](int op) { return op == 0 || op == 1 || op == 2; };  // N, T, C (C is T for real numbers)
  if (transa == 2) transa = 1;
  if (transb == 2) transb = 1;
  if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || !alpha || !beta) return kBlasInvalidValue;
  const int a_rows = transa == 0 ? m : k, b_rows = transb == 0 ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return kBlasInvalidValue;
  if (m == 0 || n == 0) return kBlasSuccess;
  const size_t a_cols = static_cast<size_t>(transa == 0 ? k : m), b_cols = static_cast<size_t>(transb == 0 ? n : k);
  const bool a_ok = k == 0 || device_range(a, (static_cast<size_t>(lda) * (a_cols - 1) + a_rows) * sizeof(float));
  const bool b_ok = k == 0 || device_range(b, (static_cast<size_t>(ldb) * (b_cols - 1) + b_rows) * sizeof(float));
  const bool c_ok = device_range(c, (static_cast<size_t>(ldc) * (n - 1) + m) * sizeof(float));
  if (!a_ok || !b_ok || !c_ok) {
    fault(cudaErrorIllegalAddress, std::string("cublasSgemm_v2: matrix ") + (!a_ok ? "A" : !b_ok ? "B" : "C") +
                                       " is not device memory of the size its dimensions give");
    return kBlasExecutionFailed;
  }
  const std::lock_guard<std::mutex> device(g_device_mutex);
  // Column by column of C, with op(B)'s column gathered first, so every inner
  // loop reads memory in order (the emulated device model spends most of its
  // time here).
  const float al = *alpha, be = *beta;
  std::vector<float> b_col(static_cast<size_t>(k)), c_col(static_cast<size_t>(m));
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < k; ++p)
      b_col[p] = transb == 0 ? b[p + static_cast<size_t>(j) * ldb] : b[j + static_cast<size_t>(p) * ldb];
    if (transa == 0) {  // op(A)[:, p] is column p of A: C[:, j] += A[:, p] * B[p, j]
      std::fill(c_col.begin(), c_col.end(), 0.0f);
      for (int p = 0; p < k; ++p) {
        const float* a_col = a + static_cast<size_t>(p) * lda;
        const float bv = b_col[p];
        for (int i = 0; i < m; ++i) c_col[i] += a_col[i] * bv;
      }
    } else {  // op(A)[i, :] is column i of A: C[i, j] = A[:, i] . B[:, j]
      for (int i = 0; i < m; ++i) {
        const float* a_col = a + static_cast<size_t>(i) * lda;
        float s = 0.0f;
        for (int p = 0; p < k; ++p) s += a_col[p] * b_col[p];
        c_col[i] = s;
      }
    }
    float* c_out = c + static_cast<size_t>(j) * ldc;
    for (int i = 0; i < m; ++i) c_out[i] = be == 0.0f ? al * c_col[i] : al * c_col[i] + be * c_out[i];  // beta == 0: C is not read (it may hold NaN)
  }
  return kBlasSuccess;
}

struct Library {
  const char* soname;
  std::map<std::string, void*> symbols;
};

const std::vector<Library>& libraries() {
  static const std::vector<Library> libs = [] {
    std::vector<Library> out;
    for (const char* soname : {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}) {
      out.push_back(Library{soname,
                            {{"cublasCreate_v2", reinterpret_cast<void*>(&blas_create)},
                             {"cublasDestroy_v2", reinterpret_cast<void*>(&blas_destroy)},
                             {"cublasSetStream_v2", reinterpret_cast<void*>(&blas_set_stream)},
                             {"cublasSgemm_v2", reinterpret_cast<void*>(&blas_sgemm)}}});
    }
    return out;
  }();
  return libs;
}

}  // namespace

void* open_library(const char* soname) {
  // NEUROPLASTIC_CUBLAS=0 is gemm.cu's own switch; this one hides the
  // emulated libraries altogether, as on a machine without them.
  const char* none = std::getenv("NP_CUDA_EMULATOR_NO_LIBRARIES");
  if (none && std::strcmp(none, "1") == 0) return nullptr;
  for (const Library& lib : libraries())
    if (std::strcmp(lib.soname, soname) == 0) return const_cast<Library*>(&lib);
  return nullptr;
}

void* library_symbol(void* library, const char* name) {
  if (!library) return nullptr;
  const auto& symbols = static_cast<const Library*>(library)->symbols;
  const auto it = symbols.find(name);
  return it == symbols.end() ? nullptr : it->second;
}

}  // namespace np::cuda::emulator

// ---- the runtime API ------------------------------------------------------------------------
using namespace np::cuda::emulator;

namespace {

#define NP_EMULATOR_STICKY_CHECK()                               \
  do {                                                           \
    if (const cudaError_t s = sticky(); s != cudaSuccess) return fail(s); \
  } while (0)

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
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
};

const ErrorText* error_text(cudaError_t err) {
  for (const ErrorText& e : kErrors)
    if (e.code == err) return &e;
  return nullptr;
}

}  // namespace

const char* cudaGetErrorString(cudaError_t err) {
  const ErrorText* e = error_text(err);
  return e ? e->text : "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t err) {
  const ErrorText* e = error_text(err);
  return e ? e->name : "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() {
  const cudaError_t s = sticky();
  const cudaError_t last = t_last_error;
  t_last_error = cudaSuccess;
  return s != cudaSuccess ? s : last;
}

cudaError_t cudaPeekAtLastError() {
  const cudaError_t s = sticky();
  return s != cudaSuccess ? s : t_last_error;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU)");
  prop->totalGlobalMem = memory_limit();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaDeviceReset() {
  g_sticky_error.store(cudaSuccess);
  t_last_error = cudaSuccess;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  NP_EMULATOR_STICKY_CHECK();
  if (!stream) return fail(cudaErrorInvalidValue);
  cudaStream_t s = new CUstream_st{flags};
  const std::lock_guard<std::mutex> lock(g_stream_mutex);
  g_streams.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  const std::lock_guard<std::mutex> lock(g_stream_mutex);
  if (!stream || g_streams.erase(stream) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  NP_EMULATOR_STICKY_CHECK();  // work runs at launch, so a fault is already known here
  return valid_stream(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  NP_EMULATOR_STICKY_CHECK();
  if (!ptr) return fail(cudaErrorInvalidValue);
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  if (g_allocated > limit_bytes() || bytes > limit_bytes() - g_allocated) return fail(cudaErrorMemoryAllocation);
  const size_t page = page_size();
  const size_t used = round_up(bytes == 0 ? 1 : bytes, 16);  // 16-byte alignment, at most 15 bytes past the end unguarded
  const size_t data = round_up(used, page);
  void* m = mmap(nullptr, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  char* base = static_cast<char*>(m);
  mprotect(base + data, page, PROT_NONE);
  char* p = base + data - used;
  std::memset(p, 0xFF, used);
  g_allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, base, data + page};
  g_allocated += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  const std::lock_guard<std::mutex> device(g_device_mutex);  // waits for running work, as cudaFree does
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  const auto it = g_allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g_allocations.end()) return fail(cudaErrorInvalidDevicePointer);
  quarantine(it->second);
  g_allocated -= it->second.bytes;
  g_allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  NP_EMULATOR_STICKY_CHECK();
  if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  const bool dst_device = device_range(dst, bytes), src_device = device_range(src, bytes);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_device && !is_device_pointer(src); break;
    case cudaMemcpyDeviceToHost: ok = src_device && !is_device_pointer(dst); break;
    case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
    case cudaMemcpyHostToHost: ok = !is_device_pointer(dst) && !is_device_pointer(src); break;
    case cudaMemcpyDefault: ok = true; break;
    default: return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (!ok) {
    std::fprintf(stderr, "CUDA emulator: cudaMemcpyAsync of %zu bytes (kind %d): a side is not the memory its kind says, "
                         "or does not hold that many bytes\n", bytes, static_cast<int>(kind));
    return fail(cudaErrorInvalidValue);
  }
  const std::lock_guard<std::mutex> device(g_device_mutex);
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
  const std::lock_guard<std::mutex> device(g_device_mutex);
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
