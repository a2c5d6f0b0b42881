// Underscore-named int8 test and benchmark entries: one GEMM on a named int8 kernel and its
// integer reference twin, the quantizer of each kernel, the dispatch rule over made-up CPUs, the
// activation parameters, and the VNNI/AMX peak probes.
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/dense_stack.h"
#include "maas/peak.h"
#include "maas/quantized_stack.h"
#include "maas/reference.h"
#include "typed.h"

namespace maas::binding {

namespace {

// The int8 kernel named by info[index] (required here: the test and bench entries name it).
const Int8GemmKernel& NamedInt8Kernel(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsString())
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", "expected a kernel name string for kernel", true);
  return ArgKernelOf<Int8GemmKernel>(info, index, SelectInt8Gemm, FindInt8Gemm, "int8 ");
}

template <typename T>
T* TypedData(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* what,
             size_t* length) {
  return ArgTypedData<T>(info, index, what, type, length);
}

// The operands _qgemm and _referenceQGemm share, from info[first..first+13] (and the optional
// activation parameters at first+15, after _qgemm's threads and _referenceQGemm's outMax):
// a, lda, aZero, w, scale, bias|null, m, n, k, act, out (Float32Array | Uint8Array), ldo, outScale, outZero.
struct QOperands {
  const uint8_t* a;
  size_t lda;
  int32_t a_zero;
  const int8_t* w;
  const float* scale;
  const float* bias;
  size_t m, n, k;
  Activation act;
  maas::ActivationParams params;
  float* c;
  uint8_t* q;
  size_t ldo;
  float out_scale;
  int32_t out_zero;
};

QOperands ArgQOperands(const Napi::CallbackInfo& info, size_t first, size_t a_row_bytes_pad, const char* fn) {
  Napi::Env env = info.Env();
  size_t a_len = 0, w_len = 0, s_len = 0, o_len = 0;
  QOperands o{};
  o.a = TypedData<uint8_t>(info, first, napi_uint8_array, "a", &a_len);
  o.lda = ArgSize(info, first + 1, "lda");
  o.a_zero = static_cast<int32_t>(ArgSize(info, first + 2, "aZero"));
  o.w = TypedData<int8_t>(info, first + 3, napi_int8_array, "w", &w_len);
  o.scale = TypedData<float>(info, first + 4, napi_float32_array, "scale", &s_len);
  o.m = ArgSize(info, first + 6, "m");
  o.n = ArgSize(info, first + 7, "n");
  o.k = ArgSize(info, first + 8, "k");
  o.act = ArgActivation(info, first + 9);
  const bool u8_out =
      info[first + 10].IsTypedArray() && info[first + 10].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  if (u8_out)
    o.q = TypedData<uint8_t>(info, first + 10, napi_uint8_array, "out", &o_len);
  else
    o.c = TypedData<float>(info, first + 10, napi_float32_array, "out", &o_len);
  o.ldo = ArgSize(info, first + 11, "ldo");
  o.out_scale = static_cast<float>(info[first + 12].ToNumber().DoubleValue());
  o.out_zero = static_cast<int32_t>(ArgSize(info, first + 13, "outZero"));
  const size_t row = a_row_bytes_pad ? RoundUpTo(o.k, a_row_bytes_pad) : o.k;
  if (o.m == 0 || o.n == 0 || o.k == 0 || o.k > kMaxInt8K || o.lda < row || a_len < (o.m - 1) * o.lda + row ||
      w_len != o.k * o.n || s_len != o.n || o.ldo < o.n || o_len < (o.m - 1) * o.ldo + o.n || o.a_zero > 255 ||
      !Int8Fusable(o.act) || (o.q && !(o.out_scale > 0))) {
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
               std::string(fn) + ": operand sizes or parameters do not match m, n, k and strides", true);
  }
  // Optional {alpha, maxValue?, threshold?} after the call's last positional argument (kerasRelu).
  if (info.Length() > first + 15 && info[first + 15].IsObject())
    o.params = ParseActivationParams(env, info[first + 15].As<Napi::Object>(), o.act, fn);
  if (!info[first + 5].IsNull() && !info[first + 5].IsUndefined()) {
    size_t b_len = 0;
    o.bias = TypedData<float>(info, first + 5, napi_float32_array, "bias", &b_len);
    if (b_len != o.n) ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", std::string(fn) + ": bias must hold n floats", true);
  }
  return o;
}

// _qgemm(kernel, a, lda, aZero, w, scale, bias|null, m, n, k, act, out, ldo, outScale, outZero, threads):
// one int8 GEMM on a named kernel, weights packed here. A test entry: it allocates.
Napi::Value QGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Int8GemmKernel& kernel = NamedInt8Kernel(info, 0);
  const QOperands o = ArgQOperands(info, 1, 4, "_qgemm");
  const size_t threads = ArgSize(info, 15, "threads");
  const size_t padded = PackedBiasFloats(o.n, kernel.nr);
  std::vector<int8_t> packed(PackedInt8BBytes(o.k, o.n, kernel));
  std::vector<int32_t> colsum(padded);
  std::vector<float> scale(padded), bias(padded);
  PackInt8B(o.w, o.n, o.k, o.n, kernel, packed.data(), colsum.data());
  PackF32Bias(o.scale, o.n, kernel.nr, scale.data());
  if (o.bias) PackF32Bias(o.bias, o.n, kernel.nr, bias.data());
  ThreadPool& pool = AddonOf(env)->pool();
  const size_t nth = threads < 1 ? 1 : (threads > pool.size() ? pool.size() : threads);
  const size_t per = kernel.scratch_bytes(o.k) + 64;
  std::vector<uint8_t> scratch(per * nth);
  std::vector<void*> per_thread(nth);
  for (size_t t = 0; t < nth; ++t) per_thread[t] = scratch.data() + t * per;
  Int8GemmArgs g;
  g.m = o.m;
  g.n = o.n;
  g.k = o.k;
  g.a = o.a;
  g.lda = o.lda;
  g.a_zero = o.a_zero;
  g.b_packed = packed.data();
  g.colsum = colsum.data();
  g.scale = scale.data();
  g.bias = o.bias ? bias.data() : nullptr;
  g.act = o.act;
  g.params = o.params;
  g.c = o.c;
  g.ldc = o.ldo;
  g.q = o.q;
  g.ldq = o.ldo;
  g.out_scale = o.out_scale;
  g.out_zero = o.out_zero;
  g.out_max = kernel.a_max;
  Int8GemmParallel(kernel, g, &pool, nth, per_thread.data());
  return env.Undefined();
}

// _referenceQGemm(a, lda, aZero, w, scale, bias|null, m, n, k, act, out, ldo, outScale, outZero, outMax)
Napi::Value ReferenceQGemm(const Napi::CallbackInfo& info) {
  const QOperands o = ArgQOperands(info, 0, 0, "_referenceQGemm");
  const int32_t out_max = static_cast<int32_t>(ArgSize(info, 14, "outMax"));
  ref::QU8S8Dense(o.a, o.lda, o.a_zero, o.w, o.scale, o.bias, o.m, o.n, o.k, o.act, o.params, o.c, o.ldo, o.q, o.ldo,
                  o.out_scale, o.out_zero, out_max);
  return info.Env().Undefined();
}

// _quantizeU8(kernel|null, x, scale, zero, q): the kernel's quantizer, or the reference's (qmax 255)
Napi::Value QuantizeU8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t x_len = 0, q_len = 0;
  const float* x = TypedData<float>(info, 1, napi_float32_array, "x", &x_len);
  const float scale = static_cast<float>(info[2].ToNumber().DoubleValue());
  const int32_t zero = static_cast<int32_t>(ArgSize(info, 3, "zero"));
  uint8_t* q = TypedData<uint8_t>(info, 4, napi_uint8_array, "q", &q_len);
  if (q_len != x_len || !(scale > 0) || zero > 255)
    ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "_quantizeU8: q must match x, scale > 0, zero <= 255", true);
  if (info[0].IsNull()) {
    for (size_t i = 0; i < x_len; ++i) q[i] = ref::QuantizeU8(x[i], scale, zero, 255);
  } else {
    NamedInt8Kernel(info, 0).quantize(x, x_len, scale, zero, q);
  }
  return env.Undefined();
}

// _activationQuantParams(min, max, qmax) -> { scale, zero }
Napi::Value ActivationParams(const Napi::CallbackInfo& info) {
  const QuantParams p = ActivationQuantParams(static_cast<float>(info[0].ToNumber().DoubleValue()),
                                              static_cast<float>(info[1].ToNumber().DoubleValue()),
                                              static_cast<int32_t>(ArgSize(info, 2, "qmax")));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("scale", p.scale);
  out.Set("zero", p.zero);
  return out;
}

}  // namespace

// A made-up CPU from { vendor, family, model, avx2Fma, avx512, ... } (absent fields: 0 / false).
CpuFeatures ArgCpuFeatures(const Napi::Object& o) {
  CpuFeatures f;
  const auto number = [&](const char* key) { return o.Has(key) ? o.Get(key).ToNumber().Uint32Value() : 0u; };
  f.vendor = number("vendor");
  f.family = number("family");
  f.model = number("model");
  f.avx2_fma = o.Get("avx2Fma").ToBoolean();
  f.avx512 = o.Get("avx512").ToBoolean();
  f.avx512_vnni = o.Get("avx512Vnni").ToBoolean();
  f.avx_vnni = o.Get("avxVnni").ToBoolean();
  f.avx512_bf16 = o.Get("avx512Bf16").ToBoolean();
  f.amx_int8 = o.Get("amxInt8").ToBoolean();
  f.amx_permitted = o.Get("amxPermitted").ToBoolean();
  return f;
}

namespace {

// _selectInt8Gemm(cpu, cap) -> kernel name: the dispatch rule for a made-up CPU (its class from
// vendor, family and features, as for fp32).
Napi::Value SelectForFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsString())
    ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected (features, cap)", true);
  const CpuFeatures f = ArgCpuFeatures(info[0].As<Napi::Object>());
  Isa cap;
  const std::string text = info[1].As<Napi::String>();
  if (!ParseIsa(text.c_str(), &cap)) ThrowCoded(env, "MAAS_ERR_ISA_INVALID", "unknown ISA '" + text + "'", true);
  return Napi::String::New(env, SelectInt8GemmFor(f, cap, ClassOf(f))->name);
}

// _peakInt8(isa: 'avx512vnni'|'amx', iterations, threads) -> { ops, seconds }
Napi::Value PeakInt8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string isa = info[0].ToString();
  double (*probe)(uint64_t) = nullptr;
  if (isa == "avx512vnni" && IsaSupported(Isa::kAvx512Vnni))
    probe = &PeakVnniAvx512;
  else if (isa == "amx" && IsaSupported(Isa::kAmx))
    probe = &PeakAmxInt8;
  else
    ThrowCoded(env, "MAAS_ERR_ISA_UNSUPPORTED", "_peakInt8: '" + isa + "' is not supported here");
  return RunPeakProbe(info, probe, "ops");
}

}  // namespace

void RegisterInt8Kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("_qgemm", Napi::Function::New(env, QGemm, "_qgemm"));
  exports.Set("_referenceQGemm", Napi::Function::New(env, ReferenceQGemm, "_referenceQGemm"));
  exports.Set("_quantizeU8", Napi::Function::New(env, QuantizeU8, "_quantizeU8"));
  exports.Set("_activationQuantParams", Napi::Function::New(env, ActivationParams, "_activationQuantParams"));
  exports.Set("_selectInt8Gemm", Napi::Function::New(env, SelectForFeatures, "_selectInt8Gemm"));
  exports.Set("_peakInt8", Napi::Function::New(env, PeakInt8, "_peakInt8"));
}

}  // namespace maas::binding
