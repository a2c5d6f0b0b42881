// The AMX tile registers themselves: palette-1 configuration, zeroing, loads and stores, shared by
// the int8 and bf16 AMX kernels (each adds its dot product). Include only from a translation unit
// built with AMX flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "amx_tiles.h"

namespace maas {
namespace {

// GCC's tile intrinsics paste the tile number into the instruction text, so each template picks
// its literal by `if constexpr`; the macro stays defined for the including file's dot product,
// which undefines it.
// Loads a palette-1 configuration. GCC models ldtilecfg's memory operand as a few bytes, so without
// the empty asm, which reads the whole object, dead-store elimination drops most of the config's
// stores: ldtilecfg then reads stale stack bytes and faults (#GP on a reserved byte, #UD at the first
// tile instruction). The emulation never runs ldtilecfg, so only AMX hardware shows it.
inline void LoadTileConfig(const AmxTileConfig& cfg) {
  __asm__ volatile("" : : "m"(cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// A peak probe: four independent C tiles (0..3) fed by the same zero A and B tiles (4, 5),
// `dot4` (four dots, one into each C tile) run `iterations` times: the dot's throughput, not its
// latency.
template <class Dot4>
void RunAmxPeak(uint64_t iterations, Dot4 dot4) {
  alignas(64) static const uint8_t zeros[kAmxTile * 64] = {};
  const AmxTileConfig cfg(6);
  LoadTileConfig(cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  for (uint64_t i = 0; i < iterations; ++i) dot4();
  _tile_release();
}

#define MAAS_TILE_CASE(n, stmt) \
  if constexpr (kT == n) {      \
    stmt;                       \
  }
struct AmxTileRegisters {
  void begin() {
    const AmxTileConfig cfg(8);
    LoadTileConfig(cfg);
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
    static_assert(kT >= 0 && kT < 8, "tiles are 0..7");
    const long s = static_cast<long>(stride);
    MAAS_TILE_CASE(0, _tile_loadd(0, p, s))
    MAAS_TILE_CASE(1, _tile_loadd(1, p, s))
    MAAS_TILE_CASE(2, _tile_loadd(2, p, s))
    MAAS_TILE_CASE(3, _tile_loadd(3, p, s))
    MAAS_TILE_CASE(4, _tile_loadd(4, p, s))
    MAAS_TILE_CASE(5, _tile_loadd(5, p, s))
    MAAS_TILE_CASE(6, _tile_loadd(6, p, s))
    MAAS_TILE_CASE(7, _tile_loadd(7, p, s))
  }
};

}  // namespace
}  // namespace maas
