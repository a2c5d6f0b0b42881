// Output buffers for predict that fault in cheaply and keep their pages: a large Float32Array
// allocated per call (calloc, then the first write) page-faults every 4 KiB of it, which on a
// virtual machine cost model.predict of the 1024×4096 GEMM a sixth of its time. allocOutput(floats)
// returns a Float32Array over memory mapped in transparent huge pages; when the garbage collector
// frees it (its finalizer runs from the event loop), the memory returns to the pool (up to a cap),
// already mapped, for the next call of about that size.
//
// The memory is not zeroed: predict overwrites every element it returns.
#include <sys/mman.h>

#include <map>
#include <mutex>

#include "addon.h"
#include "args.h"

namespace maas::binding {

namespace {

// Only outputs this large are pooled (a small allocation costs little), at most this much is kept
// free, and a free buffer serves a request up to 1/4 smaller than itself.
constexpr size_t kPoolMinBytes = 1u << 20;
constexpr size_t kPoolMaxBytes = 128u << 20;

class OutputPool {
 public:
  void* Take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first - bytes <= it->first / 4) {
        void* p = it->second;
        pooled_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    return MapHuge(RoundUp(bytes));
  }

  // Returns a buffer Take gave out for `bytes`.
  void Give(void* p, size_t bytes) {
    const size_t size = RoundUp(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (pooled_ + size <= kPoolMaxBytes) {
        free_.emplace(size, p);
        pooled_ += size;
        return;
      }
    }
    munmap(p, size);
  }

  // Frees every pooled buffer (releaseFreeMemory).
  void Drain() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, p] : free_) munmap(p, size);
    free_.clear();
    pooled_ = 0;
  }

  // Whole 2 MiB pages: a fresh output is then faulted in 2 MiB at a time. On the virtual machines
  // measured, 16 MiB of 4 KiB pages took 22-50 ms to fault in and 2 MiB pages 3 ms.
  static constexpr size_t kHugePage = size_t{2} << 20;
  static size_t RoundUp(size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }

  // An anonymous mapping of `size` bytes (a multiple of kHugePage) aligned to kHugePage, with
  // transparent huge pages asked for (the kernel may still use 4 KiB pages).
  static void* MapHuge(size_t size) {
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
    if (aligned > start) munmap(raw, aligned - start);
    const size_t tail = start + size + kHugePage - (aligned + size);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, size, MADV_HUGEPAGE);
    return p;
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // by size: the smallest that fits is taken
  size_t pooled_ = 0;
};

// One pool for the process: a buffer may be freed on another thread's collector than the one
// that took it (a worker's result posted to the main thread is copied, but the rule stays simple).
OutputPool& Pool() {
  static OutputPool* pool = new OutputPool();  // never destroyed: finalizers may run at exit
  return *pool;
}

// allocOutput(floats) -> Float32Array of `floats` uninitialized floats (pooled when large).
Napi::Value AllocOutput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t floats = ArgSize(info, 0, "floats");
  if (floats == 0 || floats > (size_t{1} << 40) / sizeof(float))
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "allocOutput: expected a positive float count", true);
  const size_t bytes = floats * sizeof(float);
  if (bytes < kPoolMinBytes) return Napi::Float32Array::New(env, floats);
  void* data = Pool().Take(bytes);
  if (!data) ThrowCoded(env, "MAAS_ERR_NATIVE_OUT_OF_MEMORY", "allocOutput: out of memory");
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, data, bytes,
      [](Napi::Env, void* p, size_t* size) {
        Pool().Give(p, *size);
        delete size;
      },
      new size_t(bytes));
  return Napi::Float32Array::New(env, floats, buffer, 0);
}

}  // namespace

void DrainOutputPool() { Pool().Drain(); }

void RegisterOutputPool(Napi::Env env, Napi::Object exports) {
  exports.Set("allocOutput", Napi::Function::New(env, AllocOutput, "allocOutput"));
  // The smallest output the pool serves, so callers skip the native call below it.
  exports.Set("pooledOutputMinFloats", Napi::Number::New(env, static_cast<double>(kPoolMinBytes / sizeof(float))));
}

}  // namespace maas::binding
