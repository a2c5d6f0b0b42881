// Kernel SHAP's coalition values on a packed fp32 stack: for each coalition S of the inputs, the
// mean over background rows b of one output of the model at the row that takes x's values on S
// and b's elsewhere. The first layer is not run on the d-wide mixed rows: its pre-activation is
// the background's (or x's) plus a product over the smaller side of S only,
//   z(S, b) = z(b) + Σ_{j∈S} (x_j − b_j)·W_j   or   z(x) − Σ_{j∉S} (x_j − b_j)·W_j,
// so a coalition of k features (or of k missing ones) costs k of the first layer's d products.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/dense_stack.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

// `stack`'s first `model_layers` layers are the model (an fp32 packed stack, such as the first
// half of a round-trip stack). x: the explained row (d = the first layer's input width); bg:
// `bg_rows` rows of d; masks: `coalitions` rows of d bytes, nonzero where x's value is taken.
// Writes values[c] = mean over bg of output `output` for coalition c. kUnsupported when the
// stack's weights are not stored as fp32.
Status DenseStackCoalitionValues(const PackedStackView& stack, uint32_t model_layers, const float* x, const float* bg,
                                 size_t bg_rows, const uint8_t* masks, size_t coalitions, size_t output, double* values,
                                 ThreadPool* pool, size_t threads) noexcept;

}  // namespace maas
