// Rounding fp32 to bf16 pairs with vcvtne2ps2bf16, shared by the AVX512_BF16 and AMX-BF16
// kernels. Include only from a translation unit built with AVX512_BF16 flags.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "f32_zmm_traits.h"

namespace maas {
namespace {

// n floats to bf16 pairs with vcvtne2ps2bf16 (Bf16Bits' rounding), 32 at a time, masked tail.
inline void ToPairsAvx512Bf16(const float* x, size_t n, uint32_t* dst) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(dst + i / 2, (__m512i)h);
  }
  if (i < n) {
    const size_t rest = n - i, lo = rest < 16 ? rest : 16, hi = rest - lo;
    const __m512 a = _mm512_maskz_loadu_ps(VAvx512::Mask(lo), x + i);
    const __m512 b = _mm512_maskz_loadu_ps(VAvx512::Mask(hi), x + i + 16);
    _mm512_mask_storeu_epi32(dst + i / 2, VAvx512::Mask((rest + 1) / 2), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
}

}  // namespace
}  // namespace maas
