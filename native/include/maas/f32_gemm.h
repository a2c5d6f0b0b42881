// The fp32 GEMM kernel family: C = act(A·B + bias) with B packed once into the kernel's panels,
// A and C in fp32. A member stores B either as fp32 or as bf16 (the "bf16 precision" of a model:
// B rounded once at packing, A rounded as it is packed, products accumulated in fp32).
// Every member is listed once in src/cpu/f32_gemm.inc; dispatch, the JS list and tests read it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"
#include "maas/isa.h"

namespace maas {

// How a kernel stores the weights (B) it multiplies by.
enum class WeightFormat : uint32_t {
  kF32 = 0,
  // bf16 pairs along K: panel row q holds, per column j, one 32-bit word with B(2q, j) in its low
  // half and B(2q + 1, j) in its high half (the operand layout of vdpbf16ps), rounded to nearest even.
  kBf16 = 1,
};

const char* WeightFormatName(WeightFormat w) noexcept;  // "fp32" | "bf16"
bool ParseWeightFormat(const char* text, WeightFormat* out) noexcept;

// One call's operands. B is packed (see PackWeights); bias, when present, holds PackedBiasFloats.
struct F32GemmArgs {
  size_t m = 0, n = 0, k = 0;
  const float* a = nullptr;  // m rows of k floats, row stride lda (>= k)
  size_t lda = 0;
  // A is stored transposed: A(i, p) = a[p·lda + i], lda >= m (X^T for weight gradients).
  bool a_transposed = false;
  const float* b_packed = nullptr;  // PackWeights' layout for the kernel (bf16 words for kBf16)
  const float* bias = nullptr;      // nullptr: no bias
  float* c = nullptr;               // m rows of n floats, row stride ldc (>= n)
  size_t ldc = 0;
  Activation act = Activation::kLinear;
  float alpha = 0.f;                        // leakyRelu slope, elu scale, kerasRelu negative_slope
  float max_value = __builtin_huge_valf();  // kerasRelu
  float threshold = 0.f;                    // kerasRelu
  void set_activation(Activation a, const ActivationParams& p) noexcept {
    act = a;
    alpha = p.alpha;
    max_value = p.max_value;
    threshold = p.threshold;
  }
  ActivationParams params() const noexcept { return ActivationParams{alpha, max_value, threshold}; }
};

// A rectangle of the output: rows [m_begin, m_end) and B panels [p_begin, p_end).
struct GemmTile {
  size_t m_begin, m_end, p_begin, p_end;
};

struct F32GemmKernel {
  const char* name;
  Isa isa;
  uint32_t mr, nr;   // register tile: rows of A, columns of B (the packing panel width)
  uint32_t classes;  // the CPU classes it is tuned for (CpuClassBit set; kAnyCpuClass: its ISA's fallback)
  uint32_t kc, mc;   // its blocking: K block, and rows of A packed per block (tests sweep around them)
  WeightFormat weights;
  uint32_t pair_align;  // bf16: K pairs per packed panel padded to a multiple of this (AMX tiles: 16)
  // Floats of scratch one thread needs for a given K (packed A blocks).
  size_t (*scratch_floats)(size_t k);
  // Computes one tile. Softmax requires the tile to span every panel. noexcept, no allocation.
  void (*run)(const F32GemmArgs& args, const GemmTile& tile, float* scratch);
  // y[i] = act(z[i]) over n floats with the epilogue's own vector code (element-wise activations
  // only; z may equal y): for callers that keep the pre-activation (training) or apply the
  // activation after another kernel (the int8 path's unfused activations).
  void (*activate)(Activation act, const ActivationParams& params, const float* z, float* y, size_t n);
};

// Kernels in preference order (best first), from f32_gemm.inc.
const F32GemmKernel* F32GemmKernels(size_t* count) noexcept;
// The best kernel storing `weights`, whose ISA is at most `cap`, that this CPU/OS supports, tuned
// for this process's CPU class (ActiveCpuClass: detected, or MAAS_CPU_CLASS). Never null: the
// scalar kernels of each format serve every CPU.
const F32GemmKernel* SelectF32Gemm(Isa cap, WeightFormat weights = WeightFormat::kF32) noexcept;
// The same rule for a given class and feature set (tests: every class's choice on any machine).
const F32GemmKernel* SelectF32GemmFor(Isa cap, CpuClass cls, const CpuFeatures& cpu,
                                      WeightFormat weights = WeightFormat::kF32) noexcept;
const F32GemmKernel* FindF32Gemm(const char* name) noexcept;

// Packed B: ceil(n / nr) panels, each k rows of nr floats, zero padded past n.
inline size_t PackedPanels(size_t n, uint32_t nr) noexcept { return (n + nr - 1) / nr; }
inline size_t PackedBFloats(size_t k, size_t n, uint32_t nr) noexcept { return PackedPanels(n, nr) * nr * k; }
inline size_t PackedBiasFloats(size_t n, uint32_t nr) noexcept { return PackedPanels(n, nr) * nr; }
// Floats (4-byte words) the kernel's packed B takes for k×n weights: fp32 panels, or bf16 pairs
// (ceil(k / 2) rows, rounded up to pair_align, of nr words per panel).
size_t PackedWeightFloats(const F32GemmKernel& kernel, size_t k, size_t n) noexcept;
// Packs w (k rows of n floats, row stride ldw) in the kernel's format: PackF32B or PackBf16B.
void PackWeights(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t k, size_t n, float* dst) noexcept;
// Packs B = W^T (PackF32BTransposed's operand) in the kernel's format.
void PackWeightsTransposed(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t rows, size_t cols,
                           float* dst) noexcept;
// bf16 pairs along K (WeightFormat::kBf16), odd K padded with a zero half and the pairs with zero
// rows up to a multiple of pair_align.
void PackBf16B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, uint32_t pair_align,
               uint32_t* dst) noexcept;
// K pairs of a bf16 kernel's packed panel.
inline size_t PackedPairs(size_t k, uint32_t pair_align) noexcept {
  return ((k + 1) / 2 + pair_align - 1) / pair_align * pair_align;
}
// float -> bf16 bits, rounded to nearest even (NaN stays a quiet NaN): the rounding every bf16
// kernel applies to A and B, and tests apply to their reference's inputs. Subnormals flush to a
// signed zero, as vcvtne2ps2bf16 does. Selects, not branches, so loops over it vectorize.
inline uint16_t Bf16Bits(float x) noexcept {
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t finite = (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : rounded;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : finite);
}
inline float Bf16ToFloat(uint16_t h) noexcept {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  __builtin_memcpy(&x, &u, 4);
  return x;
}

// w is k rows of n floats (row stride ldw), as Keras and tfjs store a Dense kernel.
void PackF32B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, float* dst) noexcept;
void PackF32Bias(const float* bias, size_t n, uint32_t nr, float* dst) noexcept;
// Packs B = W^T for W of rows×cols (row stride ldw): B is cols×rows, so k = cols, n = rows.
void PackF32BTransposed(const float* w, size_t ldw, size_t rows, size_t cols, uint32_t nr, float* dst) noexcept;

}  // namespace maas
