// Kernel-level exports: packing a dense stack into a caller's buffer, and the underscore-named
// test and benchmark entries (one GEMM on a named kernel, the reference twin, the peak probes).
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/dense_stack.h"
#include "maas/peak.h"
#include "maas/reference.h"
#include "typed.h"

namespace maas::binding {

namespace {

// The fp32-family kernel named by info[index]; or, for a weight precision ('fp32' | 'bf16'), this
// thread's best kernel storing it; the best fp32 one under this env's cap when absent.
const F32GemmKernel& ArgKernel(const Napi::CallbackInfo& info, size_t index) {
  WeightFormat weights;
  if (info.Length() > index && info[index].IsString()) {
    const std::string text = info[index].As<Napi::String>();
    if (ParseWeightFormat(text.c_str(), &weights)) return *SelectF32Gemm(AddonOf(info.Env())->isa_cap(), weights);
  }
  return ArgKernelOf<F32GemmKernel>(info, index, [](Isa cap) { return SelectF32Gemm(cap); }, FindF32Gemm, "");
}

std::vector<DenseLayerSpec> ArgSpecs(const Napi::CallbackInfo& info, size_t index) {
  return ArgSpecArray<DenseLayerSpec>(info, index, "layer specs", ParseDenseSpec);
}

// packedStackByteLength(specs, kernel?) -> bytes the packed buffer needs (kernel: a name or 'fp32' | 'bf16')
Napi::Value PackedStackByteLength(const Napi::CallbackInfo& info) {
  std::vector<DenseLayerSpec> specs = ArgSpecs(info, 0);
  size_t bytes = 0;
  const Status s = PackedStackBytes(specs.data(), specs.size(), ArgKernel(info, 1), &bytes);
  if (s != Status::kOk) ThrowStatus(info.Env(), s, "packedStackByteLength");
  return Napi::Number::New(info.Env(), static_cast<double>(bytes));
}

// packStack(specs, weights: Float32Array[], biases: (Float32Array|null)[], dst: Uint8Array, kernel?) -> kernel name
Napi::Value PackStack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<DenseLayerSpec> specs = ArgSpecs(info, 0);
  if (!info[1].IsArray() || !info[2].IsArray())
    ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected arrays of weights and biases", true);
  Napi::Array w = info[1].As<Napi::Array>(), b = info[2].As<Napi::Array>();
  if (w.Length() != specs.size() || b.Length() != specs.size()) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "expected one weight and one bias entry per layer", true);
  }
  std::vector<const float*> wp(specs.size()), bp(specs.size());
  for (uint32_t i = 0; i < specs.size(); ++i) {
    Napi::Value wv = w.Get(i), bv = b.Get(i);
    if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        wv.As<Napi::TypedArray>().ElementLength() != static_cast<size_t>(specs[i].in) * specs[i].out) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                 "layer " + std::to_string(i) + ": expected a Float32Array kernel of in*out floats", true);
    }
    wp[i] = wv.As<Napi::Float32Array>().Data();
    bp[i] = nullptr;
    if (specs[i].has_bias) {
      if (!bv.IsTypedArray() || bv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          bv.As<Napi::TypedArray>().ElementLength() != specs[i].out) {
        ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                   "layer " + std::to_string(i) + ": expected a Float32Array bias of out floats", true);
      }
      bp[i] = bv.As<Napi::Float32Array>().Data();
    }
  }
  const ByteSpan dst = ArgByteSpan(info, 3, "dst");
  const F32GemmKernel& kernel = ArgKernel(info, 4);
  const Status s = PackDenseStack(specs.data(), specs.size(), wp.data(), bp.data(), kernel, dst.data, dst.size);
  if (s != Status::kOk) ThrowStatus(env, s, "packStack");
  return Napi::String::New(env, kernel.name);
}

// packStackLayer(specs, index, weights: Float32Array, bias: Float32Array|null, dst: ArrayBuffer|Uint8Array, kernel?) ->
// kernel name
Napi::Value PackStackLayer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<DenseLayerSpec> specs = ArgSpecs(info, 0);
  const size_t index = ArgSize(info, 1, "index");
  if (index >= specs.size()) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "packStackLayer: index past the last layer", true);
  const DenseLayerSpec& spec = specs[index];
  const std::string layer = "layer " + std::to_string(index);
  const auto* weights = static_cast<const float*>(
      ArgLayerArray(env, info[2], napi_float32_array, static_cast<size_t>(spec.in) * spec.out, layer + " kernel"));
  const auto* bias =
      spec.has_bias
          ? static_cast<const float*>(ArgLayerArray(env, info[3], napi_float32_array, spec.out, layer + " bias"))
          : nullptr;
  const ByteSpan dst = ArgByteSpan(info, 4, "dst");
  const F32GemmKernel& kernel = ArgKernel(info, 5);
  const Status s = PackDenseStackLayer(specs.data(), specs.size(), index, weights, bias, kernel, dst.data, dst.size);
  if (s != Status::kOk) ThrowStatus(env, s, "packStackLayer");
  return Napi::String::New(env, kernel.name);
}

// The operands _gemm and _referenceDense share, read from info[first..first+10]:
// x, lda, w, bias|null, m, n, k, activation, params, y, ldy; params is alpha (a number) or
// {alpha, maxValue?, threshold?}.
struct DenseOperands {
  const float* x;
  size_t lda;
  const float* w;
  const float* bias;  // n floats, or nullptr
  size_t m, n, k;
  Activation act;
  ActivationParams params;
  float* y;
  size_t ldy;
};

DenseOperands ArgDenseOperands(const Napi::CallbackInfo& info, size_t first, const char* fn) {
  Napi::Env env = info.Env();
  auto x = ArgTypedArray<float>(info, first, "x", napi_float32_array);
  auto w = ArgTypedArray<float>(info, first + 2, "w", napi_float32_array);
  auto y = ArgTypedArray<float>(info, first + 9, "y", napi_float32_array);
  DenseOperands d{x.Data(),
                  ArgSize(info, first + 1, "lda"),
                  w.Data(),
                  nullptr,
                  ArgSize(info, first + 4, "m"),
                  ArgSize(info, first + 5, "n"),
                  ArgSize(info, first + 6, "k"),
                  ArgActivation(info, first + 7),
                  ActivationParams{},
                  y.Data(),
                  ArgSize(info, first + 10, "ldy")};
  if (info[first + 8].IsObject()) {
    d.params = ParseActivationParams(env, info[first + 8].As<Napi::Object>(), d.act, fn);
  } else {
    d.params.alpha = static_cast<float>(info[first + 8].ToNumber().DoubleValue());
  }
  if (d.m == 0 || d.n == 0 || d.k == 0 || d.lda < d.k || d.ldy < d.n || x.ElementLength() < (d.m - 1) * d.lda + d.k ||
      w.ElementLength() != d.k * d.n || y.ElementLength() < (d.m - 1) * d.ldy + d.n) {
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", std::string(fn) + ": operand sizes do not match m, n, k and strides",
               true);
  }
  if (!info[first + 3].IsNull() && !info[first + 3].IsUndefined()) {
    auto bias = ArgTypedArray<float>(info, first + 3, "bias", napi_float32_array);
    if (bias.ElementLength() != d.n)
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", std::string(fn) + ": bias must hold n floats", true);
    d.bias = bias.Data();
  }
  return d;
}

// _gemm(kernel, x, lda, w, bias|null, m, n, k, act, alpha, y, ldy, threads): one GEMM on a named
// kernel, weights packed here. A test entry: it allocates, unlike the compiled path.
// _selectF32Gemm(features, cap, cpuClass?, weights?) -> { kernel, cpuClass }: the dispatch rule for
// a made-up CPU, under its own class (from vendor, family and features) or the one given, for
// 'fp32' (the default) or 'bf16' weights.
Napi::Value SelectF32ForFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsString())
    ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected (features, cap, cpuClass?, weights?)", true);
  const CpuFeatures f = ArgCpuFeatures(info[0].As<Napi::Object>());
  Isa cap;
  const std::string text = info[1].As<Napi::String>();
  if (!ParseIsa(text.c_str(), &cap)) ThrowCoded(env, "MAAS_ERR_ISA_INVALID", "unknown ISA '" + text + "'", true);
  CpuClass cls = ClassOf(f);
  if (info.Length() > 2 && info[2].IsString()) {
    const std::string name = info[2].As<Napi::String>();
    if (!ParseCpuClass(name.c_str(), &cls))
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "unknown CPU class '" + name + "'", true);
  }
  WeightFormat weights = WeightFormat::kF32;
  if (info.Length() > 3 && info[3].IsString()) {
    const std::string name = info[3].As<Napi::String>();
    if (!ParseWeightFormat(name.c_str(), &weights))
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "unknown weight precision '" + name + "'", true);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("kernel", SelectF32GemmFor(cap, cls, f, weights)->name);
  out.Set("cpuClass", CpuClassName(cls));
  return out;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const F32GemmKernel& kernel = ArgKernel(info, 0);
  const DenseOperands d = ArgDenseOperands(info, 1, "_gemm");
  const size_t threads = ArgSize(info, 12, "threads");
  std::vector<float> bias_padded;
  if (d.bias) {
    bias_padded.resize(PackedBiasFloats(d.n, kernel.nr));
    PackF32Bias(d.bias, d.n, kernel.nr, bias_padded.data());
  }
  std::vector<float> packed(PackedWeightFloats(kernel, d.k, d.n));
  PackWeights(kernel, d.w, d.n, d.k, d.n, packed.data());
  ThreadPool& pool = AddonOf(env)->pool();
  const size_t nth = threads < 1 ? 1 : (threads > pool.size() ? pool.size() : threads);
  std::vector<float> scratch(kernel.scratch_floats(d.k) * nth);
  std::vector<float*> per_thread(nth);
  for (size_t t = 0; t < nth; ++t) per_thread[t] = scratch.data() + t * kernel.scratch_floats(d.k);
  F32GemmArgs args;
  args.m = d.m;
  args.n = d.n;
  args.k = d.k;
  args.a = d.x;
  args.lda = d.lda;
  args.b_packed = packed.data();
  args.bias = d.bias ? bias_padded.data() : nullptr;
  args.c = d.y;
  args.ldc = d.ldy;
  args.set_activation(d.act, d.params);
  F32GemmParallel(kernel, args, &pool, nth, per_thread.data());
  return env.Undefined();
}

// _referenceDense(x, lda, w, bias|null, m, n, k, act, alpha, y, ldy, magnitude|null)
Napi::Value ReferenceDense(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DenseOperands d = ArgDenseOperands(info, 0, "_referenceDense");
  float* mag = nullptr;
  if (!info[11].IsNull() && !info[11].IsUndefined()) {
    auto mg = ArgTypedArray<float>(info, 11, "magnitude", napi_float32_array);
    if (mg.ElementLength() != d.m * d.n)
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_referenceDense: magnitude must hold m*n floats", true);
    mag = mg.Data();
  }
  ref::F32Dense(d.x, d.lda, d.w, d.bias, d.m, d.n, d.k, d.act, d.params, d.y, d.ldy, mag);
  return env.Undefined();
}

// _activate(kernel, act, params, z, y): a kernel's element-wise activation pass, y = act(z). A test entry.
Napi::Value Activate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const F32GemmKernel& kernel = ArgKernel(info, 0);
  const Activation act = ArgActivation(info, 1);
  if (!IsElementwise(act)) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "_activate: softmax is a row pass", true);
  maas::ActivationParams params;
  if (info[2].IsObject()) params = ParseActivationParams(env, info[2].As<Napi::Object>(), act, "_activate");
  auto z = ArgTypedArray<float>(info, 3, "z", napi_float32_array);
  auto y = ArgTypedArray<float>(info, 4, "y", napi_float32_array);
  if (y.ElementLength() < z.ElementLength())
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_activate: y must hold as many floats as z", true);
  kernel.activate(act, params, z.Data(), y.Data(), z.ElementLength());
  return env.Undefined();
}

// _clockProbe(iterations, threads) -> { cycles, seconds }: the clock the peaks run at.
Napi::Value ClockProbe(const Napi::CallbackInfo& info) { return RunPeakProbe(info, &ClockCycles, "cycles", 0); }

// _peakFma(isa: 'amx-bf16'|'avx512bf16'|'avx512'|'avx2', iterations, threads) -> { flops, seconds }
Napi::Value PeakFma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string isa = info[0].ToString();
  double (*probe)(uint64_t) = nullptr;
  if (isa == "amx-bf16" && IsaSupported(Isa::kAmx))
    probe = &PeakAmxBf16;
  else if (isa == "avx512bf16" && IsaSupported(Isa::kAvx512Bf16))
    probe = &PeakBf16Avx512;
  else if (isa == "avx512" && IsaSupported(Isa::kAvx512))
    probe = &PeakFmaAvx512;
  else if (isa == "avx2" && IsaSupported(Isa::kAvx2))
    probe = &PeakFmaAvx2;
  else
    ThrowCoded(env, "MAAS_ERR_ISA_UNSUPPORTED", "_peakFma: '" + isa + "' is not supported here");
  return RunPeakProbe(info, probe, "flops");
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("packedStackByteLength", Napi::Function::New(env, PackedStackByteLength, "packedStackByteLength"));
  exports.Set("packStack", Napi::Function::New(env, PackStack, "packStack"));
  exports.Set("packStackLayer", Napi::Function::New(env, PackStackLayer, "packStackLayer"));
  exports.Set("_gemm", Napi::Function::New(env, Gemm, "_gemm"));
  exports.Set("_selectF32Gemm", Napi::Function::New(env, SelectF32ForFeatures, "_selectF32Gemm"));
  exports.Set("_referenceDense", Napi::Function::New(env, ReferenceDense, "_referenceDense"));
  exports.Set("_activate", Napi::Function::New(env, Activate, "_activate"));
  exports.Set("_peakFma", Napi::Function::New(env, PeakFma, "_peakFma"));
  exports.Set("_clockProbe", Napi::Function::New(env, ClockProbe, "_clockProbe"));
}

}  // namespace maas::binding
