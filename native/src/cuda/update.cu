// The optimizers' fused update on the device: f32_update_driver.h's F32Update, the code every CPU
// update kernel runs, instantiated over one-lane device traits and run one element per thread.
// See lane_traits.cuh for why its roundings are the CPU FMA paths'.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

#include "../cpu/f32_update_driver.h"
#include "device_ops.h"
#include "lane_traits.cuh"
#include "maas/cuda_backend.h"

namespace maas {
namespace {

__global__ void UpdateKernel(F32UpdateArgs args, size_t count) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    F32Update<VCudaLane>(args, i, i + 1);
}

bool UsesM(UpdateRule r) {
  return r == UpdateRule::kMomentum || r == UpdateRule::kNesterov || r == UpdateRule::kAdam ||
         r == UpdateRule::kRmsPropMomentum;
}
bool UsesV(UpdateRule r) {
  return r == UpdateRule::kAdam || r == UpdateRule::kRmsProp || r == UpdateRule::kRmsPropMomentum;
}

}  // namespace

cudaError_t LaunchUpdate(const F32UpdateArgs& device_args, size_t count, cudaStream_t stream) noexcept {
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((count + 255) / 256, 65535));
  UpdateKernel<<<blocks, 256, 0, stream>>>(device_args, count);
  return cudaGetLastError();
}

Status CudaUpdateHost(const F32UpdateArgs& args, size_t count, char* error, size_t error_size) noexcept {
  const bool m = UsesM(args.rule), v = UsesV(args.rule);
  if (!args.w || !args.g || count == 0 || (m && !args.m) || (v && !args.v) ||
      static_cast<uint32_t>(args.rule) > static_cast<uint32_t>(UpdateRule::kRmsPropMomentum)) {
    if (error && error_size) std::snprintf(error, error_size, "invalid update arguments");
    return Status::kInvalidArgument;
  }
  MAAS_RETURN_IF_ERROR(RequireDevice(error, error_size));
  DeviceBuffer dw, dg, dm, dv;
  cudaError_t e;
  if ((e = Upload(&dw, args.w, count)) != cudaSuccess || (e = Upload(&dg, args.g, count)) != cudaSuccess ||
      (m && (e = Upload(&dm, args.m, count)) != cudaSuccess) || (v && (e = Upload(&dv, args.v, count)) != cudaSuccess))
    return CudaFail(e, "upload", error, error_size);
  F32UpdateArgs d = args;
  d.w = dw.as<float>();
  d.g = dg.as<float>();
  d.m = dm.as<float>();
  d.v = dv.as<float>();
  if ((e = LaunchUpdate(d, count, nullptr)) != cudaSuccess) return CudaFail(e, "update kernel", error, error_size);
  if ((e = cudaMemcpy(args.w, dw.ptr, count * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess ||
      (m && (e = cudaMemcpy(args.m, dm.ptr, count * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess) ||
      (v && (e = cudaMemcpy(args.v, dv.ptr, count * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess))
    return CudaFail(e, "download", error, error_size);
  return Status::kOk;
}

}  // namespace maas
