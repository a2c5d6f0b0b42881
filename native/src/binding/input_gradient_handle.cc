// InputGradientHandle: the JS handle over a round-trip packed stack (maas/input_gradient.h),
// usually a SharedArrayBuffer shared by the workers that explain. gradient() runs the forward pass
// and carries dY back to the inputs natively, with per-handle scratch.
#include <string>

#include "addon.h"
#include "args.h"
#include "maas/coalition_values.h"
#include "maas/input_gradient.h"
#include "maas/perturbed_values.h"
#include "shared_region.h"
#include "typed.h"

namespace maas::binding {

namespace {

class InputGradientWrap : public Napi::ObjectWrap<InputGradientWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "InputGradientHandle",
                       {
                           InstanceMethod<&InputGradientWrap::Gradient>("gradient"),
                           InstanceMethod<&InputGradientWrap::CoalitionValues>("coalitionValues"),
                           InstanceMethod<&InputGradientWrap::PerturbedValues>("perturbedValues"),
                           InstanceMethod<&InputGradientWrap::Dispose>("dispose"),
                           InstanceAccessor<&InputGradientWrap::InputSize>("inputSize"),
                           InstanceAccessor<&InputGradientWrap::OutputSize>("outputSize"),
                       });
  }

  // new InputGradientHandle(packed: Uint8Array | { fd, byteLength }): the bytes packStack wrote for
  // the 2L round-trip specs, or a region holding them (mapped read-only here, unmapped by dispose).
  explicit InputGradientWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InputGradientWrap>(info) {
    Napi::Env env = info.Env();
    addon_ = env.GetInstanceData<MaasAddon>();
    const PackedBytes packed = ArgPackedBytes(info, "InputGradientHandle", &mapping_, &buffer_);
    Status s = OpenDenseStack(packed.data, packed.size, &view_);
    if (s != Status::kOk) ThrowStatus(env, s, "InputGradientHandle: cannot open the packed buffer");
    if (CheckRoundTripStack(view_, &layers_) != Status::kOk) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                 "InputGradientHandle: the buffer is not a round-trip stack (the model's layers, then their kernels "
                 "transposed in reverse order, linear, without bias)",
                 true);
    }
    if (!IsaWithin(view_.kernel->isa, addon_->isa_cap())) {
      ThrowCoded(env, "MAAS_ERR_PACKED_ISA_ABOVE_CAP",
                 std::string("InputGradientHandle: the buffer was packed for ") + view_.kernel->name +
                     " but this thread's ISA cap is " + IsaName(addon_->isa_cap()) + "; pack it again under this cap");
    }
    live_ = true;
  }

 private:
  size_t In() const { return view_.layers[0].spec.in; }
  size_t Out() const { return view_.layers[layers_ - 1].spec.out; }

  void CheckLive(Napi::Env env) {
    if (!live_) ThrowCoded(env, "MAAS_ERR_MODEL_DISPOSED", "InputGradientHandle: the handle was disposed");
  }

  // gradient(x, batch, dy, dx, y?): dx = (∂y/∂x)ᵀ·dy per row; y (optional) receives the outputs.
  Napi::Value Gradient(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    size_t x_length = 0, dy_length = 0, dx_length = 0, y_length = 0;
    const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
    const size_t batch = ArgSize(info, 1, "batch");
    const float* dy = ArgTypedData<float>(info, 2, "dy", napi_float32_array, &dy_length);
    float* dx = ArgTypedData<float>(info, 3, "dx", napi_float32_array, &dx_length);
    float* y = nullptr;
    if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull())
      y = ArgTypedData<float>(info, 4, "y", napi_float32_array, &y_length);
    const size_t in = In(), out = Out();
    if (batch == 0 || x_length != batch * in || dx_length != batch * in || dy_length != batch * out ||
        (y && y_length != batch * out)) {
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
                 "gradient: expected x and dx of " + std::to_string(batch * in) + " floats and dy (and y) of " +
                     std::to_string(batch * out) + " for batch " + std::to_string(batch) + " but received " +
                     std::to_string(x_length) + ", " + std::to_string(dx_length) + " and " + std::to_string(dy_length),
                 true);
    }
    const Status s = DenseStackInputGradient(view_, x, batch, dy, dx, y, &scratch_, &addon_->pool(), addon_->threads());
    if (s != Status::kOk) ThrowStatus(env, s, "gradient");
    return env.Undefined();
  }

  // coalitionValues(x, background, bgRows, masks, coalitions, output, values): Kernel SHAP's v(S)
  // for each coalition (a row of inputSize bytes in masks, nonzero where x's value is taken) over
  // the model's half of the round trip; values is a Float64Array of `coalitions`.
  Napi::Value CoalitionValues(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    size_t x_length = 0, bg_length = 0, mask_length = 0, values_length = 0;
    const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
    const float* bg = ArgTypedData<float>(info, 1, "background", napi_float32_array, &bg_length);
    const size_t bg_rows = ArgSize(info, 2, "bgRows");
    const uint8_t* masks = ArgTypedData<uint8_t>(info, 3, "masks", napi_uint8_array, &mask_length);
    const size_t coalitions = ArgSize(info, 4, "coalitions");
    const size_t output = ArgSize(info, 5, "output");
    double* values = ArgTypedData<double>(info, 6, "values", napi_float64_array, &values_length);
    const size_t in = In();
    // Divisions, not products: a crafted count cannot wrap around to a matching length.
    if (bg_rows == 0 || x_length != in || bg_length % in != 0 || bg_length / in != bg_rows || mask_length % in != 0 ||
        mask_length / in != coalitions || values_length != coalitions || output >= Out()) {
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
                 "coalitionValues: expected x of " + std::to_string(in) + " floats, background of bgRows × " +
                     std::to_string(in) + ", masks of coalitions × " + std::to_string(in) +
                     " bytes, values of coalitions doubles and an output below " + std::to_string(Out()),
                 true);
    }
    const Status s = DenseStackCoalitionValues(view_, layers_, x, bg, bg_rows, masks, coalitions, output, values,
                                               &addon_->pool(), addon_->threads());
    if (s != Status::kOk) ThrowStatus(env, s, "coalitionValues");
    return env.Undefined();
  }

  // perturbedValues(x, scale, e, samples, weights, output, y, wye): LIME's outputs at x + e_s ⊙
  // scale (y, Float64Array of samples) and Σ_s w_s y_s e_s (wye, Float64Array of inputSize).
  Napi::Value PerturbedValues(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    size_t x_length = 0, scale_length = 0, e_length = 0, w_length = 0, y_length = 0, aty_length = 0;
    const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
    const float* scale = ArgTypedData<float>(info, 1, "scale", napi_float32_array, &scale_length);
    const float* e = ArgTypedData<float>(info, 2, "e", napi_float32_array, &e_length);
    const size_t samples = ArgSize(info, 3, "samples");
    const double* weights = ArgTypedData<double>(info, 4, "weights", napi_float64_array, &w_length);
    const size_t output = ArgSize(info, 5, "output");
    double* y = ArgTypedData<double>(info, 6, "y", napi_float64_array, &y_length);
    double* wye = ArgTypedData<double>(info, 7, "wye", napi_float64_array, &aty_length);
    const size_t in = In();
    if (samples == 0 || x_length != in || scale_length != in || e_length % in != 0 || e_length / in != samples ||
        w_length != samples || y_length != samples || aty_length != in || output >= Out()) {
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
                 "perturbedValues: expected x, scale and wye of " + std::to_string(in) + ", e of samples × " +
                     std::to_string(in) + ", weights and y of samples, and an output below " + std::to_string(Out()),
                 true);
    }
    const Status s = DenseStackPerturbedValues(view_, layers_, x, scale, e, samples, weights, output, y, wye,
                                               &addon_->pool(), addon_->threads());
    if (s != Status::kOk) ThrowStatus(env, s, "perturbedValues");
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    live_ = false;
    view_ = PackedStackView{};
    if (!buffer_.IsEmpty()) buffer_.Reset();
    mapping_.Reset();
    scratch_.Release();
    return info.Env().Undefined();
  }

  Napi::Value InputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(In()));
  }
  Napi::Value OutputSize(const Napi::CallbackInfo& info) {
    CheckLive(info.Env());
    return Napi::Number::New(info.Env(), static_cast<double>(Out()));
  }

  MaasAddon* addon_ = nullptr;
  bool live_ = false;
  uint32_t layers_ = 0;
  PackedStackView view_;
  InputGradientScratch scratch_;
  Napi::ObjectReference buffer_;
  RegionMapping mapping_;
};

}  // namespace

void RegisterInputGradientHandle(Napi::Env env, Napi::Object exports) {
  exports.Set("InputGradientHandle", InputGradientWrap::Define(env));
}

}  // namespace maas::binding
