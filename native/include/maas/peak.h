// Peak-throughput probes: independent FMA chains held in registers, per ISA. The benchmark
// harness reports every kernel against the peak measured by these in the same run.
#pragma once
#include <cstdint>

namespace maas {

// Runs `iterations` rounds of independent FMAs; returns the flops performed (2 per lane per FMA).
double PeakFmaAvx512(uint64_t iterations) noexcept;
double PeakFmaAvx2(uint64_t iterations) noexcept;
// vdpbf16ps chains: flops counted as for FMA, 4 per lane per instruction (two multiply-adds).
double PeakBf16Avx512(uint64_t iterations) noexcept;
// tdpbf16ps into four C tiles (needs AMX permission): flops counted the same way.
double PeakAmxBf16(uint64_t iterations) noexcept;
// Runs 8 dependent 64-bit multiplies per iteration (3 cycles each); returns the core cycles spent.
double ClockCycles(uint64_t iterations) noexcept;

}  // namespace maas

namespace maas {

// int8 peaks: operations counted as two per u8·s8 multiply-add.
double PeakVnniAvx512(uint64_t iterations) noexcept;  // vpdpbusd zmm chains
double PeakAmxInt8(uint64_t iterations) noexcept;     // tdpbusd into four C tiles (needs AMX permission)

}  // namespace maas
