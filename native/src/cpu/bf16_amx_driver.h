// The AMX-BF16 GEMM driver for bf16-weight models, written once over a tile-operations type so the
// same tiling runs on AMX (f32_gemm_amx_bf16.cc) and on an emulation of the tile semantics
// (f32_gemm_amx_bf16_emulated.cc), which tests run on any AVX-512 machine.
//
// The int8 AMX kernel's 2×2 tiling (see int8_amx_driver.h) with tdpbf16ps: tmm0..3 = C (fp32),
// tmm4, 5 = A (rows r0.., r0+16.., 16 bf16 pairs of K each), tmm6, 7 = B (two 16-wide panels, 16
// pair rows). B is packed as for every bf16 kernel (WeightFormat::kBf16) with nr 16 and the K
// pairs padded to whole tiles (pair_align 16), so a panel's K step is one contiguous tile. A block
// of A is rounded to bf16 pairs into zero-padded scratch, tile by tile; the blocking over A and K is
// the int8 driver's (amx_tiles.h), with the fp32 C tiles carried in scratch between K blocks. The
// fp32 driver's epilogue (bias, activation, softmax) then runs row by row.
//
// Tiles (the type): begin(), end(), zero<T>(), load<T>(p, stride), store<T>(p, stride),
// dot<C, A, B>() (tdpbf16ps: C[m][n] += Σ_k A[m].lo·B[k][n].lo + A[m].hi·B[k][n].hi, in fp32);
// ToPairs(x, n, dst): n floats to ceil(n/2) bf16 pair words (Bf16Bits' rounding).
// Include only from a translation unit built with AVX-512 F/BW/DQ/VL flags.
#pragma once
#include <immintrin.h>

#include "amx_tiles.h"
#include "bf16_gemm_driver.h"
#include "f32_zmm_traits.h"

namespace maas {
namespace {

constexpr uint32_t kAmxPairs = 16;  // bf16 pairs of K per A row and per B tile (64 bytes)

// Rows of A packed per block for a K of k and `panels` B panels (amx_tiles.h has the blocking): a
// packed row is the K pairs padded to whole tiles.
inline size_t AmxBf16BlockRows(size_t k, size_t panels) {
  const size_t row_bytes = PackedPairs(k, kAmxPairs) * sizeof(uint32_t);
  return AmxBlockRows(row_bytes, panels * kAmxTile * row_bytes);
}

// The C accumulators of a block's slices (four fp32 tiles each), then the block of A pairs, and
// alignment slack, in floats, for any K up to k.
inline size_t AmxBf16ScratchFloats(size_t k) {
  const size_t bytes = AmxBlockScratchBytes(PackedPairs(k, kAmxPairs) * sizeof(uint32_t));
  return (bytes + sizeof(float) - 1) / sizeof(float);
}

// Packs `rows` rows of A from row r0 (rounded to bf16 pairs; g.a_transposed: A(r, p) = a[p·lda + r])
// as whole 32-row slices, each K step by K step as its top and bottom 16-row × 16-pair tiles,
// 1 KiB apiece and contiguous, as the int8 driver packs its A (int8_amx_driver.h says why). Rows past
// the data and K past g.k are zero.
template <void (*ToPairs)(const float*, size_t, uint32_t*)>
void PackAmxBf16Block(const F32GemmArgs& g, size_t r0, size_t rows, uint32_t* dst) {
  const size_t slices = (rows + kAmxRows - 1) / kAmxRows;
  constexpr size_t kTileWords = kAmxTile * kAmxPairs, kStepK = 2 * kAmxPairs;
  const size_t steps = PackedPairs(g.k, kAmxPairs) / kAmxPairs;
  for (size_t i = 0; i < slices * kAmxRows; ++i) {
    uint32_t* out = dst + (i / kAmxRows) * steps * 2 * kTileWords + (i % kAmxRows) * kAmxPairs;
    for (size_t j = 0; j < steps; ++j, out += 2 * kTileWords) {
      const size_t p0 = j * kStepK, data = i < rows && p0 < g.k ? MinSize(kStepK, g.k - p0) : 0;
      // A partial step is zeroed whole first: one 64-byte store, where a zero loop over the
      // tail became `rep stos`, whose start-up cost per row held model S b1024 to 246 GFLOP/s (336 after).
      if (data < kStepK) _mm512_storeu_si512(out, _mm512_setzero_si512());
      if (data && !g.a_transposed) {
        ToPairs(g.a + (r0 + i) * g.lda + p0, data, out);
      } else {
        for (size_t q = 0; q < (data + 1) / 2; ++q) {
          const size_t p = p0 + 2 * q;
          const uint32_t hi = 2 * q + 1 < data ? Bf16Bits(g.a[(p + 1) * g.lda + r0 + i]) : 0u;
          out[q] = Bf16Bits(g.a[p * g.lda + r0 + i]) | (hi << 16);
        }
      }
    }
  }
}

template <class Tiles, void (*ToPairs)(const float*, size_t, uint32_t*)>
void AmxBf16Run(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
  using V = VAvx512;
  const size_t pairs = PackedPairs(g.k, kAmxPairs), block_rows = AmxBf16BlockRows(g.k, t.p_end - t.p_begin);
  auto* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  // The C tiles of the block's slices at base (AmxBlockPanels), then the packed A block.
  auto* a_block = reinterpret_cast<uint32_t*>(reinterpret_cast<uint8_t*>(base) + kAmxCRegionBytes);
  const Activation tile_act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
  Tiles tiles;
  tiles.begin();
  for (size_t m0 = t.m_begin; m0 < t.m_end; m0 += block_rows) {
    const size_t rows = MinSize(block_rows, t.m_end - m0);
    PackAmxBf16Block<ToPairs>(g, m0, rows, a_block);
    // The fp32 epilogue (bias, activation) of panels pnl (and pnl + 1 when `pair`) for slice s.
    const auto epilogue = [&](size_t pnl, bool pair, size_t s, const uint8_t* c_bytes) {
      const auto* c = reinterpret_cast<const float*>(c_bytes);
      const size_t r0 = s * kAmxRows, slice_rows = MinSize(kAmxRows, rows - r0);
      for (size_t h = 0; h < (pair ? 2u : 1u); ++h) {
        const size_t col0 = (pnl + h) * kAmxTile, cols = MinSize(kAmxTile, g.n - col0);
        const Epilogue epi{g.bias ? g.bias + col0 : nullptr, tile_act, g.params()};
        for (size_t i = 0; i < slice_rows; ++i) {
          const float* row = c + ((i < kAmxTile ? h : 2 + h) * kAmxTile + i % kAmxTile) * kAmxTile;
          V::R acc[1][1] = {{V::load(row)}};
          StoreTile<V>(acc, g.c + (m0 + r0 + i) * g.ldc + col0, g.ldc, cols, false, &epi);
        }
      }
    };
    AmxBlockPanels(tiles, reinterpret_cast<const uint8_t*>(a_block), rows, reinterpret_cast<const uint8_t*>(g.b_packed),
                   t.p_begin, t.p_end, pairs * sizeof(uint32_t), reinterpret_cast<uint8_t*>(base), epilogue);
    if (g.act == Activation::kSoftmax) SoftmaxRows<V>(g.c + m0 * g.ldc, g.ldc, rows, g.n);
  }
  tiles.end();
}

}  // namespace
}  // namespace maas

// Defines the entry points f32_gemm.inc declares for an AMX-BF16-tiled kernel over `Tiles`; its K
// block (what tests sweep around) is kAmxKBlock bytes of pairs, 256 K, and its A block reported as
// the 32 rows of a tile pair (the rows of a block depend on K; tests cross them at large K).
#define MAAS_DEFINE_BF16_AMX_GEMM(name, Tiles, ToPairs)                                                       \
  namespace maas {                                                                                            \
  extern const uint32_t name##_kc = kAmxKBlock / 2, name##_mc = kAmxRows;                                     \
  size_t name##_scratch(size_t k) { return AmxBf16ScratchFloats(k); }                                         \
  void name##_run(const F32GemmArgs& g, const GemmTile& t, float* s) { AmxBf16Run<Tiles, ToPairs>(g, t, s); } \
  void name##_activate(Activation a, const ActivationParams& p, const float* z, float* y, size_t n) {         \
    ActivateRow<VAvx512>(a, p, z, y, n);                                                                      \
  }                                                                                                           \
  }
