// Arguments every binding file reads the same way: this environment's addon state, a kernel by
// name (or the best under the cap), and the dense part of a layer spec array.
#pragma once
#include <napi.h>

#include <chrono>
#include <string>
#include <vector>

#include "addon.h"
#include "maas/activation.h"
#include "maas/dense_stack.h"
#include "maas/isa.h"
#include "typed.h"

namespace maas::binding {

inline MaasAddon* AddonOf(Napi::Env env) { return env.GetInstanceData<MaasAddon>(); }

// The kernel of a family named by info[index], or the family's best under this env's cap when
// the argument is absent; a kernel above the cap or unsupported by the CPU is refused.
template <typename Kernel>
const Kernel& ArgKernelOf(const Napi::CallbackInfo& info, size_t index, const Kernel* (*select)(Isa),
                          const Kernel* (*find)(const char*), const char* family) {
  Napi::Env env = info.Env();
  const Isa cap = AddonOf(env)->isa_cap();
  if (info.Length() <= index || info[index].IsUndefined()) return *select(cap);
  if (!info[index].IsString()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected a kernel name string for kernel", true);
  const std::string name = info[index].As<Napi::String>();
  const Kernel* k = find(name.c_str());
  if (!k) ThrowCoded(env, "MAAS_ERR_KERNEL_UNKNOWN", std::string("unknown ") + family + "kernel '" + name + "'", true);
  if (!IsaWithin(k->isa, cap) || !IsaSupported(k->isa)) {
    ThrowCoded(env, "MAAS_ERR_ISA_UNSUPPORTED",
               "kernel '" + name + "' needs " + IsaName(k->isa) + ", above this thread's cap (" + IsaName(cap) +
                   ") or not on this CPU");
  }
  return *k;
}

// An optional number property of `o`, or `fallback` when it is absent (undefined or null).
inline double OptionalNumber(const Napi::Object& o, const char* key, double fallback) {
  const Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() ? fallback : v.ToNumber().DoubleValue();
}

// {alpha, maxValue?, threshold?} of `o`, checked against the activation (Keras's ReLU rules).
inline ActivationParams ParseActivationParams(Napi::Env env, const Napi::Object& o, Activation act,
                                              const std::string& what) {
  const ActivationParams p{static_cast<float>(OptionalNumber(o, "alpha", 0)),
                           static_cast<float>(OptionalNumber(o, "maxValue", __builtin_huge_val())),
                           static_cast<float>(OptionalNumber(o, "threshold", 0))};
  if (!ValidActivationParams(act, p)) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
               what +
                   ": kerasRelu expects alpha (negative slope) >= 0, maxValue >= 0 and threshold >= 0 but received " +
                   std::to_string(p.alpha) + ", " + std::to_string(p.max_value) + " and " + std::to_string(p.threshold),
               true);
  }
  return p;
}

// {in, out, activation, alpha, maxValue?, threshold?, hasBias} of layer spec object `o` (the i-th),
// range-checked.
inline DenseLayerSpec ParseDenseSpec(Napi::Env env, const Napi::Object& o, uint32_t i) {
  const double in = o.Get("in").ToNumber().DoubleValue(), out = o.Get("out").ToNumber().DoubleValue();
  const double act = o.Get("activation").ToNumber().DoubleValue();
  if (!(in >= 1 && in < 4294967296.0 && out >= 1 && out < 4294967296.0 && act >= 0 && act < kActivationCount)) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "layer spec " + std::to_string(i) + " has an invalid in, out or activation",
               true);
  }
  DenseLayerSpec spec;
  spec.in = static_cast<uint32_t>(in);
  spec.out = static_cast<uint32_t>(out);
  spec.act = static_cast<Activation>(static_cast<uint32_t>(act));
  const ActivationParams p = ParseActivationParams(env, o, spec.act, "layer spec " + std::to_string(i));
  spec.alpha = p.alpha;
  spec.max_value = p.max_value;
  spec.threshold = p.threshold;
  spec.has_bias = o.Get("hasBias").ToBoolean().Value();
  return spec;
}

// The array info[index] of layer spec objects, each parsed by parse(env, object, i).
template <typename Spec, typename Parse>
std::vector<Spec> ArgSpecArray(const Napi::CallbackInfo& info, size_t index, const char* what, Parse parse) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", std::string("expected an array of ") + what, true);
  Napi::Array arr = info[index].As<Napi::Array>();
  std::vector<Spec> specs(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "expected a layer spec object", true);
    specs[i] = parse(env, v.As<Napi::Object>(), i);
  }
  return specs;
}

struct PredictArgs {
  const float* x;
  size_t batch;
  float* y;
};

// predict(x: Float32Array, batch, y: Float32Array) of a model with `in` inputs and `out` outputs:
// x must hold batch·in floats and y batch·out, else a coded RangeError.
inline PredictArgs ArgPredict(const Napi::CallbackInfo& info, size_t in, size_t out) {
  size_t x_length = 0, y_length = 0;
  const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &x_length);
  const size_t batch = ArgSize(info, 1, "batch");
  float* y = ArgTypedData<float>(info, 2, "y", napi_float32_array, &y_length);
  if (batch == 0 || x_length != batch * in || y_length != batch * out) {
    ThrowCoded(info.Env(), "MAAS_ERR_SHAPE_MISMATCH",
               "predict: expected x of " + std::to_string(batch * in) + " and y of " + std::to_string(batch * out) +
                   " floats for batch " + std::to_string(batch) + " but received " + std::to_string(x_length) +
                   " and " + std::to_string(y_length),
               true);
  }
  return PredictArgs{x, batch, y};
}

// Runs a peak probe (independent chains in registers, returning the ops it did) on `threads`
// pool threads for info's (isa, iterations, threads) arguments 1 and 2, and answers
// { <unit>: total ops, seconds }.
// Iterations and threads are info[first] and info[first + 1] (after the ISA name by default).
inline Napi::Value RunPeakProbe(const Napi::CallbackInfo& info, double (*probe)(uint64_t), const char* unit,
                                size_t first = 1) {
  struct Job {
    double (*probe)(uint64_t);
    uint64_t iterations;
    double ops[64];
  } job{probe, ArgSize(info, first, "iterations"), {}};
  Napi::Env env = info.Env();
  ThreadPool& pool = AddonOf(env)->pool();
  size_t nth = ArgSize(info, first + 1, "threads");
  nth = nth < 1 ? 1 : (nth > pool.size() ? pool.size() : nth);
  nth = nth > 64 ? 64 : nth;
  const auto t0 = std::chrono::steady_clock::now();
  pool.Run(
      nth,
      [](void* ctx, size_t ith, size_t) {
        auto* j = static_cast<Job*>(ctx);
        j->ops[ith] = j->probe(j->iterations);
      },
      &job);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double ops = 0;
  for (size_t t = 0; t < nth; ++t) ops += job.ops[t];
  Napi::Object out = Napi::Object::New(env);
  out.Set(unit, ops);
  out.Set("seconds", seconds);
  return out;
}

}  // namespace maas::binding
