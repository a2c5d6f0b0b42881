// The int8 GEMM kernel table built from int8_gemm.inc, selection under an ISA cap, B packing
// with column sums, and the activation quantization parameters every caller shares.
// Baseline flags only: nothing here may execute an instruction the CPU might lack.
#include <cmath>
#include <cstring>

#include "maas/int8_gemm.h"

namespace maas {

#define MAAS_INT8_GEMM(name, isa, mr, nr, k_align, a_max, classes) \
  size_t name##_scratch(size_t k);                                 \
  void name##_run(const Int8GemmArgs&, const GemmTile&, void*);    \
  void name##_quantize(const float*, size_t, float, int32_t, uint8_t*);
#include "int8_gemm.inc"
#undef MAAS_INT8_GEMM

namespace {
const Int8GemmKernel kKernels[] = {
#define MAAS_INT8_GEMM(name, isa, mr, nr, k_align, a_max, classes) \
  {#name, Isa::isa, mr, nr, k_align, a_max, classes, &name##_scratch, &name##_run, &name##_quantize},
#include "int8_gemm.inc"
#undef MAAS_INT8_GEMM
};
}  // namespace

const Int8GemmKernel* Int8GemmKernels(size_t* count) noexcept {
  *count = sizeof(kKernels) / sizeof(kKernels[0]);
  return kKernels;
}

const Int8GemmKernel* SelectInt8GemmFor(const CpuFeatures& features, Isa cap, CpuClass cls) noexcept {
  for (const Int8GemmKernel& k : kKernels) {
    if (IsaWithin(k.isa, cap) && IsaSupportedBy(features, k.isa) && (k.classes & CpuClassBit(cls)) != 0) return &k;
  }
  return nullptr;
}

const Int8GemmKernel* SelectInt8Gemm(Isa cap) noexcept { return SelectInt8GemmFor(DetectCpu(), cap, ActiveCpuClass()); }

const Int8GemmKernel* FindInt8Gemm(const char* name) noexcept {
  for (const Int8GemmKernel& k : kKernels) {
    if (std::strcmp(k.name, name) == 0) return &k;
  }
  return nullptr;
}

void PackInt8B(const int8_t* w, size_t ldw, size_t k, size_t n, const Int8GemmKernel& kernel, int8_t* dst,
               int32_t* colsum) noexcept {
  const size_t nr = kernel.nr, kp = RoundUpTo(k, kernel.k_align), panels = PackedPanels(n, nr);
  std::memset(dst, 0, PackedInt8BBytes(k, n, kernel));
  for (size_t p = 0; p < panels; ++p) {
    int8_t* panel = dst + p * kp * nr;
    for (size_t j = 0; j < nr; ++j) {
      const size_t col = p * nr + j;
      int32_t sum = 0;
      if (col < n) {
        for (size_t kk = 0; kk < k; ++kk) {
          const int8_t v = w[kk * ldw + col];
          panel[(kk / 4) * nr * 4 + j * 4 + kk % 4] = v;
          sum += v;
        }
      }
      colsum[col] = sum;
    }
  }
}

QuantParams ActivationQuantParams(float min, float max, int32_t qmax) noexcept {
  const float lo = min < 0.f ? min : 0.f, hi = max > 0.f ? max : 0.f;
  const float scale = (hi - lo) / static_cast<float>(qmax);
  if (!(scale > 0.f) || !std::isfinite(scale)) return QuantParams{1.f, 0};  // an all-zero range
  float zero = std::nearbyint(0.f - lo / scale);
  zero = zero < 0.f ? 0.f : (zero > static_cast<float>(qmax) ? static_cast<float>(qmax) : zero);
  return QuantParams{scale, static_cast<int32_t>(zero)};
}

}  // namespace maas
