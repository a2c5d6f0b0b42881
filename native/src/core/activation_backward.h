// dL/dZ from dL/dY through a layer's activation, row by row (internal to native/src and the CUDA
// backend, which runs ActivationGradient as it stands, one element per thread).
#pragma once
#include <cmath>
#include <cstddef>

#include "maas/activation.h"
#include "maas/host_device.h"

namespace maas {

// Activations whose derivative is not a function of their output (neither is monotonic on its
// own output): the backward pass needs their pre-activation Z.
bool NeedsPreActivation(Activation act) noexcept;

MAAS_HOST_DEVICE inline float StableSigmoid(float z) {
  return z >= 0 ? 1.f / (1.f + std::exp(-z)) : std::exp(z) / (1.f + std::exp(z));
}

// d · act'(·) for one element of an element-wise activation, from its output y (or its
// pre-activation z, for the activations NeedsPreActivation names; z is unused otherwise).
MAAS_HOST_DEVICE inline float ActivationGradient(Activation act, const ActivationParams& p, float y, float z, float d) {
  switch (act) {
    case Activation::kLinear:
    case Activation::kSoftmax:  // row-wise: ActivationBackward's own case
      return d;
    case Activation::kRelu:
      return y > 0.f ? d : 0.f;
    case Activation::kLeakyRelu:
      return y > 0.f ? d : p.alpha * d;
    case Activation::kElu:
      return y > 0.f ? d : d * (y + p.alpha);
    case Activation::kSigmoid:
      return d * (y * (1.f - y));
    case Activation::kTanh:
      return d * (1.f - y * y);
    case Activation::kRelu6:
      return y > 0.f && y < 6.f ? d : 0.f;
    case Activation::kHardSigmoid:
      return y > 0.f && y < 1.f ? 0.2f * d : 0.f;
    case Activation::kSwish: {  // σ(z) + z·σ(z)(1 − σ(z)) = σ(z)(1 + z(1 − σ(z)))
      const float s = StableSigmoid(z);
      return d * (s * (1.f + z * (1.f - s)));
    }
    case Activation::kGelu: {  // Φ(z) + z·φ(z)
      const float phi = 0.5f * std::erfc(-z * 0.70710678f);
      const float density = 0.39894228f * std::exp(-0.5f * z * z);
      return d * (phi + z * density);
    }
    case Activation::kSoftplus:  // σ(z) = 1 − e^{−y}
      return d * -std::expm1(-y);
    case Activation::kSoftsign: {  // 1/(1 + |z|)² = (1 − |y|)²
      const float t = 1.f - std::fabs(y);
      return d * (t * t);
    }
    case Activation::kSelu: {  // scale for z > 0, else scale·α·e^z = y + scale·α
      const float scale = static_cast<float>(kSeluScale), sa = static_cast<float>(kSeluScale * kSeluAlpha);
      return d * (y > 0.f ? scale : y + sa);
    }
    case Activation::kExponential:
      return d * y;
    case Activation::kGeluTanh: {  // y = z·s(v), v = k(z + c·z³): s + z·s(1 − s)·k(1 + 3c·z²)
      const float k = static_cast<float>(kGeluTanhScale), cubic = static_cast<float>(kGeluTanhCubic);
      const float s = StableSigmoid(k * z * (1.f + cubic * z * z));
      return d * (s + z * s * (1.f - s) * k * (1.f + 3.f * cubic * z * z));
    }
    case Activation::kKerasRelu:
      // With threshold, max_value and slope >= 0, y > 0 only above the threshold (slope 1 below
      // max_value, 0 at it) and y <= 0 only at or below it (the negative slope).
      return y > 0.f ? (y < p.max_value ? d : 0.f) : p.alpha * d;
  }
  return d;
}

// dz (rows × cols, holding dL/dY on entry) becomes dL/dZ = dY ⊙ act'(·), from the layer's output y
// (or its pre-activation z, for the activations NeedsPreActivation names; z is unused otherwise
// and may be null); softmax applies its Jacobian row by row. When db is not null, it receives the
// column sums of dz (the bias gradient).
void ActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                        size_t rows, size_t cols, float* db) noexcept;

}  // namespace maas
