// AVX2 vector traits for the int8 driver: 8 int32 lanes. The dot product is vpmaddubsw +
// vpmaddwd, whose int16 pair sums saturate unless activations stay in 7 bits (the AVX2 kernel's
// a_max is 127); the AVX-VNNI file overrides dot with the VEX vpdpbusd. Include only from files
// built with AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace maas {
namespace {

struct VYmm {
  using I = __m256i;
  using F = __m256;
  static constexpr size_t W = 8;
  static I Mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static I zero_i() { return _mm256_setzero_si256(); }
  static F zero_f() { return _mm256_setzero_ps(); }
  static I set1_i(int32_t v) { return _mm256_set1_epi32(v); }
  static F set1_f(float v) { return _mm256_set1_ps(v); }
  static I load_b(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static I bcast_a(int32_t four_bytes) { return _mm256_set1_epi32(four_bytes); }
  // (a0·b0 + a1·b1) and (a2·b2 + a3·b3) as int16 (exact while a <= 127), then summed to int32.
  static I dot(I acc, I a, I b) {
    const I pairs = _mm256_maddubs_epi16(a, b);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub_i(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
  static I load_i(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static F cvt_f(I x) { return _mm256_cvtepi32_ps(x); }
  static I cvt_i(F x) { return _mm256_cvtps_epi32(x); }
  static F load_f(const float* p) { return _mm256_loadu_ps(p); }
  static F load_f_tail(const float* p, size_t n) { return _mm256_maskload_ps(p, Mask(n)); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F add_f(F a, F b) { return _mm256_add_ps(a, b); }
  static F div_f(F a, F b) { return _mm256_div_ps(a, b); }
  static F sub_f(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul_f(F a, F b) { return _mm256_mul_ps(a, b); }
  // a > b ? x : y per lane (false for NaN, as the reference's comparison)
  static F select_gt(F a, F b, F x, F y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static F max_f(F a, F b) { return _mm256_max_ps(a, b); }
  static F min_f(F a, F b) { return _mm256_min_ps(a, b); }
  static F round_f(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void store_f(float* p, F x, size_t n) {
    if (n == W)
      _mm256_storeu_ps(p, x);
    else
      _mm256_maskstore_ps(p, Mask(n), x);
  }
  static void store_u8(uint8_t* p, I x, size_t n) {
    // Lanes hold 0..255: pack to bytes, then store the low n.
    const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    const __m128i bytes = _mm_packus_epi16(words, words);
    if (n == W) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), bytes);
      return;
    }
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    for (size_t i = 0; i < n; ++i) p[i] = tmp[i];
  }
};

}  // namespace
}  // namespace maas
