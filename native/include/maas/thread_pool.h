// The one owner of intra-op threads: a fixed set of workers that run an explicit partition
// fn(ctx, ith, nth). Kernels never start threads; the addon creates one pool per environment.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace maas {

class ThreadPool {
 public:
  using Task = void (*)(void* ctx, size_t ith, size_t nth);

  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads available to Run, the calling thread included.
  size_t size() const noexcept { return workers_.size() + 1; }
  // Joins the workers and starts threads-1 new ones. Not callable while Run is active.
  void Resize(size_t threads);
  // Runs task(ctx, i, nth) for i in [0, nth), nth <= size(); the caller runs i = 0. Blocks until done.
  void Run(size_t nth, Task task, void* ctx) noexcept;

 private:
  void Start(size_t threads);
  void Stop();
  void WorkerLoop(size_t index, uint64_t seen);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Each on its own cache line: workers poll generation_ while the caller polls pending_.
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<size_t> pending_{0};
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  size_t nth_ = 0;
  bool stopping_ = false;
};

}  // namespace maas
