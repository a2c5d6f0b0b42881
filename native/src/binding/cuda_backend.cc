// The CUDA backend's exports: cudaInfo() (what the build and the machine offer), and the device ops
// over host arrays that the device tests compare with the CPU (_cudaBiasActivation, _cudaDense).
// All answer on a machine without CUDA: the first with the reason, the ops with a coded error.
#include "maas/cuda_backend.h"

#include <string>

#include "addon.h"
#include "args.h"
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
  const Status s = CudaBiasActivationHost(z, bias, rows, cols, act, params, y.Data(), error, sizeof(error));
  if (s == Status::kUnsupported) ThrowCoded(env, "MAAS_ERR_CUDA_UNAVAILABLE", std::string("CUDA: ") + error);
  if (s != Status::kOk) ThrowStatus(env, s, std::string("_cudaBiasActivation: ") + error);
  return y;
}

// _cudaDense(x, w, bias | null, m, k, n, activation, params | null, precision: 0 fp32, 1 tf32, 2 bf16)
Napi::Value CudaDense(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t x_length = 0, w_length = 0, bias_length = 0;
  const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
  const float* w = ArgTypedData<float>(info, 1, "w", napi_float32_array, &w_length);
  const float* bias = nullptr;
  if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined())
    bias = ArgTypedData<float>(info, 2, "bias", napi_float32_array, &bias_length);
  const size_t m = ArgSize(info, 3, "m"), k = ArgSize(info, 4, "k"), n = ArgSize(info, 5, "n");
  const Activation act = ArgActivation(info, 6);
  const ActivationParams params = info.Length() > 7 && info[7].IsObject()
                                      ? ParseActivationParams(env, info[7].As<Napi::Object>(), act, "params")
                                      : ActivationParams{};
  const size_t precision = ArgSize(info, 8, "precision");
  if (precision > 2)
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "_cudaDense: precision is 0 (fp32), 1 (tf32) or 2 (bf16)", true);
  const size_t limit = size_t{1} << 31;
  if (m == 0 || k == 0 || n == 0 || m > limit / k || k > limit / n || m > limit / n || x_length != m * k ||
      w_length != k * n || (bias && bias_length != n))
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_cudaDense: x must hold m × k floats, w k × n, bias n", true);
  Napi::Float32Array y = Napi::Float32Array::New(env, m * n);
  char error[256] = "";
  const Status s = CudaDenseHost(x, w, bias, m, k, n, act, params, static_cast<CudaPrecision>(precision), y.Data(),
                                 error, sizeof(error));
  if (s == Status::kUnsupported) ThrowCoded(env, "MAAS_ERR_CUDA_UNAVAILABLE", std::string("CUDA: ") + error);
  if (s != Status::kOk) ThrowStatus(env, s, std::string("_cudaDense: ") + error);
  return y;
}

}  // namespace

void RegisterCudaBackend(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("_cudaBiasActivation", Napi::Function::New(env, CudaBiasActivation, "_cudaBiasActivation"));
  exports.Set("_cudaDense", Napi::Function::New(env, CudaDense, "_cudaDense"));
}

}  // namespace maas::binding
