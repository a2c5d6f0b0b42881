// The backend table. The CUDA entry reports whether the build enabled it; it runs no model yet
// (its ops are device tests for now). Built without CUDA, the CUDA queries answer why not.
#include "maas/backend.h"

#include <cstdio>

#include "maas/cuda_backend.h"

namespace maas {

namespace {
#ifdef MAAS_WITH_CUDA
constexpr bool kCudaCompiled = true;
#else
constexpr bool kCudaCompiled = false;
#endif
const BackendInfo kBackends[] = {
    {"cpu", true, true},
    {"cuda", kCudaCompiled, false},  // runs no model yet: never available
};

#ifndef MAAS_WITH_CUDA
const char kNotBuilt[] = "this maas.node was built without CUDA (no CUDA compiler, or MAAS_CUDA=OFF)";

CudaLibrary NotBuiltLibrary() {
  CudaLibrary lib{};
  std::snprintf(lib.reason, sizeof(lib.reason), "%s", kNotBuilt);
  return lib;
}
#endif
}  // namespace

#ifndef MAAS_WITH_CUDA
const CudaReport& QueryCuda() noexcept {
  static const CudaReport report = [] {
    CudaReport r{};
    std::snprintf(r.reason, sizeof(r.reason), "%s", kNotBuilt);
    return r;
  }();
  return report;
}

const CudaLibrary& LoadCublasLt() noexcept {
  static const CudaLibrary lib = NotBuiltLibrary();
  return lib;
}

const CudaLibrary& LoadNvml() noexcept {
  static const CudaLibrary lib = NotBuiltLibrary();
  return lib;
}

Status CudaBiasActivationHost(const float*, const float*, size_t, size_t, Activation, const ActivationParams&, float*,
                              char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaDenseHost(const float*, const float*, const float*, size_t, size_t, size_t, Activation,
                     const ActivationParams&, CudaPrecision, float*, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaDenseTime(size_t, size_t, size_t, bool, Activation, CudaPrecision, int, double*, char* error,
                     size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaInt8DenseHost(const float*, const int8_t*, const float*, const float*, size_t, size_t, size_t, Activation,
                         const ActivationParams&, float*, float*, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaInt8GemmTime(size_t, size_t, size_t, int, double*, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status SampleNvml(NvmlDeviceSample*, size_t, size_t* count, char* error, size_t error_size) noexcept {
  if (count) *count = 0;
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaUpdateHost(const F32UpdateArgs&, size_t, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaActivationBackwardHost(Activation, const ActivationParams&, const float*, const float*, float*, size_t,
                                  size_t, float*, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaStackCreate(const CudaStackLayer*, size_t, CudaPrecision, CudaStack**, char* error,
                       size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

Status CudaStackForward(CudaStack*, const float*, size_t, float*, char* error, size_t error_size) noexcept {
  if (error && error_size) std::snprintf(error, error_size, "%s", kNotBuilt);
  return Status::kUnsupported;
}

size_t CudaStackWeightBytes(const CudaStack*) noexcept { return 0; }

void CudaStackDestroy(CudaStack*) noexcept {}
#endif

const BackendInfo* ListBackends(size_t* count) noexcept {
  *count = sizeof(kBackends) / sizeof(kBackends[0]);
  return kBackends;
}

}  // namespace maas
