// The fp32 GEMM kernel table built from f32_gemm.inc, selection under an ISA cap, and B packing.
// Baseline flags only: nothing here may execute an instruction the CPU might lack.
#include <emmintrin.h>

#include <cstring>
#include <initializer_list>

#include "maas/f32_gemm.h"
#include "maas/f32_update.h"

namespace maas {

#define MAAS_F32_GEMM(name, isa, mr, nr, classes, weights, pair_align) \
  extern const uint32_t name##_kc, name##_mc;                          \
  size_t name##_scratch(size_t k);                                     \
  void name##_run(const F32GemmArgs&, const GemmTile&, float*);        \
  void name##_activate(Activation, const ActivationParams&, const float*, float*, size_t);
#include "f32_gemm.inc"
#undef MAAS_F32_GEMM

namespace {
const F32GemmKernel kKernels[] = {
#define MAAS_F32_GEMM(name, isa, mr, nr, classes, weights, pair_align) \
  {#name,      Isa::isa,        mr,          nr,                       \
   classes,    name##_kc,       name##_mc,   WeightFormat::weights,    \
   pair_align, &name##_scratch, &name##_run, &name##_activate},
#include "f32_gemm.inc"
#undef MAAS_F32_GEMM
};
constexpr size_t kKernelCount = sizeof(kKernels) / sizeof(kKernels[0]);
}  // namespace

const F32GemmKernel* F32GemmKernels(size_t* count) noexcept {
  *count = kKernelCount;
  return kKernels;
}

const F32GemmKernel* SelectF32GemmFor(Isa cap, CpuClass cls, const CpuFeatures& cpu, WeightFormat weights) noexcept {
  for (const F32GemmKernel& k : kKernels) {
    if (k.weights == weights && IsaWithin(k.isa, cap) && IsaSupportedBy(cpu, k.isa) &&
        (k.classes & CpuClassBit(cls)) != 0)
      return &k;
  }
  return nullptr;
}

const F32GemmKernel* SelectF32Gemm(Isa cap, WeightFormat weights) noexcept {
  return SelectF32GemmFor(cap, ActiveCpuClass(), DetectCpu(), weights);
}

const char* WeightFormatName(WeightFormat w) noexcept { return w == WeightFormat::kBf16 ? "bf16" : "fp32"; }

bool ParseWeightFormat(const char* text, WeightFormat* out) noexcept {
  for (WeightFormat w : {WeightFormat::kF32, WeightFormat::kBf16}) {
    if (std::strcmp(text, WeightFormatName(w)) == 0) {
      *out = w;
      return true;
    }
  }
  return false;
}

namespace {

// Bf16Bits on four lanes with SSE2 (x86-64's baseline): round to nearest even, subnormals to
// signed zero, NaNs quieted, as the scalar form. The packers ran it one float at a time, which
// bounded mixed-precision training (packing the changed weights each step was 39% of a model L
// b16 step on AMX).
inline __m128i Bf16Bits4(__m128i u) {
  const __m128i high = _mm_srli_epi32(u, 16);
  const __m128i lsb = _mm_and_si128(high, _mm_set1_epi32(1));
  const __m128i rounded = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(u, _mm_set1_epi32(0x7fff)), lsb), 16);
  const __m128i zero_exp = _mm_cmpeq_epi32(_mm_and_si128(u, _mm_set1_epi32(0x7f800000)), _mm_setzero_si128());
  const __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(u, _mm_set1_epi32(0x7fffffff)), _mm_set1_epi32(0x7f800000));
  const __m128i finite = _mm_or_si128(_mm_and_si128(zero_exp, _mm_and_si128(high, _mm_set1_epi32(0x8000))),
                                      _mm_andnot_si128(zero_exp, rounded));
  return _mm_or_si128(_mm_and_si128(nan, _mm_or_si128(high, _mm_set1_epi32(0x40))), _mm_andnot_si128(nan, finite));
}

// out[j] = Bf16Bits(lo[j]) | Bf16Bits(hi[j]) << 16 for j < cols (hi null: the high halves are zero).
void Bf16PairColumns(const float* lo, const float* hi, size_t cols, uint32_t* out) {
  size_t j = 0;
  for (; j + 4 <= cols; j += 4) {
    const __m128i l = Bf16Bits4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + j)));
    const __m128i h = hi ? Bf16Bits4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + j))) : _mm_setzero_si128();
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_or_si128(l, _mm_slli_epi32(h, 16)));
  }
  for (; j < cols; ++j) out[j] = Bf16Bits(lo[j]) | (hi ? static_cast<uint32_t>(Bf16Bits(hi[j])) << 16 : 0u);
}

// out[q] = Bf16Bits(src[2q]) | Bf16Bits(src[2q + 1]) << 16 for q < pairs, reading k floats (the
// rest zero): one row of W as the K pairs of a transposed panel's column, into `out` (stride `stride`).
void Bf16PairRow(const float* src, size_t k, size_t pairs, uint32_t* out, size_t stride) {
  size_t q = 0;
  for (; 2 * q + 8 <= k && q + 4 <= pairs; q += 4) {
    const __m128 a = _mm_loadu_ps(src + 2 * q), b = _mm_loadu_ps(src + 2 * q + 4);
    const __m128i l = Bf16Bits4(_mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))));
    const __m128i h = Bf16Bits4(_mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
    alignas(16) uint32_t words[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(words), _mm_or_si128(l, _mm_slli_epi32(h, 16)));
    for (size_t i = 0; i < 4; ++i) out[(q + i) * stride] = words[i];
  }
  for (; q < pairs; ++q) {
    const uint32_t lo = 2 * q < k ? Bf16Bits(src[2 * q]) : 0u;
    const uint32_t hi = 2 * q + 1 < k ? Bf16Bits(src[2 * q + 1]) : 0u;
    out[q * stride] = lo | (hi << 16);
  }
}

}  // namespace

size_t PackedWeightFloats(const F32GemmKernel& kernel, size_t k, size_t n) noexcept {
  if (kernel.weights == WeightFormat::kBf16) return PackedBFloats(PackedPairs(k, kernel.pair_align), n, kernel.nr);
  return PackedBFloats(k, n, kernel.nr);
}

void PackWeights(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t k, size_t n, float* dst) noexcept {
  if (kernel.weights == WeightFormat::kBf16) {
    PackBf16B(w, ldw, k, n, kernel.nr, kernel.pair_align, reinterpret_cast<uint32_t*>(dst));
  } else {
    PackF32B(w, ldw, k, n, kernel.nr, dst);
  }
}

void PackWeightsTransposed(const F32GemmKernel& kernel, const float* w, size_t ldw, size_t rows, size_t cols,
                           float* dst) noexcept {
  if (kernel.weights != WeightFormat::kBf16) return PackF32BTransposed(w, ldw, rows, cols, kernel.nr, dst);
  // B(kk, j) = W(j, kk): k = cols, n = rows; panel p holds W's rows p·nr.., pairs along W's columns.
  const uint32_t nr = kernel.nr;
  const size_t k = cols, n = rows, pairs = PackedPairs(k, kernel.pair_align);
  auto* out = reinterpret_cast<uint32_t*>(dst);
  for (size_t p = 0; p < PackedPanels(n, nr); ++p) {
    uint32_t* panel = out + p * pairs * nr;
    for (size_t j = 0; j < nr; ++j) {
      const size_t row = p * nr + j;
      if (row < n) {
        Bf16PairRow(w + row * ldw, k, pairs, panel + j, nr);
      } else {
        for (size_t q = 0; q < pairs; ++q) panel[q * nr + j] = 0;
      }
    }
  }
}

void PackBf16B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, uint32_t pair_align,
               uint32_t* dst) noexcept {
  const size_t panels = PackedPanels(n, nr), pairs = PackedPairs(k, pair_align), data_pairs = (k + 1) / 2;
  // Row pair by row pair, each pair of W's rows read once, start to end, into every panel: panel
  // by panel it read nr columns of each row, rows a whole row apart, and packing the changed
  // weights each step is what mixed-precision training waits on.
  for (size_t q = 0; q < pairs; ++q) {
    const bool data = q < data_pairs;  // past it: padding to whole AMX tiles
    const float* lo = data ? w + 2 * q * ldw : nullptr;
    const float* hi = data && 2 * q + 1 < k ? lo + ldw : nullptr;
    for (size_t p = 0; p < panels; ++p) {
      uint32_t* out = dst + p * pairs * nr + q * nr;
      const size_t col0 = p * nr, cols = !data ? 0 : n - col0 < nr ? n - col0 : nr;
      if (cols) Bf16PairColumns(lo + col0, hi ? hi + col0 : nullptr, cols, out);
      for (size_t j = cols; j < nr; ++j) out[j] = 0;
    }
  }
}

const F32GemmKernel* FindF32Gemm(const char* name) noexcept {
  for (const F32GemmKernel& k : kKernels) {
    if (std::strcmp(k.name, name) == 0) return &k;
  }
  return nullptr;
}

void PackF32B(const float* w, size_t ldw, size_t k, size_t n, uint32_t nr, float* dst) noexcept {
  const size_t panels = PackedPanels(n, nr);
  for (size_t p = 0; p < panels; ++p) {
    const size_t col0 = p * nr;
    const size_t cols = n - col0 < nr ? n - col0 : nr;
    float* panel = dst + p * k * nr;
    for (size_t kk = 0; kk < k; ++kk) {
      std::memcpy(panel + kk * nr, w + kk * ldw + col0, cols * sizeof(float));
      std::memset(panel + kk * nr + cols, 0, (nr - cols) * sizeof(float));
    }
  }
}

void PackF32BTransposed(const float* w, size_t ldw, size_t rows, size_t cols, uint32_t nr, float* dst) noexcept {
  // B(kk, j) = W(j, kk): panel p holds B's columns p·nr.. = W's rows p·nr..
  // In blocks of 16 K rows: the block's nr × 16 floats of the panel stay in L1 while every W row
  // fills its column of them (column by column over all of K, each write went to another line).
  constexpr size_t kBlock = 16;
  const size_t k = cols, n = rows;
  const size_t panels = PackedPanels(n, nr);
  for (size_t p = 0; p < panels; ++p) {
    float* panel = dst + p * k * nr;
    for (size_t k0 = 0; k0 < k; k0 += kBlock) {
      const size_t k1 = k0 + kBlock < k ? k0 + kBlock : k;
      for (size_t j = 0; j < nr; ++j) {
        const size_t row = p * nr + j;
        if (row < n) {
          const float* src = w + row * ldw;
          for (size_t kk = k0; kk < k1; ++kk) panel[kk * nr + j] = src[kk];
        } else {
          for (size_t kk = k0; kk < k1; ++kk) panel[kk * nr + j] = 0.f;
        }
      }
    }
  }
}

void PackF32Bias(const float* bias, size_t n, uint32_t nr, float* dst) noexcept {
  const size_t padded = PackedBiasFloats(n, nr);
  if (bias) std::memcpy(dst, bias, n * sizeof(float));
  std::memset(dst + (bias ? n : 0), 0, (padded - (bias ? n : 0)) * sizeof(float));
}

#define MAAS_F32_UPDATE(name, isa) void name##_run(const F32UpdateArgs&, size_t, size_t);
#include "f32_update.inc"
#undef MAAS_F32_UPDATE

namespace {
const F32UpdateKernel kUpdateKernels[] = {
#define MAAS_F32_UPDATE(name, isa) {#name, Isa::isa, &name##_run},
#include "f32_update.inc"
#undef MAAS_F32_UPDATE
};
}  // namespace

const F32UpdateKernel* F32UpdateKernels(size_t* count) noexcept {
  *count = sizeof(kUpdateKernels) / sizeof(kUpdateKernels[0]);
  return kUpdateKernels;
}

const F32UpdateKernel* SelectF32Update(Isa isa) noexcept {
  for (const F32UpdateKernel& k : kUpdateKernels) {
    if (IsaWithin(k.isa, isa) && IsaSupported(k.isa)) return &k;
  }
  return nullptr;
}

}  // namespace maas
