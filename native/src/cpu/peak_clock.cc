// The core clock, measured: a chain of dependent integer adds retires one per cycle on every x86
// core, so adds ÷ seconds is the clock the FMA probes ran at (turbo included, unlike cpu MHz).
#include <cstdint>

#include "maas/peak.h"

namespace maas {

double ClockCycles(uint64_t iterations) noexcept {
  uint64_t x = 0;
  for (uint64_t i = 0; i < iterations; ++i) {
    // 16 dependent adds: the loop's own compare and branch run beside them on other ports.
    __asm__ volatile(
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
        : "+r"(x));
  }
  return static_cast<double>(x);
}

}  // namespace maas
