// Per-environment addon state: every main thread or worker that loads the addon gets its own
// thread pool and ISA cap (no mutable statics), torn down with the environment.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "maas/isa.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas::binding {

class MaasAddon : public Napi::Addon<MaasAddon> {
 public:
  MaasAddon(Napi::Env env, Napi::Object exports);

  ThreadPool& pool() { return *pool_; }
  size_t threads() const { return pool_->size(); }
  Isa isa_cap() const { return isa_cap_; }
  Napi::FunctionReference dense_stack_handle_ctor;

 private:
  Napi::Value CpuInfo(const Napi::CallbackInfo& info);
  Napi::Value SetMaxIsa(const Napi::CallbackInfo& info);
  Napi::Value SetThreads(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);

  std::unique_ptr<ThreadPool> pool_;
  Isa isa_cap_;
};

// Throws a JS Error (or TypeError) whose `code` is a MAAS_ERR_* registry code.
[[noreturn]] void ThrowCoded(Napi::Env env, const char* code, const std::string& message, bool type_error = false);
// Maps a native Status to its registry code and throws.
[[noreturn]] void ThrowStatus(Napi::Env env, Status status, const std::string& context);

// Registration hooks of the other binding files.
void RegisterDenseStackHandle(Napi::Env env, Napi::Object exports, MaasAddon* addon);
void RegisterKernels(Napi::Env env, Napi::Object exports);
void RegisterOutputPool(Napi::Env env, Napi::Object exports);
// Frees the output buffers the pool keeps (releaseFreeMemory).
void DrainOutputPool();
void RegisterTrainer(Napi::Env env, Napi::Object exports);
void RegisterInputGradientHandle(Napi::Env env, Napi::Object exports);
void RegisterQuantizedStackHandle(Napi::Env env, Napi::Object exports);
void RegisterInt8Kernels(Napi::Env env, Napi::Object exports);
void RegisterCsvEncoderHandle(Napi::Env env, Napi::Object exports);
void RegisterCudaBackend(Napi::Env env, Napi::Object exports);
// A made-up CPU from a JS object, for the dispatch-rule entries (_selectInt8Gemm, _selectF32Gemm).
CpuFeatures ArgCpuFeatures(const Napi::Object& o);

}  // namespace maas::binding
