// The CUDA backend's host-side face, free of CUDA types so the binding and the CPU-only build
// include it alike: what the build holds, what the machine offers (devices, driver, cuBLASLt,
// NVML), and the device ops the backend runs. Built without CUDA, every query answers why not.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"
#include "maas/f32_update.h"
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
  void* handle;      // dlopen's handle, kept open for the process's life (null if not loaded)
};
const CudaLibrary& LoadCublasLt() noexcept;
const CudaLibrary& LoadNvml() noexcept;

// The precision of a device GEMM: fp32 inputs and products; fp32 inputs rounded to TF32 by the
// tensor cores; or operands converted to bf16 on the device. Sums and outputs are fp32 in all three.
enum class CudaPrecision : int { kFp32 = 0, kTf32 = 1, kBf16 = 2 };

// One device as NVML reports it now: what Triton's nv_gpu_* metrics carry.
struct NvmlDeviceSample {
  char uuid[96];
  double utilization;  // the share of the last sample period a kernel ran, 0..1
  uint64_t memory_used_bytes, memory_total_bytes;
  double power_watts;  // < 0 where the device does not report it
};
// Samples up to `capacity` devices into `out` (NVML initialized on first use). kUnsupported when
// NVML did not load or does not initialize (no driver); *count devices answered.
Status SampleNvml(NvmlDeviceSample* out, size_t capacity, size_t* count, char* error, size_t error_size) noexcept;

// Device ops over host buffers, for tests and the device script: the data goes to the first device,
// the op runs there, the result comes back. kUnsupported when there is no device (or no CUDA build).
// y[rows × cols] = act(z + bias) row by row (bias may be null); softmax is row-wise.
Status CudaBiasActivationHost(const float* z, const float* bias, size_t rows, size_t cols, Activation act,
                              const ActivationParams& params, float* y, char* error, size_t error_size) noexcept;

// One dense layer on the device: y[m × n] = act(x[m × k] · w[k × n] + bias), row-major as maas
// stores them, through cuBLASLt (bias with ReLU or GELU-tanh fused in its epilogue, every other
// activation by the epilogue kernel). kUnsupported without a device or without cuBLASLt.
Status CudaDenseHost(const float* x, const float* w, const float* bias, size_t m, size_t k, size_t n, Activation act,
                     const ActivationParams& params, CudaPrecision precision, float* y, char* error,
                     size_t error_size) noexcept;

// The same layer with its operands resident on the device (filled there): the median time of
// `reps` runs after three warm-ups, in milliseconds, CUDA events around each. For the device bench.
Status CudaDenseTime(size_t m, size_t k, size_t n, bool bias, Activation act, CudaPrecision precision, int reps,
                     double* ms, char* error, size_t error_size) noexcept;

// One int8 dense layer on the device (cuBLASLt IMMA): w [k × n] s8 with per-column scales, x
// quantized per tensor to symmetric s8 on the device from its own range (its scale goes to
// *x_scale when not null), int32 sums, then y = act(sum · x_scale · w_scale[j] + bias[j]).
Status CudaInt8DenseHost(const float* x, const int8_t* w, const float* w_scale, const float* bias, size_t m, size_t k,
                         size_t n, Activation act, const ActivationParams& params, float* y, float* x_scale,
                         char* error, size_t error_size) noexcept;
// The int8 product alone (s8 operands resident, int32 out): median ms of `reps` after 3 warm-ups.
Status CudaInt8GemmTime(size_t m, size_t k, size_t n, int reps, double* ms, char* error, size_t error_size) noexcept;

// One optimizer step on the device over host arrays (args' pointers are host pointers; w and the
// state arrays the rule uses are updated in place): the CPU kernels' F32Update, element by element.
Status CudaUpdateHost(const F32UpdateArgs& args, size_t count, char* error, size_t error_size) noexcept;

// A layer's activation backward on the device over host arrays: dz (rows × cols, dL/dY on entry)
// becomes dL/dZ from the output y (or the pre-activation z where the activation needs it), softmax
// row-wise; db, when not null, receives the bias gradient. ActivationBackward's contract.
Status CudaActivationBackwardHost(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                                  size_t rows, size_t cols, float* db, char* error, size_t error_size) noexcept;

// A dense stack resident on the device: its weights uploaded once (converted to bf16 there for
// kBf16), one stream, a cuBLASLt handle, pinned staging for the input and output, and the plans of
// the batch sizes seen last. One thread uses a stack at a time (each worker opens its own).
struct CudaStackLayer {
  uint32_t in, out;
  Activation act;
  ActivationParams params;
  const float* weights;  // [in × out] row-major, as maas stores them
  const float* bias;     // [out], or null
};
class CudaStack;
Status CudaStackCreate(const CudaStackLayer* layers, size_t count, CudaPrecision precision, CudaStack** out,
                       char* error, size_t error_size) noexcept;
// y[batch × last out] = the stack's forward pass over x[batch × first in].
Status CudaStackForward(CudaStack* stack, const float* x, size_t batch, float* y, char* error,
                        size_t error_size) noexcept;
// Bytes of device memory the stack's weights and biases hold.
size_t CudaStackWeightBytes(const CudaStack* stack) noexcept;
void CudaStackDestroy(CudaStack* stack) noexcept;

}  // namespace maas
