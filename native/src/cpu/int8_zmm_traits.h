// AVX-512 vector traits for the int8 driver: 16 int32 lanes, masked tails, vpdpbusd as the dot.
// Shared by the AVX512-VNNI kernel and the AMX kernel's epilogue; include only from files built
// with AVX512-VNNI flags.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace maas {
namespace {

struct VZmmVnni {
  using I = __m512i;
  using F = __m512;
  static constexpr size_t W = 16;
  static __mmask16 Mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static I zero_i() { return _mm512_setzero_si512(); }
  static F zero_f() { return _mm512_setzero_ps(); }
  static I set1_i(int32_t v) { return _mm512_set1_epi32(v); }
  static F set1_f(float v) { return _mm512_set1_ps(v); }
  static I load_b(const int8_t* p) { return _mm512_loadu_si512(p); }
  static I bcast_a(int32_t four_bytes) { return _mm512_set1_epi32(four_bytes); }
  // acc += Σ of four u8·s8 products per lane, no saturation.
  static I dot(I acc, I a, I b) { return _mm512_dpbusd_epi32(acc, a, b); }
  static I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub_i(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I load_i(const int32_t* p) { return _mm512_loadu_si512(p); }
  static F cvt_f(I x) { return _mm512_cvtepi32_ps(x); }
  static I cvt_i(F x) { return _mm512_cvtps_epi32(x); }
  static F load_f(const float* p) { return _mm512_loadu_ps(p); }
  static F load_f_tail(const float* p, size_t n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add_f(F a, F b) { return _mm512_add_ps(a, b); }
  static F div_f(F a, F b) { return _mm512_div_ps(a, b); }
  static F sub_f(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul_f(F a, F b) { return _mm512_mul_ps(a, b); }
  // a > b ? x : y per lane (false for NaN, as the reference's comparison)
  static F select_gt(F a, F b, F x, F y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
  static F max_f(F a, F b) { return _mm512_max_ps(a, b); }
  static F min_f(F a, F b) { return _mm512_min_ps(a, b); }
  static F round_f(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void store_f(float* p, F x, size_t n) {
    if (n == W)
      _mm512_storeu_ps(p, x);
    else
      _mm512_mask_storeu_ps(p, Mask(n), x);
  }
  static void store_u8(uint8_t* p, I x, size_t n) { _mm512_mask_cvtepi32_storeu_epi8(p, Mask(n), x); }
};

}  // namespace
}  // namespace maas
