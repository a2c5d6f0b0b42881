// Instruction-set levels the CPU kernels are built for, and what this CPU and OS allow.
// Detection reads CPUID and XCR0 once; the cap (MAAS_MAX_ISA or a runtime call) is per caller.
#pragma once
#include <cstdint>

namespace maas {

enum class Isa : uint32_t {
  kScalar = 0,  // x86-64 baseline, no AVX: the portable path and reference-like twin
  kAvx2 = 1,    // AVX2 + FMA3, OS saves YMM state
  kAvx512 = 2,  // AVX-512 F/BW/DQ/VL, OS saves ZMM and opmask state
};

constexpr uint32_t kIsaCount = 3;

const char* IsaName(Isa isa) noexcept;
// Parses "scalar" | "avx2" | "avx512"; returns false on anything else.
bool ParseIsa(const char* text, Isa* out) noexcept;

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512 = false;
  bool avx512_vnni = false;
  bool avx_vnni = false;
  bool amx_int8 = false;
  char brand[49] = {0};
};

// What the CPU reports and the OS has enabled (XCR0). Computed once, immutable.
const CpuFeatures& DetectCpu() noexcept;
// The best ISA level the CPU and OS support, ignoring any cap.
Isa BestSupportedIsa() noexcept;
inline Isa MinIsa(Isa a, Isa b) noexcept { return static_cast<uint32_t>(a) < static_cast<uint32_t>(b) ? a : b; }

}  // namespace maas
