// Scalar reference twins of the kernels: plain loops in double precision, no packing, no SIMD.
// Tests compare every kernel on every ISA path against these.
#pragma once
#include <cstddef>

#include "maas/activation.h"

namespace maas::ref {

// c[i][j] = act(sum_k a[i][k]·w[k][j] + bias[j]); w is k×n row-major. When `magnitude` is not
// null it receives sum_k |a[i][k]·w[k][j]| + |bias[j]| per output, the scale of rounding error.
void F32Dense(const float* a, size_t lda, const float* w, const float* bias, size_t m, size_t n, size_t k,
              Activation act, float alpha, float* c, size_t ldc, float* magnitude) noexcept;

}  // namespace maas::ref
