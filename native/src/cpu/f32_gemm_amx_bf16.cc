// bf16-weight GEMM for AMX-BF16: the 2×2-tile driver of bf16_amx_driver.h over the tile
// instructions, A rounded to bf16 with vcvtne2ps2bf16. Dispatch selects it only where CPUID
// reports AMX (TILE, INT8, BF16) and AVX512_BF16 and the kernel granted XTILEDATA.
#include <immintrin.h>

#include "amx_tile_registers.h"
#include "bf16_amx_driver.h"
#include "bf16_zmm_pairs.h"
#include "maas/peak.h"

namespace maas {
namespace {

// The tile registers with tdpbf16ps.
struct AmxBf16Tiles : AmxTileRegisters {
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

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_AMX_GEMM(bf16_gemm_bias_act_32x16__amx, AmxBf16Tiles, ToPairsAvx512Bf16)

namespace maas {

// tdpbf16ps throughput (RunAmxPeak): 16 × 16 outputs, each 32 bf16 products (16 pairs) per
// instruction, 2 flops each.
double PeakAmxBf16(uint64_t iterations) noexcept {
  RunAmxPeak(iterations, [] {
    _tile_dpbf16ps(0, 4, 5);
    _tile_dpbf16ps(1, 4, 5);
    _tile_dpbf16ps(2, 4, 5);
    _tile_dpbf16ps(3, 4, 5);
  });
  return 2.0 * 4 * kAmxTile * kAmxTile * 2 * kAmxPairs * static_cast<double>(iterations);
}

}  // namespace maas
