// The dense layer's epilogue on the device: bias plus any of maas's activations (the scalar
// definition in activation.h, compiled for the device as it stands), and the row softmax. cuBLASLt
// fuses bias with ReLU or GELU into its GEMM; these kernels serve every other activation.
#include <cuda_runtime.h>

#include <cstdio>

#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

constexpr int kThreads = 256;

__global__ void BiasActivationKernel(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                                     ActivationParams params, float* y) {
  const size_t total = rows * cols;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float v = bias ? z[i] + bias[i % cols] : z[i];
    y[i] = act == Activation::kLinear ? v : ActivateScalar<float>(act, v, params);
  }
}

// One block per row: the max, then the sum of exp(x − max), then the quotients (as the CPU does).
__global__ void BiasSoftmaxKernel(const float* z, const float* bias, size_t cols, float* y) {
  __shared__ float partial[kThreads];
  const float* in = z + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  float m = -__builtin_huge_valf();
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, bias ? in[j] + bias[j] : in[j]);
  partial[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + s]);
    __syncthreads();
  }
  m = partial[0];
  __syncthreads();
  float sum = 0.f;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float e = expf((bias ? in[j] + bias[j] : in[j]) - m);
    out[j] = e;
    sum += e;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float total = partial[0];
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) out[j] /= total;
}

}  // namespace

cudaError_t LaunchBiasActivation(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                                 const ActivationParams& params, float* y, cudaStream_t stream) noexcept {
  if (act == Activation::kSoftmax) {
    BiasSoftmaxKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(z, bias, cols, y);
  } else {
    const size_t blocks = (rows * cols + kThreads - 1) / kThreads;
    BiasActivationKernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), kThreads, 0, stream>>>(
        z, bias, rows, cols, act, params, y);
  }
  return cudaGetLastError();
}

Status CudaBiasActivationHost(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                              const ActivationParams& params, float* y, char* error, size_t error_size) noexcept {
  if (!z || !y || rows == 0 || cols == 0 || static_cast<uint32_t>(act) >= kActivationCount) {
    if (error && error_size) std::snprintf(error, error_size, "invalid epilogue arguments");
    return Status::kInvalidArgument;
  }
  MAAS_RETURN_IF_ERROR(RequireDevice(error, error_size));
  const size_t bytes = rows * cols * sizeof(float);
  DeviceBuffer dz, dy, db;
  cudaError_t e;
  if ((e = Upload(&dz, z, rows * cols)) != cudaSuccess) return CudaFail(e, "upload", error, error_size);
  if ((e = Upload<float>(&dy, nullptr, rows * cols)) != cudaSuccess)
    return CudaFail(e, "cudaMalloc", error, error_size);
  if (bias && (e = Upload(&db, bias, cols)) != cudaSuccess) return CudaFail(e, "upload", error, error_size);
  if ((e = LaunchBiasActivation(dz.as<float>(), db.as<float>(), rows, cols, act, params, dy.as<float>(), nullptr)) !=
      cudaSuccess)
    return CudaFail(e, "kernel launch", error, error_size);
  if ((e = cudaMemcpy(y, dy.ptr, bytes, cudaMemcpyDeviceToHost)) != cudaSuccess)
    return CudaFail(e, "cudaMemcpy", error, error_size);
  return Status::kOk;
}

}  // namespace maas
