// int8 GEMM for AVX512-VNNI: an 8×32 tile (16 zmm accumulators) of vpdpbusd, masked tails; A blocks
// of 128 rows, or 512 for Zen 5 (see int8_gemm.inc).
#include "int8_gemm_driver.h"
#include "int8_zmm_traits.h"

MAAS_DEFINE_INT8_GEMM_BLOCKED(qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni_mc512, VZmmVnni, 8, 2, 255, 64)
MAAS_DEFINE_INT8_GEMM(qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni, VZmmVnni, 8, 2, 255)
