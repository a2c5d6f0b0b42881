// Kernel-level exports: packing a dense stack into a caller's buffer, and the underscore-named
// test and benchmark entries (one GEMM on a named kernel, the reference twin, the peak probes).
#include <chrono>
#include <string>
#include <vector>

#include "addon.h"
#include "maas/dense_stack.h"
#include "maas/peak.h"
#include "maas/reference.h"
#include "typed.h"

namespace maas::binding {

namespace {

MaasAddon* Addon(Napi::Env env) { return env.GetInstanceData<MaasAddon>(); }

// The kernel named by info[index] (a string), or the best one under this env's cap when absent.
const F32GemmKernel& ArgKernel(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  const Isa cap = Addon(env)->isa_cap();
  if (info.Length() <= index || info[index].IsUndefined()) return *SelectF32Gemm(cap);
  if (!info[index].IsString()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected a kernel name string for kernel", true);
  const std::string name = info[index].As<Napi::String>();
  const F32GemmKernel* k = FindF32Gemm(name.c_str());
  if (!k) ThrowCoded(env, "MAAS_ERR_KERNEL_UNKNOWN", "unknown kernel '" + name + "'", true);
  if (static_cast<uint32_t>(k->isa) > static_cast<uint32_t>(MinIsa(cap, BestSupportedIsa()))) {
    ThrowCoded(env, "MAAS_ERR_ISA_UNSUPPORTED", "kernel '" + name + "' needs " + IsaName(k->isa) +
               ", above this thread's cap or CPU (" + IsaName(MinIsa(cap, BestSupportedIsa())) + ")");
  }
  return *k;
}

std::vector<DenseLayerSpec> ArgSpecs(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected an array of layer specs", true);
  Napi::Array arr = info[index].As<Napi::Array>();
  std::vector<DenseLayerSpec> specs(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected a layer spec object", true);
    Napi::Object o = v.As<Napi::Object>();
    const double in = o.Get("in").ToNumber().DoubleValue(), out = o.Get("out").ToNumber().DoubleValue();
    const double act = o.Get("activation").ToNumber().DoubleValue();
    if (!(in >= 1 && in < 4294967296.0 && out >= 1 && out < 4294967296.0 && act >= 0 && act < kActivationCount)) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "layer spec " + std::to_string(i) + " has an invalid in, out or activation", true);
    }
    specs[i] = DenseLayerSpec{static_cast<uint32_t>(in), static_cast<uint32_t>(out), static_cast<Activation>(static_cast<uint32_t>(act)),
                              static_cast<float>(o.Get("alpha").ToNumber().DoubleValue()), o.Get("hasBias").ToBoolean().Value()};
  }
  return specs;
}

// packedStackByteLength(specs, kernel?) -> bytes the packed buffer needs
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
  if (!info[1].IsArray() || !info[2].IsArray()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected arrays of weights and biases", true);
  Napi::Array w = info[1].As<Napi::Array>(), b = info[2].As<Napi::Array>();
  if (w.Length() != specs.size() || b.Length() != specs.size()) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "expected one weight and one bias entry per layer", true);
  }
  std::vector<const float*> wp(specs.size()), bp(specs.size());
  for (uint32_t i = 0; i < specs.size(); ++i) {
    Napi::Value wv = w.Get(i), bv = b.Get(i);
    if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        wv.As<Napi::TypedArray>().ElementLength() != static_cast<size_t>(specs[i].in) * specs[i].out) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "layer " + std::to_string(i) + ": expected a Float32Array kernel of in*out floats", true);
    }
    wp[i] = wv.As<Napi::Float32Array>().Data();
    bp[i] = nullptr;
    if (specs[i].has_bias) {
      if (!bv.IsTypedArray() || bv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          bv.As<Napi::TypedArray>().ElementLength() != specs[i].out) {
        ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "layer " + std::to_string(i) + ": expected a Float32Array bias of out floats", true);
      }
      bp[i] = bv.As<Napi::Float32Array>().Data();
    }
  }
  auto dst = ArgTypedArray<uint8_t>(info, 3, "dst", napi_uint8_array);
  const F32GemmKernel& kernel = ArgKernel(info, 4);
  const Status s = PackDenseStack(specs.data(), specs.size(), wp.data(), bp.data(), kernel, dst.Data(), dst.ByteLength());
  if (s != Status::kOk) ThrowStatus(env, s, "packStack");
  return Napi::String::New(env, kernel.name);
}

// _gemm(kernel, x, lda, w, bias|null, m, n, k, act, alpha, y, ldy, threads): one GEMM on a named
// kernel, weights packed here. A test entry: it allocates, unlike the compiled path.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const F32GemmKernel& kernel = ArgKernel(info, 0);
  auto x = ArgTypedArray<float>(info, 1, "x", napi_float32_array);
  const size_t lda = ArgSize(info, 2, "lda");
  auto w = ArgTypedArray<float>(info, 3, "w", napi_float32_array);
  const bool has_bias = !info[4].IsNull() && !info[4].IsUndefined();
  const size_t m = ArgSize(info, 5, "m"), n = ArgSize(info, 6, "n"), k = ArgSize(info, 7, "k");
  const Activation act = ArgActivation(info, 8);
  const float alpha = static_cast<float>(info[9].ToNumber().DoubleValue());
  auto y = ArgTypedArray<float>(info, 10, "y", napi_float32_array);
  const size_t ldy = ArgSize(info, 11, "ldy");
  const size_t threads = ArgSize(info, 12, "threads");
  if (m == 0 || n == 0 || k == 0 || lda < k || ldy < n || x.ElementLength() < (m - 1) * lda + k ||
      w.ElementLength() != k * n || y.ElementLength() < (m - 1) * ldy + n) {
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_gemm: operand sizes do not match m, n, k and strides", true);
  }
  std::vector<float> bias_padded;
  if (has_bias) {
    auto bias = ArgTypedArray<float>(info, 4, "bias", napi_float32_array);
    if (bias.ElementLength() != n) ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_gemm: bias must hold n floats", true);
    bias_padded.resize(PackedBiasFloats(n, kernel.nr));
    PackF32Bias(bias.Data(), n, kernel.nr, bias_padded.data());
  }
  std::vector<float> packed(PackedBFloats(k, n, kernel.nr));
  PackF32B(w.Data(), n, k, n, kernel.nr, packed.data());
  ThreadPool& pool = Addon(env)->pool();
  const size_t nth = threads < 1 ? 1 : (threads > pool.size() ? pool.size() : threads);
  std::vector<float> scratch(kernel.scratch_floats(k) * nth);
  std::vector<float*> per_thread(nth);
  for (size_t t = 0; t < nth; ++t) per_thread[t] = scratch.data() + t * kernel.scratch_floats(k);
  F32GemmArgs args;
  args.m = m; args.n = n; args.k = k;
  args.a = x.Data(); args.lda = lda;
  args.b_packed = packed.data();
  args.bias = has_bias ? bias_padded.data() : nullptr;
  args.c = y.Data(); args.ldc = ldy;
  args.act = act; args.alpha = alpha;
  F32GemmParallel(kernel, args, &pool, nth, per_thread.data());
  return env.Undefined();
}

// _referenceDense(x, lda, w, bias|null, m, n, k, act, alpha, y, ldy, magnitude|null)
Napi::Value ReferenceDense(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto x = ArgTypedArray<float>(info, 0, "x", napi_float32_array);
  const size_t lda = ArgSize(info, 1, "lda");
  auto w = ArgTypedArray<float>(info, 2, "w", napi_float32_array);
  const bool has_bias = !info[3].IsNull() && !info[3].IsUndefined();
  const size_t m = ArgSize(info, 4, "m"), n = ArgSize(info, 5, "n"), k = ArgSize(info, 6, "k");
  const Activation act = ArgActivation(info, 7);
  const float alpha = static_cast<float>(info[8].ToNumber().DoubleValue());
  auto y = ArgTypedArray<float>(info, 9, "y", napi_float32_array);
  const size_t ldy = ArgSize(info, 10, "ldy");
  const bool want_mag = !info[11].IsNull() && !info[11].IsUndefined();
  if (m == 0 || n == 0 || k == 0 || lda < k || ldy < n || x.ElementLength() < (m - 1) * lda + k ||
      w.ElementLength() != k * n || y.ElementLength() < (m - 1) * ldy + n) {
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_referenceDense: operand sizes do not match m, n, k and strides", true);
  }
  const float* bias = nullptr;
  if (has_bias) {
    auto b = ArgTypedArray<float>(info, 3, "bias", napi_float32_array);
    if (b.ElementLength() != n) ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_referenceDense: bias must hold n floats", true);
    bias = b.Data();
  }
  float* mag = nullptr;
  if (want_mag) {
    auto mg = ArgTypedArray<float>(info, 11, "magnitude", napi_float32_array);
    if (mg.ElementLength() != m * n) ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_referenceDense: magnitude must hold m*n floats", true);
    mag = mg.Data();
  }
  ref::F32Dense(x.Data(), lda, w.Data(), bias, m, n, k, act, alpha, y.Data(), ldy, mag);
  return env.Undefined();
}

struct PeakJob {
  double (*probe)(uint64_t);
  uint64_t iterations;
  double flops[64];
};

void PeakTask(void* ctx, size_t ith, size_t) {
  auto* job = static_cast<PeakJob*>(ctx);
  job->flops[ith] = job->probe(job->iterations);
}

// _peakFma(isa: 'avx512'|'avx2', iterations, threads) -> { flops, seconds }
Napi::Value PeakFma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string isa = info[0].ToString();
  PeakJob job{};
  if (isa == "avx512" && IsaSupported(Isa::kAvx512)) job.probe = &PeakFmaAvx512;
  else if (isa == "avx2" && IsaSupported(Isa::kAvx2)) job.probe = &PeakFmaAvx2;
  else ThrowCoded(env, "MAAS_ERR_ISA_UNSUPPORTED", "_peakFma: '" + isa + "' is not supported here");
  job.iterations = ArgSize(info, 1, "iterations");
  ThreadPool& pool = Addon(env)->pool();
  size_t nth = ArgSize(info, 2, "threads");
  nth = nth < 1 ? 1 : (nth > pool.size() ? pool.size() : nth);
  const auto t0 = std::chrono::steady_clock::now();
  pool.Run(nth, &PeakTask, &job);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double flops = 0;
  for (size_t t = 0; t < nth; ++t) flops += job.flops[t];
  Napi::Object out = Napi::Object::New(env);
  out.Set("flops", flops);
  out.Set("seconds", seconds);
  return out;
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("packedStackByteLength", Napi::Function::New(env, PackedStackByteLength, "packedStackByteLength"));
  exports.Set("packStack", Napi::Function::New(env, PackStack, "packStack"));
  exports.Set("_gemm", Napi::Function::New(env, Gemm, "_gemm"));
  exports.Set("_referenceDense", Napi::Function::New(env, ReferenceDense, "_referenceDense"));
  exports.Set("_peakFma", Napi::Function::New(env, PeakFma, "_peakFma"));
}

}  // namespace maas::binding
