// The JS handle over a packed model buffer (often a SharedArrayBuffer shared by workers), written
// once for both formats: Traits says how to open the buffer and run it. predict runs every layer
// natively with per-handle scratch (no allocation once warm); dispose releases the buffer.
#pragma once
#include <napi.h>

#include <string>

#include "addon.h"
#include "args.h"
#include "shared_region.h"
#include "typed.h"

namespace maas::binding {

// Traits: View, Scratch, kName, Open(data, bytes, &view), Forward(view, x, batch, y, &scratch,
// pool, threads), In(view), Out(view), Kernel(view) and F32Kernel(view) (the kernel names), and
// AboveCap(view, cap) (the name of a kernel above the cap, or nullptr).
template <typename Traits>
class PackedModelWrap : public Napi::ObjectWrap<PackedModelWrap<Traits>> {
  using Wrap = Napi::ObjectWrap<PackedModelWrap<Traits>>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return Wrap::DefineClass(env, Traits::kName,
                             {
                                 Wrap::template InstanceMethod<&PackedModelWrap::Predict>("predict"),
                                 Wrap::template InstanceMethod<&PackedModelWrap::Dispose>("dispose"),
                                 Wrap::template InstanceAccessor<&PackedModelWrap::InputSize>("inputSize"),
                                 Wrap::template InstanceAccessor<&PackedModelWrap::OutputSize>("outputSize"),
                                 Wrap::template InstanceAccessor<&PackedModelWrap::Kernel>("kernel"),
                                 Wrap::template InstanceAccessor<&PackedModelWrap::F32Kernel>("f32Kernel"),
                                 Wrap::template InstanceAccessor<&PackedModelWrap::Disposed>("disposed"),
                             });
  }

  // new <Name>(packed: Uint8Array | { fd: number, byteLength: number }): over a buffer it keeps
  // alive, or over its own read-only mapping of a shared region (unmapped by dispose()).
  explicit PackedModelWrap(const Napi::CallbackInfo& info) : Wrap(info) {
    Napi::Env env = info.Env();
    addon_ = AddonOf(env);
    const PackedBytes packed = ArgPackedBytes(info, Traits::kName, &mapping_, &buffer_);
    const Status s = Traits::Open(packed.data, packed.size, &view_);
    if (s != Status::kOk) ThrowStatus(env, s, std::string(Traits::kName) + ": cannot open the packed buffer");
    const Isa cap = addon_->isa_cap();
    if (const char* above = Traits::AboveCap(view_, cap)) {
      live_ = false;
      ThrowCoded(env, "MAAS_ERR_PACKED_ISA_ABOVE_CAP",
                 std::string(Traits::kName) + ": the buffer was packed for " + above +
                     " but this thread's ISA cap is " + IsaName(cap) + "; pack it again under this cap");
    }
    live_ = true;
  }

 private:
  void CheckLive(Napi::Env env) {
    if (!live_) ThrowCoded(env, "MAAS_ERR_MODEL_DISPOSED", std::string(Traits::kName) + ": the model was disposed");
  }

  // predict(x: Float32Array, batch: number, y: Float32Array): y = model(x), rows of in/out floats.
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    const PredictArgs a = ArgPredict(info, Traits::In(view_), Traits::Out(view_));
    const Status s = Traits::Forward(view_, a.x, a.batch, a.y, &scratch_, &addon_->pool(), addon_->threads());
    if (s != Status::kOk) ThrowStatus(env, s, "predict");
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    live_ = false;
    view_ = typename Traits::View{};
    if (!buffer_.IsEmpty()) buffer_.Reset();
    mapping_.Reset();
    scratch_.Release();
    return info.Env().Undefined();
  }

  Napi::Value InputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(Traits::In(view_)));
  }
  Napi::Value OutputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(Traits::Out(view_)));
  }
  Napi::Value Kernel(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::String::New(info.Env(), Traits::Kernel(view_));
  }
  Napi::Value F32Kernel(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::String::New(info.Env(), Traits::F32Kernel(view_));
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !live_); }

  MaasAddon* addon_ = nullptr;
  bool live_ = false;
  typename Traits::View view_;
  typename Traits::Scratch scratch_;
  Napi::ObjectReference buffer_;
  RegionMapping mapping_;
};

}  // namespace maas::binding
