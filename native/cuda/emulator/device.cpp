// device.h: errors, the device lock, device memory and streams, with the
// runtime calls that allocate and free them.
#include "device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>

struct CUstream_st {
  unsigned flags = 0;
  int device = 0;
};

namespace np::cuda::emulator {

// ---- errors -----------------------------------------------------------------------------
namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
std::atomic<int> g_sticky_error{cudaSuccess};
}  // namespace

cudaError_t sticky() { return static_cast<cudaError_t>(g_sticky_error.load()); }

cudaError_t fail(cudaError_t err) {
  t_last_error = err;
  return err;
}

void fault(cudaError_t err, const std::string& what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what.c_str());
  int expected = cudaSuccess;
  g_sticky_error.compare_exchange_strong(expected, err);
  t_last_error = err;
}

cudaError_t last_error(bool take) {
  const cudaError_t s = sticky();
  const cudaError_t last = t_last_error;
  if (take) t_last_error = cudaSuccess;
  return s != cudaSuccess ? s : last;
}

void clear_errors() {
  g_sticky_error.store(cudaSuccess);
  t_last_error = cudaSuccess;
}

std::mutex& device_mutex() {
  static std::mutex m;
  return m;
}

// ---- device memory ------------------------------------------------------------------------
// Every allocation gets its own mapping, ending flush against an inaccessible
// page, so a kernel that reads or writes past the end faults at once; freed
// memory is made inaccessible (and unmapped later: quarantine below), so a use
// after free faults too. New memory is filled
// with 0xFF bytes (NaN as float, -1 as integer), because cudaMalloc's memory
// is not zeroed and code that forgets to initialise must not pass by luck.
namespace {

struct Allocation {
  size_t bytes = 0;
  char* map_base = nullptr;
  size_t map_bytes = 0;
  int device = 0;
};

std::mutex g_memory_mutex;
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

}  // namespace

size_t memory_limit() {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return limit_bytes();
}

bool device_range(const void* p, size_t bytes) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return find_allocation(p, bytes, nullptr) != nullptr;
}

bool is_device_pointer(const void* p) { return device_range(p, 0); }

int allocation_device(const void* p) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  const Allocation* a = find_allocation(p, 0, nullptr);
  return a ? a->device : -1;
}

// ---- devices ---------------------------------------------------------------------------------
namespace {
thread_local int t_device = 0;  // cudaSetDevice is per host thread
int clamp_device_count(long n);
}  // namespace

namespace {
int clamp_device_count(long n) { return static_cast<int>(n < 1 ? 1 : n > 8 ? 8 : n); }

std::atomic<int>& device_count_cell() {
  static std::atomic<int> count{[] {
    const char* env = std::getenv("NP_CUDA_EMULATOR_DEVICES");
    return clamp_device_count(env && *env ? std::strtol(env, nullptr, 10) : 1);
  }()};
  return count;
}
}  // namespace

int device_count() { return device_count_cell().load(); }

void set_device_count(int count) {
  device_count_cell().store(clamp_device_count(count));
  if (t_device >= device_count()) t_device = 0;
}

int current_device() { return t_device; }

bool select_device(int device) {
  if (device < 0 || device >= device_count()) return false;
  t_device = device;
  return true;
}

size_t memory_in_use() {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  return g_allocated;
}

size_t memory_in_use_on(int device) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  size_t bytes = 0;
  for (const auto& [start, a] : g_allocations)
    if (a.device == device) bytes += a.bytes;
  return bytes;
}

void set_memory_limit(size_t bytes) {
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  limit_bytes() = bytes;
}

// ---- streams ---------------------------------------------------------------------------------
namespace {
std::mutex g_stream_mutex;
std::set<cudaStream_t> g_streams;
}  // namespace

bool valid_stream(cudaStream_t s) {
  if (s == nullptr) return true;  // the default stream
  const std::lock_guard<std::mutex> lock(g_stream_mutex);
  return g_streams.count(s) != 0;
}

int stream_device(cudaStream_t s) {
  if (s == nullptr) return t_device;
  const std::lock_guard<std::mutex> lock(g_stream_mutex);
  return g_streams.count(s) != 0 ? s->device : -1;
}


}  // namespace np::cuda::emulator

// ---- the runtime calls that own memory and streams ---------------------------------------------
using namespace np::cuda::emulator;

#define NP_EMULATOR_STICKY_CHECK()                                          \
  do {                                                                      \
    if (const cudaError_t s = sticky(); s != cudaSuccess) return fail(s); \
  } while (0)

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
  g_allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, base, data + page, t_device};
  g_allocated += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  const std::lock_guard<std::mutex> device(device_mutex());  // waits for running work, as cudaFree does
  const std::lock_guard<std::mutex> lock(g_memory_mutex);
  const auto it = g_allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g_allocations.end()) return fail(cudaErrorInvalidDevicePointer);
  quarantine(it->second);
  g_allocated -= it->second.bytes;
  g_allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  NP_EMULATOR_STICKY_CHECK();
  if (!stream) return fail(cudaErrorInvalidValue);
  cudaStream_t s = new CUstream_st{flags, t_device};
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
