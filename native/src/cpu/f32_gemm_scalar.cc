// fp32 GEMM for the x86-64 baseline (no AVX), a 4×8 tile of scalar accumulators, and the
// optimizer update pass.
// The portable path; the same driver and epilogue as the SIMD kernels, one lane wide.
#include <cmath>

#include "bf16_gemm_driver.h"
#include "f32_gemm_driver.h"
#include "f32_update_driver.h"

namespace maas {
namespace {

struct VScalar {
  using R = float;
  static constexpr size_t W = 1;
  static R zero() { return 0.f; }
  static R set1(float x) { return x; }
  static R load(const float* p) { return *p; }
  static R load_tail(const float* p, size_t n, float fill) { return n ? *p : fill; }
  static void store(float* p, R x) { *p = x; }
  static void store_tail(float* p, R x, size_t n) {
    if (n) *p = x;
  }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R div(R a, R b) { return a / b; }
  static R fmadd(R a, R b, R c) { return a * b + c; }
  static R fmadd_bcast(const float* p, R b, R acc) { return *p * b + acc; }
  static R sqrt(R x) { return std::sqrt(x); }
  static R max(R a, R b) { return a > b ? a : b; }
  static R min(R a, R b) { return a < b ? a : b; }
  static R abs(R x) { return std::fabs(x); }
  static R copysign(R mag, R sign) { return std::copysign(mag, sign); }
  static R select_pos(R x, R a, R b) { return x > 0.f ? a : b; }
  static R round(R x) { return std::nearbyint(x); }
  static R pow2(R n) { return std::ldexp(1.f, static_cast<int>(n)); }
  static float hmax(R x) { return x; }
  static float hsum(R x) { return x; }
};

// bf16 weights, one lane wide: the portable twin of vdpbf16ps (high pair first, exact products).
struct TScalarBf16 : VScalar {
  using P = uint32_t;
  static P bcast_pair(const uint32_t* p) { return *p; }
  static P load_pairs(const uint32_t* p) { return *p; }
  static R dot2(R acc, P a, P b) {
    const float hi = Bf16ToFloat(static_cast<uint16_t>(a >> 16)) * Bf16ToFloat(static_cast<uint16_t>(b >> 16));
    const float lo = Bf16ToFloat(static_cast<uint16_t>(a)) * Bf16ToFloat(static_cast<uint16_t>(b));
    return (acc + hi) + lo;
  }
  static void to_pairs(const float* x, size_t n, uint32_t* dst) { ToBf16PairsScalar(x, n, dst); }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_GEMM(bf16_gemm_bias_act_4x8__scalar, TScalarBf16, 4, 8, 256, 24)
MAAS_DEFINE_F32_GEMM(f32_gemm_bias_act_4x8__scalar, VScalar, 4, 8)
MAAS_DEFINE_F32_UPDATE(f32_update__scalar, VScalar)
