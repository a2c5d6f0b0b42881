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
// the 2×1 form on tiles 0 and 2.
//
// Tiles (the type): begin(), end(), zero<T>(), load<T>(p, stride), store<T>(p, stride),
// dot<C, A, B>() (tdpbusd: C[m][n] += Σ_k Σ_i u8(A[m][4k + i]) · s8(B[k][4n + i])).
// Include only from a translation unit built with AVX512-VNNI flags (the epilogue's).
#pragma once
#include <cstring>

#include "amx_tiles.h"
#include "int8_gemm_driver.h"
#include "int8_zmm_traits.h"

namespace maas {
namespace {

// Four C tiles, then 32 rows of A padded to whole K steps.
inline size_t AmxScratchBytes(size_t k) { return 4 * kAmxCBytes + kAmxRows * RoundUpTo(k, kAmxTileK) + 64; }

template <class Tiles>
void AmxRun(const Int8GemmArgs& g, const GemmTile& t, void* scratch, Tiles& tiles) {
  const size_t k64 = RoundUpTo(g.k, kAmxTileK);
  auto* base = reinterpret_cast<uint8_t*>(RoundUpTo(reinterpret_cast<uintptr_t>(scratch), 64));
  auto* c = reinterpret_cast<int32_t*>(base);  // C tile q at c + q·256
  uint8_t* a = base + 4 * kAmxCBytes;
  const uint8_t* a_hi = a + kAmxTile * k64;  // rows 16..31
  constexpr size_t kCInts = kAmxTile * kAmxTile;
  tiles.begin();
  for (size_t r0 = t.m_begin; r0 < t.m_end; r0 += kAmxRows) {
    const size_t rows = MinSz(kAmxRows, t.m_end - r0);
    std::memset(a, 0, kAmxRows * k64);
    for (size_t i = 0; i < rows; ++i) std::memcpy(a + i * k64, g.a + (r0 + i) * g.lda, g.k);
    const auto epilogue = [&](size_t pnl, const int32_t* c_top, const int32_t* c_bottom) {
      const size_t col0 = pnl * kAmxTile, cols = MinSz(kAmxTile, g.n - col0);
      for (size_t i = 0; i < rows; ++i) {
        const int32_t* row = i < kAmxTile ? c_top + i * kAmxTile : c_bottom + (i - kAmxTile) * kAmxTile;
        Epilogue<VZmmVnni>(g, VZmmVnni::load_i(row), r0 + i, col0, cols);
      }
    };
    size_t pnl = t.p_begin;
    for (; pnl + 2 <= t.p_end; pnl += 2) {
      const int8_t* b0 = g.b_packed + pnl * k64 * kAmxTile;
      const int8_t* b1 = b0 + k64 * kAmxTile;
      tiles.template zero<0>();
      tiles.template zero<1>();
      tiles.template zero<2>();
      tiles.template zero<3>();
      for (size_t kk = 0; kk < k64; kk += kAmxTileK) {
        tiles.template load<4>(a + kk, k64);
        tiles.template load<5>(a_hi + kk, k64);
        tiles.template load<6>(b0 + kk * kAmxTile, 64);
        tiles.template load<7>(b1 + kk * kAmxTile, 64);
        tiles.template dot<0, 4, 6>();
        tiles.template dot<1, 4, 7>();
        tiles.template dot<2, 5, 6>();
        tiles.template dot<3, 5, 7>();
      }
      tiles.template store<0>(c, 64);
      tiles.template store<1>(c + kCInts, 64);
      tiles.template store<2>(c + 2 * kCInts, 64);
      tiles.template store<3>(c + 3 * kCInts, 64);
      epilogue(pnl, c, c + 2 * kCInts);
      epilogue(pnl + 1, c + kCInts, c + 3 * kCInts);
    }
    if (pnl < t.p_end) {
      const int8_t* b0 = g.b_packed + pnl * k64 * kAmxTile;
      tiles.template zero<0>();
      tiles.template zero<2>();
      for (size_t kk = 0; kk < k64; kk += kAmxTileK) {
        tiles.template load<4>(a + kk, k64);
        tiles.template load<5>(a_hi + kk, k64);
        tiles.template load<6>(b0 + kk * kAmxTile, 64);
        tiles.template dot<0, 4, 6>();
        tiles.template dot<2, 5, 6>();
      }
      tiles.template store<0>(c, 64);
      tiles.template store<2>(c + 2 * kCInts, 64);
      epilogue(pnl, c, c + 2 * kCInts);
    }
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
