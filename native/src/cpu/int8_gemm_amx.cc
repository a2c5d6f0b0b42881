// int8 GEMM for AMX-INT8: the 2×2-tile driver of int8_amx_driver.h over the AMX instructions, and
// the tdpbusd peak probe. Dispatch selects this file only when CPUID reports AMX-INT8 and the
// kernel granted XTILEDATA.
#include <immintrin.h>

#include "int8_amx_driver.h"
#include "maas/peak.h"

namespace maas {
namespace {

// The tile operations on the tile registers. GCC's tile intrinsics paste the tile number into
// the instruction text, so each template picks its literal by `if constexpr`.
#define MAAS_TILE_CASE(n, stmt) \
  if constexpr (kT == n) {      \
    stmt;                       \
  }
struct AmxTiles {
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

// Four independent C tiles fed by the same A and B tiles: tdpbusd throughput, not latency.
double PeakAmxInt8(uint64_t iterations) noexcept {
  if (iterations == 0) return 0;
  const AmxTileConfig cfg(6);
  alignas(64) static const uint8_t zeros[kAmxTile * 64] = {};
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  for (uint64_t i = 0; i < iterations; ++i) {
    _tile_dpbusd(0, 4, 5);
    _tile_dpbusd(1, 4, 5);
    _tile_dpbusd(2, 4, 5);
    _tile_dpbusd(3, 4, 5);
  }
  _tile_release();
  return 2.0 * 4 * kAmxTile * kAmxTile * kAmxTileK * static_cast<double>(iterations);
}

}  // namespace maas
