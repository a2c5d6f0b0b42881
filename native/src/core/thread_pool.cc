// ThreadPool: workers spin briefly on a generation counter (a dense layer follows another within
// microseconds), then sleep on a condition variable so an idle pool costs no CPU.
#include "maas/thread_pool.h"

#include <chrono>

namespace maas {

namespace {
// Long enough to bridge the serial parts of a training step (loss, activation backward, packing),
// whose length would otherwise turn every parallel region into a futex wake-up on a VM.
constexpr auto kSpinFor = std::chrono::microseconds(1000);
inline void CpuRelax() noexcept { __builtin_ia32_pause(); }
}  // namespace

ThreadPool::ThreadPool(size_t threads) { Start(threads); }

ThreadPool::~ThreadPool() { Stop(); }

void ThreadPool::Resize(size_t threads) {
  if (threads == size()) return;
  Stop();
  Start(threads);
}

void ThreadPool::Start(size_t threads) {
  stopping_ = false;
  if (threads < 1) threads = 1;
  workers_.reserve(threads - 1);
  // The generation a worker starts from is read here, not in the new thread: a Run issued before
  // the thread gets scheduled must still count as new work for it.
  const uint64_t start = generation_.load(std::memory_order_acquire);
  for (size_t i = 1; i < threads; ++i) workers_.emplace_back(&ThreadPool::WorkerLoop, this, i, start);
}

void ThreadPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::Run(size_t nth, Task task, void* ctx) noexcept {
  if (nth <= 1 || workers_.empty()) {
    task(ctx, 0, 1);
    return;
  }
  if (nth > size()) nth = size();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = task;
    ctx_ = ctx;
    nth_ = nth;
    pending_.store(nth - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  task(ctx, 0, nth);
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
}

void ThreadPool::WorkerLoop(size_t index, uint64_t seen) {
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
      CpuRelax();
    }
    Task task;
    void* ctx;
    size_t nth;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      seen = generation_.load(std::memory_order_acquire);
      if (stopping_) return;
      task = task_;
      ctx = ctx_;
      nth = nth_;
    }
    if (index < nth) {
      task(ctx, index, nth);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace maas
