// int8 GEMM for AVX512-VNNI: an 8×32 tile (16 zmm accumulators) of vpdpbusd, masked tails.
#include "int8_gemm_driver.h"
#include "int8_zmm_traits.h"

MAAS_DEFINE_INT8_GEMM(qu8s8_gemm_bias_relu_requant_8x32c4__avx512vnni, VZmmVnni, 8, 2, 255)
