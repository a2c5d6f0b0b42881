// int8 GEMM for AMX-INT8: 16×16 output tiles accumulated by tdpbusd over K in steps of 64, then
// the shared AVX-512 epilogue row by row. One tile configuration (palette 1) for the whole call:
//   tmm0 = C (16 rows × 16 int32), tmm1 = A (16 rows × 64 u8), tmm2 = B (16 K-groups × 16 cols × 4 s8).
// B panels are packed 16 wide with K padded to 64, so one panel's K step is one contiguous B tile.
// A rows are copied into zero-padded scratch, so tails in M and K need no second configuration.
// Dispatch selects this file only when CPUID reports AMX-INT8 and the kernel granted XTILEDATA.
#include <immintrin.h>

#include <cstring>

#include "int8_gemm_driver.h"
#include "int8_zmm_traits.h"
#include "maas/peak.h"

namespace maas {
namespace {

constexpr size_t kTile = 16;   // rows of A and C, columns of C
constexpr size_t kTileK = 64;  // bytes of K per A row and per B tile
constexpr size_t kCBytes = kTile * kTile * sizeof(int32_t);

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "the tile configuration is 64 bytes");

TileConfig MakeConfig() {
  TileConfig cfg;
  for (int t = 0; t < 3; ++t) {
    cfg.rows[t] = kTile;
    cfg.colsb[t] = 64;  // C: 16 int32; A: 64 u8; B: 16 columns × 4 s8
  }
  return cfg;
}

size_t AmxScratch(size_t k) { return kCBytes + kTile * RoundUpTo(k, kTileK) + 64; }

void AmxRun(const Int8GemmArgs& g, const GemmTile& t, void* scratch) {
  const size_t k64 = RoundUpTo(g.k, kTileK);
  auto* base = reinterpret_cast<uint8_t*>(RoundUpTo(reinterpret_cast<uintptr_t>(scratch), 64));
  auto* c = reinterpret_cast<int32_t*>(base);
  uint8_t* a = base + kCBytes;
  const TileConfig cfg = MakeConfig();
  _tile_loadconfig(&cfg);
  for (size_t r0 = t.m_begin; r0 < t.m_end; r0 += kTile) {
    const size_t rows = MinSz(kTile, t.m_end - r0);
    std::memset(a, 0, kTile * k64);
    for (size_t i = 0; i < rows; ++i) std::memcpy(a + i * k64, g.a + (r0 + i) * g.lda, g.k);
    for (size_t pnl = t.p_begin; pnl < t.p_end; ++pnl) {
      const int8_t* b = g.b_packed + pnl * k64 * kTile;  // a panel: k64 / 4 rows of 64 bytes
      _tile_zero(0);
      for (size_t kk = 0; kk < k64; kk += kTileK) {
        _tile_loadd(1, a + kk, static_cast<long>(k64));
        _tile_loadd(2, b + kk * kTile, 64);  // K groups kk/4 .. kk/4 + 15
        _tile_dpbusd(0, 1, 2);
      }
      _tile_stored(0, c, 64);
      const size_t col0 = pnl * kTile, cols = MinSz(kTile, g.n - col0);
      for (size_t i = 0; i < rows; ++i) Epilogue<VZmmVnni>(g, VZmmVnni::load_i(c + i * kTile), r0 + i, col0, cols);
    }
  }
  _tile_release();
}

}  // namespace

size_t qu8s8_gemm_bias_relu_requant_16x16c64__amx_scratch(size_t k) { return AmxScratch(k); }
void qu8s8_gemm_bias_relu_requant_16x16c64__amx_run(const Int8GemmArgs& g, const GemmTile& t, void* s) {
  AmxRun(g, t, s);
}
void qu8s8_gemm_bias_relu_requant_16x16c64__amx_quantize(const float* x, size_t n, float scale, int32_t zero,
                                                         uint8_t* q) {
  QuantizeRow<VZmmVnni>(x, n, scale, zero, 255, q);
}

// Four independent C tiles fed by the same A and B tiles: tdpbusd throughput, not latency.
double PeakAmxInt8(uint64_t iterations) noexcept {
  if (iterations == 0) return 0;
  TileConfig cfg;
  for (int t = 0; t < 6; ++t) {
    cfg.rows[t] = kTile;
    cfg.colsb[t] = 64;
  }
  alignas(64) static const uint8_t zeros[kTile * 64] = {};
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
  return 2.0 * 4 * kTile * kTile * kTileK * static_cast<double>(iterations);
}

}  // namespace maas
