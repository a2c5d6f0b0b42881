// The generic bf16-weight GEMM driver: C = act(A·B + bias) with B packed once as bf16 pairs along
// K (WeightFormat::kBf16), A rounded to bf16 as each block is packed, products summed in fp32 and
// the fp32 driver's epilogue. Written once over a traits type T: the fp32 vector traits V the
// epilogue needs, plus
//   P                        a register of bf16 pairs (one 32-bit word per fp32 lane)
//   P bcast_pair(const uint32_t* p)         one word of A (row i, K pair q) in every lane
//   P load_pairs(const uint32_t* p)         W words of a packed B row
//   R dot2(R acc, P a, P b)                 acc + a.hi·b.hi + a.lo·b.lo per lane (vdpbf16ps)
//   void to_pairs(const float* x, size_t n, uint32_t* dst)   n floats -> ceil(n/2) words, RNE
// and, for traits that set kWidenBlocked (cores where the bf16 dot issues at half the FMA rate):
//   fmadd_bcast, as the fp32 vector traits         the fp32 tile's FMA
//   void round_floats(float* x, size_t n)          x rounded to bf16 in place (Bf16Bits' rule)
//   void widen_pairs(const uint32_t* b, size_t rows, size_t nr, float* dst)   rows of nr floats from pairs
// Include only from an ISA translation unit (see f32_gemm_driver.h).
#pragma once
#include <type_traits>

#include "f32_gemm_driver.h"

namespace maas {
namespace {

// Rounds a row of floats to bf16 pairs with the scalar rule (Bf16Bits): the traits of kernels
// without a vector conversion use it, and it is the definition the vector ones follow.
inline void ToBf16PairsScalar(const float* x, size_t n, uint32_t* dst) {
  size_t i = 0;
  for (; i + 2 <= n; i += 2) dst[i / 2] = Bf16Bits(x[i]) | (static_cast<uint32_t>(Bf16Bits(x[i + 1])) << 16);
  if (i < n) dst[i / 2] = Bf16Bits(x[i]);
}

// Whether traits T widen blocked products to fp32 (T::kWidenBlocked, false where absent).
template <class T, class = void>
struct WidensBlocked : std::false_type {};
template <class T>
struct WidensBlocked<T, std::void_t<decltype(T::kWidenBlocked)>> : std::bool_constant<T::kWidenBlocked> {};

// kKC_ must be even, so only the last K block of a call can hold an odd K (its pair is padded).
template <class T, int kMR, int kNV, int kKC_, int kMCTiles>
struct Bf16GemmDriver {
  using R = typename T::R;
  using P = typename T::P;
  static constexpr size_t kNR = T::W * kNV;
  static constexpr size_t kKC = kKC_;
  static constexpr size_t kMC = kMR * kMCTiles;
  static_assert(kKC_ % 2 == 0, "K blocks hold whole pairs");

  // Up to this many rows, each B panel streams once over the whole K (as in the fp32 driver).
  static constexpr size_t kStreamRows = 2 * kMR;

  static size_t Pairs(size_t k) { return (k + 1) / 2; }

  static constexpr bool kWiden = WidensBlocked<T>::value;
  // The widened path's fp32 tile: the fp32 driver's micro-kernels and A packing over the same T.
  using F32 = F32GemmDriver<T, kMR, kNV, kKC_, kMCTiles>;

  // A block of A as bf16 pairs: kMC rows × kKC / 2 words, or the streaming path's rows × all of K;
  // widened, a block of A as floats and one K block of a B panel in fp32.
  static size_t ScratchFloats(size_t k) {
    const size_t kc = MinSize(kKC, k);
    const size_t block = kWiden ? kMC * kc + kc * kNR : kMC * Pairs(kc);
    const size_t stream = kStreamRows * Pairs(k);
    return block > stream ? block : stream;
  }

  // A kRows × kVecs register tile over `pairs` K pairs: row i's pair q at a[i·lda + q], B row q at
  // b[q·NR]. The epilogue and store are the fp32 driver's.
  template <int kRows, int kVecs>
  static void Micro(size_t pairs, const uint32_t* a, size_t lda, const uint32_t* b, float* c, size_t ldc, size_t cols,
                    bool accumulate, const Epilogue* epi) {
    R acc[kRows][kVecs];
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < kVecs; ++j) acc[i][j] = T::zero();
    for (size_t q = 0; q < pairs; ++q) {
      P bv[kVecs];
#pragma GCC unroll 8
      for (int j = 0; j < kVecs; ++j) bv[j] = T::load_pairs(b + q * kNR + j * T::W);
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i) {
        const P av = T::bcast_pair(a + i * lda + q);
#pragma GCC unroll 8
        for (int j = 0; j < kVecs; ++j) acc[i][j] = T::dot2(acc[i][j], av, bv[j]);
      }
    }
    StoreTile<T>(acc, c, ldc, cols, accumulate, epi);
  }

  using MicroFn = void (*)(size_t, const uint32_t*, size_t, const uint32_t*, float*, size_t, size_t, bool,
                           const Epilogue*);
  using Micros = MicroTable<MicroFn, kMR, kNV>;
  template <int kVecs, size_t... I>
  static constexpr void FillMicro(Micros& t, std::index_sequence<I...>) {
    ((t.at[kVecs - 1][I] = &Micro<static_cast<int>(I) + 1, kVecs>), ...);
  }
  template <size_t... J>
  static constexpr Micros MakeMicros(std::index_sequence<J...>) {
    Micros t{};
    (FillMicro<static_cast<int>(J) + 1>(t, std::make_index_sequence<kMR>{}), ...);
    return t;
  }

  // Rounds rows [0, mc) × columns [0, kc) of an A block to bf16 pairs, `pairs` words a row.
  static void PackA(const float* a, size_t lda, bool transposed, size_t mc, size_t kc, size_t pairs, uint32_t* dst) {
    if (!transposed) {
      for (size_t r = 0; r < mc; ++r) T::to_pairs(a + r * lda, kc, dst + r * pairs);
      return;
    }
    // Transposed A (A(r, p) = a[p·lda + r], training's Xᵀ): two source rows are read along r at a
    // time, and their pair scattered into the (cache-resident) block, not gathered down columns.
    for (size_t p = 0; p < kc; p += 2) {
      const float* lo = a + p * lda;
      uint32_t* out = dst + p / 2;
      if (p + 1 < kc) {
        const float* hi = lo + lda;
        for (size_t r = 0; r < mc; ++r)
          out[r * pairs] = Bf16Bits(lo[r]) | (static_cast<uint32_t>(Bf16Bits(hi[r])) << 16);
      } else {
        for (size_t r = 0; r < mc; ++r) out[r * pairs] = Bf16Bits(lo[r]);
      }
    }
  }

  // Blocked products in fp32, for cores where the bf16 dot issues at half the FMA rate (Intel
  // without AMX: vdpbf16ps at 0.52 of the fp32 FMA peak on Emerald Rapids). Each K block of a B
  // panel is widened once to fp32 (a bf16 is the high half of a float) and reused by every row
  // tile of the A block, which is packed as the fp32 driver packs it and rounded to bf16: the same
  // operands as the dot, multiplied exactly and summed in fp32, at the fp32 tile's rate.
  static void RunWidened(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
    static constexpr typename F32::Micros micro = F32::template MakeMicros<true>(std::make_index_sequence<kNV>{});
    const size_t k = g.k;
    const size_t panel_words = Pairs(k) * kNR;
    const auto* b_words = reinterpret_cast<const uint32_t*>(g.b_packed);
    float* a_panels = scratch;
    float* b_floats = scratch + kMC * MinSize(kKC, k);
    const Activation tile_act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
    for (size_t pc = 0; pc < k; pc += kKC) {
      const size_t kc = MinSize(kKC, k - pc);
      const bool first = pc == 0, last = pc + kc == k;
      for (size_t ic = t.m_begin; ic < t.m_end; ic += kMC) {
        const size_t mc = MinSize(kMC, t.m_end - ic);
        const float* a_block = g.a_transposed ? g.a + pc * g.lda + ic : g.a + ic * g.lda + pc;
        const RowTiles tiles(mc, kMR);
        F32::PackA(a_block, g.lda, g.a_transposed, tiles, kc, a_panels);
        T::round_floats(a_panels, tiles.count * kMR * kc);
        for (size_t pnl = t.p_begin; pnl < t.p_end; ++pnl) {
          const size_t col0 = pnl * kNR;
          const size_t cols = MinSize(kNR, g.n - col0);
          T::widen_pairs(b_words + pnl * panel_words + pc / 2 * kNR, kc, kNR, b_floats);
          const Epilogue epi{g.bias ? g.bias + col0 : nullptr, tile_act, g.params()};
          const size_t vecs = (cols + T::W - 1) / T::W;
          for (size_t tile = 0; tile < tiles.count; ++tile) {
            const size_t ir = tiles.begin(tile), rows = tiles.rows(tile);
            micro.at[vecs - 1][rows - 1](kc, a_panels + tile * kMR * kc, kMR, b_floats, g.c + (ic + ir) * g.ldc + col0,
                                         g.ldc, cols, !first, last ? &epi : nullptr);
          }
        }
        if (last && g.act == Activation::kSoftmax) SoftmaxRows<T>(g.c + ic * g.ldc, g.ldc, mc, g.n);
      }
    }
  }

  static void Run(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
    static constexpr Micros micro = MakeMicros(std::make_index_sequence<kNV>{});
    const size_t k = g.k;
    const size_t m_count = t.m_end - t.m_begin;
    // A few rows stream B once and are bound by its bytes, which the dot halves; more rows are
    // bound by the arithmetic, which the widened path does at the FMA rate.
    if constexpr (kWiden) {
      if (m_count > kStreamRows) return RunWidened(g, t, scratch);
    }
    const size_t kc_block = m_count <= kStreamRows ? k : kKC;
    const size_t panel_words = Pairs(k) * kNR;
    const auto* b_words = reinterpret_cast<const uint32_t*>(g.b_packed);
    auto* a_pairs = reinterpret_cast<uint32_t*>(scratch);
    const Activation tile_act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
    for (size_t pc = 0; pc < k; pc += kc_block) {
      const size_t kc = MinSize(kc_block, k - pc), pairs = Pairs(kc);
      const bool first = pc == 0, last = pc + kc == k;
      for (size_t ic = t.m_begin; ic < t.m_end; ic += kMC) {
        const size_t mc = MinSize(kMC, t.m_end - ic);
        const float* a_block = g.a_transposed ? g.a + pc * g.lda + ic : g.a + ic * g.lda + pc;
        PackA(a_block, g.lda, g.a_transposed, mc, kc, pairs, a_pairs);
        const RowTiles tiles(mc, kMR);
        for (size_t pnl = t.p_begin; pnl < t.p_end; ++pnl) {
          const size_t col0 = pnl * kNR;
          const size_t cols = MinSize(kNR, g.n - col0);
          const uint32_t* b = b_words + pnl * panel_words + pc / 2 * kNR;
          const Epilogue epi{g.bias ? g.bias + col0 : nullptr, tile_act, g.params()};
          const size_t vecs = (cols + T::W - 1) / T::W;
          for (size_t tile = 0; tile < tiles.count; ++tile) {
            const size_t ir = tiles.begin(tile), rows = tiles.rows(tile);
            micro.at[vecs - 1][rows - 1](pairs, a_pairs + ir * pairs, pairs, b, g.c + (ic + ir) * g.ldc + col0, g.ldc,
                                         cols, !first, last ? &epi : nullptr);
          }
        }
        if (last && g.act == Activation::kSoftmax) SoftmaxRows<T>(g.c + ic * g.ldc, g.ldc, mc, g.n);
      }
    }
  }
};

}  // namespace
}  // namespace maas

// Defines the entry points f32_gemm.inc declares for one bf16-weight kernel: T's register tile of
// mr rows × nv vectors, K blocks of kc (even) and A blocks of mc_tiles row tiles.
#define MAAS_DEFINE_BF16_GEMM(name, T, mr, nv, kc, mc_tiles)                                          \
  namespace maas {                                                                                    \
  using name##_driver = Bf16GemmDriver<T, mr, nv, kc, mc_tiles>;                                      \
  extern const uint32_t name##_kc = name##_driver::kKC, name##_mc = name##_driver::kMC;               \
  size_t name##_scratch(size_t k) { return name##_driver::ScratchFloats(k); }                         \
  void name##_run(const F32GemmArgs& g, const GemmTile& t, float* s) { name##_driver::Run(g, t, s); } \
  void name##_activate(Activation a, const ActivationParams& p, const float* z, float* y, size_t n) { \
    ActivateRow<T>(a, p, z, y, n);                                                                    \
  }                                                                                                   \
  }
