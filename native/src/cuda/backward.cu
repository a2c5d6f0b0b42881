// A layer's activation backward on the device, the first piece of the training step there:
// dz = dY ⊙ act'(·) through activation_backward.h's ActivationGradient (the CPU's own per-element
// derivative), softmax's Jacobian row by row, and the bias gradient as column sums taken row after
// row, in the CPU's order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

#include "../core/activation_backward.h"
#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

constexpr int kThreads = 256;

__global__ void GradientKernel(Activation act, ActivationParams p, const float* y, const float* z, float* dz,
                               size_t count) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dz[i] = ActivationGradient(act, p, y[i], z ? z[i] : y[i], dz[i]);
}

// One block per row: dot = Σ dY·y (in double, as the CPU), then dz = y (dY − dot).
__global__ void SoftmaxBackwardKernel(const float* y, float* dz, size_t cols) {
  __shared__ double partial[kThreads];
  const float* yr = y + blockIdx.x * cols;
  float* d = dz + blockIdx.x * cols;
  double sum = 0;
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) sum += static_cast<double>(d[c]) * yr[c];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float dot = static_cast<float>(partial[0]);
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) d[c] = yr[c] * (d[c] - dot);
}

// db[c] = Σ_rows dz[r][c], one thread per column, rows in order.
__global__ void ColumnSumKernel(const float* dz, size_t rows, size_t cols, float* db) {
  const size_t c = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.f;
  for (size_t r = 0; r < rows; ++r) sum += dz[r * cols + c];
  db[c] = sum;
}

}  // namespace

cudaError_t LaunchActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z,
                                     float* dz, size_t rows, size_t cols, float* db, cudaStream_t stream) noexcept {
  if (act == Activation::kSoftmax) {
    SoftmaxBackwardKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(y, dz, cols);
  } else if (act != Activation::kLinear) {
    const size_t count = rows * cols;
    const unsigned blocks = static_cast<unsigned>(std::min<size_t>((count + kThreads - 1) / kThreads, 65535));
    GradientKernel<<<blocks, kThreads, 0, stream>>>(act, p, y, z, dz, count);
  }
  if (db)
    ColumnSumKernel<<<static_cast<unsigned>((cols + kThreads - 1) / kThreads), kThreads, 0, stream>>>(dz, rows, cols,
                                                                                                      db);
  return cudaGetLastError();
}

Status CudaActivationBackwardHost(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                                  size_t rows, size_t cols, float* db, char* error, size_t error_size) noexcept {
  if (!y || !dz || rows == 0 || cols == 0 || rows >= (size_t{1} << 31) / cols ||
      static_cast<uint32_t>(act) >= kActivationCount || (NeedsPreActivation(act) && !z)) {
    if (error && error_size) std::snprintf(error, error_size, "invalid activation backward arguments");
    return Status::kInvalidArgument;
  }
  MAAS_RETURN_IF_ERROR(RequireDevice(error, error_size));
  const size_t count = rows * cols;
  DeviceBuffer dy, dzb, dzz, ddb;
  cudaError_t e;
  if ((e = Upload(&dy, y, count)) != cudaSuccess || (e = Upload(&dzb, dz, count)) != cudaSuccess ||
      (z && (e = Upload(&dzz, z, count)) != cudaSuccess) ||
      (db && (e = Upload<float>(&ddb, nullptr, cols)) != cudaSuccess))
    return CudaFail(e, "upload", error, error_size);
  if ((e = LaunchActivationBackward(act, p, dy.as<float>(), dzz.as<float>(), dzb.as<float>(), rows, cols,
                                    ddb.as<float>(), nullptr)) != cudaSuccess)
    return CudaFail(e, "backward kernels", error, error_size);
  if ((e = cudaMemcpy(dz, dzb.ptr, count * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess ||
      (db && (e = cudaMemcpy(db, ddb.ptr, cols * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess))
    return CudaFail(e, "download", error, error_size);
  return Status::kOk;
}

}  // namespace maas
