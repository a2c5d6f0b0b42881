// DenseStackHandle: the handle over a packed fp32 dense stack ("MAASPK01"); the handle itself is
// PackedModelWrap, shared with QuantizedStackHandle.
#include "addon.h"
#include "maas/dense_stack.h"
#include "packed_model_wrap.h"

namespace maas::binding {

namespace {

struct DenseStackTraits {
  using View = PackedStackView;
  using Scratch = DenseScratch;
  static constexpr const char* kName = "DenseStackHandle";
  static Status Open(const void* data, size_t bytes, View* view) noexcept { return OpenDenseStack(data, bytes, view); }
  static Status Forward(const View& v, const float* x, size_t batch, float* y, Scratch* scratch, ThreadPool* pool,
                        size_t threads) noexcept {
    return DenseStackForward(v, x, batch, y, scratch, pool, threads);
  }
  static size_t In(const View& v) { return v.layers[0].spec.in; }
  static size_t Out(const View& v) { return v.layers[v.count - 1].spec.out; }
  static const char* Kernel(const View& v) { return v.kernel->name; }
  static const char* F32Kernel(const View& v) { return v.kernel->name; }
  static const char* AboveCap(const View& v, Isa cap) {
    return IsaWithin(v.kernel->isa, cap) ? nullptr : v.kernel->name;
  }
};

}  // namespace

void RegisterDenseStackHandle(Napi::Env env, Napi::Object exports, MaasAddon* addon) {
  Napi::Function ctor = PackedModelWrap<DenseStackTraits>::Define(env);
  addon->dense_stack_handle_ctor = Napi::Persistent(ctor);
  exports.Set("DenseStackHandle", ctor);
}

}  // namespace maas::binding
