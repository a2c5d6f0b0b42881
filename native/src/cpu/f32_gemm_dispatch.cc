// The fp32 GEMM kernel table built from f32_gemm.inc, selection under an ISA cap, and B packing.
// Baseline flags only: nothing here may execute an instruction the CPU might lack.
#include <cstring>
#include <initializer_list>

#include "maas/f32_gemm.h"
#include "maas/f32_update.h"

namespace maas {

#define MAAS_F32_GEMM(name, isa, mr, nr, classes, weights, pair_align) \
  extern const uint32_t name##_kc, name##_mc;                          \
  size_t name##_scratch(size_t k);                                     \
  void name##_run(const F32GemmArgs&, const GemmTile&, float*);        \
  void name##_activate(Activation, const ActivationParams&, const float*, float*, size_t);
#include "f32_gemm.inc"
#undef MAAS_F32_GEMM

namespace {
const F32GemmKernel kKernels[] = {
#define MAAS_F32_GEMM(name, isa, mr, nr, classes, weights, pair_align) \
  {#name,      Isa::isa,        mr,          nr,                       \
   classes,    name##_kc,       name##_mc,   WeightFormat::weights,    \
   pair_align, &name##_scratch, &name##_run, &name##_activate},
#include "f32_gemm.inc"
#undef MAAS_F32_GEMM
};
constexpr size_t kKernelCount = sizeof(kKernels) / sizeof(kKernels[0]);
}  // namespace

const F32GemmKernel* F32GemmKernels(size_t* count) noexcept {
  *count = kKernelCount;
  return kKernels;
}

const F32GemmKernel* SelectF32GemmFor(Isa cap, CpuClass cls, const CpuFeatures& cpu, WeightFormat weights) noexcept {
  for (const F32GemmKernel& k : kKernels) {
    if (k.weights == weights && IsaWithin(k.isa, cap) && IsaSupportedBy(cpu, k.isa) &&
        (k.classes & CpuClassBit(cls)) != 0)
      return &k;
  }
  return nullptr;
}

const F32GemmKernel* SelectF32Gemm(Isa cap, WeightFormat weights) noexcept {
  return SelectF32GemmFor(cap, ActiveCpuClass(), DetectCpu(), weights);
}

const char* WeightFormatName(WeightFormat w) noexcept { return w == WeightFormat::kBf16 ? "bf16" : "fp32"; }

bool ParseWeightFormat(const char* text, WeightFormat* out) noexcept {
  for (WeightFormat w : {WeightFormat::kF32, WeightFormat::kBf16}) {
    if (std::strcmp(text, WeightFormatName(w)) == 0) {
      *out = w;
      return true;
    }
  }
  return false;
}

size_t PackedWeightFloats(const F32GemmKernel& kernel, size_t k, size_t n) noexcept {
  if (kernel.weights == WeightFormat::kBf16) return PackedBFloats(PackedPairs(k, kernel.pair_align), n, kernel.nr);
  return PackedBFloats(k, n, kernel.nr);
}

void PackWeights(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t k, size_t n, float* dst) noexcept {
  if (kernel.weights == WeightFormat::kBf16) {
    PackBf16B(w, ldw, k, n, kernel.nr, kernel.pair_align, reinterpret_cast<uint32_t*>(dst));
  } else {
    PackF32B(w, ldw, k, n, kernel.nr, dst);
  }
}

void PackWeightsTransposed(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t rows, size_t cols,
                           float* dst) noexcept {
  if (kernel.weights != WeightFormat::kBf16) return PackF32BTransposed(w, ldw, rows, cols, kernel.nr, dst);
  // B(kk, j) = W(j, kk): k = cols, n = rows; panel p holds W's rows p·nr.., pairs along W's columns.
  const uint32_t nr = kernel.nr;
  const size_t k = cols, n = rows, pairs = PackedPairs(k, kernel.pair_align);
  auto* out = reinterpret_cast<uint32_t*>(dst);
  for (size_t p = 0; p < PackedPanels(n, nr); ++p) {
    uint32_t* panel = out + p * pairs * nr;
    for (size_t j = 0; j < nr; ++j) {
      const size_t row = p * nr + j;
      const float* src = row < n ? w + row * ldw : nullptr;
      for (size_t q = 0; q < pairs; ++q) {
        const uint32_t lo = src && 2 * q < k ? Bf16Bits(src[2 * q]) : 0u;
        const uint32_t hi = src && 2 * q + 1 < k ? Bf16Bits(src[2 * q + 1]) : 0u;
        panel[q * nr + j] = lo | (hi << 16);
      }
    }
  }
}

void PackBf16B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, uint32_t pair_align,
               uint32_t* dst) noexcept {
  const size_t panels = PackedPanels(n, nr), pairs = PackedPairs(k, pair_align), data_pairs = (k + 1) / 2;
  for (size_t p = 0; p < panels; ++p) {
    uint32_t* panel = dst + p * pairs * nr;
    const size_t col0 = p * nr, cols = n - col0 < nr ? n - col0 : nr;
    for (size_t q = 0; q < pairs; ++q) {
      uint32_t* out = panel + q * nr;
      if (q >= data_pairs) {  // padding to whole AMX tiles
        for (size_t j = 0; j < nr; ++j) out[j] = 0;
        continue;
      }
      const float* lo = w + 2 * q * ldw + col0;
      if (2 * q + 1 < k) {
        const float* hi = lo + ldw;
        for (size_t j = 0; j < cols; ++j) out[j] = Bf16Bits(lo[j]) | (static_cast<uint32_t>(Bf16Bits(hi[j])) << 16);
      } else {
        for (size_t j = 0; j < cols; ++j) out[j] = Bf16Bits(lo[j]);
      }
      for (size_t j = cols; j < nr; ++j) out[j] = 0;
    }
  }
}

const F32GemmKernel* FindF32Gemm(const char* name) noexcept {
  for (const F32GemmKernel& k : kKernels) {
    if (std::strcmp(k.name, name) == 0) return &k;
  }
  return nullptr;
}

void PackF32B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, float* dst) noexcept {
  const size_t panels = PackedPanels(n, nr);
  for (size_t p = 0; p < panels; ++p) {
    const size_t col0 = p * nr;
    const size_t cols = n - col0 < nr ? n - col0 : nr;
    float* panel = dst + p * k * nr;
    for (size_t kk = 0; kk < k; ++kk) {
      std::memcpy(panel + kk * nr, w + kk * ldw + col0, cols * sizeof(float));
      std::memset(panel + kk * nr + cols, 0, (nr - cols) * sizeof(float));
    }
  }
}

void PackF32BTransposed(const float* w, size_t ldw, size_t rows, size_t cols, uint32_t nr, float* dst) noexcept {
  // B(kk, j) = W(j, kk): panel p holds B's columns p·nr.. = W's rows p·nr..
  // In blocks of 16 K rows: the block's nr × 16 floats of the panel stay in L1 while every W row
  // fills its column of them (column by column over all of K, each write went to another line).
  constexpr size_t kBlock = 16;
  const size_t k = cols, n = rows;
  const size_t panels = PackedPanels(n, nr);
  for (size_t p = 0; p < panels; ++p) {
    float* panel = dst + p * k * nr;
    for (size_t k0 = 0; k0 < k; k0 += kBlock) {
      const size_t k1 = k0 + kBlock < k ? k0 + kBlock : k;
      for (size_t j = 0; j < nr; ++j) {
        const size_t row = p * nr + j;
        if (row < n) {
          const float* src = w + row * ldw;
          for (size_t kk = k0; kk < k1; ++kk) panel[kk * nr + j] = src[kk];
        } else {
          for (size_t kk = k0; kk < k1; ++kk) panel[kk * nr + j] = 0.f;
        }
      }
    }
  }
}

void PackF32Bias(const float* bias, size_t n, uint32_t nr, float* dst) noexcept {
  const size_t padded = PackedBiasFloats(n, nr);
  if (bias) std::memcpy(dst, bias, n * sizeof(float));
  std::memset(dst + (bias ? n : 0), 0, (padded - (bias ? n : 0)) * sizeof(float));
}

#define MAAS_F32_UPDATE(name, isa) void name##_run(const F32UpdateArgs&, size_t, size_t);
#include "f32_update.inc"
#undef MAAS_F32_UPDATE

namespace {
const F32UpdateKernel kUpdateKernels[] = {
#define MAAS_F32_UPDATE(name, isa) {#name, Isa::isa, &name##_run},
#include "f32_update.inc"
#undef MAAS_F32_UPDATE
};
}  // namespace

const F32UpdateKernel* F32UpdateKernels(size_t* count) noexcept {
  *count = sizeof(kUpdateKernels) / sizeof(kUpdateKernels[0]);
  return kUpdateKernels;
}

const F32UpdateKernel* SelectF32Update(Isa isa) noexcept {
  for (const F32UpdateKernel& k : kUpdateKernels) {
    if (IsaWithin(k.isa, isa) && IsaSupported(k.isa)) return &k;
  }
  return nullptr;
}

}  // namespace maas
