// LIME's samples (maas/perturbed_values.h): perturbed rows built a tile at a time and run through
// the stack, the surrogate's right-hand side summed over the same tile while it is in cache.
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
                                 size_t output, double* y, double* aty, ThreadPool* pool, size_t threads) noexcept {
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
    // One pass: Σ w·y·e and Σ w·e while each tile of e is in cache, then aty = Σ w·y·e − ȳ·Σ w·e
    // (in double: the two terms are close when y varies little about its mean).
    std::vector<double> wye(d, 0.0), we(d, 0.0);
    double weight_sum = 0, weighted_y = 0;
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
        const double w = weights[s];
        y[s] = out[r * out_width + output];
        if (w == 0) continue;
        weight_sum += w;
        weighted_y += w * y[s];
        const double wy = w * y[s];
        const float* es = e + s * d;
        for (size_t i = 0; i < d; ++i) {
          wye[i] += wy * es[i];
          we[i] += w * es[i];
        }
      }
    }
    const double mean = weight_sum > 0 ? weighted_y / weight_sum : 0;
    for (size_t i = 0; i < d; ++i) aty[i] = wye[i] - mean * we[i];
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

}  // namespace maas
