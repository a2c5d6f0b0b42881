// Activation functions a dense layer can fuse into its GEMM epilogue, their parameters, and their
// scalar definition (the double-precision reference every vector path is tested against).
// The numeric values are part of the packed-buffer format and the JS binding: append only.
#pragma once
#include <cmath>
#include <cstdint>

#include "maas/host_device.h"

namespace maas {

enum class Activation : uint32_t {
  kLinear = 0,
  kRelu = 1,
  kLeakyRelu = 2,  // x > 0 ? x : alpha * x
  kElu = 3,        // x > 0 ? x : alpha * (exp(x) - 1)
  kSigmoid = 4,
  kTanh = 5,
  kSoftmax = 6,  // row-wise over the layer's outputs, max-subtracted
  kRelu6 = 7,    // min(max(x, 0), 6)
  // clamp(0.2·x + 0.5, 0, 1): tf.keras 2.x and tfjs's K.hardSigmoid (Keras 3 changed the slope to
  // 1/6; files from tfjs and tf.keras 2 are what maas loads, so their definition is the one here).
  kHardSigmoid = 8,
  kSwish = 9,         // x · sigmoid(x) (tfjs 'swish', Keras 'swish'/'silu')
  kGelu = 10,         // x · Φ(x) = 0.5·x·(1 + erf(x/√2)), the exact form (Keras approximate=False, tfjs 'gelu')
  kSoftplus = 11,     // log(1 + exp(x))
  kSoftsign = 12,     // x / (1 + |x|)
  kSelu = 13,         // kSeluScale · (x > 0 ? x : kSeluAlpha · (exp(x) − 1))
  kExponential = 14,  // exp(x) (Keras 'exponential')
  // Keras ReLU(max_value, negative_slope, threshold), as keras.backend.relu computes it:
  //   x > threshold ? min(x, max_value) : negative_slope · (x − threshold)
  // with alpha = negative_slope; max_value may be +inf. Keras requires all three >= 0.
  kKerasRelu = 15,
  // GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (tfjs 'gelu_new', Keras
  // gelu(approximate=True)), computed as x·sigmoid(2·√(2/π)·(x + 0.044715·x³)), the same value
  // without 1 + tanh's cancellation for negative x.
  kGeluTanh = 16,
};

constexpr uint32_t kActivationCount = 17;

// 2·√(2/π) and the cubic coefficient of kGeluTanh.
constexpr double kGeluTanhScale = 1.5957691216057307;
constexpr double kGeluTanhCubic = 0.044715;

// Keras/tfjs SELU constants (Klambauer et al. 2017).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// The parameters of the parameterised activations; ignored by the others.
struct ActivationParams {
  float alpha = 0.f;                        // leakyRelu slope, elu scale, kerasRelu negative_slope
  float max_value = __builtin_huge_valf();  // kerasRelu
  float threshold = 0.f;                    // kerasRelu
};

inline bool IsElementwise(Activation a) noexcept { return a != Activation::kSoftmax; }

// Whether a parameter set is valid for an activation (Keras's own checks for kerasRelu).
inline bool ValidActivationParams(Activation a, const ActivationParams& p) noexcept {
  if (a != Activation::kKerasRelu) return true;
  return p.alpha >= 0.f && p.max_value >= 0.f && p.threshold >= 0.f && std::isfinite(p.alpha) &&
         std::isfinite(p.threshold);
}

// The scalar definition of an element-wise activation in T (double in the reference), libm
// throughout; the kernels' vector code in f32_gemm_driver.h follows it case by case, and the CUDA
// backend runs it as it stands.
template <class T>
MAAS_HOST_DEVICE inline T ActivateScalar(Activation act, T x, const ActivationParams& p) noexcept {
  switch (act) {
    case Activation::kRelu:
      return x > 0 ? x : T(0);
    case Activation::kLeakyRelu:
      return x > 0 ? x : T(p.alpha) * x;
    case Activation::kElu:
      return x > 0 ? x : T(p.alpha) * (std::exp(x) - T(1));
    case Activation::kSigmoid:
      return T(1) / (T(1) + std::exp(-x));
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kRelu6: {
      const T r = x > 0 ? x : T(0);
      return r < T(6) ? r : T(6);
    }
    case Activation::kHardSigmoid: {
      const T h = T(0.2) * x + T(0.5);
      return h > 0 ? (h < T(1) ? h : T(1)) : T(0);
    }
    case Activation::kSwish:
      return x / (T(1) + std::exp(-x));
    case Activation::kGelu:
      // erfc keeps the relative precision of Φ(x) for negative x, where 1 + erf(x) cancels.
      return T(0.5) * x * std::erfc(-x * T(0.70710678118654752440));
    case Activation::kSoftplus:
      return (x > 0 ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
    case Activation::kSoftsign:
      return x / (T(1) + std::fabs(x));
    case Activation::kSelu:
      return T(kSeluScale) * (x > 0 ? x : T(kSeluAlpha) * (std::exp(x) - T(1)));
    case Activation::kExponential:
      return std::exp(x);
    case Activation::kKerasRelu:
      return x > T(p.threshold) ? (x < T(p.max_value) ? x : T(p.max_value)) : T(p.alpha) * (x - T(p.threshold));
    case Activation::kGeluTanh:
      return x / (T(1) + std::exp(-T(kGeluTanhScale) * x * (T(1) + T(kGeluTanhCubic) * x * x)));
    case Activation::kLinear:
    case Activation::kSoftmax:
      break;
  }
  return x;
}

}  // namespace maas
