// Gradients of a dense stack's outputs with respect to its inputs: per row, dx = (∂y/∂x)ᵀ·dy (a
// vector–Jacobian product), the entry point of the gradient-based explanation methods.
//
// The weights come as one "round-trip" packed stack of 2L layers: the model's L layers, then its
// kernels transposed in reverse order (layer L + j holds W_{L−1−j}ᵀ: in = out_{L−1−j}, out =
// in_{L−1−j}, linear, no bias). The first half gives the forward products' B operands, the second
// half the backward ones (dX = dZ·Wᵀ), so one shared buffer serves every worker.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "maas/dense_stack.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

// Checks that `view` is a round-trip stack and returns the model's layer count L.
Status CheckRoundTripStack(const PackedStackView& view, uint32_t* model_layers) noexcept;

// Per-handle buffers: every layer's output (and pre-activation where the derivative needs it),
// two gradient buffers and per-thread packing scratch, grown on demand.
class InputGradientScratch {
 public:
  Status Reserve(const PackedStackView& view, uint32_t model_layers, size_t batch, size_t threads) noexcept;
  void Release() noexcept;

 private:
  friend Status DenseStackInputGradient(const PackedStackView&, const float*, size_t, const float*, float*, float*,
                                        InputGradientScratch*, ThreadPool*, size_t) noexcept;
  std::vector<std::vector<float>> outputs_, pre_;
  std::vector<float> grad_a_, grad_b_, pack_;
  size_t pack_per_thread_ = 0;
};

// x: batch rows of the model's input width; dy: batch rows of its output width (the weights of the
// outputs whose gradient is taken: a one-hot row for one class). Writes dx (batch rows of the
// input width) and, when y is not null, the model's outputs for x.
Status DenseStackInputGradient(const PackedStackView& round_trip, const float* x, size_t batch, const float* dy,
                               float* dx, float* y, InputGradientScratch* scratch, ThreadPool* pool,
                               size_t threads) noexcept;

}  // namespace maas
