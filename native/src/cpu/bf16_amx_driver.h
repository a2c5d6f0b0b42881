// The AMX-BF16 GEMM driver for bf16-weight models, written once over a tile-operations type so the
// same tiling runs on AMX (f32_gemm_amx_bf16.cc) and on an emulation of the tile semantics
// (f32_gemm_amx_bf16_emulated.cc), which tests run on any AVX-512 machine.
//
// The int8 AMX kernel's 2×2 tiling (see int8_amx_driver.h) with tdpbf16ps: tmm0..3 = C (fp32),
// tmm4, 5 = A (rows r0.., r0+16.., 16 bf16 pairs of K each), tmm6, 7 = B (two 16-wide panels, 16
// pair rows). B is packed as for every bf16 kernel (WeightFormat::kBf16) with nr 16 and the K
// pairs padded to whole tiles (pair_align 16), so a panel's K step is one contiguous tile. A's 32
// rows are rounded to bf16 pairs into zero-padded scratch. C accumulates over all of K in the
// tiles; the fp32 driver's epilogue (bias, activation, softmax) then runs row by row.
//
// Tiles (the type): begin(), end(), zero<T>(), load<T>(p, stride), store<T>(p, stride),
// dot<C, A, B>() (tdpbf16ps: C[m][n] += Σ_k A[m].lo·B[k][n].lo + A[m].hi·B[k][n].hi, in fp32);
// ToPairs(x, n, dst): n floats to ceil(n/2) bf16 pair words (Bf16Bits' rounding).
// Include only from a translation unit built with AVX-512 F/BW/DQ/VL flags.
#pragma once
#include <cstring>

#include "amx_tiles.h"
#include "bf16_gemm_driver.h"
#include "f32_zmm_traits.h"

namespace maas {
namespace {

constexpr uint32_t kAmxPairs = 16;  // bf16 pairs of K per A row and per B tile (64 bytes)

// Four fp32 C tiles, then 32 rows of A pairs padded to whole tiles, and alignment slack.
inline size_t AmxBf16ScratchFloats(size_t k) {
  return 4 * kAmxTile * kAmxTile + kAmxRows * PackedPairs(k, kAmxPairs) + 16;
}

template <class Tiles, void (*ToPairs)(const float*, size_t, uint32_t*)>
void AmxBf16Run(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
  using V = VAvx512;
  const size_t pairs = PackedPairs(g.k, kAmxPairs), data_pairs = (g.k + 1) / 2;
  auto* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  float* c = base;  // C tile q at c + q·256
  auto* a = reinterpret_cast<uint32_t*>(base + 4 * kAmxTile * kAmxTile);
  const uint32_t* a_hi = a + kAmxTile * pairs;
  const size_t a_stride = pairs * sizeof(uint32_t), panel_words = pairs * kAmxTile;
  const auto* b_words = reinterpret_cast<const uint32_t*>(g.b_packed);
  constexpr size_t kCFloats = kAmxTile * kAmxTile;
  const Activation tile_act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
  Tiles tiles;
  tiles.begin();
  for (size_t r0 = t.m_begin; r0 < t.m_end; r0 += kAmxRows) {
    const size_t rows = MinSize(kAmxRows, t.m_end - r0);
    std::memset(a, 0, kAmxRows * pairs * sizeof(uint32_t));
    for (size_t i = 0; i < rows; ++i) {
      uint32_t* out = a + i * pairs;
      if (!g.a_transposed) {
        ToPairs(g.a + (r0 + i) * g.lda, g.k, out);
        continue;
      }
      for (size_t q = 0; q < data_pairs; ++q) {  // A(r, p) = a[p·lda + r]
        const size_t p = 2 * q;
        const uint32_t hi = p + 1 < g.k ? Bf16Bits(g.a[(p + 1) * g.lda + r0 + i]) : 0u;
        out[q] = Bf16Bits(g.a[p * g.lda + r0 + i]) | (hi << 16);
      }
    }
    // The rows of a C tile pair through the fp32 epilogue into the output.
    const auto epilogue = [&](size_t pnl, const float* c_top, const float* c_bottom) {
      const size_t col0 = pnl * kAmxTile, cols = MinSize(kAmxTile, g.n - col0);
      const Epilogue epi{g.bias ? g.bias + col0 : nullptr, tile_act, g.params()};
      for (size_t i = 0; i < rows; ++i) {
        const float* row = i < kAmxTile ? c_top + i * kAmxTile : c_bottom + (i - kAmxTile) * kAmxTile;
        V::R acc[1][1] = {{V::load(row)}};
        StoreTile<V>(acc, g.c + (r0 + i) * g.ldc + col0, g.ldc, cols, false, &epi);
      }
    };
    size_t pnl = t.p_begin;
    for (; pnl + 2 <= t.p_end; pnl += 2) {
      const uint32_t* b0 = b_words + pnl * panel_words;
      const uint32_t* b1 = b0 + panel_words;
      tiles.template zero<0>();
      tiles.template zero<1>();
      tiles.template zero<2>();
      tiles.template zero<3>();
      for (size_t q = 0; q < pairs; q += kAmxPairs) {
        tiles.template load<4>(a + q, a_stride);
        tiles.template load<5>(a_hi + q, a_stride);
        tiles.template load<6>(b0 + q * kAmxTile, 64);
        tiles.template load<7>(b1 + q * kAmxTile, 64);
        tiles.template dot<0, 4, 6>();
        tiles.template dot<1, 4, 7>();
        tiles.template dot<2, 5, 6>();
        tiles.template dot<3, 5, 7>();
      }
      tiles.template store<0>(c, 64);
      tiles.template store<1>(c + kCFloats, 64);
      tiles.template store<2>(c + 2 * kCFloats, 64);
      tiles.template store<3>(c + 3 * kCFloats, 64);
      epilogue(pnl, c, c + 2 * kCFloats);
      epilogue(pnl + 1, c + kCFloats, c + 3 * kCFloats);
    }
    if (pnl < t.p_end) {
      const uint32_t* b0 = b_words + pnl * panel_words;
      tiles.template zero<0>();
      tiles.template zero<2>();
      for (size_t q = 0; q < pairs; q += kAmxPairs) {
        tiles.template load<4>(a + q, a_stride);
        tiles.template load<5>(a_hi + q, a_stride);
        tiles.template load<6>(b0 + q * kAmxTile, 64);
        tiles.template dot<0, 4, 6>();
        tiles.template dot<2, 5, 6>();
      }
      tiles.template store<0>(c, 64);
      tiles.template store<2>(c + 2 * kCFloats, 64);
      epilogue(pnl, c, c + 2 * kCFloats);
    }
    if (g.act == Activation::kSoftmax) SoftmaxRows<V>(g.c + r0 * g.ldc, g.ldc, rows, g.n);
  }
  tiles.end();
}

}  // namespace
}  // namespace maas

// Defines the entry points f32_gemm.inc declares for an AMX-BF16-tiled kernel over `Tiles`; its K
// "block" is one tile step (32 K) and its A block the 32 rows of a tile pair (what tests sweep).
#define MAAS_DEFINE_BF16_AMX_GEMM(name, Tiles, ToPairs)                                                       \
  namespace maas {                                                                                            \
  extern const uint32_t name##_kc = 2 * kAmxPairs, name##_mc = kAmxRows;                                      \
  size_t name##_scratch(size_t k) { return AmxBf16ScratchFloats(k); }                                         \
  void name##_run(const F32GemmArgs& g, const GemmTile& t, float* s) { AmxBf16Run<Tiles, ToPairs>(g, t, s); } \
  void name##_activate(Activation a, const ActivationParams& p, const float* z, float* y, size_t n) {         \
    ActivateRow<VAvx512>(a, p, z, y, n);                                                                      \
  }                                                                                                           \
  }
