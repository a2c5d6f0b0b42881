// Scalar reference twins of the kernels: plain loops in double precision, no packing, no SIMD.
// Tests compare every kernel on every ISA path against these.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"

namespace maas::ref {

// c[i][j] = act(sum_k a[i][k]·w[k][j] + bias[j]); w is k×n row-major. When `magnitude` is not
// null it receives sum_k |a[i][k]·w[k][j]| + |bias[j]| per output, the scale of rounding error.
void F32Dense(const float* a, size_t lda, const float* w, const float* bias, size_t m, size_t n, size_t k,
              Activation act, const ActivationParams& params, float* c, size_t ldc, float* magnitude) noexcept;

// The int8 dense layer every int8 kernel must reproduce bit for bit (see int8_gemm.h): a is
// m×k u8 (stride lda), w is k×n s8 row-major, scale and bias hold n floats (bias may be null),
// act is one Int8Fusable names (params for kKerasRelu). Writes fp32 to c (ldc) when q is null, else u8 to q (ldq).
void QU8S8Dense(const uint8_t* a, size_t lda, int32_t a_zero, const int8_t* w, const float* scale, const float* bias,
                size_t m, size_t n, size_t k, Activation act, const ActivationParams& params, float* c, size_t ldc,
                uint8_t* q, size_t ldq, float out_scale, int32_t out_zero, int32_t out_max) noexcept;

// ONNX QuantizeLinear to u8 with a saturating range [0, qmax]: round half to even.
uint8_t QuantizeU8(float x, float scale, int32_t zero, int32_t qmax) noexcept;

}  // namespace maas::ref
