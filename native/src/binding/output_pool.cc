// Output buffers for predict that keep their pages: a large Float32Array allocated per call
// (calloc, then the first write) page-faults every 4 KiB of it, which on a virtual machine cost
// model.predict of the 1024×4096 GEMM a sixth of its time. allocOutput(floats) returns a
// Float32Array over pooled memory; when the garbage collector frees it, its memory returns to the
// pool (up to a cap), already mapped, for the next call of about that size.
//
// The memory is not zeroed: predict overwrites every element it returns.
#include <cstdlib>
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
    return std::aligned_alloc(64, RoundUp(bytes));
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
    std::free(p);
  }

  // Frees every pooled buffer (releaseFreeMemory).
  void Drain() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, p] : free_) std::free(p);
    free_.clear();
    pooled_ = 0;
  }

  static size_t RoundUp(size_t bytes) { return (bytes + 4095) & ~size_t{4095}; }

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
}

}  // namespace maas::binding
