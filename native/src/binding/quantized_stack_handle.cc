// QuantizedStackHandle: the handle over a packed quantized stack ("MAASQ801"; predict quantizes the
// fp32 input, runs every layer and writes fp32), and the functions that pack one.
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/quantized_stack.h"
#include "packed_model_wrap.h"
#include "typed.h"

namespace maas::binding {

namespace {

// The int8 kernel named by info[index], or the best under this env's cap when absent.
const Int8GemmKernel& ArgInt8Kernel(const Napi::CallbackInfo& info, size_t index) {
  return ArgKernelOf<Int8GemmKernel>(info, index, SelectInt8Gemm, FindInt8Gemm, "int8 ");
}

// Layer specs: {in, out, activation, alpha, hasBias, int8, inMin, inMax}.
std::vector<QuantLayerSpec> ArgQuantSpecs(const Napi::CallbackInfo& info, size_t index) {
  return ArgSpecArray<QuantLayerSpec>(info, index, "quantized layer specs",
                                      [](Napi::Env env, const Napi::Object& o, uint32_t i) {
                                        QuantLayerSpec spec;
                                        spec.dense = ParseDenseSpec(env, o, i);
                                        spec.int8 = o.Get("int8").ToBoolean().Value();
                                        spec.in_min = static_cast<float>(o.Get("inMin").ToNumber().DoubleValue());
                                        spec.in_max = static_cast<float>(o.Get("inMax").ToNumber().DoubleValue());
                                        return spec;
                                      });
}

// packedQuantizedByteLength(specs, kernel?) -> bytes
Napi::Value PackedQuantizedByteLength(const Napi::CallbackInfo& info) {
  std::vector<QuantLayerSpec> specs = ArgQuantSpecs(info, 0);
  size_t bytes = 0;
  const Status s = PackedQuantStackBytes(specs.data(), specs.size(), ArgInt8Kernel(info, 1),
                                         *SelectF32Gemm(AddonOf(info.Env())->isa_cap()), &bytes);
  if (s != Status::kOk) ThrowStatus(info.Env(), s, "packedQuantizedByteLength");
  return Napi::Number::New(info.Env(), static_cast<double>(bytes));
}

// packQuantized(specs, dynamic, weights: (Int8Array|Float32Array)[], wScales: (Float32Array|null)[],
//               biases: (Float32Array|null)[], dst: Uint8Array, kernel?) -> int8 kernel name
Napi::Value PackQuantized(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<QuantLayerSpec> specs = ArgQuantSpecs(info, 0);
  const bool dynamic = info[1].ToBoolean().Value();
  if (!info[2].IsArray() || !info[3].IsArray() || !info[4].IsArray()) {
    ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected arrays of weights, weight scales and biases", true);
  }
  Napi::Array w = info[2].As<Napi::Array>(), ws = info[3].As<Napi::Array>(), b = info[4].As<Napi::Array>();
  if (w.Length() != specs.size() || ws.Length() != specs.size() || b.Length() != specs.size()) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "expected one weight, scale and bias entry per layer", true);
  }
  std::vector<const void*> wp(specs.size());
  std::vector<const float*> sp(specs.size()), bp(specs.size());
  for (uint32_t i = 0; i < specs.size(); ++i) {
    const DenseLayerSpec& d = specs[i].dense;
    const std::string layer = "layer " + std::to_string(i);
    wp[i] = ArgLayerArray(env, w.Get(i), specs[i].int8 ? napi_int8_array : napi_float32_array,
                          static_cast<size_t>(d.in) * d.out, layer + " weights");
    sp[i] = specs[i].int8 ? static_cast<const float*>(
                                ArgLayerArray(env, ws.Get(i), napi_float32_array, d.out, layer + " weight scales"))
                          : nullptr;
    bp[i] = d.has_bias
                ? static_cast<const float*>(ArgLayerArray(env, b.Get(i), napi_float32_array, d.out, layer + " bias"))
                : nullptr;
  }
  const ByteSpan dst = ArgByteSpan(info, 5, "dst");
  const Int8GemmKernel& kernel = ArgInt8Kernel(info, 6);
  const Status s =
      PackQuantStack(specs.data(), specs.size(), dynamic ? QuantMode::kDynamic : QuantMode::kStatic, wp.data(),
                     sp.data(), bp.data(), kernel, *SelectF32Gemm(AddonOf(env)->isa_cap()), dst.data, dst.size);
  if (s != Status::kOk) ThrowStatus(env, s, "packQuantized");
  return Napi::String::New(env, kernel.name);
}

// packQuantizedLayer(specs, dynamic, index, weights: Int8Array|Float32Array, wScale: Float32Array|null,
//                    bias: Float32Array|null, dst: Uint8Array, kernel?) -> int8 kernel name
Napi::Value PackQuantizedLayer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<QuantLayerSpec> specs = ArgQuantSpecs(info, 0);
  const bool dynamic = info[1].ToBoolean().Value();
  const size_t index = ArgSize(info, 2, "index");
  if (index >= specs.size())
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "packQuantizedLayer: index past the last layer", true);
  const QuantLayerSpec& spec = specs[index];
  const DenseLayerSpec& d = spec.dense;
  const std::string layer = "layer " + std::to_string(index);
  const void* weights = ArgLayerArray(env, info[3], spec.int8 ? napi_int8_array : napi_float32_array,
                                      static_cast<size_t>(d.in) * d.out, layer + " weights");
  const auto* w_scale =
      spec.int8
          ? static_cast<const float*>(ArgLayerArray(env, info[4], napi_float32_array, d.out, layer + " weight scales"))
          : nullptr;
  const auto* bias =
      d.has_bias ? static_cast<const float*>(ArgLayerArray(env, info[5], napi_float32_array, d.out, layer + " bias"))
                 : nullptr;
  const ByteSpan dst = ArgByteSpan(info, 6, "dst");
  const Int8GemmKernel& kernel = ArgInt8Kernel(info, 7);
  const Status s =
      PackQuantStackLayer(specs.data(), specs.size(), dynamic ? QuantMode::kDynamic : QuantMode::kStatic, index,
                          weights, w_scale, bias, kernel, *SelectF32Gemm(AddonOf(env)->isa_cap()), dst.data, dst.size);
  if (s != Status::kOk) ThrowStatus(env, s, "packQuantizedLayer");
  return Napi::String::New(env, kernel.name);
}

struct QuantStackTraits {
  using View = QuantStackView;
  using Scratch = QuantScratch;
  static constexpr const char* kName = "QuantizedStackHandle";
  static Status Open(const void* data, size_t bytes, View* view) noexcept { return OpenQuantStack(data, bytes, view); }
  static Status Forward(const View& v, const float* x, size_t batch, float* y, Scratch* scratch, ThreadPool* pool,
                        size_t threads) noexcept {
    return QuantStackForward(v, x, batch, y, scratch, pool, threads);
  }
  static size_t In(const View& v) { return v.layers[0].spec.dense.in; }
  static size_t Out(const View& v) { return v.layers[v.count - 1].spec.dense.out; }
  static const char* Kernel(const View& v) { return v.kernel->name; }
  static const char* F32Kernel(const View& v) { return v.f32->name; }
  // Both kernels must be within the cap: int8 layers run one, layers kept in fp32 the other.
  static const char* AboveCap(const View& v, Isa cap) {
    if (!IsaWithin(v.kernel->isa, cap)) return v.kernel->name;
    return IsaWithin(v.f32->isa, cap) ? nullptr : v.f32->name;
  }
};

}  // namespace

void RegisterQuantizedStackHandle(Napi::Env env, Napi::Object exports) {
  exports.Set("QuantizedStackHandle", PackedModelWrap<QuantStackTraits>::Define(env));
  exports.Set("packedQuantizedByteLength",
              Napi::Function::New(env, PackedQuantizedByteLength, "packedQuantizedByteLength"));
  exports.Set("packQuantized", Napi::Function::New(env, PackQuantized, "packQuantized"));
  exports.Set("packQuantizedLayer", Napi::Function::New(env, PackQuantizedLayer, "packQuantizedLayer"));
}

}  // namespace maas::binding
