#include "thread_pool.h"

#include <cstdlib>
#include <string>

namespace np {

namespace {
thread_local bool t_in_region = false;

// How long an idle worker polls before it sleeps. Long enough to bridge the
// gap between the kernels of one training step, short enough to be invisible
// when the process idles.
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

bool ThreadPool::in_parallel_region() { return t_in_region; }

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  workers_.reserve(threads - 1);
  for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::drain(TaskFn fn, void* ctx, int64_t count) {
  t_in_region = true;
  for (;;) {
    int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (t >= count) break;
    fn(ctx, t);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
  t_in_region = false;
}

void ThreadPool::run(int64_t tasks, TaskFn fn, void* ctx) {
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    // A worker that joined the previous job late may still be inside drain()
    // (finding no task left). Rewrite the job only once none is: workers join
    // under this mutex, so none can slip in between the check and the write.
    std::unique_lock<std::mutex> lock(mutex_);
    while (active_.load(std::memory_order_acquire) != 0) {
      lock.unlock();
      cpu_relax();
      lock.lock();
    }
    fn_ = fn;
    ctx_ = ctx;
    task_count_ = tasks;
    next_task_.store(0, std::memory_order_relaxed);
    pending_.store(tasks, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(fn, ctx, tasks);
  // Every task has run once pending_ is zero; fn/ctx are not used after that.
  while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      gen = generation_.load();
    }
    seen = gen;
    if (stop_.load()) return;
    TaskFn fn;
    void* ctx;
    int64_t count;
    {
      // Take the job under the mutex, and only if it is still the current one:
      // run() rewrites these fields under the same mutex once active_ is zero.
      std::lock_guard<std::mutex> lock(mutex_);
      if (generation_.load() != gen) continue;
      fn = fn_;
      ctx = ctx_;
      count = task_count_;
      active_.fetch_add(1, std::memory_order_acq_rel);
    }
    drain(fn, ctx, count);
    active_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int default_thread_count() {
  static const int count = [] {
    if (const char* env = std::getenv("NEUROPLASTIC_THREADS")) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
  }();
  return count;
}

// Never destroyed: an async operation may still be running on a libuv thread
// when the process exits (process.exit() during fit), and destroying the pool
// under it would abort. The OS reclaims the threads at exit.
ThreadPool& default_pool() {
  static ThreadPool* pool = new ThreadPool(default_thread_count());
  return *pool;
}

}  // namespace np
