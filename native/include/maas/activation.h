// Activation functions a dense layer can fuse into its GEMM epilogue.
// The numeric values are part of the packed-buffer format and the JS binding: append only.
#pragma once
#include <cstdint>

namespace maas {

enum class Activation : uint32_t {
  kLinear = 0,
  kRelu = 1,
  kLeakyRelu = 2,  // x > 0 ? x : alpha * x
  kElu = 3,        // x > 0 ? x : alpha * (exp(x) - 1)
  kSigmoid = 4,
  kTanh = 5,
  kSoftmax = 6,  // row-wise over the layer's outputs, max-subtracted
};

constexpr uint32_t kActivationCount = 7;

inline bool IsElementwise(Activation a) noexcept { return a != Activation::kSoftmax; }

}  // namespace maas
