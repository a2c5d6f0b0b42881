// AVX-512 FMA and vdpbf16ps peak probes: 16 independent zmm accumulator chains, enough to cover
// two ports at four to six cycles of latency. Written in asm so the compiler cannot spill or fold the chains.
#include <cstdint>

#include "maas/peak.h"

namespace maas {

#define MAAS_FMA16(op)                                                                                        \
  op "%%zmm30, %%zmm31, %%zmm0\n\t" op "%%zmm30, %%zmm31, %%zmm1\n\t" op "%%zmm30, %%zmm31, %%zmm2\n\t" op    \
     "%%zmm30, %%zmm31, %%zmm3\n\t" op "%%zmm30, %%zmm31, %%zmm4\n\t" op "%%zmm30, %%zmm31, %%zmm5\n\t" op    \
     "%%zmm30, %%zmm31, %%zmm6\n\t" op "%%zmm30, %%zmm31, %%zmm7\n\t" op "%%zmm30, %%zmm31, %%zmm8\n\t" op    \
     "%%zmm30, %%zmm31, %%zmm9\n\t" op "%%zmm30, %%zmm31, %%zmm10\n\t" op "%%zmm30, %%zmm31, %%zmm11\n\t" op  \
     "%%zmm30, %%zmm31, %%zmm12\n\t" op "%%zmm30, %%zmm31, %%zmm13\n\t" op "%%zmm30, %%zmm31, %%zmm14\n\t" op \
     "%%zmm30, %%zmm31, %%zmm15\n\t"

// The probe loop: 16 independent zmm chains of `op` (a three-operand FMA-like instruction).
#define MAAS_PEAK_LOOP(op) \
  __asm__ volatile( \
      "vbroadcastss %[a], %%zmm30\n\t" \
      "vbroadcastss %[b], %%zmm31\n\t" \
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t" \
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t" \
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t" \
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t" \
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t" \
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t" \
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t" \
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t" \
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t" \
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t" \
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t" \
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t" \
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t" \
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t" \
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t" \
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t" \
      "1:\n\t" \
      MAAS_FMA16(op) \
      "dec %[n]\n\t" \
      "jnz 1b\n\t" \
      "vzeroupper\n\t" \
      : [n] "+r"(n) \
      : [a] "m"(a), [b] "m"(b) \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm30", "xmm31", "cc");

double PeakFmaAvx512(uint64_t iterations) noexcept {
  if (iterations == 0) return 0;
  const float a = 1e-3f, b = 1e-3f;
  uint64_t n = iterations;
  MAAS_PEAK_LOOP("vfmadd231ps ");
  return 2.0 * 16 * 16 * static_cast<double>(iterations);
}

// vdpbf16ps (AVX512_BF16; the assembler takes it whatever this file's flags): each instruction
// does two multiply-adds per fp32 lane, 4 flops. Called only where CPUID reports AVX512_BF16.
double PeakBf16Avx512(uint64_t iterations) noexcept {
  if (iterations == 0) return 0;
  const float a = 1e-3f, b = 1e-3f;  // as bit patterns, each a pair of small bf16 values
  uint64_t n = iterations;
  MAAS_PEAK_LOOP("vdpbf16ps ");
  return 2.0 * 2 * 16 * 16 * static_cast<double>(iterations);
}

}  // namespace maas
