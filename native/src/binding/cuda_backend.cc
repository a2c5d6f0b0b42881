// The CUDA backend's exports: cudaInfo() (what the build and the machine offer), CudaStackHandle,
// and the device ops over host arrays that the device tests compare with the CPU
// (_cudaBiasActivation, _cudaDense, _cudaInt8Dense).
// All answer on a machine without CUDA: the first with the reason, the ops with a coded error.
#include "maas/cuda_backend.h"

#include <initializer_list>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/dense_stack.h"
#include "typed.h"

namespace maas::binding {
namespace {

Napi::Object LibraryObject(Napi::Env env, const CudaLibrary& lib) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loaded", lib.loaded);
  o.Set("version", Napi::Number::New(env, static_cast<double>(lib.version)));
  o.Set("path", lib.path);
  o.Set("reason", lib.reason);
  return o;
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaReport& r = QueryCuda();
  Napi::Object out = Napi::Object::New(env);
  out.Set("compiled", r.compiled);
  out.Set("architectures", r.architectures);
  out.Set("runtimeVersion", r.runtime_version);
  out.Set("driverVersion", r.driver_version);
  Napi::Array devices = Napi::Array::New(env, static_cast<size_t>(r.device_count));
  for (int i = 0; i < r.device_count; ++i) {
    const CudaDevice& d = r.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(d.memory_bytes)));
    o.Set("multiprocessors", d.multiprocessors);
    devices.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("devices", devices);
  out.Set("reason", r.reason);
  out.Set("cublasLt", LibraryObject(env, LoadCublasLt()));
  out.Set("nvml", LibraryObject(env, LoadNvml()));
  return out;
}

// Throws for a CUDA op's status: no CUDA here is MAAS_ERR_CUDA_UNAVAILABLE with the reason,
// anything else the addon's usual status error.
void ThrowIfFailed(Napi::Env env, Status s, const std::string& context, const char* error) {
  if (s == Status::kUnsupported) ThrowCoded(env, "MAAS_ERR_CUDA_UNAVAILABLE", std::string("CUDA: ") + error);
  if (s != Status::kOk) ThrowStatus(env, s, context + ": " + error);
}

// The arguments every layer op takes after its weights: x (m × k floats), bias (n floats, or
// null), m, k, n, the activation and its parameters, from info[0] and info[first...].
struct LayerOpArgs {
  const float* x;
  const float* bias;
  size_t m, k, n;
  Activation act;
  ActivationParams params;
};

// Reads them, checks the shapes (every product within 2^31 elements) and that each weight array
// holds `weight_lengths` elements (k × n, then n for each further array).
LayerOpArgs ArgLayerOp(const Napi::CallbackInfo& info, size_t bias_index, const char* who,
                       std::initializer_list<size_t> weight_lengths_kn_then_n) {
  Napi::Env env = info.Env();
  size_t x_length = 0, bias_length = 0;
  LayerOpArgs a{};
  a.x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
  if (info.Length() > bias_index && !info[bias_index].IsNull() && !info[bias_index].IsUndefined())
    a.bias = ArgTypedData<float>(info, bias_index, "bias", napi_float32_array, &bias_length);
  a.m = ArgSize(info, bias_index + 1, "m");
  a.k = ArgSize(info, bias_index + 2, "k");
  a.n = ArgSize(info, bias_index + 3, "n");
  a.act = ArgActivation(info, bias_index + 4);
  a.params = info.Length() > bias_index + 5 && info[bias_index + 5].IsObject()
                 ? ParseActivationParams(env, info[bias_index + 5].As<Napi::Object>(), a.act, "params")
                 : ActivationParams{};
  const size_t limit = size_t{1} << 31;
  bool ok = a.m > 0 && a.k > 0 && a.n > 0 && a.m <= limit / a.k && a.k <= limit / a.n && a.m <= limit / a.n &&
            x_length == a.m * a.k && (!a.bias || bias_length == a.n);
  bool first = true;
  for (size_t length : weight_lengths_kn_then_n) {
    ok = ok && length == (first ? a.k * a.n : a.n);
    first = false;
  }
  if (!ok)
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
               std::string(who) + ": x must hold m × k floats, the weights k × n, the scales and bias n", true);
  return a;
}

// nvmlSample(): [{ uuid, utilization, memoryUsedBytes, memoryTotalBytes, powerWatts | null }] of
// every device NVML reports now, or null where NVML is absent or finds no driver.
Napi::Value NvmlSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NvmlDeviceSample samples[kCudaMaxReportedDevices];
  size_t count = 0;
  char error[256] = "";
  if (SampleNvml(samples, kCudaMaxReportedDevices, &count, error, sizeof(error)) != Status::kOk) return env.Null();
  Napi::Array out = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; ++i) {
    const NvmlDeviceSample& s = samples[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("uuid", s.uuid);
    o.Set("utilization", s.utilization);
    o.Set("memoryUsedBytes", Napi::Number::New(env, static_cast<double>(s.memory_used_bytes)));
    o.Set("memoryTotalBytes", Napi::Number::New(env, static_cast<double>(s.memory_total_bytes)));
    o.Set("powerWatts", s.power_watts >= 0 ? Napi::Value(Napi::Number::New(env, s.power_watts)) : env.Null());
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// _cudaBiasActivation(z: Float32Array, bias: Float32Array | null, rows, cols, activation, params?)
Napi::Value CudaBiasActivation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t z_length = 0, bias_length = 0;
  const float* z = ArgTypedData<float>(info, 0, "z", napi_float32_array, &z_length);
  const float* bias = nullptr;
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined())
    bias = ArgTypedData<float>(info, 1, "bias", napi_float32_array, &bias_length);
  const size_t rows = ArgSize(info, 2, "rows"), cols = ArgSize(info, 3, "cols");
  const Activation act = ArgActivation(info, 4);
  const ActivationParams params = info.Length() > 5 && info[5].IsObject()
                                      ? ParseActivationParams(env, info[5].As<Napi::Object>(), act, "params")
                                      : ActivationParams{};
  if (rows == 0 || cols == 0 || rows > (size_t{1} << 31) / cols || z_length != rows * cols ||
      (bias && bias_length != cols))
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_cudaBiasActivation: z must hold rows × cols floats, bias cols", true);
  Napi::Float32Array y = Napi::Float32Array::New(env, rows * cols);
  char error[256] = "";
  ThrowIfFailed(env, CudaBiasActivationHost(z, bias, rows, cols, act, params, y.Data(), error, sizeof(error)),
                "_cudaBiasActivation", error);
  return y;
}

// _cudaDense(x, w, bias | null, m, k, n, activation, params | null, precision: 0 fp32, 1 tf32, 2 bf16)
Napi::Value CudaDense(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t w_length = 0;
  const float* w = ArgTypedData<float>(info, 1, "w", napi_float32_array, &w_length);
  const LayerOpArgs a = ArgLayerOp(info, 2, "_cudaDense", {w_length});
  const size_t precision = ArgSize(info, 8, "precision");
  if (precision > 2)
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "_cudaDense: precision is 0 (fp32), 1 (tf32) or 2 (bf16)", true);
  Napi::Float32Array y = Napi::Float32Array::New(env, a.m * a.n);
  char error[256] = "";
  ThrowIfFailed(env,
                CudaDenseHost(a.x, w, a.bias, a.m, a.k, a.n, a.act, a.params, static_cast<CudaPrecision>(precision),
                              y.Data(), error, sizeof(error)),
                "_cudaDense", error);
  return y;
}

// _cudaInt8Dense(x, w: Int8Array [k × n], wScale [n], bias | null, m, k, n, activation, params | null)
//   → { y, xScale }: the device's int8 layer, with the activation scale it chose.
Napi::Value CudaInt8Dense(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t w_length = 0, scale_length = 0;
  const int8_t* w = ArgTypedData<int8_t>(info, 1, "w", napi_int8_array, &w_length);
  const float* w_scale = ArgTypedData<float>(info, 2, "wScale", napi_float32_array, &scale_length);
  const LayerOpArgs a = ArgLayerOp(info, 3, "_cudaInt8Dense", {w_length, scale_length});
  Napi::Float32Array y = Napi::Float32Array::New(env, a.m * a.n);
  float x_scale = 0;
  char error[256] = "";
  ThrowIfFailed(env,
                CudaInt8DenseHost(a.x, w, w_scale, a.bias, a.m, a.k, a.n, a.act, a.params, y.Data(), &x_scale, error,
                                  sizeof(error)),
                "_cudaInt8Dense", error);
  Napi::Object out = Napi::Object::New(env);
  out.Set("y", y);
  out.Set("xScale", x_scale);
  return out;
}

// CudaStackHandle(specs, weights[], biases[], precision): a dense stack resident on the first
// CUDA device; predict(x, batch, y) as DenseStackHandle's, dispose() frees the device memory.
class CudaStackHandle : public Napi::ObjectWrap<CudaStackHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "CudaStackHandle",
        {InstanceMethod("predict", &CudaStackHandle::Predict), InstanceMethod("dispose", &CudaStackHandle::Dispose),
         InstanceAccessor("inputSize", &CudaStackHandle::InputSize, nullptr),
         InstanceAccessor("outputSize", &CudaStackHandle::OutputSize, nullptr),
         InstanceAccessor("weightBytes", &CudaStackHandle::WeightBytes, nullptr),
         InstanceAccessor("kernel", &CudaStackHandle::Kernel, nullptr),
         InstanceAccessor("disposed", &CudaStackHandle::Disposed, nullptr)});
  }

  explicit CudaStackHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaStackHandle>(info) {
    Napi::Env env = info.Env();
    const std::vector<DenseLayerSpec> specs = ArgSpecArray<DenseLayerSpec>(info, 0, "layer specs", ParseDenseSpec);
    if (specs.empty()) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "CudaStackHandle: a stack needs a layer", true);
    if (!info[1].IsArray() || !info[2].IsArray() || info[1].As<Napi::Array>().Length() != specs.size() ||
        info[2].As<Napi::Array>().Length() != specs.size())
      ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "CudaStackHandle: expected one weight and one bias entry per layer", true);
    const size_t precision = ArgSize(info, 3, "precision");
    if (precision > 2) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "CudaStackHandle: precision is 0, 1 or 2", true);
    std::vector<CudaStackLayer> layers(specs.size());
    for (uint32_t i = 0; i < specs.size(); ++i) {
      const DenseLayerSpec& d = specs[i];
      const std::string layer = "layer " + std::to_string(i);
      if (i > 0 && specs[i - 1].out != d.in)
        ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", layer + ": its inputs differ from the previous layer's outputs",
                   true);
      layers[i].in = d.in;
      layers[i].out = d.out;
      layers[i].act = d.act;
      layers[i].params = d.params();
      layers[i].weights =
          static_cast<const float*>(ArgLayerArray(env, info[1].As<Napi::Array>().Get(i), napi_float32_array,
                                                  static_cast<size_t>(d.in) * d.out, layer + " kernel"));
      layers[i].bias = d.has_bias ? static_cast<const float*>(ArgLayerArray(env, info[2].As<Napi::Array>().Get(i),
                                                                            napi_float32_array, d.out, layer + " bias"))
                                  : nullptr;
    }
    char error[256] = "";
    const Status s = CudaStackCreate(layers.data(), layers.size(), static_cast<CudaPrecision>(precision), &stack_,
                                     error, sizeof(error));
    ThrowIfFailed(env, s, "CudaStackHandle", error);
    in_ = specs.front().in;
    out_ = specs.back().out;
    kernel_ = std::string("cuda cublasLt ") + (precision == 0 ? "fp32" : precision == 1 ? "tf32" : "bf16");
  }

  ~CudaStackHandle() override { CudaStackDestroy(stack_); }

 private:
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!stack_) ThrowCoded(env, "MAAS_ERR_MODEL_DISPOSED", "CudaStackHandle: the model was disposed");
    const PredictArgs a = ArgPredict(info, in_, out_);
    char error[256] = "";
    const Status s = CudaStackForward(stack_, a.x, a.batch, a.y, error, sizeof(error));
    ThrowIfFailed(env, s, "CudaStackHandle.predict", error);
    return env.Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    CudaStackDestroy(stack_);
    stack_ = nullptr;
    return info.Env().Undefined();
  }
  Napi::Value InputSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), in_); }
  Napi::Value OutputSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), out_); }
  Napi::Value WeightBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(CudaStackWeightBytes(stack_)));
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), stack_ == nullptr); }
  Napi::Value Kernel(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kernel_); }

  CudaStack* stack_ = nullptr;
  size_t in_ = 0, out_ = 0;
  std::string kernel_;
};

}  // namespace

void RegisterCudaBackend(Napi::Env env, Napi::Object exports) {
  // A handle outlives nothing it needs: its device memory is freed by dispose() or its finalizer.
  exports.Set("CudaStackHandle", CudaStackHandle::Define(env));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("nvmlSample", Napi::Function::New(env, NvmlSample, "nvmlSample"));
  exports.Set("_cudaBiasActivation", Napi::Function::New(env, CudaBiasActivation, "_cudaBiasActivation"));
  exports.Set("_cudaDense", Napi::Function::New(env, CudaDense, "_cudaDense"));
  exports.Set("_cudaInt8Dense", Napi::Function::New(env, CudaInt8Dense, "_cudaInt8Dense"));
}

}  // namespace maas::binding
