// The derivative of every activation, applied to an upstream gradient: training's backward pass
// and the input gradients of the explanation methods share it.
#include "activation_backward.h"

#include <cmath>

namespace maas {

namespace {
inline float Sigmoid(float z) { return z >= 0 ? 1.f / (1.f + std::exp(-z)) : std::exp(z) / (1.f + std::exp(z)); }
}  // namespace

bool NeedsPreActivation(Activation act) noexcept {
  return act == Activation::kSwish || act == Activation::kGelu || act == Activation::kGeluTanh;
}

void ActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                        size_t rows, size_t cols, float* db) noexcept {
  const float alpha = p.alpha;
  if (db)
    for (size_t c = 0; c < cols; ++c) db[c] = 0.f;
  for (size_t i = 0; i < rows; ++i) {
    const float* yr = y + i * cols;
    const float* zr = z ? z + i * cols : nullptr;
    float* d = dz + i * cols;
    switch (act) {
      case Activation::kLinear:
        break;
      case Activation::kRelu:
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f ? d[c] : 0.f;
        break;
      case Activation::kLeakyRelu:
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f ? d[c] : alpha * d[c];
        break;
      case Activation::kElu:
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f ? d[c] : d[c] * (yr[c] + alpha);
        break;
      case Activation::kSigmoid:
        for (size_t c = 0; c < cols; ++c) d[c] *= yr[c] * (1.f - yr[c]);
        break;
      case Activation::kTanh:
        for (size_t c = 0; c < cols; ++c) d[c] *= 1.f - yr[c] * yr[c];
        break;
      case Activation::kSoftmax: {
        double dot = 0;
        for (size_t c = 0; c < cols; ++c) dot += static_cast<double>(d[c]) * yr[c];
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] * (d[c] - static_cast<float>(dot));
        break;
      }
      case Activation::kRelu6:
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f && yr[c] < 6.f ? d[c] : 0.f;
        break;
      case Activation::kHardSigmoid:
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f && yr[c] < 1.f ? 0.2f * d[c] : 0.f;
        break;
      case Activation::kSwish:  // σ(z) + z·σ(z)(1 − σ(z)) = σ(z)(1 + z(1 − σ(z)))
        for (size_t c = 0; c < cols; ++c) {
          const float s = Sigmoid(zr[c]);
          d[c] *= s * (1.f + zr[c] * (1.f - s));
        }
        break;
      case Activation::kGelu:  // Φ(z) + z·φ(z)
        for (size_t c = 0; c < cols; ++c) {
          const float phi = 0.5f * std::erfc(-zr[c] * 0.70710678f);
          const float density = 0.39894228f * std::exp(-0.5f * zr[c] * zr[c]);
          d[c] *= phi + zr[c] * density;
        }
        break;
      case Activation::kSoftplus:  // σ(z) = 1 − e^{−y}
        for (size_t c = 0; c < cols; ++c) d[c] *= -std::expm1(-yr[c]);
        break;
      case Activation::kSoftsign:  // 1/(1 + |z|)² = (1 − |y|)²
        for (size_t c = 0; c < cols; ++c) {
          const float t = 1.f - std::fabs(yr[c]);
          d[c] *= t * t;
        }
        break;
      case Activation::kSelu: {  // scale for z > 0, else scale·α·e^z = y + scale·α
        const float scale = static_cast<float>(kSeluScale), sa = static_cast<float>(kSeluScale * kSeluAlpha);
        for (size_t c = 0; c < cols; ++c) d[c] *= yr[c] > 0.f ? scale : yr[c] + sa;
        break;
      }
      case Activation::kExponential:
        for (size_t c = 0; c < cols; ++c) d[c] *= yr[c];
        break;
      case Activation::kGeluTanh:  // y = z·s(v), v = k(z + c·z³): s + z·s(1 − s)·k(1 + 3c·z²)
        for (size_t c = 0; c < cols; ++c) {
          const float z = zr[c], k = static_cast<float>(kGeluTanhScale), cubic = static_cast<float>(kGeluTanhCubic);
          const float s = Sigmoid(k * z * (1.f + cubic * z * z));
          d[c] *= s + z * s * (1.f - s) * k * (1.f + 3.f * cubic * z * z);
        }
        break;
      case Activation::kKerasRelu:
        // With threshold, max_value and slope >= 0, y > 0 only above the threshold (slope 1 below
        // max_value, 0 at it) and y <= 0 only at or below it (the negative slope).
        for (size_t c = 0; c < cols; ++c) d[c] = yr[c] > 0.f ? (yr[c] < p.max_value ? d[c] : 0.f) : alpha * d[c];
        break;
    }
    if (db)
      for (size_t c = 0; c < cols; ++c) db[c] += d[c];
  }
}

}  // namespace maas
