// LIME's samples (maas/perturbed_values.h): perturbed rows built a tile at a time and run through
// the stack, Σ w·y·e summed over the same tile while it is in cache.
#include "maas/perturbed_values.h"

#include <new>
#include <vector>

namespace maas {

namespace {

// Rows built and run at once (the tile and the stack's activations stay in L2).
constexpr size_t kTileRows = 1024;

}  // namespace

Status DenseStackPerturbedValues(const PackedStackView& stack, uint32_t model_layers, const float* x,
                                 const float* scale, const float* e, size_t samples, const double* weights,
                                 size_t output, double* y, double* wye, ThreadPool* pool, size_t threads) noexcept {
  if (!stack.kernel || model_layers == 0 || model_layers > stack.count || samples == 0) return Status::kInvalidArgument;
  const size_t d = stack.layers[0].spec.in;
  const size_t out_width = stack.layers[model_layers - 1].spec.out;
  if (output >= out_width) return Status::kInvalidArgument;
  PackedStackView model;
  model.kernel = stack.kernel;
  model.count = model_layers;
  for (uint32_t l = 0; l < model_layers; ++l) model.layers[l] = stack.layers[l];
  model.max_width = stack.max_width;
  model.max_k = stack.max_k;
  try {
    const size_t tile_rows = samples < kTileRows ? samples : kTileRows;
    std::vector<float> z(tile_rows * d), out(tile_rows * out_width);
    DenseScratch scratch;
    // Σ w·y·e summed over each tile while its rows of e are in cache.
    for (size_t i = 0; i < d; ++i) wye[i] = 0;
    for (size_t s0 = 0; s0 < samples; s0 += tile_rows) {
      const size_t rows = samples - s0 < tile_rows ? samples - s0 : tile_rows;
      for (size_t r = 0; r < rows; ++r) {
        const float* er = e + (s0 + r) * d;
        float* zr = z.data() + r * d;
        for (size_t i = 0; i < d; ++i) zr[i] = x[i] + er[i] * scale[i];
      }
      MAAS_RETURN_IF_ERROR(DenseStackForward(model, z.data(), rows, out.data(), &scratch, pool, threads));
      for (size_t r = 0; r < rows; ++r) {
        const size_t s = s0 + r;
        y[s] = out[r * out_width + output];
        const double wy = weights[s] * y[s];
        if (wy == 0) continue;
        const float* es = e + s * d;
        for (size_t i = 0; i < d; ++i) wye[i] += wy * es[i];
      }
    }
  } catch (...) {  // bad_alloc, or length_error for sizes no buffer can have
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

}  // namespace maas
