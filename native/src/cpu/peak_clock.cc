// The core clock, measured: a chain of dependent 64-bit multiplies takes 3 cycles each on every
// x86 core with AVX2 (Intel since Core 2, AMD since Zen), so 3 × multiplies ÷ seconds is the clock
// the FMA probes ran at (turbo included, unlike cpu MHz). Not adds: Golden Cove and later fold a
// chain of add-immediates at rename, which read as six "cycles" per real one on Emerald Rapids.
#include <cstdint>

#include "maas/peak.h"

namespace maas {

double ClockCycles(uint64_t iterations) noexcept {
  uint64_t x = 1;
  const uint64_t factor = 3;
  for (uint64_t i = 0; i < iterations; ++i) {
    // 8 dependent multiplies (24 cycles): the loop's own compare and branch run beside them.
    __asm__ volatile(
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0"
        : "+r"(x)
        : "r"(factor));
  }
  return static_cast<double>(iterations) * 8.0 * 3.0;
}

}  // namespace maas
