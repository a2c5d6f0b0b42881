// fp32 GEMM for AVX2 + FMA3 (a 6×16 register tile, 12 ymm accumulators, maskload/maskstore tails)
// the bf16-weight kernel without AVX512_BF16 (4×16, pairs widened to fp32), and the optimizer
// update pass, all over the AVX2 vector traits below.
// Built with this file's own ISA flags; dispatch calls it only where CPUID and XCR0 allow.
#include <immintrin.h>

#include "bf16_gemm_driver.h"
#include "f32_gemm_driver.h"
#include "f32_update_driver.h"

namespace maas {
namespace {

struct VAvx2 {
  using R = __m256;
  static constexpr size_t W = 8;
  static __m256i Mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static R load_tail(const float* p, size_t n, float fill) {
    const __m256i m = Mask(n);
    return _mm256_blendv_ps(set1(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store(float* p, R x) { _mm256_storeu_ps(p, x); }
  static void store_tail(float* p, R x, size_t n) { _mm256_maskstore_ps(p, Mask(n), x); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fmadd_bcast(const float* p, R b, R acc) { return _mm256_fmadd_ps(_mm256_broadcast_ss(p), b, acc); }
  static R sqrt(R x) { return _mm256_sqrt_ps(x); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R min(R a, R b) { return _mm256_min_ps(a, b); }
  static R abs(R x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), x); }
  static R copysign(R mag, R sign) { return _mm256_or_ps(mag, _mm256_and_ps(sign, _mm256_set1_ps(-0.f))); }
  static R select_pos(R x, R a, R b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, zero(), _CMP_GT_OQ)); }
  static R round(R x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static R pow2(R n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static float hmax(R x) {
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
  static float hsum(R x) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
};

// bf16 weights without AVX512_BF16: each pair widened to two fp32 values (a bf16 is the high half
// of a float) and two FMAs, in vdpbf16ps's order (high pair first); B still moves half the bytes.
struct TAvx2Bf16 : VAvx2 {
  using P = __m256i;
  static P bcast_pair(const uint32_t* p) { return _mm256_set1_epi32(static_cast<int>(*p)); }
  static P load_pairs(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static R dot2(R acc, P a, P b) {
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    const R a_hi = _mm256_castsi256_ps(_mm256_and_si256(a, high)),
            b_hi = _mm256_castsi256_ps(_mm256_and_si256(b, high));
    const R a_lo = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), b_lo = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
    return _mm256_fmadd_ps(a_lo, b_lo, _mm256_fmadd_ps(a_hi, b_hi, acc));
  }
  static void to_pairs(const float* x, size_t n, uint32_t* dst) { ToBf16PairsScalar(x, n, dst); }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_GEMM(bf16_gemm_bias_act_4x16__avx2_fma, TAvx2Bf16, 4, 2, 512, 32)
MAAS_DEFINE_F32_GEMM(f32_gemm_bias_act_6x16__avx2_fma, VAvx2, 6, 2)
MAAS_DEFINE_F32_UPDATE(f32_update__avx2_fma, VAvx2)
