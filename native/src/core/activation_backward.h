// dL/dZ from dL/dY through a layer's activation, row by row (internal to native/src/core).
#pragma once
#include <cstddef>

#include "maas/activation.h"

namespace maas {

// Activations whose derivative is not a function of their output (neither is monotonic on its
// own output): the backward pass needs their pre-activation Z.
bool NeedsPreActivation(Activation act) noexcept;

// dz (rows × cols, holding dL/dY on entry) becomes dL/dZ = dY ⊙ act'(·), from the layer's output y
// (or its pre-activation z, for the activations NeedsPreActivation names; z is unused otherwise
// and may be null); softmax applies its Jacobian row by row. When db is not null, it receives the
// column sums of dz (the bias gradient).
void ActivationBackward(Activation act, const ActivationParams& p, const float* y, const float* z, float* dz,
                        size_t rows, size_t cols, float* db) noexcept;

}  // namespace maas
