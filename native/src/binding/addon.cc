// The addon's entry: registers every exported function and class, and owns per-env state.
// Knows nothing of kernels beyond dispatch settings; each export group lives in its own file.
#include "addon.h"

#include <cstdlib>

#include "maas/backend.h"
#include "maas/f32_gemm.h"
#include "maas/f32_update.h"
#include "maas/int8_gemm.h"
#include "shared_region.h"

namespace maas::binding {

void ThrowCoded(Napi::Env env, const char* code, const std::string& message, bool type_error) {
  Napi::Error error = type_error ? Napi::TypeError::New(env, message) : Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

void ThrowStatus(Napi::Env env, Status status, const std::string& context) {
  const char* code = "MAAS_ERR_NATIVE_INTERNAL";
  switch (status) {
    case Status::kInvalidArgument:
      code = "MAAS_ERR_NATIVE_INVALID_ARGUMENT";
      break;
    case Status::kOutOfMemory:
      code = "MAAS_ERR_NATIVE_OUT_OF_MEMORY";
      break;
    case Status::kUnsupported:
      code = "MAAS_ERR_ISA_UNSUPPORTED";
      break;
    case Status::kCorruptPacked:
      code = "MAAS_ERR_PACKED_CORRUPT";
      break;
    case Status::kOk:
      break;
  }
  ThrowCoded(env, code, context + ": " + StatusName(status));
}

MaasAddon::MaasAddon(Napi::Env env, Napi::Object exports)
    : pool_(std::make_unique<ThreadPool>(1)), isa_cap_(BestSupportedIsa()) {
  // MAAS_MAX_ISA caps dispatch for the whole process; setMaxIsa can lower it further per env.
  if (const char* cap = std::getenv("MAAS_MAX_ISA")) {
    Isa parsed;
    if (ParseIsa(cap, &parsed)) isa_cap_ = MinIsa(isa_cap_, parsed);
  }
  DefineAddon(exports, {
                           InstanceMethod("cpuInfo", &MaasAddon::CpuInfo),
                           InstanceMethod("setMaxIsa", &MaasAddon::SetMaxIsa),
                           InstanceMethod("setThreads", &MaasAddon::SetThreads),
                           InstanceMethod("getThreads", &MaasAddon::GetThreads),
                       });
  RegisterDenseStackHandle(env, exports, this);
  RegisterKernels(env, exports);
  RegisterTrainer(env, exports);
  RegisterInputGradientHandle(env, exports);
  RegisterQuantizedStackHandle(env, exports);
  RegisterInt8Kernels(env, exports);
  RegisterSharedRegions(env, exports);
  RegisterOutputPool(env, exports);
  RegisterCsvEncoderHandle(env, exports);
  RegisterCudaBackend(env, exports);
}

namespace {
// The names of a set of CPU classes (a kernel's CpuClassBit set).
Napi::Array ClassNames(Napi::Env env, uint32_t classes) {
  Napi::Array names = Napi::Array::New(env);
  for (uint32_t c = 0; c < kCpuClassCount; ++c)
    if (classes & CpuClassBit(static_cast<CpuClass>(c)))
      names.Set(names.Length(), CpuClassName(static_cast<CpuClass>(c)));
  return names;
}
}  // namespace

Napi::Value MaasAddon::CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = DetectCpu();
  Napi::Object out = Napi::Object::New(env);
  out.Set("brand", Napi::String::New(env, f.brand));
  out.Set("best", Napi::String::New(env, IsaName(BestSupportedIsa())));
  out.Set("vendor", Napi::String::New(env, f.vendor == 1 ? "intel" : f.vendor == 2 ? "amd" : "other"));
  out.Set("family", f.family);
  out.Set("model", f.model);
  // The class kernels are chosen for (MAAS_CPU_CLASS may force one), and the one detected.
  out.Set("cpuClass", Napi::String::New(env, CpuClassName(ActiveCpuClass())));
  out.Set("detectedCpuClass", Napi::String::New(env, CpuClassName(DetectedCpuClass())));
  out.Set("cap", Napi::String::New(env, IsaName(isa_cap_)));
  const F32GemmKernel* selected = SelectF32Gemm(isa_cap_);
  out.Set("isa", Napi::String::New(env, IsaName(selected->isa)));
  out.Set("f32Kernel", Napi::String::New(env, selected->name));
  out.Set("f32UpdateKernel", Napi::String::New(env, SelectF32Update(selected->isa)->name));
  out.Set("bf16Kernel", Napi::String::New(env, SelectF32Gemm(isa_cap_, WeightFormat::kBf16)->name));
  Napi::Object features = Napi::Object::New(env);
  features.Set("avx2Fma", f.avx2_fma);
  features.Set("avx512", f.avx512);
  features.Set("avx512Vnni", f.avx512_vnni);
  features.Set("avxVnni", f.avx_vnni);
  features.Set("avx512Bf16", f.avx512_bf16);
  features.Set("amxInt8", f.amx_int8);
  features.Set("amxPermitted", f.amx_permitted);
  out.Set("features", features);
  size_t count = 0;
  const F32GemmKernel* kernels = F32GemmKernels(&count);
  Napi::Array list = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; ++i) {
    Napi::Object k = Napi::Object::New(env);
    k.Set("name", kernels[i].name);
    k.Set("isa", IsaName(kernels[i].isa));
    k.Set("mr", kernels[i].mr);
    k.Set("nr", kernels[i].nr);
    k.Set("kc", kernels[i].kc);
    k.Set("mc", kernels[i].mc);
    k.Set("cpuClasses", ClassNames(env, kernels[i].classes));
    k.Set("weights", WeightFormatName(kernels[i].weights));
    k.Set("supported", IsaSupported(kernels[i].isa));
    list.Set(i, k);
  }
  out.Set("f32Kernels", list);
  const Int8GemmKernel* int8 = SelectInt8Gemm(isa_cap_);
  out.Set("int8Kernel", Napi::String::New(env, int8->name));
  const Int8GemmKernel* int8_kernels = Int8GemmKernels(&count);
  Napi::Array qlist = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; ++i) {
    Napi::Object k = Napi::Object::New(env);
    k.Set("name", int8_kernels[i].name);
    k.Set("isa", IsaName(int8_kernels[i].isa));
    k.Set("mr", int8_kernels[i].mr);
    k.Set("nr", int8_kernels[i].nr);
    k.Set("kAlign", int8_kernels[i].k_align);
    k.Set("aMax", int8_kernels[i].a_max);
    k.Set("cpuClasses", ClassNames(env, int8_kernels[i].classes));
    k.Set("supported", IsaSupported(int8_kernels[i].isa));
    qlist.Set(i, k);
  }
  out.Set("int8Kernels", qlist);
  const BackendInfo* backends = ListBackends(&count);
  Napi::Array blist = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; ++i) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("name", backends[i].name);
    b.Set("compiled", backends[i].compiled);
    b.Set("available", backends[i].available);
    blist.Set(i, b);
  }
  out.Set("backends", blist);
  out.Set("threads", Napi::Number::New(env, static_cast<double>(threads())));
  return out;
}

Napi::Value MaasAddon::SetMaxIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowCoded(env, "MAAS_ERR_ISA_INVALID", "setMaxIsa: expected an ISA name for isa", true);
  }
  const std::string text = info[0].As<Napi::String>();
  Isa parsed;
  if (!ParseIsa(text.c_str(), &parsed)) {
    ThrowCoded(
        env, "MAAS_ERR_ISA_INVALID",
        "setMaxIsa: expected 'scalar' | 'avx2' | 'avxvnni' | 'avx512' | 'avx512vnni' | 'amx' for isa but received '" +
            text + "'",
        true);
  }
  isa_cap_ = MinIsa(parsed, BestSupportedIsa());
  return Napi::String::New(env, IsaName(SelectF32Gemm(isa_cap_)->isa));
}

Napi::Value MaasAddon::SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowCoded(env, "MAAS_ERR_THREADS_INVALID", "setThreads: expected an integer in [1, 64] for threads", true);
  }
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 64) || n != static_cast<double>(static_cast<int>(n))) {
    ThrowCoded(env, "MAAS_ERR_THREADS_INVALID",
               "setThreads: expected an integer in [1, 64] for threads but received " + std::to_string(n), true);
  }
  pool_->Resize(static_cast<size_t>(n));
  return env.Undefined();
}

Napi::Value MaasAddon::GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(threads()));
}

}  // namespace maas::binding

using maas::binding::MaasAddon;
NODE_API_ADDON(MaasAddon)
