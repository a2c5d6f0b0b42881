// What the CUDA runtime reports about this machine, asked once per process. The runtime is linked
// statically; it opens the driver (libcuda.so.1) itself, so with no driver or no GPU these calls
// fail with an error that becomes the report's reason, and nothing else changes.
#include <cuda_runtime.h>

#include <cstdio>

#include "maas/cuda_backend.h"

namespace maas {
namespace {

// "8.0 8.6 8.9 9.0": the compute capabilities this build carries code for (nvcc's list).
void ArchitectureList(char* out, size_t size) {
  out[0] = '\0';
#ifdef __CUDA_ARCH_LIST__
  const int archs[] = {__CUDA_ARCH_LIST__};
  size_t used = 0;
  for (int arch : archs) {
    const int n = std::snprintf(out + used, size - used, "%s%d.%d", used ? " " : "", arch / 100, arch % 100 / 10);
    if (n < 0 || static_cast<size_t>(n) >= size - used) break;
    used += static_cast<size_t>(n);
  }
#endif
}

CudaReport BuildReport() {
  CudaReport r{};
  r.compiled = true;
  ArchitectureList(r.architectures, sizeof(r.architectures));
  cudaRuntimeGetVersion(&r.runtime_version);
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess && r.driver_version == 0) {
    std::snprintf(r.reason, sizeof(r.reason), "no CUDA device: no NVIDIA driver is installed (libcuda.so.1)");
    cudaGetLastError();
    return r;
  }
  if (e != cudaSuccess) {
    std::snprintf(r.reason, sizeof(r.reason), "no CUDA device: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return r;
  }
  if (count == 0) {
    std::snprintf(r.reason, sizeof(r.reason), "no CUDA device: the driver reports none");
    return r;
  }
  for (int i = 0; i < count && i < kCudaMaxReportedDevices; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    CudaDevice& d = r.devices[r.device_count++];
    std::snprintf(d.name, sizeof(d.name), "%s", p.name);
    d.major = p.major;
    d.minor = p.minor;
    d.memory_bytes = p.totalGlobalMem;
    d.multiprocessors = p.multiProcessorCount;
  }
  if (r.device_count == 0) std::snprintf(r.reason, sizeof(r.reason), "no CUDA device: no device answered");
  return r;
}

}  // namespace

const CudaReport& QueryCuda() noexcept {
  static const CudaReport report = BuildReport();  // thread-safe once
  return report;
}

}  // namespace maas
