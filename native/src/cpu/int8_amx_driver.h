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

#include <cstring>

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
inline size_t AmxScratchBytes(size_t k) { return AmxBlockScratchBytes(RoundUpTo(k, kAmxTileK), kAmxCBytes); }

// Packs `rows` rows of A (k bytes each, stride lda) as `slices` 32-row slices, each K step by K step
// as its top and bottom 16 × 64-byte tiles, 1 KiB apiece and contiguous: a tile load then reads
// 1 KiB in a row, where rows k64 bytes apart (4 KiB at K 4096) all fall in the same L1 sets. Rows
// past the data and K past k are zero, so tails need no second tile configuration.
inline void PackAmxBlock(const uint8_t* a, size_t lda, size_t rows, size_t k, size_t slices, uint8_t* dst) {
  const size_t steps = RoundUpTo(k, kAmxTileK) / kAmxTileK;
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
  auto* c_all = reinterpret_cast<int32_t*>(base);  // slice s's C tile q at c_all + (4s + q)·256
  uint8_t* a_block = base + (kAmxMaxBlockRows / kAmxRows) * 4 * kAmxCBytes;
  constexpr size_t kCInts = kAmxTile * kAmxTile;
  tiles.begin();
  for (size_t m0 = t.m_begin; m0 < t.m_end; m0 += block_rows) {
    const size_t rows = MinSz(block_rows, t.m_end - m0), slices = (rows + kAmxRows - 1) / kAmxRows;
    PackAmxBlock(g.a + m0 * g.lda, g.lda, rows, g.k, slices, a_block);
    // With one slice, or K within one block, no B block is shared between slices: K runs whole,
    // and each slice's C goes through the epilogue while it is hot (one C buffer). Otherwise C is
    // carried between K blocks in each slice's scratch, and the epilogue runs at the end.
    const bool one_pass = slices == 1 || k64 <= kAmxKBlock;
    const size_t kc = one_pass ? k64 : kAmxKBlock;
    // The epilogue of panels pnl (and pnl + 1 when `pair`) for slice s, from its C tiles at c.
    const auto epilogue = [&](size_t pnl, bool pair, size_t s, const int32_t* c) {
      const size_t r0 = s * kAmxRows, slice_rows = MinSz(kAmxRows, rows - r0);
      for (size_t q = 0; q < (pair ? 2u : 1u); ++q) {
        const size_t col0 = (pnl + q) * kAmxTile, cols = MinSz(kAmxTile, g.n - col0);
        for (size_t i = 0; i < slice_rows; ++i) {
          const int32_t* row = c + (i < kAmxTile ? q : 2 + q) * kCInts + (i % kAmxTile) * kAmxTile;
          Epilogue<VZmmVnni>(g, VZmmVnni::load_i(row), m0 + r0 + i, col0, cols);
        }
      }
    };
    // Runs panels pnl (and pnl + 1 when `pair`) over every slice, K block by K block.
    const auto run_panels = [&](size_t pnl, bool pair) {
      const int8_t* b0 = g.b_packed + pnl * k64 * kAmxTile;
      const int8_t* b1 = b0 + k64 * kAmxTile;
      for (size_t k0 = 0; k0 < k64; k0 += kc) {
        const size_t k1 = MinSz(k64, k0 + kc);
        for (size_t s = 0; s < slices; ++s) {
          int32_t* c = one_pass ? c_all : c_all + 4 * s * kCInts;
          const uint8_t* a = a_block + s * kAmxRows * k64;  // K step j's top tile at a + 2j·1 KiB
          if (k0 == 0) {
            tiles.template zero<0>();
            tiles.template zero<2>();
            if (pair) {
              tiles.template zero<1>();
              tiles.template zero<3>();
            }
          } else {
            tiles.template load<0>(c, 64);
            tiles.template load<2>(c + 2 * kCInts, 64);
            if (pair) {
              tiles.template load<1>(c + kCInts, 64);
              tiles.template load<3>(c + 3 * kCInts, 64);
            }
          }
          if (pair) {
            for (size_t kk = k0; kk < k1; kk += kAmxTileK) {
              tiles.template load<4>(a + 2 * kk * kAmxTile, 64);
              tiles.template load<5>(a + (2 * kk + kAmxTileK) * kAmxTile, 64);
              tiles.template load<6>(b0 + kk * kAmxTile, 64);
              tiles.template load<7>(b1 + kk * kAmxTile, 64);
              tiles.template dot<0, 4, 6>();
              tiles.template dot<1, 4, 7>();
              tiles.template dot<2, 5, 6>();
              tiles.template dot<3, 5, 7>();
            }
          } else {
            for (size_t kk = k0; kk < k1; kk += kAmxTileK) {
              tiles.template load<4>(a + 2 * kk * kAmxTile, 64);
              tiles.template load<5>(a + (2 * kk + kAmxTileK) * kAmxTile, 64);
              tiles.template load<6>(b0 + kk * kAmxTile, 64);
              tiles.template dot<0, 4, 6>();
              tiles.template dot<2, 5, 6>();
            }
          }
          tiles.template store<0>(c, 64);
          tiles.template store<2>(c + 2 * kCInts, 64);
          if (pair) {
            tiles.template store<1>(c + kCInts, 64);
            tiles.template store<3>(c + 3 * kCInts, 64);
          }
          if (one_pass) epilogue(pnl, pair, s, c);
        }
      }
      if (!one_pass)
        for (size_t s = 0; s < slices; ++s) epilogue(pnl, pair, s, c_all + 4 * s * kCInts);
    };
    size_t pnl = t.p_begin;
    for (; pnl + 2 <= t.p_end; pnl += 2) run_panels(pnl, true);
    if (pnl < t.p_end) run_panels(pnl, false);
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
