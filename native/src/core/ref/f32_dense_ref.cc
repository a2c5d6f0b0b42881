// The reference dense layer: accumulates in double, applies the activation (ActivateScalar) in double,
// rounds once to float. Slow on purpose: the definition every fast path is measured against.
#include <cmath>
#include <vector>

#include "maas/reference.h"

namespace maas::ref {

void F32Dense(const float* a, size_t lda, const float* w, const float* bias, size_t m, size_t n, size_t k,
              Activation act, const ActivationParams& params, float* c, size_t ldc, float* magnitude) noexcept {
  std::vector<double> row(n);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double sum = bias ? bias[j] : 0.0, mag = bias ? std::fabs(bias[j]) : 0.0;
      for (size_t p = 0; p < k; ++p) {
        const double t = static_cast<double>(a[i * lda + p]) * w[p * n + j];
        sum += t;
        mag += std::fabs(t);
      }
      row[j] = sum;
      if (magnitude) magnitude[i * n + j] = static_cast<float>(mag);
    }
    if (act == Activation::kSoftmax) {
      double mx = -INFINITY, total = 0;
      for (size_t j = 0; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
      for (size_t j = 0; j < n; ++j) total += (row[j] = std::exp(row[j] - mx));
      for (size_t j = 0; j < n; ++j) row[j] /= total;
    }
    for (size_t j = 0; j < n; ++j) {
      const double y = act == Activation::kSoftmax ? row[j] : ActivateScalar<double>(act, row[j], params);
      c[i * ldc + j] = static_cast<float>(y);
    }
  }
}

}  // namespace maas::ref
