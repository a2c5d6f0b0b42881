// Instruction-set levels the CPU kernels are built for, and what this CPU and OS allow.
// Detection reads CPUID and XCR0 once; the cap (MAAS_MAX_ISA or a runtime call) is per caller.
#pragma once
#include <cstdint>

namespace maas {

// Levels are ordered for capping: a cap admits every level at or below it that the CPU has.
// They are not strict supersets (an AVX-512 CPU may lack AVX-VNNI), so support is checked per level.
enum class Isa : uint32_t {
  kScalar = 0,      // x86-64 baseline, no AVX: the portable path and reference-like twin
  kAvx2 = 1,        // AVX2 + FMA3, OS saves YMM state
  kAvxVnni = 2,     // AVX2 + AVX-VNNI (VEX vpdpbusd on ymm), no AVX-512
  kAvx512 = 3,      // AVX-512 F/BW/DQ/VL, OS saves ZMM and opmask state
  kAvx512Vnni = 4,  // AVX-512 + AVX512-VNNI (EVEX vpdpbusd on zmm)
  kAmx = 5,         // AVX512-VNNI + AMX-TILE/INT8, XTILEDATA granted by the kernel (arch_prctl)
};

constexpr uint32_t kIsaCount = 6;

const char* IsaName(Isa isa) noexcept;
// Parses "scalar" | "avx2" | "avxvnni" | "avx512" | "avx512vnni" | "amx"; false on anything else.
bool ParseIsa(const char* text, Isa* out) noexcept;

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512 = false;
  bool avx512_vnni = false;
  bool avx_vnni = false;
  bool amx_int8 = false;       // CPUID AMX-TILE + AMX-INT8 and XCR0 tile state
  bool amx_permitted = false;  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded
  char brand[49] = {0};
};

// What the CPU reports and the OS has enabled (XCR0). Computed once, immutable.
const CpuFeatures& DetectCpu() noexcept;
// Whether a feature set can run `isa`: the pure rule dispatch uses (tests feed it made-up CPUs).
bool IsaSupportedBy(const CpuFeatures& features, Isa isa) noexcept;
// Whether this CPU and OS can run `isa`.
bool IsaSupported(Isa isa) noexcept;
// The best ISA level the CPU and OS support, ignoring any cap.
Isa BestSupportedIsa() noexcept;
// True when `isa` may run under `cap`: at or below it in the ordering above.
inline bool IsaWithin(Isa isa, Isa cap) noexcept { return static_cast<uint32_t>(isa) <= static_cast<uint32_t>(cap); }
inline Isa MinIsa(Isa a, Isa b) noexcept { return static_cast<uint32_t>(a) < static_cast<uint32_t>(b) ? a : b; }

}  // namespace maas
