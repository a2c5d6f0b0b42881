// The generic fp32 GEMM driver: cache blocking, A packing, tails and the fused bias+activation
// epilogue, written once over a vector-traits type V. Each ISA file supplies V and instantiates it.
//
// Include only from an ISA translation unit: everything here is in an anonymous namespace so
// code compiled with one ISA's flags can never be merged into another's by the linker.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "maas/f32_gemm.h"

namespace maas {
namespace {

inline size_t MinSize(size_t a, size_t b) { return a < b ? a : b; }

// exp(x) for x in float range: 2^n · p(r), r = x − n·ln2 in [−ln2/2, ln2/2], Taylor to r^7
// (truncation < 1e-8 relative). Inputs are clamped so 2^n stays a normal float.
template <class V>
inline typename V::R Exp(typename V::R x) {
  using R = typename V::R;
  x = V::min(V::max(x, V::set1(-87.3365402f)), V::set1(88.3762626f));
  const R n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  R r = V::fmadd(n, V::set1(-0.693359375f), x);  // ln2 split in two for an exact first step
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  R p = V::set1(1.f / 5040);
  p = V::fmadd(p, r, V::set1(1.f / 720));
  p = V::fmadd(p, r, V::set1(1.f / 120));
  p = V::fmadd(p, r, V::set1(1.f / 24));
  p = V::fmadd(p, r, V::set1(1.f / 6));
  p = V::fmadd(p, r, V::set1(0.5f));
  p = V::fmadd(p, r, V::set1(1.f));
  p = V::fmadd(p, r, V::set1(1.f));
  return V::mul(p, V::pow2(n));
}

// erfc(z) for z >= 0 with a fractional error below 1.2e-7 everywhere (the Chebyshev-fitted
// t·exp(−z² + P(t)), t = 1/(1 + z/2), of Numerical Recipes' erfcc): relative precision holds in
// the tail, which GELU's negative side needs.
template <class V>
inline typename V::R Erfc(typename V::R z) {
  using R = typename V::R;
  const R t = V::div(V::set1(1.f), V::fmadd(z, V::set1(0.5f), V::set1(1.f)));
  R p = V::set1(0.17087277f);
  p = V::fmadd(p, t, V::set1(-0.82215223f));
  p = V::fmadd(p, t, V::set1(1.48851587f));
  p = V::fmadd(p, t, V::set1(-1.13520398f));
  p = V::fmadd(p, t, V::set1(0.27886807f));
  p = V::fmadd(p, t, V::set1(-0.18628806f));
  p = V::fmadd(p, t, V::set1(0.09678418f));
  p = V::fmadd(p, t, V::set1(0.37409196f));
  p = V::fmadd(p, t, V::set1(1.00002368f));
  p = V::fmadd(p, t, V::set1(-1.26551223f));
  return V::mul(t, Exp<V>(V::sub(p, V::mul(z, z))));
}

// log(1 + u) for u in [0, 1]: 2·atanh(s) with s = u / (2 + u) <= 1/3, odd series to s^17
// (truncation < 2e-10). s is formed without computing 1 + u, so tiny u keeps its precision.
template <class V>
inline typename V::R Log1pUnit(typename V::R u) {
  using R = typename V::R;
  const R s = V::div(u, V::add(u, V::set1(2.f)));
  const R s2 = V::mul(s, s);
  R p = V::set1(1.f / 17);
  p = V::fmadd(p, s2, V::set1(1.f / 15));
  p = V::fmadd(p, s2, V::set1(1.f / 13));
  p = V::fmadd(p, s2, V::set1(1.f / 11));
  p = V::fmadd(p, s2, V::set1(1.f / 9));
  p = V::fmadd(p, s2, V::set1(1.f / 7));
  p = V::fmadd(p, s2, V::set1(1.f / 5));
  p = V::fmadd(p, s2, V::set1(1.f / 3));
  p = V::fmadd(p, s2, V::set1(1.f));
  return V::mul(V::add(s, s), p);
}

template <class V>
inline typename V::R Sigmoid(typename V::R x) {
  return V::div(V::set1(1.f), V::add(V::set1(1.f), Exp<V>(V::sub(V::zero(), x))));
}

// Element-wise activations (softmax is a row pass, see SoftmaxRows); ActivateScalar in
// maas/activation.h is the definition each case follows.
template <class V>
inline typename V::R Activate(Activation act, typename V::R x, const ActivationParams& prm) {
  using R = typename V::R;
  switch (act) {
    case Activation::kRelu:
      return V::max(x, V::zero());
    case Activation::kLeakyRelu:
      return V::select_pos(x, x, V::mul(x, V::set1(prm.alpha)));
    case Activation::kElu:
      return V::select_pos(x, x, V::mul(V::set1(prm.alpha), V::sub(Exp<V>(V::min(x, V::zero())), V::set1(1.f))));
    case Activation::kSigmoid:
      return Sigmoid<V>(x);
    case Activation::kTanh: {
      // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), sign restored: no overflow for large |x|.
      const R t = Exp<V>(V::mul(V::abs(x), V::set1(-2.f)));
      const R mag = V::div(V::sub(V::set1(1.f), t), V::add(V::set1(1.f), t));
      return V::copysign(mag, x);
    }
    case Activation::kRelu6:
      return V::min(V::max(x, V::zero()), V::set1(6.f));
    case Activation::kHardSigmoid:
      return V::min(V::max(V::fmadd(x, V::set1(0.2f), V::set1(0.5f)), V::zero()), V::set1(1.f));
    case Activation::kSwish:
      return V::div(x, V::add(V::set1(1.f), Exp<V>(V::sub(V::zero(), x))));
    case Activation::kGelu: {
      // Φ(x) = erfc(−x/√2)/2: from erfc(|x|/√2) directly for x < 0, as 1 − erfc/2 for x > 0.
      const R half_e = V::mul(V::set1(0.5f), Erfc<V>(V::mul(V::abs(x), V::set1(0.70710678118654752f))));
      return V::mul(x, V::select_pos(x, V::sub(V::set1(1.f), half_e), half_e));
    }
    case Activation::kSoftplus:
      return V::add(V::max(x, V::zero()), Log1pUnit<V>(Exp<V>(V::sub(V::zero(), V::abs(x)))));
    case Activation::kSoftsign:
      return V::div(x, V::add(V::set1(1.f), V::abs(x)));
    case Activation::kSelu: {
      const R neg = V::mul(V::set1(static_cast<float>(kSeluAlpha)), V::sub(Exp<V>(V::min(x, V::zero())), V::set1(1.f)));
      return V::mul(V::set1(static_cast<float>(kSeluScale)), V::select_pos(x, x, neg));
    }
    case Activation::kExponential: {
      // Exp clamps its input to [−87.34, 88.38] (so 2^n stays a normal float), short of both ends
      // of the float range: beyond |x| = 87, exp(x/2)² reaches ln(FLT_MAX) = 88.72 and overflows to
      // inf above it, and underflows gradually through the subnormals, as libm's exp does.
      const R h = Exp<V>(V::mul(x, V::set1(0.5f)));
      return V::select_pos(V::sub(V::abs(x), V::set1(87.f)), V::mul(h, h), Exp<V>(x));
    }
    case Activation::kKerasRelu: {
      // x − threshold > 0 exactly when x > threshold (subnormals make the difference nonzero).
      const R d = V::sub(x, V::set1(prm.threshold));
      return V::select_pos(d, V::min(x, V::set1(prm.max_value)), V::mul(V::set1(prm.alpha), d));
    }
    case Activation::kGeluTanh: {
      const R x2 = V::mul(x, x);
      const R two_u = V::mul(V::set1(static_cast<float>(kGeluTanhScale)),
                             V::mul(x, V::fmadd(x2, V::set1(static_cast<float>(kGeluTanhCubic)), V::set1(1.f))));
      return V::div(x, V::add(V::set1(1.f), Exp<V>(V::sub(V::zero(), two_u))));
    }
    case Activation::kLinear:
    case Activation::kSoftmax:
      break;
  }
  return x;
}

// Numerically stable softmax over each of `rows` rows of n floats.
template <class V>
void SoftmaxRows(float* c, size_t ldc, size_t rows, size_t n) {
  using R = typename V::R;
  constexpr size_t W = V::W;
  const float neg_inf = -__builtin_huge_valf();
  for (size_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    R vmax = V::set1(neg_inf);
    size_t j = 0;
    for (; j + W <= n; j += W) vmax = V::max(vmax, V::load(row + j));
    if (j < n) vmax = V::max(vmax, V::load_tail(row + j, n - j, neg_inf));
    const R mx = V::set1(V::hmax(vmax));
    R vsum = V::zero();
    for (j = 0; j + W <= n; j += W) {
      const R e = Exp<V>(V::sub(V::load(row + j), mx));
      V::store(row + j, e);
      vsum = V::add(vsum, e);
    }
    if (j < n) {
      const R e = Exp<V>(V::sub(V::load_tail(row + j, n - j, neg_inf), mx));
      V::store_tail(row + j, e, n - j);
      vsum = V::add(vsum, V::load_tail(row + j, n - j, 0.f));
    }
    const R inv = V::set1(1.f / V::hsum(vsum));
    for (j = 0; j + W <= n; j += W) V::store(row + j, V::mul(V::load(row + j), inv));
    if (j < n) V::store_tail(row + j, V::mul(V::load_tail(row + j, n - j, 0.f), inv), n - j);
  }
}

// y = act(z) over n floats, W at a time with a masked tail.
template <class V>
void ActivateRow(Activation act, const ActivationParams& params, const float* z, float* y, size_t n) {
  constexpr size_t W = V::W;
  size_t i = 0;
  for (; i + W <= n; i += W) V::store(y + i, Activate<V>(act, V::load(z + i), params));
  if (i < n) V::store_tail(y + i, Activate<V>(act, V::load_tail(z + i, n - i, 0.f), params), n - i);
}

struct Epilogue {
  const float* bias;  // this panel's nr floats, or nullptr
  Activation act;     // kLinear for softmax layers: the row pass runs after the last panel
  ActivationParams params;
};

// Writes a register tile's first `cols` columns to C: added to what C holds (`accumulate`, a K
// block after the first), then on the last K block the epilogue (bias, activation) on registers
// before the one store.
template <class V, int kRows, int kVecs>
inline void StoreTile(typename V::R (&acc)[kRows][kVecs], float* c, size_t ldc, size_t cols, bool accumulate,
                      const Epilogue* epi) {
  using R = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
    float* row = c + i * ldc;
#pragma GCC unroll 8
    for (int j = 0; j < kVecs; ++j) {
      const size_t col = j * V::W;
      if (col >= cols) break;
      const size_t count = MinSize(V::W, cols - col);
      R x = acc[i][j];
      if (accumulate) x = V::add(x, count == V::W ? V::load(row + col) : V::load_tail(row + col, count, 0.f));
      if (epi) {
        if (epi->bias) x = V::add(x, V::load(epi->bias + col));  // bias is padded to NR
        // ReLU and linear inline: Activate is too large for the compiler to inline, and a call
        // per vector costs model S's hidden layers about a tenth of their time.
        if (epi->act == Activation::kRelu)
          x = V::max(x, V::zero());
        else if (epi->act != Activation::kLinear)
          x = Activate<V>(epi->act, x, epi->params);
      }
      if (count == V::W)
        V::store(row + col, x);
      else
        V::store_tail(row + col, x, count);
    }
  }
}

// Row tiles of a block of mc rows: as few tiles as mr allows, sizes differing by at most one
// (16 rows run as 8 + 8, not 14 + 2, whose 2-row tile would be bound by loads, not FMAs).
struct RowTiles {
  size_t count, base, extra;
  RowTiles(size_t mc, size_t mr) : count((mc + mr - 1) / mr), base(mc / count), extra(mc % count) {}
  size_t begin(size_t t) const { return t * base + MinSize(t, extra); }
  size_t rows(size_t t) const { return base + (t < extra ? 1 : 0); }
};

// Every (rows, vectors) instantiation of a micro-kernel, so a tile of any size up to mr × nv
// calls code with its loops fully unrolled: table[vecs - 1][rows - 1].
template <class Fn, int kMR, int kNV>
struct MicroTable {
  Fn at[kNV][kMR];
};

// kKC_: the K block (a KC×NR panel of B is reused by every row tile of an A block); kMCTiles:
// row tiles per A block (packed once per K block, streamed once per B panel); kPrefetchSteps: how
// many K steps ahead the tile asks for B's lines (0: leave it to the hardware); kPrefetchCSteps:
// how many K steps before its end the tile asks for its C lines (0: never). All per CPU class.
template <class V, int kMR, int kNV, int kKC_ = 256, int kMCTiles = 24, int kPrefetchSteps = 0, int kPrefetchCSteps = 0>
struct F32GemmDriver {
  using R = typename V::R;
  static constexpr size_t kNR = V::W * kNV;
  static constexpr size_t kKC = kKC_;
  static constexpr size_t kMC = kMR * kMCTiles;

  // Up to this many rows, each B panel streams once over the whole K (few rows reuse it little,
  // so it is read sequentially from memory while A and the C tiles stay close).
  static constexpr size_t kStreamRows = 2 * kMR;

  // A packed A block is kMC rows × min(kKC, k); the streaming path's rows span the whole k.
  static size_t ScratchFloats(size_t k) {
    const size_t block = kMC * MinSize(kKC, k);
    return block > kStreamRows * k ? block : kStreamRows * k;
  }

  // An R×NR register tile over kc steps. a[k·ka + i] is row i's element k; b holds kc rows of NR.
  // kPacked: a is k-major, row i of step p at a[p·lda + i] (a packed micro-panel with lda = kMR,
  // or transposed A read in place); otherwise a is row-major A with row stride lda, read in place.
  // kVecs <= kNV: the vectors of the panel the tile computes (a panel narrower than NR, the last
  // of an N that is not a multiple of NR, or a layer narrower than the tile, skips the rest).
  template <int kRows, bool kPacked, int kVecs>
  static void Micro(size_t kc, const float* a, size_t lda, const float* b, float* c, size_t ldc, size_t cols,
                    bool accumulate, const Epilogue* epi) {
    R acc[kRows][kVecs];
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < kVecs; ++j) acc[i][j] = V::zero();
    auto steps = [&](size_t from, size_t to) {
      for (size_t p = from; p < to; ++p) {
        // A one-row tile does not prefetch: at batch 1 (a matrix-vector product streaming B) the
        // prefetches cost 15% on an Intel Xeon with AMX (L b1, interleaved), and a one-row tile
        // after a taller one finds B already in cache. From 4 rows up they gain 8-15% there.
        if constexpr (kPrefetchSteps > 0 && kRows > 1) {
          // One prefetch per line of the B row kPrefetchSteps ahead (a row is kNR floats).
#pragma GCC unroll 8
          for (int j = 0; j < kVecs; ++j) __builtin_prefetch(b + (p + kPrefetchSteps) * kNR + j * V::W);
        }
        R bv[kVecs];
#pragma GCC unroll 8
        for (int j = 0; j < kVecs; ++j) bv[j] = V::load(b + p * kNR + j * V::W);
#pragma GCC unroll 16
        for (int i = 0; i < kRows; ++i) {
          const float* ai = kPacked ? a + p * lda + i : a + i * lda + p;
#pragma GCC unroll 8
          for (int j = 0; j < kVecs; ++j) acc[i][j] = V::fmadd_bcast(ai, bv[j], acc[i][j]);
        }
      }
    };
    if constexpr (kPrefetchCSteps > 0) {
      // C's lines (read when accumulating, written either way) come in while the last steps run,
      // rather than stalling the stores: a K block's pass over C finds it in memory, not cache.
      const size_t split = kc > kPrefetchCSteps ? kc - kPrefetchCSteps : 0;
      steps(0, split);
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < kVecs; ++j) __builtin_prefetch(c + i * ldc + j * V::W, 1);
      steps(split, kc);
    } else {
      steps(0, kc);
    }
    StoreTile<V>(acc, c, ldc, cols, accumulate, epi);
  }

  using MicroFn = void (*)(size_t, const float*, size_t, const float*, float*, size_t, size_t, bool, const Epilogue*);
  using Micros = MicroTable<MicroFn, kMR, kNV>;
  template <bool kPacked, int kVecs, size_t... I>
  static constexpr void FillMicro(Micros& t, std::index_sequence<I...>) {
    ((t.at[kVecs - 1][I] = &Micro<static_cast<int>(I) + 1, kPacked, kVecs>), ...);
  }
  template <bool kPacked, size_t... J>
  static constexpr Micros MakeMicros(std::index_sequence<J...>) {
    Micros t{};
    (FillMicro<kPacked, static_cast<int>(J) + 1>(t, std::make_index_sequence<kMR>{}), ...);
    return t;
  }

  // Copies each row tile of A into a k-major micro-panel: row i of step p at panel[p·kMR + i],
  // tile t's panel at dst + t·kMR·kc.
  // With `transposed`, A(r, p) is a[p·lda + r]: rows of the panel are contiguous in the source.
  static void PackA(const float* a, size_t lda, bool transposed, const RowTiles& tiles, size_t kc, float* dst) {
    for (size_t t = 0; t < tiles.count; ++t) {
      const size_t r0 = tiles.begin(t), rows = tiles.rows(t);
      float* panel = dst + t * kMR * kc;
      if (transposed) {
        for (size_t p = 0; p < kc; ++p) {
          const float* src = a + p * lda + r0;
          for (size_t i = 0; i < rows; ++i) panel[p * kMR + i] = src[i];
        }
      } else {
        for (size_t i = 0; i < rows; ++i) {
          const float* src = a + (r0 + i) * lda;
          for (size_t p = 0; p < kc; ++p) panel[p * kMR + i] = src[p];
        }
      }
    }
  }

  // Packing A costs a pass over A per K block; it pays off only when many B panels reuse it.
  static constexpr size_t kPackMinPanels = 4;

  // Outputs at most this wide run as dot products over K: a register tile would spend most of
  // its NR columns on padding (a 1-unit regression or sigmoid head is the common case).
  static constexpr size_t kNarrowN = 4;

  // y[i][j] = act(dot(a_i, w_j) + bias_j) for n <= kNarrowN, vectorized along K. The columns are
  // first gathered out of the packed panel into scratch so each dot reads contiguous floats.
  static void RunNarrow(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
    const size_t k = g.k, n = g.n;
    for (size_t j = 0; j < n; ++j)
      for (size_t p = 0; p < k; ++p) scratch[j * k + p] = g.b_packed[p * kNR + j];
    const Activation act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
    const ActivationParams prm = g.params();
    for (size_t i = t.m_begin; i < t.m_end; ++i) {
      const float* a = g.a + i * g.lda;
      for (size_t j = 0; j < n; ++j) {
        const float* w = scratch + j * k;
        R acc0 = V::zero(), acc1 = V::zero();
        size_t p = 0;
        for (; p + 2 * V::W <= k; p += 2 * V::W) {
          acc0 = V::fmadd(V::load(a + p), V::load(w + p), acc0);
          acc1 = V::fmadd(V::load(a + p + V::W), V::load(w + p + V::W), acc1);
        }
        for (; p < k; p += V::W) {
          const size_t count = MinSize(V::W, k - p);
          acc0 = V::fmadd(V::load_tail(a + p, count, 0.f), V::load_tail(w + p, count, 0.f), acc0);
        }
        g.c[i * g.ldc + j] = V::hsum(V::add(acc0, acc1)) + (g.bias ? g.bias[j] : 0.f);
      }
    }
    // The activation over the tile's outputs at once, W at a time: one vector pass for W rows of a
    // one-unit head rather than one (mostly empty) vector per row.
    float* c = g.c + t.m_begin * g.ldc;
    const size_t rows = t.m_end - t.m_begin;
    if (act != Activation::kLinear) {
      if (g.ldc == n) {
        ActivateRow<V>(act, prm, c, c, rows * n);
      } else {
        for (size_t i = 0; i < rows; ++i) ActivateRow<V>(act, prm, c + i * g.ldc, c + i * g.ldc, n);
      }
    }
    if (g.act == Activation::kSoftmax) SoftmaxRows<V>(c, g.ldc, rows, n);
  }

  static void Run(const F32GemmArgs& g, const GemmTile& t, float* scratch) {
    if (g.n <= kNarrowN && !g.a_transposed) return RunNarrow(g, t, scratch);
    static constexpr Micros packed = MakeMicros<true>(std::make_index_sequence<kNV>{});
    static constexpr Micros direct = MakeMicros<false>(std::make_index_sequence<kNV>{});
    const size_t k = g.k;
    const size_t m_count = t.m_end - t.m_begin;
    const size_t kc_block = m_count <= kStreamRows ? k : kKC;
    // Transposed A is already k-major: the microkernel reads it in place like a packed panel.
    const bool pack = !g.a_transposed && m_count > 1 && t.p_end - t.p_begin >= kPackMinPanels;
    const Activation tile_act = g.act == Activation::kSoftmax ? Activation::kLinear : g.act;
    for (size_t pc = 0; pc < k; pc += kc_block) {
      const size_t kc = MinSize(kc_block, k - pc);
      const bool first = pc == 0, last = pc + kc == k;
      for (size_t ic = t.m_begin; ic < t.m_end; ic += kMC) {
        const size_t mc = MinSize(kMC, t.m_end - ic);
        const float* a_block = g.a_transposed ? g.a + pc * g.lda + ic : g.a + ic * g.lda + pc;
        const RowTiles tiles(mc, kMR);
        if (pack) PackA(a_block, g.lda, g.a_transposed, tiles, kc, scratch);
        for (size_t pnl = t.p_begin; pnl < t.p_end; ++pnl) {
          const size_t col0 = pnl * kNR;
          const size_t cols = MinSize(kNR, g.n - col0);
          const float* b = g.b_packed + pnl * k * kNR + pc * kNR;
          const Epilogue epi{g.bias ? g.bias + col0 : nullptr, tile_act, g.params()};
          const size_t vecs = (cols + V::W - 1) / V::W;
          for (size_t tile = 0; tile < tiles.count; ++tile) {
            const size_t ir = tiles.begin(tile), rows = tiles.rows(tile);
            float* c = g.c + (ic + ir) * g.ldc + col0;
            if (pack) {
              packed.at[vecs - 1][rows - 1](kc, scratch + tile * kMR * kc, kMR, b, c, g.ldc, cols, !first,
                                            last ? &epi : nullptr);
            } else if (g.a_transposed) {
              packed.at[vecs - 1][rows - 1](kc, a_block + ir, g.lda, b, c, g.ldc, cols, !first, last ? &epi : nullptr);
            } else {
              direct.at[vecs - 1][rows - 1](kc, a_block + ir * g.lda, g.lda, b, c, g.ldc, cols, !first,
                                            last ? &epi : nullptr);
            }
          }
        }
        if (last && g.act == Activation::kSoftmax) SoftmaxRows<V>(g.c + ic * g.ldc, g.ldc, mc, g.n);
      }
    }
  }
};

}  // namespace
}  // namespace maas

// Defines the entry points f32_gemm.inc declares for one kernel: V's register tile of mr rows ×
// nv vectors, with the default blocking, or with its class's (MAAS_DEFINE_F32_GEMM_BLOCKED, and
// _PREFETCH for a class that wants B prefetched in software).
#define MAAS_DEFINE_F32_GEMM_TUNED(name, V, mr, nv, kc, mc_tiles, pf, pfc)                            \
  namespace maas {                                                                                    \
  using name##_driver = F32GemmDriver<V, mr, nv, kc, mc_tiles, pf, pfc>;                              \
  static_assert(name##_driver::kNR > 0, "kernel tile");                                               \
  extern const uint32_t name##_kc = name##_driver::kKC, name##_mc = name##_driver::kMC;               \
  size_t name##_scratch(size_t k) { return name##_driver::ScratchFloats(k); }                         \
  void name##_run(const F32GemmArgs& g, const GemmTile& t, float* s) { name##_driver::Run(g, t, s); } \
  void name##_activate(Activation a, const ActivationParams& p, const float* z, float* y, size_t n) { \
    ActivateRow<V>(a, p, z, y, n);                                                                    \
  }                                                                                                   \
  }
#define MAAS_DEFINE_F32_GEMM_PREFETCH(name, V, mr, nv, kc, mc_tiles, pf) \
  MAAS_DEFINE_F32_GEMM_TUNED(name, V, mr, nv, kc, mc_tiles, pf, 0)
#define MAAS_DEFINE_F32_GEMM_BLOCKED(name, V, mr, nv, kc, mc_tiles) \
  MAAS_DEFINE_F32_GEMM_PREFETCH(name, V, mr, nv, kc, mc_tiles, 0)
#define MAAS_DEFINE_F32_GEMM(name, V, mr, nv) MAAS_DEFINE_F32_GEMM_BLOCKED(name, V, mr, nv, 256, 24)
