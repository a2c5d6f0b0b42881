// One dense layer on the device through cuBLASLt. maas stores x [m × k] and w [k × n] row-major;
// read column-major they are xᵀ (k × m) and wᵀ (n × k), so cuBLASLt computes
//   yᵀ (n × m) = wᵀ (n × k) · xᵀ (k × m)
// with no transposition, and yᵀ column-major is y row-major. The bias has one value per row of
// yᵀ, as cuBLASLt's bias epilogue wants. Bias with ReLU or GELU-tanh runs in that epilogue; every
// other activation (and softmax) runs in the epilogue kernel after the product.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

__global__ void ToBf16Kernel(const float* in, size_t count, __nv_bfloat16* out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

// Deterministic operands in [-1, 1) for the timing runs: a hash of the index.
__global__ void FillKernel(float* out, size_t count, uint32_t salt) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ salt;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    out[i] = static_cast<float>(h >> 8) / 8388608.f - 1.f;
  }
}

unsigned Blocks(size_t count) { return static_cast<unsigned>(std::min<size_t>((count + 255) / 256, 65535)); }

// cuBLASLt's epilogue for (act, bias), or kEpilogueDefault/kEpilogueBias when act is left to the kernel.
int EpilogueFor(Activation act, bool bias, bool* fused) {
  *fused = act == Activation::kLinear || act == Activation::kRelu || act == Activation::kGeluTanh;
  if (act == Activation::kRelu) return bias ? lt::kEpilogueReluBias : lt::kEpilogueRelu;
  if (act == Activation::kGeluTanh) return bias ? lt::kEpilogueGeluBias : lt::kEpilogueGelu;
  return bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
}

}  // namespace

Status ChooseAlgorithm(lt::Handle handle, LtPlan* plan, char* error, size_t error_size) {
  const lt::Api* api = plan->api;
  lt::Status s;
  if ((s = api->pref_create(&plan->pref)) != 0) return LtFail(s, "preference", error, error_size);
  const uint64_t workspace_bytes = kLtWorkspaceBytes;
  if ((s = api->pref_set(plan->pref, lt::kPrefMaxWorkspaceBytes, &workspace_bytes, sizeof(workspace_bytes))) != 0)
    return LtFail(s, "preference", error, error_size);
  int found = 0;
  s = api->heuristic(handle, plan->desc, plan->a, plan->b, plan->d, plan->d, plan->pref, 1, &plan->best, &found);
  if (s != 0) return LtFail(s, "heuristic", error, error_size);
  if (found == 0) {
    if (error && error_size) std::snprintf(error, error_size, "cuBLASLt has no algorithm for this layer");
    return Status::kUnsupported;
  }
  return Status::kOk;
}

// Describes the layer to cuBLASLt and asks for its best algorithm. Operands: wᵀ and xᵀ in fp32, or
// bf16 for kBf16; y fp32.
Status PlanDense(lt::Handle handle, const float* bias, size_t m, size_t k, size_t n, Activation act,
                 CudaPrecision precision, LtPlan* plan, char* error, size_t error_size) {
  const lt::Api* api = plan->api;
  lt::Status s;
  const int compute = precision == CudaPrecision::kTf32 ? lt::kCompute32FFastTf32 : lt::kCompute32F;
  if ((s = api->desc_create(&plan->desc, compute, CUDA_R_32F)) != 0) return LtFail(s, "descriptor", error, error_size);
  const int32_t epilogue = EpilogueFor(act, bias != nullptr, &plan->fused);
  if ((s = api->desc_set(plan->desc, lt::kDescEpilogue, &epilogue, sizeof(epilogue))) != 0)
    return LtFail(s, "epilogue", error, error_size);
  if (bias && (s = api->desc_set(plan->desc, lt::kDescBiasPointer, &bias, sizeof(bias))) != 0)
    return LtFail(s, "bias", error, error_size);
  const int operand = precision == CudaPrecision::kBf16 ? CUDA_R_16BF : CUDA_R_32F;
  if ((s = api->layout_create(&plan->a, operand, n, k, static_cast<int64_t>(n))) != 0 ||
      (s = api->layout_create(&plan->b, operand, k, m, static_cast<int64_t>(k))) != 0 ||
      (s = api->layout_create(&plan->d, CUDA_R_32F, n, m, static_cast<int64_t>(n))) != 0)
    return LtFail(s, "layout", error, error_size);
  MAAS_RETURN_IF_ERROR(ChooseAlgorithm(handle, plan, error, error_size));
  plan->m = m;
  plan->n = n;
  plan->act = act;
  return Status::kOk;
}

// Runs a planned layer on `stream`.
Status LaunchDense(lt::Handle handle, const LtPlan& plan, const void* w, const void* x, const ActivationParams& params,
                   float* y, void* workspace, cudaStream_t stream, char* error, size_t error_size) {
  const float alpha = 1.f, beta = 0.f;
  const lt::Status s = plan.api->matmul(handle, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.d, y, plan.d,
                                        &plan.best.algo, workspace, kLtWorkspaceBytes, stream);
  if (s != 0) return LtFail(s, "matmul", error, error_size);
  if (!plan.fused) {
    const cudaError_t e = LaunchBiasActivation(y, nullptr, plan.m, plan.n, plan.act, params, y, stream);
    if (e != cudaSuccess) return CudaFail(e, "epilogue kernel", error, error_size);
  }
  return Status::kOk;
}

cudaError_t LaunchToBf16(const float* in, size_t count, void* out, cudaStream_t stream) noexcept {
  ToBf16Kernel<<<Blocks(count), 256, 0, stream>>>(in, count, static_cast<__nv_bfloat16*>(out));
  return cudaGetLastError();
}

namespace {

// The operands as the product reads them: fp32 as uploaded, or converted to bf16 on the device.
cudaError_t AsOperand(const DeviceBuffer& f32, size_t count, CudaPrecision precision, cudaStream_t stream,
                      DeviceBuffer* bf16, const void** operand) {
  if (precision != CudaPrecision::kBf16) {
    *operand = f32.ptr;
    return cudaSuccess;
  }
  cudaError_t e = Upload<__nv_bfloat16>(bf16, nullptr, count);
  if (e != cudaSuccess) return e;
  *operand = bf16->ptr;
  return LaunchToBf16(f32.as<float>(), count, bf16->ptr, stream);
}

bool ValidLayer(size_t m, size_t k, size_t n, Activation act, CudaPrecision precision, char* error, size_t error_size) {
  const bool ok = m > 0 && k > 0 && n > 0 && m < (size_t{1} << 31) && k < (size_t{1} << 31) && n < (size_t{1} << 31) &&
                  static_cast<uint32_t>(act) < kActivationCount && static_cast<int>(precision) >= 0 &&
                  static_cast<int>(precision) <= 2;
  if (!ok && error && error_size) std::snprintf(error, error_size, "invalid dense layer arguments");
  return ok;
}

}  // namespace

Status CudaDenseHost(const float* x, const float* w, const float* bias, size_t m, size_t k, size_t n, Activation act,
                     const ActivationParams& params, CudaPrecision precision, float* y, char* error,
                     size_t error_size) noexcept {
  if (!x || !w || !y || !ValidLayer(m, k, n, act, precision, error, error_size)) return Status::kInvalidArgument;
  DenseContext ctx;
  MAAS_RETURN_IF_ERROR(ctx.Open(error, error_size));
  DeviceBuffer dx, dw, db, dy, x16, w16;
  cudaError_t e;
  if ((e = Upload(&dx, x, m * k)) != cudaSuccess || (e = Upload(&dw, w, k * n)) != cudaSuccess ||
      (bias && (e = Upload(&db, bias, n)) != cudaSuccess) || (e = Upload<float>(&dy, nullptr, m * n)) != cudaSuccess)
    return CudaFail(e, "upload", error, error_size);
  const void *xo = nullptr, *wo = nullptr;
  if ((e = AsOperand(dx, m * k, precision, ctx.stream, &x16, &xo)) != cudaSuccess ||
      (e = AsOperand(dw, k * n, precision, ctx.stream, &w16, &wo)) != cudaSuccess)
    return CudaFail(e, "bf16 conversion", error, error_size);
  LtPlan plan(ctx.api);
  MAAS_RETURN_IF_ERROR(PlanDense(ctx.handle, db.as<float>(), m, k, n, act, precision, &plan, error, error_size));
  MAAS_RETURN_IF_ERROR(
      LaunchDense(ctx.handle, plan, wo, xo, params, dy.as<float>(), ctx.workspace.ptr, ctx.stream, error, error_size));
  if ((e = cudaMemcpyAsync(y, dy.ptr, m * n * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream)) != cudaSuccess ||
      (e = cudaStreamSynchronize(ctx.stream)) != cudaSuccess)
    return CudaFail(e, "download", error, error_size);
  return Status::kOk;
}

Status CudaDenseTime(size_t m, size_t k, size_t n, bool bias, Activation act, CudaPrecision precision, int reps,
                     double* ms, char* error, size_t error_size) noexcept {
  if (!ms || reps < 1 || !ValidLayer(m, k, n, act, precision, error, error_size)) return Status::kInvalidArgument;
  DenseContext ctx;
  MAAS_RETURN_IF_ERROR(ctx.Open(error, error_size));
  DeviceBuffer dx, dw, db, dy, x16, w16;
  cudaError_t e;
  if ((e = Upload<float>(&dx, nullptr, m * k)) != cudaSuccess ||
      (e = Upload<float>(&dw, nullptr, k * n)) != cudaSuccess || (e = Upload<float>(&db, nullptr, n)) != cudaSuccess ||
      (e = Upload<float>(&dy, nullptr, m * n)) != cudaSuccess)
    return CudaFail(e, "cudaMalloc", error, error_size);
  FillKernel<<<Blocks(m * k), 256, 0, ctx.stream>>>(dx.as<float>(), m * k, 1u);
  FillKernel<<<Blocks(k * n), 256, 0, ctx.stream>>>(dw.as<float>(), k * n, 2u);
  FillKernel<<<Blocks(n), 256, 0, ctx.stream>>>(db.as<float>(), n, 3u);
  const void *xo = nullptr, *wo = nullptr;
  if ((e = AsOperand(dx, m * k, precision, ctx.stream, &x16, &xo)) != cudaSuccess ||
      (e = AsOperand(dw, k * n, precision, ctx.stream, &w16, &wo)) != cudaSuccess)
    return CudaFail(e, "bf16 conversion", error, error_size);
  LtPlan plan(ctx.api);
  MAAS_RETURN_IF_ERROR(
      PlanDense(ctx.handle, bias ? db.as<float>() : nullptr, m, k, n, act, precision, &plan, error, error_size));
  const auto run = [&] {
    return LaunchDense(ctx.handle, plan, wo, xo, ActivationParams{}, dy.as<float>(), ctx.workspace.ptr, ctx.stream,
                       error, error_size);
  };
  return MedianDeviceTime(ctx.stream, reps, run, ms, error, error_size);
}

}  // namespace maas
