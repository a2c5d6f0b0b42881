// int8 GEMM for AVX-VNNI (6×16 tile, VEX vpdpbusd on ymm): the AVX2 traits with a dot product
// that neither saturates nor needs 7-bit activations.
#include "int8_gemm_driver.h"
#include "int8_ymm_traits.h"

namespace maas {
namespace {
struct VYmmVnni : VYmm {
  static I dot(I acc, I a, I b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
};
}  // namespace
}  // namespace maas

MAAS_DEFINE_INT8_GEMM(qu8s8_gemm_bias_relu_requant_6x16c4__avxvnni, VYmmVnni, 6, 2, 255)
