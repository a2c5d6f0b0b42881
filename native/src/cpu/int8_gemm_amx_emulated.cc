// The AMX kernel's 2×2 tiling (int8_amx_driver.h) over an emulation of the tile registers and
// tdpbusd in memory: never dispatched (it is tuned for no CPU class), it lets the tests check the
// AMX driver's tiling, tails and epilogue bit for bit on every AVX512-VNNI machine, AMX or not.
#include <cstring>

#include "int8_amx_driver.h"

namespace maas {
namespace {

// The tile registers in memory, with tdpbusd.
struct EmulatedAmxTiles : EmulatedTileRegisters {
  // C (16 × 16 int32) += A (16 rows × 16 groups of 4 u8) · B (16 groups × 16 columns × 4 s8).
  template <int kC, int kA, int kB>
  void dot() {
    for (size_t m = 0; m < kAmxTile; ++m) {
      int32_t acc[kAmxTile];
      std::memcpy(acc, tile[kC][m], sizeof(acc));
      for (size_t k = 0; k < kAmxTile; ++k)
        for (size_t n = 0; n < kAmxTile; ++n)
          for (size_t i = 0; i < 4; ++i)
            acc[n] += static_cast<int32_t>(tile[kA][m][4 * k + i]) *
                      static_cast<int32_t>(static_cast<int8_t>(tile[kB][k][4 * n + i]));
      std::memcpy(tile[kC][m], acc, sizeof(acc));
    }
  }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_INT8_AMX_GEMM(qu8s8_gemm_bias_relu_requant_32x16c64__avx512vnni_amxemu, EmulatedAmxTiles)
