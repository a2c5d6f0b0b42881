// int8 GEMM for the x86-64 baseline: the same driver and epilogue one int32 lane wide, with
// wrapping (unsigned) integer arithmetic where the SIMD paths wrap.
#include <cmath>

#include "int8_gemm_driver.h"

namespace maas {
namespace {

struct VScalar {
  using I = int32_t;
  using F = float;
  static constexpr size_t W = 1;
  static I wrap(uint32_t v) { return static_cast<I>(v); }
  static I zero_i() { return 0; }
  static F zero_f() { return 0.f; }
  static I set1_i(int32_t v) { return v; }
  static F set1_f(float v) { return v; }
  static I load_b(const int8_t* p) { return Load4(reinterpret_cast<const uint8_t*>(p)); }
  static I bcast_a(int32_t four_bytes) { return four_bytes; }
  static I dot(I acc, I a, I b) {
    int32_t sum = 0;
    for (int i = 0; i < 4; ++i) {
      sum += static_cast<int32_t>(static_cast<uint8_t>(static_cast<uint32_t>(a) >> (8 * i))) *
             static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint32_t>(b) >> (8 * i)));
    }
    return wrap(static_cast<uint32_t>(acc) + static_cast<uint32_t>(sum));
  }
  static I add_i(I a, I b) { return wrap(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }
  static I sub_i(I a, I b) { return wrap(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)); }
  static I mullo(I a, I b) { return wrap(static_cast<uint32_t>(a) * static_cast<uint32_t>(b)); }
  static I load_i(const int32_t* p) { return *p; }
  static F cvt_f(I x) { return static_cast<float>(x); }
  static I cvt_i(F x) { return static_cast<I>(x); }  // x is already clamped to [0, a_max]
  static F load_f(const float* p) { return *p; }
  static F load_f_tail(const float* p, size_t n) { return n ? *p : 0.f; }
  static F fmadd(F a, F b, F c) { return std::fma(a, b, c); }
  static F add_f(F a, F b) { return a + b; }
  static F div_f(F a, F b) { return a / b; }
  static F sub_f(F a, F b) { return a - b; }
  static F mul_f(F a, F b) { return a * b; }
  static F select_gt(F a, F b, F x, F y) { return a > b ? x : y; }
  static F max_f(F a, F b) { return a > b ? a : b; }  // maxps: the second operand unless a > b
  static F min_f(F a, F b) { return a < b ? a : b; }
  static F round_f(F x) { return std::nearbyint(x); }
  static void store_f(float* p, F x, size_t n) {
    if (n) *p = x;
  }
  static void store_u8(uint8_t* p, I x, size_t n) {
    if (n) *p = static_cast<uint8_t>(x);
  }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_INT8_GEMM(qu8s8_gemm_bias_relu_requant_4x4c4__scalar, VScalar, 4, 4, 255)
