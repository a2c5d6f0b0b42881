// The CUDA backend's host-side face, free of CUDA types so the binding and the CPU-only build
// include it alike: what the build holds, what the machine offers (devices, driver, cuBLASLt,
// NVML), and the device ops the backend runs. Built without CUDA, every query answers why not.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"
#include "maas/status.h"

namespace maas {

struct CudaDevice {
  char name[128];
  int major, minor;  // compute capability
  uint64_t memory_bytes;
  int multiprocessors;
};

constexpr int kCudaMaxReportedDevices = 16;

// Queried once per process (the first call initializes the driver) and kept.
struct CudaReport {
  bool compiled;
  int runtime_version;  // CUDA's encoding: 1000 × major + 10 × minor; 0 if unknown
  int driver_version;   // 0 when no driver is installed
  int device_count;     // devices reported (at most kCudaMaxReportedDevices)
  CudaDevice devices[kCudaMaxReportedDevices];
  char architectures[64];  // the code the build carries, e.g. "sm_80 sm_86 sm_89 sm_90 compute_90"
  char reason[256];        // why no device is usable; empty when device_count > 0
};
const CudaReport& QueryCuda() noexcept;

// A shared library opened at first use (never linked), so the addon loads without it.
struct CudaLibrary {
  bool loaded;
  uint64_t version;  // the library's own version query, 0 if it has none
  char path[256];    // the soname that opened
  char reason[256];  // why it did not load: none of the sonames opened, or a symbol is missing
};
const CudaLibrary& LoadCublasLt() noexcept;
const CudaLibrary& LoadNvml() noexcept;

// Device ops over host buffers, for tests and the device script: the data goes to the first device,
// the op runs there, the result comes back. kUnsupported when there is no device (or no CUDA build).
// y[rows × cols] = act(z + bias) row by row (bias may be null); softmax is row-wise.
Status CudaBiasActivationHost(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                              const ActivationParams& params, float* y, char* error, size_t error_size) noexcept;

}  // namespace maas
