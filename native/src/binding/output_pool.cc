// Output buffers for predict that fault in cheaply and keep their pages: a large Float32Array
// allocated per call (calloc, then the first write) page-faults every 4 KiB of it, which on a
// virtual machine cost model.predict of the 1024×4096 GEMM a sixth of its time. allocOutput(floats)
// returns a Float32Array over memory mapped in transparent huge pages. The memory returns to the
// pool (up to a cap), already mapped, for the next call of about that size, either when the caller
// is done with it (releaseOutput: Tensor.dispose detaches the buffer, so no view of it stays
// usable) or when the garbage collector frees it (its finalizer runs from the event loop).
//
// Collection alone recycles late: V8 collects external buffers every few calls, a miss maps fresh
// memory, and on the virtual machines measured 16 MiB of fresh huge pages took 30 ms to fault in,
// a seventh of the 1024×4096×4096 GEMM that writes them.
//
// The memory is not zeroed: predict overwrites every element it returns.
#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

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
  // A buffer handed out, and the ticket that alone may return it: the memory can be released,
  // taken again by a later call and still be named by the first buffer's pending finalizer.
  struct Loan {
    void* data;
    uint64_t ticket;
  };

  Loan Take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = nullptr;
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first - bytes <= it->first / 4) {
      p = it->second;
      pooled_ -= it->first;
      free_.erase(it);
    } else {
      p = MapHuge(RoundUp(bytes));
      if (!p) return {nullptr, 0};
    }
    const uint64_t ticket = ++last_ticket_;
    lent_[p] = ticket;
    return {p, ticket};
  }

  // Returns the loan of `bytes` at `p` made under `ticket`; a second return of it is ignored.
  void Give(void* p, size_t bytes, uint64_t ticket) {
    const size_t size = RoundUp(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = lent_.find(p);
      if (it == lent_.end() || it->second != ticket) return;
      lent_.erase(it);
      if (pooled_ + size <= kPoolMaxBytes) {
        free_.emplace(size, p);
        pooled_ += size;
        return;
      }
    }
    munmap(p, size);
  }

  // The ticket `p` is on loan under, or 0.
  uint64_t TicketOf(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = lent_.find(p);
    return it == lent_.end() ? 0 : it->second;
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
  std::unordered_map<void*, uint64_t> lent_;
  uint64_t last_ticket_ = 0;
  size_t pooled_ = 0;
};

// One pool for the process: a buffer may be freed on another thread's collector than the one
// that took it (a worker's result posted to the main thread is copied, but the rule stays simple).
OutputPool& Pool() {
  static OutputPool* pool = new OutputPool();  // never destroyed: finalizers may run at exit
  return *pool;
}

struct LoanNote {
  size_t bytes;
  uint64_t ticket;
};

// allocOutput(floats) -> Float32Array of `floats` uninitialized floats (pooled when large).
Napi::Value AllocOutput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t floats = ArgSize(info, 0, "floats");
  if (floats == 0 || floats > (size_t{1} << 40) / sizeof(float))
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "allocOutput: expected a positive float count", true);
  const size_t bytes = floats * sizeof(float);
  if (bytes < kPoolMinBytes) return Napi::Float32Array::New(env, floats);
  const OutputPool::Loan loan = Pool().Take(bytes);
  if (!loan.data) ThrowCoded(env, "MAAS_ERR_NATIVE_OUT_OF_MEMORY", "allocOutput: out of memory");
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, loan.data, bytes,
      [](Napi::Env, void* p, LoanNote* note) {
        Pool().Give(p, note->bytes, note->ticket);
        delete note;
      },
      new LoanNote{bytes, loan.ticket});
  return Napi::Float32Array::New(env, floats, buffer, 0);
}

// releaseOutput(array) -> boolean: if `array` views a buffer allocOutput lent, detaches that
// buffer (every view of it becomes empty) and returns its memory to the pool now. Anything else
// (a plain array, a view already detached or transferred) is left alone and answers false.
Napi::Value ReleaseOutput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return Napi::Boolean::New(env, false);
  // A view of a SharedArrayBuffer is not an ArrayBuffer's, and never one the pool lent.
  const Napi::Value backing = info[0].As<Napi::Object>().Get("buffer");
  if (!backing.IsArrayBuffer()) return Napi::Boolean::New(env, false);
  Napi::ArrayBuffer buffer = backing.As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) return Napi::Boolean::New(env, false);
  void* data = buffer.Data();
  const size_t bytes = buffer.ByteLength();
  const uint64_t ticket = Pool().TicketOf(data);
  if (ticket == 0) return Napi::Boolean::New(env, false);
  buffer.Detach();
  Pool().Give(data, bytes, ticket);
  return Napi::Boolean::New(env, true);
}

}  // namespace

void DrainOutputPool() { Pool().Drain(); }

void RegisterOutputPool(Napi::Env env, Napi::Object exports) {
  exports.Set("allocOutput", Napi::Function::New(env, AllocOutput, "allocOutput"));
  exports.Set("releaseOutput", Napi::Function::New(env, ReleaseOutput, "releaseOutput"));
  // The smallest output the pool serves, so callers skip the native call below it.
  exports.Set("pooledOutputMinFloats", Napi::Number::New(env, static_cast<double>(kPoolMinBytes / sizeof(float))));
}

}  // namespace maas::binding
