// What the CUDA sources share among themselves (not the binding): the cuBLASLt entry points, the
// epilogue launchers, and device buffers that free themselves.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>

#include "cublaslt_api.h"
#include "maas/activation.h"
#include "maas/cuda_backend.h"
#include "maas/status.h"

namespace maas {

// cuBLASLt's entry points, or null when the library did not open.
const lt::Api* CublasLtApi() noexcept;

// y = act(z + bias) row by row on `stream` (softmax row-wise); z may equal y.
cudaError_t LaunchBiasActivation(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                                 const ActivationParams& params, float* y, cudaStream_t stream) noexcept;

// A device allocation freed with its owner.
struct DeviceBuffer {
  void* ptr = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// A CUDA error as the ops report it: the message into `error`, the error cleared, the status.
inline Status CudaFail(cudaError_t e, const char* what, char* error, size_t error_size) {
  if (error && error_size) std::snprintf(error, error_size, "%s: %s", what, cudaGetErrorString(e));
  cudaGetLastError();
  return e == cudaErrorMemoryAllocation ? Status::kOutOfMemory : Status::kUnsupported;
}

// kOk when a device is there; otherwise kUnsupported with the report's reason.
inline Status RequireDevice(char* error, size_t error_size) {
  const CudaReport& report = QueryCuda();
  if (report.device_count > 0) return Status::kOk;
  if (error && error_size) std::snprintf(error, error_size, "%s", report.reason);
  return Status::kUnsupported;
}

// Allocates and uploads `count` elements of `host` (when not null) into `buffer`.
template <class T>
cudaError_t Upload(DeviceBuffer* buffer, const T* host, size_t count) {
  cudaError_t e = cudaMalloc(&buffer->ptr, count * sizeof(T));
  if (e == cudaSuccess && host) e = cudaMemcpy(buffer->ptr, host, count * sizeof(T), cudaMemcpyHostToDevice);
  return e;
}

}  // namespace maas
