// bf16-weight GEMM for AVX512_BF16: vdpbf16ps multiplies a pair of bf16 along K per fp32 lane, so
// one instruction does the work of two FMAs on half the bytes of B. A 6×64 register tile (24
// accumulators, A pairs broadcast from memory, 4 B vectors a step) as the fp32 Zen 5 kernel; its
// blocking is in f32_gemm.inc.
// Built with this file's own ISA flags; dispatch calls it only where CPUID and XCR0 allow.
#include <immintrin.h>

#include "bf16_gemm_driver.h"
#include "bf16_zmm_pairs.h"
#include "f32_zmm_traits.h"

namespace maas {
namespace {

struct TAvx512Bf16 : VAvx512 {
  using P = __m512i;
  static P bcast_pair(const uint32_t* p) { return _mm512_set1_epi32(static_cast<int>(*p)); }
  static P load_pairs(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static R dot2(R acc, P a, P b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  // vcvtne2ps2bf16 rounds to nearest even, quiets NaNs and flushes subnormals: Bf16Bits' rule.
  static void to_pairs(const float* x, size_t n, uint32_t* dst) { ToPairsAvx512Bf16(x, n, dst); }
};

// Intel without AMX: vdpbf16ps issues at about half the FMA rate there (measured on Emerald
// Rapids: 0.52), so past the streaming rows the products run as fp32 FMAs on widened operands
// (see Bf16GemmDriver::RunWidened), with the fp32 kernel's register broadcasts and blocking.
struct TAvx512Bf16Widened : TAvx512Bf16 {
  static constexpr bool kWidenBlocked = true;
  static R fmadd_bcast(const float* p, R b, R acc) { return _mm512_fmadd_ps(_mm512_set1_ps(*p), b, acc); }
  // vcvtneps2bf16 and back: Bf16Bits' rounding, 16 at a time, masked tail.
  static void round_floats(float* x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, Widen(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i))));
    if (i < n) {
      const __mmask16 m = VAvx512::Mask(n - i);
      _mm512_mask_storeu_ps(x + i, m, Widen(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i))));
    }
  }
  // Pair row q (nr words: K 2q in the low halves, 2q + 1 in the high) to float rows 2q and 2q + 1;
  // nr is a multiple of 16.
  static void widen_pairs(const uint32_t* b, size_t rows, size_t nr, float* dst) {
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (size_t p = 0; p < rows; p += 2) {
      const uint32_t* src = b + p / 2 * nr;
      for (size_t j = 0; j < nr; j += 16) {
        const __m512i w = _mm512_loadu_si512(src + j);
        _mm512_storeu_ps(dst + p * nr + j, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
        if (p + 1 < rows) _mm512_storeu_ps(dst + (p + 1) * nr + j, _mm512_castsi512_ps(_mm512_and_si512(w, high)));
      }
    }
  }

 private:
  static __m512 Widen(__m256bh h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
  }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_GEMM(bf16_gemm_bias_act_6x64__avx512bf16_widened, TAvx512Bf16Widened, 6, 4, 768, 96)
MAAS_DEFINE_BF16_GEMM(bf16_gemm_bias_act_6x64__avx512bf16, TAvx512Bf16, 6, 4, 1536, 48)
