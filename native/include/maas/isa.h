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
  kAvx512Bf16 = 5,  // AVX512-VNNI + AVX512_BF16 (vdpbf16ps): Zen 4 and later, Cooper Lake and later
  kAmx = 6,         // AVX512-VNNI + AMX-TILE/INT8/BF16, XTILEDATA granted by the kernel (arch_prctl)
};

constexpr uint32_t kIsaCount = 7;

const char* IsaName(Isa isa) noexcept;
// Parses "scalar" | "avx2" | "avxvnni" | "avx512" | "avx512vnni" | "avx512bf16" | "amx"; false on anything else.
bool ParseIsa(const char* text, Isa* out) noexcept;

// Microarchitecture classes: one ISA runs best with different tiles and blocking on each (a
// Zen 4 executes a 512-bit op as two 256-bit halves; Zen 5 and Intel's server cores have full-width
// FMA pipes, where a register broadcast beats an embedded one on Zen 5's load ports).
enum class CpuClass : uint32_t {
  kGeneric = 0,      // none of the below: the conservative kernels
  kAvx2 = 1,         // AVX2 + FMA, no AVX-512
  kZen4 = 2,         // AMD family 19h with AVX-512 (double-pumped 512-bit datapath)
  kZen5 = 3,         // AMD family 1Ah: full-width AVX-512
  kIntelAvx512 = 4,  // Intel with AVX-512 (Skylake-SP and later server cores; AMX on Sapphire Rapids+)
};

constexpr uint32_t kCpuClassCount = 5;
// A set of classes, for a kernel's tuning targets: bit (1 << class).
constexpr uint32_t CpuClassBit(CpuClass c) noexcept { return 1u << static_cast<uint32_t>(c); }
constexpr uint32_t kAnyCpuClass = (1u << kCpuClassCount) - 1;

const char* CpuClassName(CpuClass c) noexcept;
// Parses "generic" | "avx2" | "zen4" | "zen5" | "intel-avx512"; false on anything else.
bool ParseCpuClass(const char* text, CpuClass* out) noexcept;

struct CpuFeatures {
  // CPUID leaf 0 and 1: "GenuineIntel" = 1, "AuthenticAMD" = 2, else 0; display family and model.
  uint32_t vendor = 0, family = 0, model = 0;
  bool avx2_fma = false;
  bool avx512 = false;
  bool avx512_vnni = false;
  bool avx_vnni = false;
  bool avx512_bf16 = false;    // CPUID.(7,1):EAX[5]
  bool amx_int8 = false;       // CPUID AMX-TILE + AMX-INT8 + AMX-BF16 and XCR0 tile state
  bool amx_permitted = false;  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded
  char brand[49] = {0};
};

// What the CPU reports and the OS has enabled (XCR0). Computed once, immutable.
const CpuFeatures& DetectCpu() noexcept;
// Whether a feature set can run `isa`: the pure rule dispatch uses (tests feed it made-up CPUs).
bool IsaSupportedBy(const CpuFeatures& features, Isa isa) noexcept;
// Whether this CPU and OS can run `isa`.
bool IsaSupported(Isa isa) noexcept;
// The class a feature set belongs to (the pure rule; tests feed it made-up CPUs).
CpuClass ClassOf(const CpuFeatures& features) noexcept;
// This process's class: MAAS_CPU_CLASS when it names one (for tests and benches), else detected.
CpuClass ActiveCpuClass() noexcept;
// The detected class, ignoring MAAS_CPU_CLASS.
CpuClass DetectedCpuClass() noexcept;
// The best ISA level the CPU and OS support, ignoring any cap.
Isa BestSupportedIsa() noexcept;
// True when `isa` may run under `cap`: at or below it in the ordering above.
inline bool IsaWithin(Isa isa, Isa cap) noexcept { return static_cast<uint32_t>(isa) <= static_cast<uint32_t>(cap); }
inline Isa MinIsa(Isa a, Isa b) noexcept { return static_cast<uint32_t>(a) < static_cast<uint32_t>(b) ? a : b; }

}  // namespace maas
