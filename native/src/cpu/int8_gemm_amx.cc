// int8 GEMM for AMX-INT8: the 2×2-tile driver of int8_amx_driver.h over the AMX instructions, and
// the tdpbusd peak probe. Dispatch selects this file only when CPUID reports AMX-INT8 and the
// kernel granted XTILEDATA.
#include <immintrin.h>

#include "amx_tile_registers.h"
#include "int8_amx_driver.h"
#include "maas/peak.h"

namespace maas {
namespace {

// The tile registers with tdpbusd.
struct AmxTiles : AmxTileRegisters {
  template <int kC, int kA, int kB>
  void dot() {
    constexpr int kT = kC * 100 + kA * 10 + kB;  // the driver's four products
    static_assert(kT == 46 || kT == 147 || kT == 256 || kT == 357, "C = A·B as the driver pairs them");
    MAAS_TILE_CASE(46, _tile_dpbusd(0, 4, 6))
    MAAS_TILE_CASE(147, _tile_dpbusd(1, 4, 7))
    MAAS_TILE_CASE(256, _tile_dpbusd(2, 5, 6))
    MAAS_TILE_CASE(357, _tile_dpbusd(3, 5, 7))
  }
};
#undef MAAS_TILE_CASE

}  // namespace
}  // namespace maas

MAAS_DEFINE_INT8_AMX_GEMM(qu8s8_gemm_bias_relu_requant_32x16c64__amx, AmxTiles)

namespace maas {

// tdpbusd throughput (RunAmxPeak); 2 ops per u8·s8 multiply-add.
double PeakAmxInt8(uint64_t iterations) noexcept {
  RunAmxPeak(iterations, [] {
    _tile_dpbusd(0, 4, 5);
    _tile_dpbusd(1, 4, 5);
    _tile_dpbusd(2, 4, 5);
    _tile_dpbusd(3, 4, 5);
  });
  return 2.0 * 4 * kAmxTile * kAmxTile * kAmxTileK * static_cast<double>(iterations);
}

}  // namespace maas
