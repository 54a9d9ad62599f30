// A small persistent thread pool shared by every kernel and by the model.
//
// Why not std::thread per call or OpenMP: a training step on a small layer
// lasts microseconds, so spawning threads would dominate, and DESIGN.md forbids
// a run-time dependency on libgomp. Workers spin briefly, then sleep on a
// condition variable, so back-to-back kernels wake them for free while an idle
// process costs no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace np {

class ThreadPool {
 public:
  // threads counts the calling thread too: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task) for every task in [0, tasks) on the workers and the calling
  // thread, and returns when all are done. Tasks are handed out dynamically, so
  // uneven tasks balance. Not re-entrant: a task must not call parallel_for on
  // the same pool (nested calls run inline instead, see below).
  template <typename Fn>
  void parallel_for(int64_t tasks, Fn&& fn) {
    if (tasks <= 0) return;
    if (tasks == 1 || workers_.empty() || in_parallel_region()) {
      for (int64_t t = 0; t < tasks; ++t) fn(t);
      return;
    }
    using Callable = std::remove_reference_t<Fn>;
    run(tasks, [](void* ctx, int64_t t) { (*static_cast<Callable*>(ctx))(t); }, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using TaskFn = void (*)(void*, int64_t);
  void run(int64_t tasks, TaskFn fn, void* ctx);
  void worker_loop(int index);
  void drain(TaskFn fn, void* ctx, int64_t count);
  static bool in_parallel_region();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::mutex run_mutex_;  // one parallel_for at a time per pool

  // The current job; generation_ tells sleeping workers a new one arrived.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> pending_{0};
  // Workers currently inside drain(); the job's fields are not rewritten until
  // this is zero, so a late worker never mixes two jobs.
  std::atomic<int> active_{0};
  int64_t task_count_ = 0;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<bool> stop_{false};
};

// The process-wide pool: NEUROPLASTIC_THREADS if set (>= 1), else every
// hardware thread. Created on first use.
ThreadPool& default_pool();

// Number of threads the default pool was created with.
int default_thread_count();

}  // namespace np
