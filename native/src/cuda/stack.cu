// A dense stack resident on the device. The weights go up once (converted to bf16 there for the
// bf16 precision); each forward pass stages the input through pinned memory, runs the layers on
// the stack's stream with activations ping-ponging between two device buffers, and stages the
// output back. cuBLASLt plans are kept for the last few batch sizes, since planning costs more
// than a small layer's product.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "device_ops.h"
#include "maas/cuda_backend.h"

namespace maas {

namespace {

constexpr size_t kCachedBatchSizes = 8;

struct DeviceLayer {
  uint32_t in, out;
  Activation act;
  ActivationParams params;
  DeviceBuffer weights;  // wᵀ as cuBLASLt reads it: fp32, or bf16
  DeviceBuffer bias;     // fp32 or empty
};

// The plans of one batch size, one per layer.
struct BatchPlans {
  size_t batch = 0;
  uint64_t last_use = 0;
  std::vector<std::unique_ptr<LtPlan>> layers;
};

// Pinned host memory, freed with its owner.
struct PinnedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (ptr) cudaFreeHost(ptr);
  }
  cudaError_t Reserve(size_t want) {
    if (want <= bytes) return cudaSuccess;
    if (ptr) cudaFreeHost(ptr);
    ptr = nullptr;
    bytes = 0;
    const cudaError_t e = cudaMallocHost(&ptr, want);
    if (e == cudaSuccess) bytes = want;
    return e;
  }
};

}  // namespace

class CudaStack {
 public:
  DenseContext ctx;
  CudaPrecision precision = CudaPrecision::kFp32;
  std::vector<DeviceLayer> layers;
  size_t widest = 0;  // the widest activation row, input included
  size_t weight_bytes = 0;
  size_t capacity = 0;   // rows the activation buffers hold
  DeviceBuffer act[2];   // fp32 activations, ping-pong
  DeviceBuffer operand;  // the current input in bf16 (kBf16 only)
  PinnedBuffer staging_in, staging_out;
  std::vector<BatchPlans> plans;
  uint64_t uses = 0;

  Status Reserve(size_t batch, char* error, size_t error_size) {
    if (batch <= capacity) return Status::kOk;
    for (DeviceBuffer& b : act) b.Free();
    operand.Free();
    capacity = 0;
    cudaError_t e;
    for (DeviceBuffer& b : act)
      if ((e = Upload<float>(&b, nullptr, batch * widest)) != cudaSuccess)
        return CudaFail(e, "activation buffers", error, error_size);
    if (precision == CudaPrecision::kBf16 && (e = Upload<uint16_t>(&operand, nullptr, batch * widest)) != cudaSuccess)
      return CudaFail(e, "bf16 operand buffer", error, error_size);
    capacity = batch;
    return Status::kOk;
  }

  // The plans for `batch`, made on first use; the least recently used size gives way.
  Status PlansFor(size_t batch, BatchPlans** out, char* error, size_t error_size) {
    ++uses;
    for (BatchPlans& p : plans)
      if (p.batch == batch) {
        p.last_use = uses;
        *out = &p;
        return Status::kOk;
      }
    BatchPlans fresh;
    fresh.batch = batch;
    fresh.last_use = uses;
    for (const DeviceLayer& l : layers) {
      fresh.layers.push_back(std::make_unique<LtPlan>(ctx.api));
      MAAS_RETURN_IF_ERROR(PlanDense(ctx.handle, l.bias.as<float>(), batch, l.in, l.out, l.act, precision,
                                     fresh.layers.back().get(), error, error_size));
    }
    if (plans.size() >= kCachedBatchSizes) {
      size_t oldest = 0;
      for (size_t i = 1; i < plans.size(); ++i)
        if (plans[i].last_use < plans[oldest].last_use) oldest = i;
      plans.erase(plans.begin() + static_cast<std::ptrdiff_t>(oldest));
    }
    plans.push_back(std::move(fresh));
    *out = &plans.back();
    return Status::kOk;
  }
};

Status CudaStackCreate(const CudaStackLayer* layers, size_t count, CudaPrecision precision, CudaStack** out,
                       char* error, size_t error_size) noexcept {
  if (!layers || count == 0 || !out || static_cast<int>(precision) < 0 || static_cast<int>(precision) > 2) {
    if (error && error_size) std::snprintf(error, error_size, "invalid stack arguments");
    return Status::kInvalidArgument;
  }
  for (size_t i = 0; i < count; ++i) {
    const CudaStackLayer& l = layers[i];
    const bool chained = i == 0 || layers[i - 1].out == l.in;
    if (l.in == 0 || l.out == 0 || !l.weights || static_cast<uint32_t>(l.act) >= kActivationCount || !chained) {
      if (error && error_size) std::snprintf(error, error_size, "layer %zu: invalid shape, weights or activation", i);
      return Status::kInvalidArgument;
    }
  }
  std::unique_ptr<CudaStack> stack(new (std::nothrow) CudaStack());
  if (!stack) return Status::kOutOfMemory;
  MAAS_RETURN_IF_ERROR(stack->ctx.Open(error, error_size));
  stack->precision = precision;
  stack->layers.resize(count);
  DeviceBuffer staging;  // fp32 weights on their way to bf16
  for (size_t i = 0; i < count; ++i) {
    const CudaStackLayer& l = layers[i];
    DeviceLayer& d = stack->layers[i];
    d.in = l.in;
    d.out = l.out;
    d.act = l.act;
    d.params = l.params;
    const size_t elements = static_cast<size_t>(l.in) * l.out;
    cudaError_t e;
    if (precision == CudaPrecision::kBf16) {
      staging.Free();
      if ((e = Upload(&staging, l.weights, elements)) != cudaSuccess ||
          (e = Upload<uint16_t>(&d.weights, nullptr, elements)) != cudaSuccess ||
          (e = LaunchToBf16(staging.as<float>(), elements, d.weights.ptr, stack->ctx.stream)) != cudaSuccess ||
          (e = cudaStreamSynchronize(stack->ctx.stream)) != cudaSuccess)
        return CudaFail(e, "weight upload", error, error_size);
      stack->weight_bytes += elements * 2;
    } else {
      if ((e = Upload(&d.weights, l.weights, elements)) != cudaSuccess)
        return CudaFail(e, "weight upload", error, error_size);
      stack->weight_bytes += elements * 4;
    }
    if (l.bias) {
      if ((e = Upload(&d.bias, l.bias, l.out)) != cudaSuccess) return CudaFail(e, "bias upload", error, error_size);
      stack->weight_bytes += static_cast<size_t>(l.out) * 4;
    }
    stack->widest = std::max<size_t>(stack->widest, std::max(l.in, l.out));
  }
  *out = stack.release();
  return Status::kOk;
}

Status CudaStackForward(CudaStack* stack, const float* x, size_t batch, float* y, char* error,
                        size_t error_size) noexcept {
  if (!stack || !x || !y || batch == 0 || batch > (size_t{1} << 31) / stack->widest) {
    if (error && error_size) std::snprintf(error, error_size, "invalid forward arguments");
    return Status::kInvalidArgument;
  }
  MAAS_RETURN_IF_ERROR(stack->Reserve(batch, error, error_size));
  BatchPlans* plans = nullptr;
  MAAS_RETURN_IF_ERROR(stack->PlansFor(batch, &plans, error, error_size));
  const size_t in_bytes = batch * stack->layers.front().in * sizeof(float);
  const size_t out_bytes = batch * stack->layers.back().out * sizeof(float);
  cudaError_t e;
  if ((e = stack->staging_in.Reserve(in_bytes)) != cudaSuccess ||
      (e = stack->staging_out.Reserve(out_bytes)) != cudaSuccess)
    return CudaFail(e, "pinned staging", error, error_size);
  cudaStream_t stream = stack->ctx.stream;
  // Once work is queued, an error waits for it: the staging buffers may be refilled or freed next.
  const auto fail = [&](Status status) {
    cudaStreamSynchronize(stream);
    cudaGetLastError();
    return status;
  };
  std::memcpy(stack->staging_in.ptr, x, in_bytes);
  if ((e = cudaMemcpyAsync(stack->act[0].ptr, stack->staging_in.ptr, in_bytes, cudaMemcpyHostToDevice, stream)) !=
      cudaSuccess)
    return fail(CudaFail(e, "input upload", error, error_size));
  int current = 0;
  for (size_t i = 0; i < stack->layers.size(); ++i) {
    const DeviceLayer& l = stack->layers[i];
    const void* operand = stack->act[current].ptr;
    if (stack->precision == CudaPrecision::kBf16) {
      if ((e = LaunchToBf16(stack->act[current].as<float>(), batch * l.in, stack->operand.ptr, stream)) != cudaSuccess)
        return fail(CudaFail(e, "bf16 conversion", error, error_size));
      operand = stack->operand.ptr;
    }
    const Status launched =
        LaunchDense(stack->ctx.handle, *plans->layers[i], l.weights.ptr, operand, l.params,
                    stack->act[current ^ 1].as<float>(), stack->ctx.workspace.ptr, stream, error, error_size);
    if (launched != Status::kOk) return fail(launched);
    current ^= 1;
  }
  if ((e = cudaMemcpyAsync(stack->staging_out.ptr, stack->act[current].ptr, out_bytes, cudaMemcpyDeviceToHost,
                           stream)) != cudaSuccess ||
      (e = cudaStreamSynchronize(stream)) != cudaSuccess)
    return fail(CudaFail(e, "output download", error, error_size));
  std::memcpy(y, stack->staging_out.ptr, out_bytes);
  return Status::kOk;
}

size_t CudaStackWeightBytes(const CudaStack* stack) noexcept { return stack ? stack->weight_bytes : 0; }

void CudaStackDestroy(CudaStack* stack) noexcept { delete stack; }

}  // namespace maas
