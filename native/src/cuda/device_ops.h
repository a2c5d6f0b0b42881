// What the CUDA sources share among themselves (not the binding): the cuBLASLt entry points, the
// epilogue launchers, and device buffers that free themselves.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cublaslt_api.h"
#include "maas/activation.h"
#include "maas/cuda_backend.h"
#include "maas/f32_update.h"
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
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr(other.ptr) { other.ptr = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Free();
      ptr = other.ptr;
      other.ptr = nullptr;
    }
    return *this;
  }
  ~DeviceBuffer() { Free(); }
  void Free() {
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
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

constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's scratch: what Hopper's kernels ask for

inline Status LtFail(lt::Status s, const char* what, char* error, size_t error_size) {
  if (error && error_size) std::snprintf(error, error_size, "cuBLASLt %s failed (status %d)", what, s);
  return Status::kUnsupported;
}

// One planned product: its descriptors (destroyed with it), the algorithm cuBLASLt chose, and
// whether the activation runs in cuBLASLt's epilogue. The bias pointer is part of the plan.
struct LtPlan {
  const lt::Api* api;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, d = nullptr;
  lt::Preference pref = nullptr;
  lt::HeuristicResult best{};
  bool fused = false;
  size_t m = 0, n = 0;
  Activation act = Activation::kLinear;
  explicit LtPlan(const lt::Api* api_) : api(api_) {}
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (pref) api->pref_destroy(pref);
    if (d) api->layout_destroy(d);
    if (b) api->layout_destroy(b);
    if (a) api->layout_destroy(a);
    if (desc) api->desc_destroy(desc);
  }
};

// The device state one call needs: the cuBLASLt handle, its workspace, and a stream.
struct DenseContext {
  const lt::Api* api = nullptr;
  lt::Handle handle = nullptr;
  DeviceBuffer workspace;
  cudaStream_t stream = nullptr;
  DenseContext() = default;
  DenseContext(const DenseContext&) = delete;
  DenseContext& operator=(const DenseContext&) = delete;
  ~DenseContext() {
    if (stream) cudaStreamDestroy(stream);
    if (handle) api->destroy(handle);
  }
  Status Open(char* error, size_t error_size) {
    MAAS_RETURN_IF_ERROR(RequireDevice(error, error_size));
    api = CublasLtApi();
    if (!api) {
      if (error && error_size) std::snprintf(error, error_size, "no cuBLASLt: %s", LoadCublasLt().reason);
      return Status::kUnsupported;
    }
    lt::Status s = api->create(&handle);
    if (s != 0) return LtFail(s, "handle", error, error_size);
    // A blocking stream: it waits for the legacy default stream, where Upload's pageable
    // cudaMemcpy may still be moving bytes when it returns.
    cudaError_t e = cudaStreamCreate(&stream);
    if (e == cudaSuccess) e = Upload<char>(&workspace, nullptr, kLtWorkspaceBytes);
    return e == cudaSuccess ? Status::kOk : CudaFail(e, "stream and workspace", error, error_size);
  }
};

// Asks cuBLASLt for the best algorithm of a plan whose descriptor and layouts are set (a
// preference of at most kLtWorkspaceBytes of scratch); D's layout serves as C's.
Status ChooseAlgorithm(lt::Handle handle, LtPlan* plan, char* error, size_t error_size);

// The median time of `reps` runs of `run` on `stream` after three warm-ups, CUDA events around each,
// in milliseconds. `run` enqueues one run and answers its status.
template <class Run>
Status MedianDeviceTime(cudaStream_t stream, int reps, Run run, double* ms, char* error, size_t error_size) {
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaError_t e;
  if ((e = cudaEventCreate(&start)) != cudaSuccess || (e = cudaEventCreate(&stop)) != cudaSuccess) {
    if (start) cudaEventDestroy(start);
    return CudaFail(e, "events", error, error_size);
  }
  std::vector<float> times;
  Status status = Status::kOk;
  for (int r = 0; r < reps + 3 && status == Status::kOk; ++r) {
    cudaEventRecord(start, stream);
    status = run();
    cudaEventRecord(stop, stream);
    if ((e = cudaEventSynchronize(stop)) != cudaSuccess) status = CudaFail(e, "timing", error, error_size);
    float elapsed = 0;
    if (status == Status::kOk && r >= 3 && cudaEventElapsedTime(&elapsed, start, stop) == cudaSuccess)
      times.push_back(elapsed);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (status != Status::kOk) return status;
  std::sort(times.begin(), times.end());
  *ms = times.empty() ? 0 : times[times.size() / 2];
  return Status::kOk;
}

// Describes y[m × n] = act(x[m × k] · w[k × n] + bias) to cuBLASLt (operands fp32, or bf16 for
// kBf16; y fp32) and asks for its best algorithm. The bias pointer is part of the plan.
Status PlanDense(lt::Handle handle, const float* bias, size_t m, size_t k, size_t n, Activation act,
                 CudaPrecision precision, LtPlan* plan, char* error, size_t error_size);

// Runs a planned layer on `stream`: the product, then the epilogue kernel unless cuBLASLt fused it.
Status LaunchDense(lt::Handle handle, const LtPlan& plan, const void* w, const void* x, const ActivationParams& params,
                   float* y, void* workspace, cudaStream_t stream, char* error, size_t error_size);

// The int8 path (int8_dense.cu): wᵀ [n × round_up(k, 4)] as IMMA reads it; the plan of one layer;
// the product alone; and the whole layer (quantize x on the device, multiply, dequantize with
// the per-column scales, bias, activation). xq, acc and absmax are the caller's scratch.
std::vector<int8_t> TransposeInt8Weights(const int8_t* w, size_t k, size_t n);
Status PlanInt8Dense(lt::Handle handle, size_t m, size_t k, size_t n, LtPlan* plan, char* error, size_t error_size);
Status LaunchInt8Gemm(lt::Handle handle, const LtPlan& plan, const int8_t* wt, const int8_t* xq, int32_t* acc,
                      void* workspace, cudaStream_t stream, char* error, size_t error_size);
Status LaunchInt8Dense(lt::Handle handle, const LtPlan& plan, const float* x, size_t k, const int8_t* wt,
                       const float* w_scale, const float* bias, Activation act, const ActivationParams& params,
                       int8_t* xq, int32_t* acc, unsigned* absmax, float* y, void* workspace, cudaStream_t stream,
                       char* error, size_t error_size);

// One optimizer step over device arrays (args' pointers are device pointers), on `stream`.
cudaError_t LaunchUpdate(const F32UpdateArgs& device_args, size_t count, cudaStream_t stream) noexcept;

// ActivationBackward over device arrays on `stream` (db, when not null, gets the column sums).
cudaError_t LaunchActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z,
                                     float* dz, size_t rows, size_t cols, float* db, cudaStream_t stream) noexcept;

// out[i] = bf16(in[i]), round to nearest even, on `stream`.
cudaError_t LaunchToBf16(const float* in, size_t count, void* out, cudaStream_t stream) noexcept;

}  // namespace maas
