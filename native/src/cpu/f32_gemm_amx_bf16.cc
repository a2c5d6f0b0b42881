// bf16-weight GEMM for AMX-BF16: the 2×2-tile driver of bf16_amx_driver.h over the tile
// instructions, A rounded to bf16 with vcvtne2ps2bf16. Dispatch selects it only where CPUID
// reports AMX (TILE, INT8, BF16) and AVX512_BF16 and the kernel granted XTILEDATA.
#include <immintrin.h>

#include "bf16_amx_driver.h"

namespace maas {
namespace {

// GCC's tile intrinsics paste the tile number into the instruction text: each template picks
// its literal by `if constexpr`.
#define MAAS_TILE_CASE(n, stmt) \
  if constexpr (kT == n) {      \
    stmt;                       \
  }
struct AmxBf16Tiles {
  void begin() {
    const AmxTileConfig cfg(8);
    _tile_loadconfig(&cfg);
  }
  void end() { _tile_release(); }
  template <int kT>
  void zero() {
    static_assert(kT >= 0 && kT < 4, "C tiles are 0..3");
    MAAS_TILE_CASE(0, _tile_zero(0))
    MAAS_TILE_CASE(1, _tile_zero(1))
    MAAS_TILE_CASE(2, _tile_zero(2))
    MAAS_TILE_CASE(3, _tile_zero(3))
  }
  template <int kT>
  void store(void* p, size_t stride) {
    static_assert(kT >= 0 && kT < 4, "C tiles are 0..3");
    const long s = static_cast<long>(stride);
    MAAS_TILE_CASE(0, _tile_stored(0, p, s))
    MAAS_TILE_CASE(1, _tile_stored(1, p, s))
    MAAS_TILE_CASE(2, _tile_stored(2, p, s))
    MAAS_TILE_CASE(3, _tile_stored(3, p, s))
  }
  template <int kT>
  void load(const void* p, size_t stride) {
    static_assert(kT >= 4 && kT < 8, "A and B tiles are 4..7");
    const long s = static_cast<long>(stride);
    MAAS_TILE_CASE(4, _tile_loadd(4, p, s))
    MAAS_TILE_CASE(5, _tile_loadd(5, p, s))
    MAAS_TILE_CASE(6, _tile_loadd(6, p, s))
    MAAS_TILE_CASE(7, _tile_loadd(7, p, s))
  }
  template <int kC, int kA, int kB>
  void dot() {
    constexpr int kT = kC * 100 + kA * 10 + kB;  // the driver's four products
    static_assert(kT == 46 || kT == 147 || kT == 256 || kT == 357, "C = A·B as the driver pairs them");
    MAAS_TILE_CASE(46, _tile_dpbf16ps(0, 4, 6))
    MAAS_TILE_CASE(147, _tile_dpbf16ps(1, 4, 7))
    MAAS_TILE_CASE(256, _tile_dpbf16ps(2, 5, 6))
    MAAS_TILE_CASE(357, _tile_dpbf16ps(3, 5, 7))
  }
};
#undef MAAS_TILE_CASE

// n floats to bf16 pairs with vcvtne2ps2bf16 (Bf16Bits' rounding), 32 at a time, masked tail.
void ToPairsAvx512Bf16(const float* x, size_t n, uint32_t* dst) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(dst + i / 2, (__m512i)h);
  }
  if (i < n) {
    const size_t rest = n - i, lo = MinSize(rest, 16), hi = rest - lo;
    const __m512 a = _mm512_maskz_loadu_ps(VAvx512::Mask(lo), x + i);
    const __m512 b = _mm512_maskz_loadu_ps(VAvx512::Mask(hi), x + i + 16);
    _mm512_mask_storeu_epi32(dst + i / 2, VAvx512::Mask((rest + 1) / 2), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
}

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_AMX_GEMM(bf16_gemm_bias_act_32x16__amx, AmxBf16Tiles, ToPairsAvx512Bf16)
