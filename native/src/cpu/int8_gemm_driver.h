// The generic int8 GEMM driver: row blocking, panels, row tails, the K-group loop and the fused
// epilogue (zero-point correction, dequantize + bias + relu/relu6/Keras ReLU, or requantize to u8), written once
// over a vector-traits type V. Each ISA file supplies V (its dot product is the ISA's part).
//
// Include only from an ISA translation unit: everything is in an anonymous namespace so code
// built with one ISA's flags never merges into another's at link time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "maas/int8_gemm.h"

namespace maas {
namespace {

inline size_t MinSz(size_t a, size_t b) { return a < b ? a : b; }

inline int32_t Load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The epilogue for W columns starting at `col` of one row: the contract of int8_gemm.h.
// V::I holds W int32 lanes, V::F W floats.
template <class V>
inline void Epilogue(const Int8GemmArgs& g, typename V::I acc, size_t row, size_t col, size_t count) {
  using F = typename V::F;
  const typename V::I corr = V::mullo(V::set1_i(g.a_zero), V::load_i(g.colsum + col));
  F y =
      V::fmadd(V::cvt_f(V::sub_i(acc, corr)), V::load_f(g.scale + col), g.bias ? V::load_f(g.bias + col) : V::zero_f());
  if (g.act == Activation::kRelu || g.act == Activation::kRelu6)
    y = V::max_f(y, V::zero_f());  // max(NaN, 0) = 0, as the reference
  if (g.act == Activation::kRelu6) y = V::min_f(y, V::set1_f(6.f));
  if (g.act == Activation::kKerasRelu) {
    const F t = V::set1_f(g.params.threshold);
    const F below = V::mul_f(V::set1_f(g.params.alpha), V::sub_f(y, t));
    y = V::select_gt(y, t, V::min_f(y, V::set1_f(g.params.max_value)), below);
  }
  if (!g.q) {
    V::store_f(g.c + row * g.ldc + col, y, count);
    return;
  }
  F t = V::add_f(V::round_f(V::div_f(y, V::set1_f(g.out_scale))), V::set1_f(static_cast<float>(g.out_zero)));
  t = V::min_f(V::max_f(t, V::zero_f()), V::set1_f(static_cast<float>(g.out_max)));
  V::store_u8(g.q + row * g.ldq + col, V::cvt_i(t), count);
}

// q = clamp(nearbyint(x / scale) + zero, 0, amax) over n floats, W at a time.
template <class V>
void QuantizeRow(const float* x, size_t n, float scale, int32_t zero, int32_t amax, uint8_t* q) {
  using F = typename V::F;
  const F s = V::set1_f(scale), z = V::set1_f(static_cast<float>(zero)), hi = V::set1_f(static_cast<float>(amax));
  for (size_t i = 0; i < n; i += V::W) {
    const size_t count = MinSz(V::W, n - i);
    F t = V::add_f(V::round_f(V::div_f(V::load_f_tail(x + i, count), s)), z);
    t = V::min_f(V::max_f(t, V::zero_f()), hi);
    V::store_u8(q + i, V::cvt_i(t), count);
  }
}

// kMCTiles: row tiles per block; its A rows are re-read for every B panel, B once per block.
template <class V, int kMR, int kNV, int kMCTiles = 16>
struct Int8GemmDriver {
  using I = typename V::I;
  static constexpr size_t kNR = V::W * kNV;
  static constexpr size_t kGroupBytes = kNR * 4;  // one K group of a panel
  static constexpr size_t kMC = kMR * kMCTiles;

  // kRows rows × kNR columns over every K group. With one or two rows the dot chain would be
  // latency bound, so even and odd groups accumulate separately and are summed at the end.
  template <int kRows>
  static void Micro(const Int8GemmArgs& g, size_t groups, const uint8_t* a, const int8_t* b, size_t row0, size_t col0,
                    size_t cols) {
    constexpr int kSplit = kRows <= 2 && V::W > 1 ? 2 : 1;  // one lane wide there is no latency to hide
    // Every loop over the accumulators is unrolled: one left rolled (the epilogue's, with its
    // break) makes GCC keep the whole array on the stack, loaded and stored in the hot loop.
    I acc[kSplit][kRows][kNV];
#pragma GCC unroll 2
    for (int s = 0; s < kSplit; ++s)
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < kNV; ++j) acc[s][i][j] = V::zero_i();
    size_t p = 0;
    for (; p + kSplit <= groups; p += kSplit) {
#pragma GCC unroll 2
      for (int s = 0; s < kSplit; ++s) {
        I bv[kNV];
#pragma GCC unroll 8
        for (int j = 0; j < kNV; ++j) bv[j] = V::load_b(b + (p + s) * kGroupBytes + j * V::W * 4);
#pragma GCC unroll 16
        for (int i = 0; i < kRows; ++i) {
          const I av = V::bcast_a(Load4(a + i * g.lda + (p + s) * 4));
#pragma GCC unroll 8
          for (int j = 0; j < kNV; ++j) acc[s][i][j] = V::dot(acc[s][i][j], av, bv[j]);
        }
      }
    }
    for (; p < groups; ++p) {  // an odd group count with the split
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i) {
        const I av = V::bcast_a(Load4(a + i * g.lda + p * 4));
#pragma GCC unroll 8
        for (int j = 0; j < kNV; ++j)
          acc[0][i][j] = V::dot(acc[0][i][j], av, V::load_b(b + p * kGroupBytes + j * V::W * 4));
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < kNV; ++j) {
        const size_t col = j * V::W;
        if (col >= cols) break;
        I sum = acc[0][i][j];
        if (kSplit == 2) sum = V::add_i(sum, acc[kSplit - 1][i][j]);
        Epilogue<V>(g, sum, row0 + i, col0 + col, MinSz(V::W, cols - col));
      }
    }
  }

  using MicroFn = void (*)(const Int8GemmArgs&, size_t, const uint8_t*, const int8_t*, size_t, size_t, size_t);
  template <size_t... R>
  static constexpr auto MakeTable(std::index_sequence<R...>) {
    struct Table {
      MicroFn fn[kMR];
    };
    return Table{{&Micro<static_cast<int>(R) + 1>...}};
  }

  static void Run(const Int8GemmArgs& g, const GemmTile& t, void*) {
    static constexpr auto micro = MakeTable(std::make_index_sequence<kMR>{});
    const size_t groups = (g.k + 3) / 4;
    for (size_t ic = t.m_begin; ic < t.m_end; ic += kMC) {
      const size_t mc = MinSz(kMC, t.m_end - ic);
      for (size_t pnl = t.p_begin; pnl < t.p_end; ++pnl) {
        const size_t col0 = pnl * kNR;
        const size_t cols = MinSz(kNR, g.n - col0);
        const int8_t* b = g.b_packed + pnl * groups * kGroupBytes;
        for (size_t ir = 0; ir < mc; ir += kMR) {
          const size_t rows = MinSz(kMR, mc - ir);
          micro.fn[rows - 1](g, groups, g.a + (ic + ir) * g.lda, b, ic + ir, col0, cols);
        }
      }
    }
  }
};

}  // namespace
}  // namespace maas

// Defines the entry points int8_gemm.inc declares for one kernel.
#define MAAS_DEFINE_INT8_GEMM_BLOCKED(name, V, mr, nv, amax, mc_tiles)                                \
  namespace maas {                                                                                    \
  using name##_driver = Int8GemmDriver<V, mr, nv, mc_tiles>;                                          \
  static_assert(name##_driver::kNR > 0, "kernel tile");                                               \
  size_t name##_scratch(size_t) { return 0; }                                                         \
  void name##_run(const Int8GemmArgs& g, const GemmTile& t, void* s) { name##_driver::Run(g, t, s); } \
  void name##_quantize(const float* x, size_t n, float scale, int32_t zero, uint8_t* q) {             \
    QuantizeRow<V>(x, n, scale, zero, amax, q);                                                       \
  }                                                                                                   \
  }
#define MAAS_DEFINE_INT8_GEMM(name, V, mr, nv, amax) MAAS_DEFINE_INT8_GEMM_BLOCKED(name, V, mr, nv, amax, 16)
