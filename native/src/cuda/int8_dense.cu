// An int8 dense layer on the device through cuBLASLt's integer tensor-core path (IMMA):
//   y[m × n] = act(Σ xq·wq · x_scale · w_scale[j] + bias[j])
// with the weights quantized per output column (symmetric s8, as maas's int8 models hold them)
// and the activations per tensor, symmetric s8, from the batch's own range on the device (the
// device path has no zero point: the products stay s8 × s8, which IMMA takes). cuBLASLt's integer
// path wants the "TN" layout: A transposed, so the weights go up as wᵀ [n × k]; K and N are padded
// to multiples of 4 with zeros (IMMA wants the GEMM's m and k, here N and K, and every leading
// dimension multiples of 4).
#include <cuda_runtime.h>
#include <library_types.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

size_t RoundUp4(size_t v) { return (v + 3) / 4 * 4; }
unsigned Blocks(size_t count) { return static_cast<unsigned>(std::min<size_t>((count + 255) / 256, 65535)); }

// max |x| into *out (as its bits: for non-negative floats the integer order is the float order).
// NaN is passed over, as the CPU's range is.
__global__ void AbsMaxKernel(const float* x, size_t count, unsigned* out) {
  float m = 0.f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float a = fabsf(x[i]);
    if (a > m) m = a;  // false for NaN
  }
  atomicMax(out, __float_as_uint(m));
}

// xq[i][p] = clamp(rint(x[i][p] / scale), -127, 127) over rows padded from k to kp with zeros;
// scale = max|x| / 127 (1 for an all-zero batch).
__global__ void QuantizeKernel(const float* x, size_t m, size_t k, size_t kp, const unsigned* absmax, int8_t* xq) {
  const float amax = __uint_as_float(*absmax);
  const float scale = amax > 0.f ? amax / 127.f : 1.f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < m * kp;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / kp, col = i % kp;
    const float v = col < k ? x[row * k + col] / scale : 0.f;
    xq[i] = static_cast<int8_t>(v == v ? fminf(fmaxf(rintf(v), -127.f), 127.f) : 0.f);  // NaN → 0
  }
}

// y[i][j] = act(acc[i][j] · x_scale · w_scale[j] + bias[j]); acc rows have stride np.
__global__ void DequantizeKernel(const int32_t* acc, size_t m, size_t n, size_t np, const unsigned* absmax,
                                 const float* w_scale, const float* bias, Activation act, ActivationParams params,
                                 float* y) {
  const float amax = __uint_as_float(*absmax);
  const float x_scale = amax > 0.f ? amax / 127.f : 1.f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < m * n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / n, col = i % n;
    const float v = fmaf(static_cast<float>(acc[row * np + col]), x_scale * w_scale[col], bias ? bias[col] : 0.f);
    y[i] = act == Activation::kLinear || act == Activation::kSoftmax ? v : ActivateScalar<float>(act, v, params);
  }
}

}  // namespace

// The weights as IMMA reads them: wᵀ [np × kp] s8, zero padded in both.
std::vector<int8_t> TransposeInt8Weights(const int8_t* w, size_t k, size_t n) {
  const size_t kp = RoundUp4(k), np = RoundUp4(n);
  std::vector<int8_t> wt(np * kp, 0);
  for (size_t p = 0; p < k; ++p)
    for (size_t j = 0; j < n; ++j) wt[j * kp + p] = w[p * n + j];
  return wt;
}

Status PlanInt8Dense(lt::Handle handle, size_t m, size_t k, size_t n, LtPlan* plan, char* error, size_t error_size) {
  const lt::Api* api = plan->api;
  const size_t kp = RoundUp4(k), np = RoundUp4(n);
  lt::Status s;
  if ((s = api->desc_create(&plan->desc, lt::kCompute32I, CUDA_R_32I)) != 0)
    return LtFail(s, "int8 descriptor", error, error_size);
  const int32_t trans_a = lt::kOpT, trans_b = lt::kOpN;
  if ((s = api->desc_set(plan->desc, lt::kDescTransA, &trans_a, sizeof(trans_a))) != 0 ||
      (s = api->desc_set(plan->desc, lt::kDescTransB, &trans_b, sizeof(trans_b))) != 0)
    return LtFail(s, "int8 transposes", error, error_size);
  // A: wᵀ stored kp × np column-major (ld kp), read transposed; B: xqᵀ, kp × m (ld kp); D: np × m
  // (ld np), whose padding rows the dequantization never reads.
  if ((s = api->layout_create(&plan->a, CUDA_R_8I, kp, np, static_cast<int64_t>(kp))) != 0 ||
      (s = api->layout_create(&plan->b, CUDA_R_8I, kp, m, static_cast<int64_t>(kp))) != 0 ||
      (s = api->layout_create(&plan->d, CUDA_R_32I, np, m, static_cast<int64_t>(np))) != 0)
    return LtFail(s, "int8 layout", error, error_size);
  MAAS_RETURN_IF_ERROR(ChooseAlgorithm(handle, plan, error, error_size));
  plan->m = m;
  plan->n = n;
  plan->fused = false;
  return Status::kOk;
}

// The int8 product alone on resident operands: acc (n × m column-major, ld np) = wqᵀ · xqᵀ.
Status LaunchInt8Gemm(lt::Handle handle, const LtPlan& plan, const int8_t* wt, const int8_t* xq, int32_t* acc,
                      void* workspace, cudaStream_t stream, char* error, size_t error_size) {
  const int32_t alpha = 1, beta = 0;
  const lt::Status s = plan.api->matmul(handle, plan.desc, &alpha, wt, plan.a, xq, plan.b, &beta, acc, plan.d, acc,
                                        plan.d, &plan.best.algo, workspace, kLtWorkspaceBytes, stream);
  return s == 0 ? Status::kOk : LtFail(s, "int8 matmul", error, error_size);
}

// Quantize, multiply, dequantize + bias + activation; softmax rows afterwards.
Status LaunchInt8Dense(lt::Handle handle, const LtPlan& plan, const float* x, size_t k, const int8_t* wt,
                       const float* w_scale, const float* bias, Activation act, const ActivationParams& params,
                       int8_t* xq, int32_t* acc, unsigned* absmax, float* y, void* workspace, cudaStream_t stream,
                       char* error, size_t error_size) {
  const size_t m = plan.m, n = plan.n, kp = RoundUp4(k), np = RoundUp4(n);
  cudaError_t e = cudaMemsetAsync(absmax, 0, sizeof(unsigned), stream);
  if (e != cudaSuccess) return CudaFail(e, "int8 range", error, error_size);
  AbsMaxKernel<<<Blocks(m * k), 256, 0, stream>>>(x, m * k, absmax);
  QuantizeKernel<<<Blocks(m * kp), 256, 0, stream>>>(x, m, k, kp, absmax, xq);
  if ((e = cudaGetLastError()) != cudaSuccess) return CudaFail(e, "int8 quantize", error, error_size);
  MAAS_RETURN_IF_ERROR(LaunchInt8Gemm(handle, plan, wt, xq, acc, workspace, stream, error, error_size));
  DequantizeKernel<<<Blocks(m * n), 256, 0, stream>>>(acc, m, n, np, absmax, w_scale, bias, act, params, y);
  if ((e = cudaGetLastError()) != cudaSuccess) return CudaFail(e, "int8 dequantize", error, error_size);
  if (act == Activation::kSoftmax &&
      (e = LaunchBiasActivation(y, nullptr, m, n, act, params, y, stream)) != cudaSuccess)
    return CudaFail(e, "softmax", error, error_size);
  return Status::kOk;
}

Status CudaInt8DenseHost(const float* x, const int8_t* w, const float* w_scale, const float* bias, size_t m, size_t k,
                         size_t n, Activation act, const ActivationParams& params, float* y, float* x_scale,
                         char* error, size_t error_size) noexcept {
  if (!x || !w || !w_scale || !y || m == 0 || k == 0 || n == 0 || m >= (size_t{1} << 31) || k >= (size_t{1} << 31) ||
      n >= (size_t{1} << 31) || static_cast<uint32_t>(act) >= kActivationCount) {
    if (error && error_size) std::snprintf(error, error_size, "invalid int8 dense arguments");
    return Status::kInvalidArgument;
  }
  DenseContext ctx;
  MAAS_RETURN_IF_ERROR(ctx.Open(error, error_size));
  const size_t kp = RoundUp4(k), np = RoundUp4(n);
  const std::vector<int8_t> wt = TransposeInt8Weights(w, k, n);
  DeviceBuffer dx, dwt, dscale, db, dxq, dacc, dmax, dy;
  cudaError_t e;
  if ((e = Upload(&dx, x, m * k)) != cudaSuccess || (e = Upload(&dwt, wt.data(), wt.size())) != cudaSuccess ||
      (e = Upload(&dscale, w_scale, n)) != cudaSuccess || (bias && (e = Upload(&db, bias, n)) != cudaSuccess) ||
      (e = Upload<int8_t>(&dxq, nullptr, m * kp)) != cudaSuccess ||
      (e = Upload<int32_t>(&dacc, nullptr, m * np)) != cudaSuccess ||
      (e = Upload<unsigned>(&dmax, nullptr, 1)) != cudaSuccess ||
      (e = Upload<float>(&dy, nullptr, m * n)) != cudaSuccess)
    return CudaFail(e, "upload", error, error_size);
  LtPlan plan(ctx.api);
  MAAS_RETURN_IF_ERROR(PlanInt8Dense(ctx.handle, m, k, n, &plan, error, error_size));
  MAAS_RETURN_IF_ERROR(LaunchInt8Dense(ctx.handle, plan, dx.as<float>(), k, dwt.as<int8_t>(), dscale.as<float>(),
                                       db.as<float>(), act, params, dxq.as<int8_t>(), dacc.as<int32_t>(),
                                       dmax.as<unsigned>(), dy.as<float>(), ctx.workspace.ptr, ctx.stream, error,
                                       error_size));
  unsigned absmax = 0;
  if ((e = cudaMemcpyAsync(y, dy.ptr, m * n * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream)) != cudaSuccess ||
      (e = cudaMemcpyAsync(&absmax, dmax.ptr, sizeof(absmax), cudaMemcpyDeviceToHost, ctx.stream)) != cudaSuccess ||
      (e = cudaStreamSynchronize(ctx.stream)) != cudaSuccess)
    return CudaFail(e, "download", error, error_size);
  if (x_scale) {
    float amax;
    std::memcpy(&amax, &absmax, sizeof(amax));
    *x_scale = amax > 0.f ? amax / 127.f : 1.f;
  }
  return Status::kOk;
}

Status CudaInt8GemmTime(size_t m, size_t k, size_t n, int reps, double* ms, char* error, size_t error_size) noexcept {
  if (!ms || reps < 1 || m == 0 || k == 0 || n == 0 || m >= (size_t{1} << 31) || k >= (size_t{1} << 31) ||
      n >= (size_t{1} << 31))
    return Status::kInvalidArgument;
  DenseContext ctx;
  MAAS_RETURN_IF_ERROR(ctx.Open(error, error_size));
  const size_t kp = RoundUp4(k), np = RoundUp4(n);
  DeviceBuffer dwt, dxq, dacc;
  cudaError_t e;
  if ((e = Upload<int8_t>(&dwt, nullptr, np * kp)) != cudaSuccess ||
      (e = Upload<int8_t>(&dxq, nullptr, m * kp)) != cudaSuccess ||
      (e = Upload<int32_t>(&dacc, nullptr, m * np)) != cudaSuccess)
    return CudaFail(e, "cudaMalloc", error, error_size);
  cudaMemsetAsync(dwt.ptr, 3, np * kp, ctx.stream);
  cudaMemsetAsync(dxq.ptr, 5, m * kp, ctx.stream);
  LtPlan plan(ctx.api);
  MAAS_RETURN_IF_ERROR(PlanInt8Dense(ctx.handle, m, k, n, &plan, error, error_size));
  const auto run = [&] {
    return LaunchInt8Gemm(ctx.handle, plan, dwt.as<int8_t>(), dxq.as<int8_t>(), dacc.as<int32_t>(), ctx.workspace.ptr,
                          ctx.stream, error, error_size);
  };
  return MedianDeviceTime(ctx.stream, reps, run, ms, error, error_size);
}

}  // namespace maas
