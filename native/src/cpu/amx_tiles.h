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
// Scratch starts with the C tiles of a block's slices (four per slice), then the packed A block.
constexpr size_t kAmxCRegionBytes = (kAmxMaxBlockRows / kAmxRows) * 4 * kAmxCBytes;

// Below this much B (the panels one thread runs), B stays in L2 across slices anyway: blocks are one
// 32-row slice, whose A stays in L1. Measured on an Intel Xeon with AMX (bench:kernels, medians):
// bf16 model S b1024 335 GFLOP/s against 288 with K-sized blocks; int8 S and model L b256 even.
constexpr size_t kAmxBResidentBytes = size_t{1} << 20;

// Rows of A packed per block when a packed row takes `row_bytes` and the thread's B `b_bytes`:
// whole 32-row slices.
inline size_t AmxBlockRows(size_t row_bytes, size_t b_bytes) {
  if (b_bytes <= kAmxBResidentBytes) return kAmxRows;
  const size_t slices = kAmxABlockBytes / (kAmxRows * row_bytes), most = kAmxMaxBlockRows / kAmxRows;
  return kAmxRows * (slices < 1 ? 1 : slices > most ? most : slices);
}

// Scratch bytes for the C tiles of a block's slices (kAmxCRegionBytes: an fp32 tile is 1 KiB like
// an int32 one) and its A block, enough for every K up to the one whose packed row takes `row_bytes`: a stack sizes
// scratch once for its widest layer, and a narrower layer's block holds more rows (up to the budget
// or kAmxMaxBlockRows), so the bound is the budget or one slice of the widest row, not that row's block.
inline size_t AmxBlockScratchBytes(size_t row_bytes) {
  const size_t a = kAmxRows * row_bytes > kAmxABlockBytes ? kAmxRows * row_bytes : kAmxABlockBytes;
  return kAmxCRegionBytes + a + 64;
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

// Runs one packed A block of `rows` rows against B panels [p_begin, p_end), two panels (2×2 C tiles)
// at a time and a lone last one on C tiles 0 and 2, for either AMX driver: their layouts agree byte
// for byte. A K step is 64 bytes of K per row (64 int8, or 16 bf16 pairs); `k_bytes` is K so
// padded. The block is 32-row slices, each K step of a slice two 1 KiB A tiles (rows 0..15,
// 16..31); a panel is one 1 KiB B tile per K step (`b` is the first panel); a C tile is 1 KiB.
// With one slice, or K within one block, no B block is shared between slices: K runs whole, and
// each slice's C tiles go to `epilogue(panel, pair, slice, c)` while hot (one C buffer). Otherwise
// C is carried between K blocks in each slice's own four tiles of `c_all`, and the epilogues run
// at the end. (Per slice, not per row: building the epilogue's column terms once per slice and
// panel is worth 1.2× on bf16 model S b1024.)
// Tiles: zero<T>(), load<T>(p, stride), store<T>(p, stride), dot<C, A, B>().
template <class Tiles, class EpilogueFn>
void AmxBlockPanels(Tiles& tiles, const uint8_t* a_block, size_t rows, const uint8_t* b, size_t p_begin, size_t p_end,
                    size_t k_bytes, uint8_t* c_all, const EpilogueFn& epilogue) {
  constexpr size_t kC = kAmxCBytes;
  const size_t panel_bytes = k_bytes * kAmxTile, slices = (rows + kAmxRows - 1) / kAmxRows;
  const bool one_pass = slices == 1 || k_bytes <= kAmxKBlock;
  const size_t kc = one_pass ? k_bytes : kAmxKBlock;
  const auto run_panels = [&](size_t pnl, bool pair) {
    const uint8_t* b0 = b + pnl * panel_bytes;
    const uint8_t* b1 = b0 + panel_bytes;
    for (size_t k0 = 0; k0 < k_bytes; k0 += kc) {
      const size_t k1 = k0 + kc < k_bytes ? k0 + kc : k_bytes;
      for (size_t s = 0; s < slices; ++s) {
        uint8_t* c = one_pass ? c_all : c_all + 4 * s * kC;
        const uint8_t* a = a_block + s * kAmxRows * k_bytes;  // K step j's top tile at a + 2j·1 KiB
        if (k0 == 0) {
          tiles.template zero<0>();
          tiles.template zero<2>();
          if (pair) {
            tiles.template zero<1>();
            tiles.template zero<3>();
          }
        } else {
          tiles.template load<0>(c, 64);
          tiles.template load<2>(c + 2 * kC, 64);
          if (pair) {
            tiles.template load<1>(c + kC, 64);
            tiles.template load<3>(c + 3 * kC, 64);
          }
        }
        for (size_t kk = k0; kk < k1; kk += kAmxTileK) {
          tiles.template load<4>(a + 2 * kk * kAmxTile, 64);
          tiles.template load<5>(a + (2 * kk + kAmxTileK) * kAmxTile, 64);
          tiles.template load<6>(b0 + kk * kAmxTile, 64);
          if (pair) tiles.template load<7>(b1 + kk * kAmxTile, 64);
          tiles.template dot<0, 4, 6>();
          if (pair) tiles.template dot<1, 4, 7>();
          tiles.template dot<2, 5, 6>();
          if (pair) tiles.template dot<3, 5, 7>();
        }
        tiles.template store<0>(c, 64);
        tiles.template store<2>(c + 2 * kC, 64);
        if (pair) {
          tiles.template store<1>(c + kC, 64);
          tiles.template store<3>(c + 3 * kC, 64);
        }
        if (one_pass) epilogue(pnl, pair, s, c);
      }
    }
    if (!one_pass)
      for (size_t s = 0; s < slices; ++s) epilogue(pnl, pair, s, c_all + 4 * s * kC);
  };
  size_t pnl = p_begin;
  for (; pnl + 2 <= p_end; pnl += 2) run_panels(pnl, true);
  if (pnl < p_end) run_panels(pnl, false);
}

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
