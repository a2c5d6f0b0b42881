// The derivative of every activation, applied to an upstream gradient: training's backward pass
// and the input gradients of the explanation methods share it. The per-element derivative is
// ActivationGradient (activation_backward.h), which the CUDA backend runs too.
#include "activation_backward.h"

namespace maas {

namespace {

// One row of an element-wise activation: A is a constant here, so the switch folds away and each
// activation keeps a loop of its own. z falls back to y where the derivative does not read it.
template <Activation A>
void GradientRow(const ActivationParams& p, const float* y, const float* z, float* d, size_t cols) {
  const float* zs = z ? z : y;
  for (size_t c = 0; c < cols; ++c) d[c] = ActivationGradient(A, p, y[c], zs[c], d[c]);
}

using RowFn = void (*)(const ActivationParams&, const float*, const float*, float*, size_t);

RowFn RowFor(Activation act) {
  switch (act) {
    case Activation::kRelu:
      return &GradientRow<Activation::kRelu>;
    case Activation::kLeakyRelu:
      return &GradientRow<Activation::kLeakyRelu>;
    case Activation::kElu:
      return &GradientRow<Activation::kElu>;
    case Activation::kSigmoid:
      return &GradientRow<Activation::kSigmoid>;
    case Activation::kTanh:
      return &GradientRow<Activation::kTanh>;
    case Activation::kRelu6:
      return &GradientRow<Activation::kRelu6>;
    case Activation::kHardSigmoid:
      return &GradientRow<Activation::kHardSigmoid>;
    case Activation::kSwish:
      return &GradientRow<Activation::kSwish>;
    case Activation::kGelu:
      return &GradientRow<Activation::kGelu>;
    case Activation::kSoftplus:
      return &GradientRow<Activation::kSoftplus>;
    case Activation::kSoftsign:
      return &GradientRow<Activation::kSoftsign>;
    case Activation::kSelu:
      return &GradientRow<Activation::kSelu>;
    case Activation::kExponential:
      return &GradientRow<Activation::kExponential>;
    case Activation::kGeluTanh:
      return &GradientRow<Activation::kGeluTanh>;
    case Activation::kKerasRelu:
      return &GradientRow<Activation::kKerasRelu>;
    case Activation::kLinear:
    case Activation::kSoftmax:
      break;
  }
  return nullptr;
}

}  // namespace

bool NeedsPreActivation(Activation act) noexcept {
  return act == Activation::kSwish || act == Activation::kGelu || act == Activation::kGeluTanh;
}

void ActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                        size_t rows, size_t cols, float* db) noexcept {
  if (db)
    for (size_t c = 0; c < cols; ++c) db[c] = 0.f;
  const RowFn row = RowFor(act);
  for (size_t i = 0; i < rows; ++i) {
    const float* yr = y + i * cols;
    float* d = dz + i * cols;
    if (act == Activation::kSoftmax) {
      double dot = 0;
      for (size_t c = 0; c < cols; ++c) dot += static_cast<double>(d[c]) * yr[c];
      for (size_t c = 0; c < cols; ++c) d[c] = yr[c] * (d[c] - static_cast<float>(dot));
    } else if (row) {
      row(p, yr, z ? z + i * cols : nullptr, d, cols);
    }
    if (db)
      for (size_t c = 0; c < cols; ++c) db[c] += d[c];
  }
}

}  // namespace maas
