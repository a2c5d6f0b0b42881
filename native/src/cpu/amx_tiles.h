// The AMX tile shapes and the palette-1 configuration the int8 and bf16 AMX kernels (and their
// emulations) share: every tile 16 rows × 64 bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace maas {
namespace {

constexpr size_t kAmxTile = 16;   // rows of A and C, columns of C and of a B panel
constexpr size_t kAmxTileK = 64;  // bytes of K per A row and per B tile row group
constexpr size_t kAmxRows = 2 * kAmxTile;
constexpr size_t kAmxCBytes = kAmxTile * kAmxTile * sizeof(int32_t);

// The palette-1 configuration every kernel and the peak probe load: `tiles` tiles of 16 × 64 bytes.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
  explicit AmxTileConfig(int tiles) {
    for (int t = 0; t < tiles; ++t) {
      rows[t] = kAmxTile;
      colsb[t] = 64;
    }
  }
};
static_assert(sizeof(AmxTileConfig) == 64, "the tile configuration is 64 bytes");

// Eight tile registers of 16 rows × 64 bytes in memory, with palette 1's loads, stores and zeroing:
// the emulations derive from it and add their dot product.
struct EmulatedTileRegisters {
  alignas(64) uint8_t tile[8][kAmxTile][64];
  void begin() { std::memset(tile, 0, sizeof(tile)); }
  void end() {}
  template <int kT>
  void zero() {
    std::memset(tile[kT], 0, sizeof(tile[kT]));
  }
  template <int kT>
  void load(const void* p, size_t stride) {
    for (size_t r = 0; r < kAmxTile; ++r) std::memcpy(tile[kT][r], static_cast<const uint8_t*>(p) + r * stride, 64);
  }
  template <int kT>
  void store(void* p, size_t stride) {
    for (size_t r = 0; r < kAmxTile; ++r) std::memcpy(static_cast<uint8_t*>(p) + r * stride, tile[kT][r], 64);
  }
};

}  // namespace
}  // namespace maas
