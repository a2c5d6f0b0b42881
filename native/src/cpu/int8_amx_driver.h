// The AMX-INT8 GEMM driver, written once over a tile-operations type so the same tiling runs on
// AMX (int8_gemm_amx.cc) and on an emulation of the tile semantics (int8_gemm_amx_emulated.cc),
// which tests run on any AVX512-VNNI machine.
//
// All eight tile registers, one configuration (palette 1, every tile 16 rows × 64 bytes):
//   tmm0..3 = C, a 2×2 block of 16×16 int32 tiles (32 rows × 2 panels of 16 columns);
//   tmm4, 5 = A, rows r0..r0+15 and r0+16..r0+31 (16 rows × 64 u8 of K);
//   tmm6, 7 = B, two panels (16 K-groups × 16 columns × 4 s8).
// Each K step loads 4 tiles for 4 tdpbusd (the 1×1 form loads 2 per tdpbusd). B panels are packed
// 16 wide with K padded to 64, so a panel's K step is one contiguous tile. A rows are copied into
// zero-padded scratch, so tails in M and K need no second configuration; a lone last panel runs
// the 2×1 form on tiles 0 and 2. C tiles are reloaded from scratch between K blocks.
//
// Tiles (the type): begin(), end(), zero<T>(), load<T>(p, stride) (any tile), store<T>(p, stride),
// dot<C, A, B>() (tdpbusd: C[m][n] += Σ_k Σ_i u8(A[m][4k + i]) · s8(B[k][4n + i])).
// Include only from a translation unit built with AVX512-VNNI flags (the epilogue's).
#pragma once
#include <immintrin.h>

#include "amx_tiles.h"
#include "int8_gemm_driver.h"
#include "int8_zmm_traits.h"

namespace maas {
namespace {

// Rows of A packed per block for a K of k bytes and `panels` B panels (amx_tiles.h has the blocking).
inline size_t AmxInt8BlockRows(size_t k, size_t panels) {
  const size_t k64 = RoundUpTo(k, kAmxTileK);
  return AmxBlockRows(k64, panels * kAmxTile * k64);
}

// The C accumulators of a block's slices (four tiles each), then the block of A padded to whole K
// steps and slices, and alignment slack, for any K up to k.
inline size_t AmxScratchBytes(size_t k) { return AmxBlockScratchBytes(RoundUpTo(k, kAmxTileK)); }

// Packs `rows` rows of A (k bytes each, stride lda) as whole 32-row slices, each K step by K step
// as its top and bottom 16 × 64-byte tiles, 1 KiB apiece and contiguous: a tile load then reads
// 1 KiB in a row, where rows k64 bytes apart (4 KiB at K 4096) all fall in the same L1 sets. Rows
// past the data and K past k are zero, so tails need no second tile configuration.
inline void PackAmxBlock(const uint8_t* a, size_t lda, size_t rows, size_t k, uint8_t* dst) {
  const size_t steps = RoundUpTo(k, kAmxTileK) / kAmxTileK, slices = (rows + kAmxRows - 1) / kAmxRows;
  for (size_t i = 0; i < slices * kAmxRows; ++i) {
    uint8_t* out = dst + (i / kAmxRows) * steps * 2 * kAmxTileBytes + (i % kAmxRows) * kAmxTileK;
    const size_t data = i < rows ? k : 0;
    for (size_t j = 0; j < steps; ++j, out += 2 * kAmxTileBytes) {
      // One masked 64-byte load and store per step: no byte past the row is read, the tail is
      // zero, and no variable-length memset (`rep stos`, slow to start) runs per row.
      const size_t from = j * kAmxTileK, bytes = data > from ? MinSz(kAmxTileK, data - from) : 0;
      const __mmask64 mask = bytes == kAmxTileK ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
      _mm512_storeu_si512(out, _mm512_maskz_loadu_epi8(mask, a + i * lda + from));
    }
  }
}

template <class Tiles>
void AmxRun(const Int8GemmArgs& g, const GemmTile& t, void* scratch, Tiles& tiles) {
  const size_t k64 = RoundUpTo(g.k, kAmxTileK), block_rows = AmxInt8BlockRows(g.k, t.p_end - t.p_begin);
  auto* base = reinterpret_cast<uint8_t*>(RoundUpTo(reinterpret_cast<uintptr_t>(scratch), 64));
  // The C tiles of the block's slices at base (AmxBlockPanels), then the packed A block.
  uint8_t* a_block = base + kAmxCRegionBytes;
  tiles.begin();
  for (size_t m0 = t.m_begin; m0 < t.m_end; m0 += block_rows) {
    const size_t rows = MinSz(block_rows, t.m_end - m0);
    PackAmxBlock(g.a + m0 * g.lda, g.lda, rows, g.k, a_block);
    // The epilogue of panels pnl (and pnl + 1 when `pair`) for slice s, from its C tiles.
    const auto epilogue = [&](size_t pnl, bool pair, size_t s, const uint8_t* c_bytes) {
      const auto* c = reinterpret_cast<const int32_t*>(c_bytes);
      const size_t r0 = s * kAmxRows, slice_rows = MinSz(kAmxRows, rows - r0);
      for (size_t q = 0; q < (pair ? 2u : 1u); ++q) {
        const size_t col0 = (pnl + q) * kAmxTile, cols = MinSz(kAmxTile, g.n - col0);
        for (size_t i = 0; i < slice_rows; ++i) {
          const int32_t* row = c + ((i < kAmxTile ? q : 2 + q) * kAmxTile + i % kAmxTile) * kAmxTile;
          Epilogue<VZmmVnni>(g, VZmmVnni::load_i(row), m0 + r0 + i, col0, cols);
        }
      }
    };
    AmxBlockPanels(tiles, a_block, rows, reinterpret_cast<const uint8_t*>(g.b_packed), t.p_begin, t.p_end, k64, base,
                   epilogue);
  }
  tiles.end();
}

}  // namespace
}  // namespace maas

// Defines the entry points int8_gemm.inc declares for an AMX-tiled kernel over `Tiles`.
#define MAAS_DEFINE_INT8_AMX_GEMM(name, Tiles)                                            \
  namespace maas {                                                                        \
  size_t name##_scratch(size_t k) { return AmxScratchBytes(k); }                          \
  void name##_run(const Int8GemmArgs& g, const GemmTile& t, void* s) {                    \
    Tiles tiles;                                                                          \
    AmxRun(g, t, s, tiles);                                                               \
  }                                                                                       \
  void name##_quantize(const float* x, size_t n, float scale, int32_t zero, uint8_t* q) { \
    QuantizeRow<VZmmVnni>(x, n, scale, zero, 255, q);                                     \
  }                                                                                       \
  }
