// CPU feature detection: CPUID leaves 1, 7 and the brand string, checked against XCR0 so an ISA
// is reported only when the OS also saves its register state. Computed once, immutable.
#include "maas/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace maas {
namespace {

uint64_t ReadXcr0() noexcept {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// Linux keeps AMX tile data off until a process asks for it (XFD): without this grant the first
// tile instruction faults even though CPUID and XCR0 advertise AMX.
bool RequestAmxPermission() noexcept {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures Probe() noexcept {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    char vendor[13];
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    f.vendor = std::strcmp(vendor, "GenuineIntel") == 0 ? 1 : std::strcmp(vendor, "AuthenticAMD") == 0 ? 2 : 0;
  }
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  // Display family and model: the extended fields count only from base family 0xF (and 6 for the model).
  const uint32_t base_family = (a >> 8) & 0xF, base_model = (a >> 4) & 0xF;
  f.family = base_family == 0xF ? base_family + ((a >> 20) & 0xFF) : base_family;
  f.model = base_family == 0xF || base_family == 6 ? base_model | (((a >> 16) & 0xF) << 4) : base_model;
  const bool osxsave = (c >> 27) & 1;
  const bool fma = (c >> 12) & 1;
  const bool avx = (c >> 28) & 1;
  const uint64_t xcr0 = osxsave ? ReadXcr0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;        // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = (b >> 5) & 1;
    const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    const bool avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    f.avx2_fma = avx && avx2 && fma && os_ymm;
    f.avx512 = f.avx2_fma && avx512f && avx512dq && avx512bw && avx512vl && os_zmm;
    f.avx512_vnni = f.avx512 && ((c >> 11) & 1);
    // AMX as Intel ships it (Sapphire Rapids and later): TILE (bit 24), INT8 (25) and BF16 (22).
    f.amx_int8 = os_amx && ((d >> 25) & 1) && ((d >> 24) & 1) && ((d >> 22) & 1);
    f.amx_permitted = f.amx_int8 && RequestAmxPermission();
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx_vnni = f.avx2_fma && ((a1 >> 4) & 1);
    f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
  }
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    unsigned regs[12];
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    std::memcpy(f.brand, regs, 48);
    f.brand[48] = 0;
  }
  return f;
}

}  // namespace

const CpuFeatures& DetectCpu() noexcept {
  static const CpuFeatures features = Probe();  // immutable after first use
  return features;
}

bool IsaSupportedBy(const CpuFeatures& f, Isa isa) noexcept {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return f.avx2_fma;
    case Isa::kAvxVnni:
      return f.avx2_fma && f.avx_vnni;
    case Isa::kAvx512:
      return f.avx512;
    case Isa::kAvx512Vnni:
      return f.avx512 && f.avx512_vnni;
    case Isa::kAvx512Bf16:
      return f.avx512 && f.avx512_vnni && f.avx512_bf16;
    // The AMX kernel's epilogue is AVX-512 code, and tiles are usable only once granted.
    case Isa::kAmx:
      return f.avx512 && f.avx512_vnni && f.avx512_bf16 && f.amx_int8 && f.amx_permitted;
  }
  return false;
}

bool IsaSupported(Isa isa) noexcept { return IsaSupportedBy(DetectCpu(), isa); }

CpuClass ClassOf(const CpuFeatures& f) noexcept {
  if (!f.avx2_fma) return CpuClass::kGeneric;
  if (!f.avx512) return CpuClass::kAvx2;
  if (f.vendor == 2 && f.family == 0x19) return CpuClass::kZen4;
  if (f.vendor == 2 && f.family >= 0x1A) return CpuClass::kZen5;
  if (f.vendor == 1) return CpuClass::kIntelAvx512;
  return CpuClass::kGeneric;
}

CpuClass DetectedCpuClass() noexcept {
  static const CpuClass detected = ClassOf(DetectCpu());
  return detected;
}

CpuClass ActiveCpuClass() noexcept {
  static const CpuClass active = [] {
    CpuClass forced;
    const char* text = std::getenv("MAAS_CPU_CLASS");
    return text && ParseCpuClass(text, &forced) ? forced : DetectedCpuClass();
  }();
  return active;
}

const char* CpuClassName(CpuClass c) noexcept {
  switch (c) {
    case CpuClass::kGeneric:
      return "generic";
    case CpuClass::kAvx2:
      return "avx2";
    case CpuClass::kZen4:
      return "zen4";
    case CpuClass::kZen5:
      return "zen5";
    case CpuClass::kIntelAvx512:
      return "intel-avx512";
  }
  return "unknown";
}

bool ParseCpuClass(const char* text, CpuClass* out) noexcept {
  for (uint32_t i = 0; i < kCpuClassCount; ++i) {
    if (std::strcmp(text, CpuClassName(static_cast<CpuClass>(i))) == 0) {
      *out = static_cast<CpuClass>(i);
      return true;
    }
  }
  return false;
}

Isa BestSupportedIsa() noexcept {
  for (uint32_t i = kIsaCount; i-- > 0;) {
    if (IsaSupported(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return Isa::kScalar;
}

const char* IsaName(Isa isa) noexcept {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvxVnni:
      return "avxvnni";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
    case Isa::kAvx512Bf16:
      return "avx512bf16";
    case Isa::kAmx:
      return "amx";
  }
  return "unknown";
}

bool ParseIsa(const char* text, Isa* out) noexcept {
  for (uint32_t i = 0; i < kIsaCount; ++i) {
    if (std::strcmp(text, IsaName(static_cast<Isa>(i))) == 0) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

}  // namespace maas
