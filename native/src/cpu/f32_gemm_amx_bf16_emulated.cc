// The AMX-BF16 kernel's tiling (bf16_amx_driver.h) over an emulation of the tile registers and
// tdpbf16ps in memory: never dispatched (tuned for no CPU class), it lets the tests check the AMX
// bf16 driver's tiling, K padding, tails and epilogue on every AVX-512 machine, AMX or not.
#include <cstring>

#include "bf16_amx_driver.h"

namespace maas {
namespace {

// The tile registers in memory, with tdpbf16ps: C tiles hold 16 fp32, A and B 16 bf16 pairs a row.
struct EmulatedAmxBf16Tiles : EmulatedTileRegisters {
  // C[m][n] += A[m][k].lo · B[k][n].lo + A[m][k].hi · B[k][n].hi over the 16 pairs, in fp32 (the
  // products of two bf16 values are exact in fp32), low half first as the SDM's pseudocode does.
  template <int kC, int kA, int kB>
  void dot() {
    for (size_t m = 0; m < kAmxTile; ++m) {
      float acc[kAmxTile];
      uint32_t a[kAmxPairs];
      std::memcpy(acc, tile[kC][m], sizeof(acc));
      std::memcpy(a, tile[kA][m], sizeof(a));
      for (size_t k = 0; k < kAmxPairs; ++k) {
        uint32_t b[kAmxTile];
        std::memcpy(b, tile[kB][k], sizeof(b));
        for (size_t n = 0; n < kAmxTile; ++n) {
          acc[n] += Bf16ToFloat(static_cast<uint16_t>(a[k])) * Bf16ToFloat(static_cast<uint16_t>(b[n]));
          acc[n] += Bf16ToFloat(static_cast<uint16_t>(a[k] >> 16)) * Bf16ToFloat(static_cast<uint16_t>(b[n] >> 16));
        }
      }
      std::memcpy(tile[kC][m], acc, sizeof(acc));
    }
  }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_AMX_GEMM(bf16_gemm_bias_act_32x16__avx512_amxemu, EmulatedAmxBf16Tiles, ToBf16PairsScalar)
