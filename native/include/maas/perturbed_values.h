// LIME's samples on a packed fp32 stack: the model's output at x + e_s ⊙ scale for each
// perturbation row e_s, and the weighted cross-product the surrogate's fit needs, Σ_s w_s y_s e_s
// (the caller subtracts ȳ·Σ_s w_s e_s, a property of the samples alone), so what is left to it is
// a d×d solve.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/dense_stack.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

// `stack`'s first `model_layers` layers are the model. x and scale: d floats (d = the first
// layer's input width); e: `samples` rows of d; weights: `samples` kernel weights. Writes y
// (`samples` values of output `output`) and wye = Σ_s w_s y_s e_s (d values).
Status DenseStackPerturbedValues(const PackedStackView& stack, uint32_t model_layers, const float* x,
                                 const float* scale, const float* e, size_t samples, const double* weights,
                                 size_t output, double* y, double* wye, ThreadPool* pool, size_t threads) noexcept;

}  // namespace maas
