// The CUDA libraries maas uses but never links: cuBLASLt (the GEMMs) and NVML (the GPU metrics).
// Each is opened at first use by its soname, newest first, so one maas.node runs on machines with
// any of these versions, or none (the backend then reports which library is missing).
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <type_traits>

#include "cublaslt_api.h"
#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

struct LibrarySpec {
  const char* const* sonames;  // null-terminated, tried in order
  const char* const* symbols;  // null-terminated: every one must resolve
  const char* version_symbol;  // size_t f(void), or null
};

CudaLibrary Open(const LibrarySpec& spec) {
  CudaLibrary lib{};
  void* handle = nullptr;
  const char* opened = nullptr;
  for (const char* const* name = spec.sonames; *name && !handle; ++name) {
    handle = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
    if (handle) opened = *name;
  }
  if (!handle) {
    std::snprintf(lib.reason, sizeof(lib.reason), "none of %s", spec.sonames[0]);
    for (const char* const* name = spec.sonames + 1; *name; ++name) {
      const size_t used = std::strlen(lib.reason);
      std::snprintf(lib.reason + used, sizeof(lib.reason) - used, ", %s", *name);
    }
    const size_t used = std::strlen(lib.reason);
    std::snprintf(lib.reason + used, sizeof(lib.reason) - used, " could be opened");
    return lib;
  }
  for (const char* const* sym = spec.symbols; *sym; ++sym) {
    if (!dlsym(handle, *sym)) {
      std::snprintf(lib.reason, sizeof(lib.reason), "%s lacks %s", opened, *sym);
      dlclose(handle);
      return lib;
    }
  }
  if (spec.version_symbol) {
    using VersionFn = size_t (*)();
    if (auto fn = reinterpret_cast<VersionFn>(dlsym(handle, spec.version_symbol))) lib.version = fn();
  }
  std::snprintf(lib.path, sizeof(lib.path), "%s", opened);
  lib.loaded = true;
  lib.handle = handle;  // stays open for the process's life
  return lib;
}

const char* const kCublasLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", nullptr};
const char* const kCublasLtSymbols[] = {"cublasLtCreate",
                                        "cublasLtDestroy",
                                        "cublasLtMatmul",
                                        "cublasLtMatmulDescCreate",
                                        "cublasLtMatmulDescDestroy",
                                        "cublasLtMatmulDescSetAttribute",
                                        "cublasLtMatrixLayoutCreate",
                                        "cublasLtMatrixLayoutDestroy",
                                        "cublasLtMatmulPreferenceCreate",
                                        "cublasLtMatmulPreferenceDestroy",
                                        "cublasLtMatmulPreferenceSetAttribute",
                                        "cublasLtMatmulAlgoGetHeuristic",
                                        nullptr};
const char* const kNvmlNames[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", nullptr};
const char* const kNvmlSymbols[] = {"nvmlInit_v2",
                                    "nvmlShutdown",
                                    "nvmlDeviceGetHandleByIndex_v2",
                                    "nvmlDeviceGetUtilizationRates",
                                    "nvmlDeviceGetMemoryInfo",
                                    "nvmlDeviceGetPowerUsage",
                                    nullptr};

}  // namespace

const CudaLibrary& LoadCublasLt() noexcept {
  static const CudaLibrary lib = Open({kCublasLtNames, kCublasLtSymbols, "cublasLtGetVersion"});
  return lib;
}

const lt::Api* CublasLtApi() noexcept {
  static const lt::Api* api = []() -> const lt::Api* {
    const CudaLibrary& lib = LoadCublasLt();
    if (!lib.loaded) return nullptr;
    static lt::Api table;
    // Each name was checked by Open(); the casts give them the signatures cublaslt_api.h declares.
    const auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(lib.handle, name));
    };
    bind(table.create, "cublasLtCreate");
    bind(table.destroy, "cublasLtDestroy");
    bind(table.desc_create, "cublasLtMatmulDescCreate");
    bind(table.desc_destroy, "cublasLtMatmulDescDestroy");
    bind(table.desc_set, "cublasLtMatmulDescSetAttribute");
    bind(table.layout_create, "cublasLtMatrixLayoutCreate");
    bind(table.layout_destroy, "cublasLtMatrixLayoutDestroy");
    bind(table.pref_create, "cublasLtMatmulPreferenceCreate");
    bind(table.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    bind(table.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    bind(table.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    bind(table.matmul, "cublasLtMatmul");
    return &table;
  }();
  return api;
}

const CudaLibrary& LoadNvml() noexcept {
  static const CudaLibrary lib = Open({kNvmlNames, kNvmlSymbols, nullptr});
  return lib;
}

}  // namespace maas
