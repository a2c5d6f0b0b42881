// The reference int8 dense layer: an int64 dot product of (a − zero)·w, then the epilogue written
// out one scalar operation at a time in the order the kernels promise. Slow on purpose.
#include <cmath>

#include "maas/reference.h"

namespace maas::ref {

uint8_t QuantizeU8(float x, float scale, int32_t zero, int32_t qmax) noexcept {
  float t = std::nearbyint(x / scale) + static_cast<float>(zero);
  t = t > 0.f ? t : 0.f;  // NaN becomes 0, as maxps does
  t = t < static_cast<float>(qmax) ? t : static_cast<float>(qmax);
  return static_cast<uint8_t>(static_cast<int32_t>(t));
}

void QU8S8Dense(const uint8_t* a, size_t lda, int32_t a_zero, const int8_t* w, const float* scale, const float* bias,
                size_t m, size_t n, size_t k, Activation act, const ActivationParams& params, float* c, size_t ldc,
                uint8_t* q, size_t ldq, float out_scale, int32_t out_zero, int32_t out_max) noexcept {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (size_t p = 0; p < k; ++p) acc += static_cast<int64_t>(a[i * lda + p] - a_zero) * w[p * n + j];
      float y = std::fma(static_cast<float>(static_cast<int32_t>(acc)), scale[j], bias ? bias[j] : 0.f);
      if (act == Activation::kRelu || act == Activation::kRelu6) y = y > 0.f ? y : 0.f;
      if (act == Activation::kRelu6) y = y < 6.f ? y : 6.f;
      if (act == Activation::kKerasRelu) {
        const float below = params.alpha * (y - params.threshold);  // two roundings, as the kernels
        y = y > params.threshold ? (y < params.max_value ? y : params.max_value) : below;
      }
      if (q) {
        q[i * ldq + j] = QuantizeU8(y, out_scale, out_zero, out_max);
      } else {
        c[i * ldc + j] = y;
      }
    }
  }
}

}  // namespace maas::ref
