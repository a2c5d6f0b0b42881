// The fp32 AVX-512 vector traits the fp32 and bf16 GEMM drivers and the update pass run over.
// Include only from a translation unit built with AVX-512 F/BW/DQ/VL flags.
#pragma once
#include <immintrin.h>

#include <cstddef>

namespace maas {
namespace {

struct VAvx512 {
  using R = __m512;
  static constexpr size_t W = 16;
  static __mmask16 Mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(float x) { return _mm512_set1_ps(x); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static R load_tail(const float* p, size_t n, float fill) { return _mm512_mask_loadu_ps(set1(fill), Mask(n), p); }
  static void store(float* p, R x) { _mm512_storeu_ps(p, x); }
  static void store_tail(float* p, R x, size_t n) { _mm512_mask_storeu_ps(p, Mask(n), x); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  // acc += broadcast(*p) · b with the broadcast folded into the FMA's memory operand ({1to16}):
  // one load+FMA op instead of a separate broadcast op per row.
  static R fmadd_bcast(const float* p, R b, R acc) {
    __asm__("vfmadd231ps %[p]%{1to16%}, %[b], %[acc]" : [acc] "+v"(acc) : [b] "v"(b), [p] "m"(*p));
    return acc;
  }
  static R sqrt(R x) { return _mm512_sqrt_ps(x); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static R abs(R x) { return _mm512_abs_ps(x); }
  static R copysign(R mag, R sign) {
    const __m512i sign_bit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(mag), _mm512_and_si512(_mm512_castps_si512(sign), sign_bit)));
  }
  static R select_pos(R x, R a, R b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_GT_OQ), b, a); }
  static R round(R x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static R pow2(R n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static float hmax(R x) { return _mm512_reduce_max_ps(x); }
  static float hsum(R x) { return _mm512_reduce_add_ps(x); }
};

}  // namespace
}  // namespace maas
