// int8 GEMM for AVX2 (4×16 tile, vpmaddubsw + vpmaddwd): activations in 7 bits so the int16
// pair sums never saturate, which keeps the path exact (a_max 127 in int8_gemm.inc).
#include "int8_gemm_driver.h"
#include "int8_ymm_traits.h"

MAAS_DEFINE_INT8_GEMM(qu7s8_gemm_bias_relu_requant_4x16c4__avx2, VYmm, 4, 2, 127)
