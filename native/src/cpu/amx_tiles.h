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
constexpr size_t kAmxTileBytes = kAmxTile * kAmxTileK;

// The blocking both AMX drivers share. K runs in blocks of kAmxKBlock bytes, so that one 32-row
// slice of A and one B panel pair (16 KiB each) stay in L1 while the slices of an A block take
// turns on them; an A block is as many 32-row slices as fit about kAmxABlockBytes (L2), at most
// kAmxMaxBlockRows. Each B panel pair is then read from memory once per A block rather than once
// per 32 rows, which is what bounded the one-slice form on an Intel Xeon with AMX (B streamed at
// about 20 GB/s while the tiles idled).
constexpr size_t kAmxKBlock = 512;
constexpr size_t kAmxABlockBytes = size_t{1} << 20;
constexpr size_t kAmxMaxBlockRows = 512;

// Below this much B (the panels one thread runs), B stays in L2 across slices anyway: blocks are one
// 32-row slice, whose A stays in L1 (measured on model S b1024: 512-row blocks ran at 0.67×).
constexpr size_t kAmxBResidentBytes = size_t{1} << 20;

// Rows of A packed per block when a packed row takes `row_bytes` and the thread's B `b_bytes`
// (pass 0 for the most a block can hold): whole 32-row slices.
inline size_t AmxBlockRows(size_t row_bytes, size_t b_bytes = 0) {
  if (b_bytes != 0 && b_bytes <= kAmxBResidentBytes) return kAmxRows;
  const size_t slices = kAmxABlockBytes / (kAmxRows * row_bytes), most = kAmxMaxBlockRows / kAmxRows;
  return kAmxRows * (slices < 1 ? 1 : slices > most ? most : slices);
}

// Scratch bytes for the C tiles of a block's slices (`c_tile_bytes` per tile, four per slice) and
// its A block, enough for every K up to the one whose packed row takes `row_bytes`: a stack sizes
// scratch once for its widest layer, and a narrower layer's block holds more rows (up to the budget
// or kAmxMaxBlockRows), so the bound is the budget or one slice of the widest row, not that row's block.
inline size_t AmxBlockScratchBytes(size_t row_bytes, size_t c_tile_bytes) {
  const size_t a = kAmxRows * row_bytes > kAmxABlockBytes ? kAmxRows * row_bytes : kAmxABlockBytes;
  return (kAmxMaxBlockRows / kAmxRows) * 4 * c_tile_bytes + a + 64;
}

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
