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
                                    "nvmlDeviceGetCount_v2",
                                    "nvmlDeviceGetHandleByIndex_v2",
                                    "nvmlDeviceGetUUID",
                                    "nvmlDeviceGetUtilizationRates",
                                    "nvmlDeviceGetMemoryInfo",
                                    "nvmlDeviceGetPowerUsage",
                                    nullptr};

// NVML's C API as maas calls it (nvml.h; the structs are its ABI): 0 is NVML_SUCCESS.
struct NvmlUtilization {
  unsigned gpu, memory;  // percent over the last sample period
};
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlApi {
  int (*init)();
  int (*count)(unsigned*);
  int (*handle)(unsigned, void**);
  int (*uuid)(void*, char*, unsigned);
  int (*utilization)(void*, NvmlUtilization*);
  int (*memory)(void*, NvmlMemory*);
  int (*power)(void*, unsigned*);  // milliwatts
};

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

namespace {

// NVML's entry points, initialized once; null when the library is absent or nvmlInit fails.
const NvmlApi* Nvml() {
  static const NvmlApi* api = []() -> const NvmlApi* {
    const CudaLibrary& lib = LoadNvml();
    if (!lib.loaded) return nullptr;
    static NvmlApi table;
    const auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(lib.handle, name));
    };
    bind(table.init, "nvmlInit_v2");
    bind(table.count, "nvmlDeviceGetCount_v2");
    bind(table.handle, "nvmlDeviceGetHandleByIndex_v2");
    bind(table.uuid, "nvmlDeviceGetUUID");
    bind(table.utilization, "nvmlDeviceGetUtilizationRates");
    bind(table.memory, "nvmlDeviceGetMemoryInfo");
    bind(table.power, "nvmlDeviceGetPowerUsage");
    return table.init() == 0 ? &table : nullptr;  // NVML stays initialized for the process's life
  }();
  return api;
}

}  // namespace

Status SampleNvml(NvmlDeviceSample* out, size_t capacity, size_t* count, char* error, size_t error_size) noexcept {
  *count = 0;
  const NvmlApi* api = Nvml();
  if (!api) {
    const CudaLibrary& lib = LoadNvml();
    if (error && error_size)
      std::snprintf(error, error_size, "%s", lib.loaded ? "nvmlInit failed (no NVIDIA driver running)" : lib.reason);
    return Status::kUnsupported;
  }
  unsigned devices = 0;
  if (api->count(&devices) != 0) devices = 0;
  for (unsigned i = 0; i < devices && *count < capacity; ++i) {
    void* device = nullptr;
    if (api->handle(i, &device) != 0) continue;
    NvmlDeviceSample& s = out[(*count)++];
    if (api->uuid(device, s.uuid, sizeof(s.uuid)) != 0) std::snprintf(s.uuid, sizeof(s.uuid), "GPU-%u", i);
    s.uuid[sizeof(s.uuid) - 1] = '\0';
    NvmlUtilization u{};
    s.utilization = api->utilization(device, &u) == 0 ? u.gpu / 100.0 : 0.0;
    NvmlMemory m{};
    if (api->memory(device, &m) == 0) {
      s.memory_used_bytes = m.used;
      s.memory_total_bytes = m.total;
    } else {
      s.memory_used_bytes = s.memory_total_bytes = 0;
    }
    unsigned milliwatts = 0;
    s.power_watts = api->power(device, &milliwatts) == 0 ? milliwatts / 1000.0 : -1.0;
  }
  return Status::kOk;
}

}  // namespace maas
