// The int8 GEMM kernel family: u8 activations × s8 weights → s32, with a fused epilogue that
// corrects for the activation zero point, dequantizes (per-channel scale) + bias + relu/relu6/Keras ReLU to fp32,
// or requantizes to u8 for the next layer. Every member is listed once in src/cpu/int8_gemm.inc.
//
// The arithmetic every path promises, bit for bit (ref::QU8S8Dense is its definition):
//   acc[i][j] = Σ_k (a[i][k] − a_zero) · w[k][j]                       exact int32
//   y         = fma(float(acc), scale[j], bias[j] or 0)                 scale = a_scale · w_scale[j]
//   y         = max(y, 0) when act is relu or relu6
//   y         = min(y, 6) when act is relu6
//   y         = y > t ? min(y, max) : slope · (y − t)   when act is kerasRelu (slope = alpha; the
//               subtraction and the product each round once, no fma)
//   q         = clamp(nearbyint(y / out_scale) + out_zero, 0, out_max)  only for u8 output
// Each kernel states the largest activation it accepts (a_max): the AVX2 path keeps activations
// in 7 bits because vpmaddubsw saturates pairs at int16 (2 · 255 · 127 > 32767, 2 · 127 · 127 not).
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"
#include "maas/f32_gemm.h"
#include "maas/isa.h"

namespace maas {

// K is bounded so the int32 accumulator cannot overflow: 255 · 127 · K < 2^31.
constexpr size_t kMaxInt8K = 65536;

struct Int8GemmArgs {
  size_t m = 0, n = 0, k = 0;
  // m rows with row stride lda >= RoundUp(k, 4); each row is read for RoundUp(k, 4) bytes (bytes
  // past k may hold anything: they meet zero weights). Values must be <= the kernel's a_max.
  const uint8_t* a = nullptr;
  size_t lda = 0;
  int32_t a_zero = 0;
  const int8_t* b_packed = nullptr;  // PackInt8B for this kernel
  const int32_t* colsum = nullptr;   // Σ_k w[k][j], padded to the panel width
  const float* scale = nullptr;      // a_scale · w_scale[j], padded
  const float* bias = nullptr;       // padded, or nullptr
  // kLinear, kRelu, kRelu6 or kKerasRelu (with params): the epilogue fuses only these.
  Activation act = Activation::kLinear;
  ActivationParams params;
  float* c = nullptr;  // fp32 output (ldc), when q is nullptr
  size_t ldc = 0;
  uint8_t* q = nullptr;  // u8 output (ldq) for the next layer, or nullptr
  size_t ldq = 0;
  float out_scale = 1.f;
  int32_t out_zero = 0;
  int32_t out_max = 255;
};

struct Int8GemmKernel {
  const char* name;
  Isa isa;
  uint32_t mr, nr;   // register (or tile) rows and the packed panel width
  uint32_t k_align;  // K is zero-padded to a multiple of this in the packed panels (4, AMX: 64)
  int32_t a_max;     // largest activation value the kernel computes exactly (255, AVX2: 127)
  uint32_t classes;  // the CPU classes it is tuned for (CpuClassBit set; kAnyCpuClass: its ISA's fallback)
  // Bytes of scratch one thread needs for a given K.
  size_t (*scratch_bytes)(size_t k);
  // Computes one tile of the output. noexcept, no allocation.
  void (*run)(const Int8GemmArgs& args, const GemmTile& tile, void* scratch);
  // q[i] = clamp(nearbyint(x[i] / scale) + zero, 0, a_max), ONNX QuantizeLinear's rounding.
  void (*quantize)(const float* x, size_t n, float scale, int32_t zero, uint8_t* q);
};

// Kernels in preference order (best first), from int8_gemm.inc.
const Int8GemmKernel* Int8GemmKernels(size_t* count) noexcept;
// The best kernel whose ISA is within `cap` and supported by `features` (tests pass made-up CPUs).
const Int8GemmKernel* SelectInt8GemmFor(const CpuFeatures& features, Isa cap, CpuClass cls) noexcept;
// The same for this CPU and OS.
const Int8GemmKernel* SelectInt8Gemm(Isa cap) noexcept;
const Int8GemmKernel* FindInt8Gemm(const char* name) noexcept;

inline size_t RoundUpTo(size_t v, size_t a) noexcept { return (v + a - 1) / a * a; }
// Packed B: ceil(n / nr) panels; panel p holds RoundUp(k, k_align) / 4 groups of nr columns × 4
// consecutive k (the VNNI order, and AMX's B tile rows), zero padded past k and n.
inline size_t PackedInt8BBytes(size_t k, size_t n, const Int8GemmKernel& kernel) noexcept {
  return PackedPanels(n, kernel.nr) * kernel.nr * RoundUpTo(k, kernel.k_align);
}
// w is k rows of n int8 (row stride ldw); colsum receives PackedBiasFloats(n, nr) int32 sums.
void PackInt8B(const int8_t* w, size_t ldw, size_t k, size_t n, const Int8GemmKernel& kernel, int8_t* dst,
               int32_t* colsum) noexcept;

// The u8 quantization of a real range: scale = (max − min) / qmax and the zero point that maps 0
// exactly (the range is widened to hold 0), as ONNX DynamicQuantizeLinear computes them.
struct QuantParams {
  float scale;
  int32_t zero;
};
QuantParams ActivationQuantParams(float min, float max, int32_t qmax) noexcept;

// The activations the int8 epilogue applies itself (the others run on its fp32 output).
inline bool Int8Fusable(Activation act) noexcept {
  return act == Activation::kLinear || act == Activation::kRelu || act == Activation::kRelu6 ||
         act == Activation::kKerasRelu;
}

}  // namespace maas
