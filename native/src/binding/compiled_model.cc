// CompiledModel: a handle over a packed dense stack (often a SharedArrayBuffer shared by
// workers). One predict call runs every layer natively with per-handle scratch: no allocation.
#include <string>

#include "addon.h"
#include "args.h"
#include "maas/dense_stack.h"
#include "typed.h"

namespace maas::binding {

namespace {

class CompiledModel : public Napi::ObjectWrap<CompiledModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CompiledModel",
                       {
                           InstanceMethod<&CompiledModel::Predict>("predict"),
                           InstanceMethod<&CompiledModel::Dispose>("dispose"),
                           InstanceAccessor<&CompiledModel::InputSize>("inputSize"),
                           InstanceAccessor<&CompiledModel::OutputSize>("outputSize"),
                           InstanceAccessor<&CompiledModel::Kernel>("kernel"),
                           InstanceAccessor<&CompiledModel::Disposed>("disposed"),
                       });
  }

  // new CompiledModel(packed: Uint8Array)
  explicit CompiledModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CompiledModel>(info) {
    Napi::Env env = info.Env();
    addon_ = env.GetInstanceData<MaasAddon>();
    auto packed = ArgTypedArray<uint8_t>(info, 0, "packed", napi_uint8_array);
    const Status s = OpenDenseStack(packed.Data(), packed.ByteLength(), &view_);
    if (s != Status::kOk) ThrowStatus(env, s, "CompiledModel: cannot open the packed buffer");
    if (static_cast<uint32_t>(view_.kernel->isa) > static_cast<uint32_t>(addon_->isa_cap())) {
      ThrowCoded(env, "MAAS_ERR_PACKED_ISA_ABOVE_CAP",
                 std::string("CompiledModel: the buffer was packed for ") + view_.kernel->name + " (" +
                     IsaName(view_.kernel->isa) + ") but this thread's ISA cap is " + IsaName(addon_->isa_cap()) +
                     "; pack it again under this cap");
    }
    buffer_ = Napi::Persistent(packed.As<Napi::Object>());  // keeps the weights alive
  }

 private:
  size_t in() const { return view_.layers[0].spec.in; }
  size_t out() const { return view_.layers[view_.count - 1].spec.out; }

  void CheckLive(Napi::Env env) {
    if (!view_.kernel) ThrowCoded(env, "MAAS_ERR_MODEL_DISPOSED", "CompiledModel: the model was disposed");
  }

  // predict(x: Float32Array, batch: number, y: Float32Array): y = model(x), rows of in/out floats.
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    const PredictArgs a = ArgPredict(info, in(), out());
    const Status s = DenseStackForward(view_, a.x, a.batch, a.y, &scratch_, &addon_->pool(), addon_->threads());
    if (s != Status::kOk) ThrowStatus(env, s, "predict");
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    view_.kernel = nullptr;
    view_.count = 0;
    if (!buffer_.IsEmpty()) buffer_.Reset();
    scratch_.Release();
    return info.Env().Undefined();
  }

  Napi::Value InputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(in()));
  }
  Napi::Value OutputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(out()));
  }
  Napi::Value Kernel(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::String::New(info.Env(), view_.kernel->name);
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), view_.kernel == nullptr); }

  MaasAddon* addon_ = nullptr;
  PackedStackView view_;
  DenseScratch scratch_;
  Napi::ObjectReference buffer_;
};

}  // namespace

void RegisterCompiledModel(Napi::Env env, Napi::Object exports, MaasAddon* addon) {
  Napi::Function ctor = CompiledModel::Define(env);
  addon->compiled_model_ctor = Napi::Persistent(ctor);
  exports.Set("CompiledModel", ctor);
}

}  // namespace maas::binding
