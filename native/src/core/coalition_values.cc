// Kernel SHAP's coalition values (maas/coalition_values.h): the first layer by products over the
// smaller side of each coalition, then the rest of the stack over a tile of coalitions × rows.
#include "maas/coalition_values.h"

#include <cstring>
#include <new>
#include <vector>

namespace maas {

namespace {

// Rows of the mixed tile run through the rest of the stack at once (its activations stay in L2).
constexpr size_t kTileRows = 1024;

// The packed rows `rows` of a packed B (panels of k rows × nr floats) as a packed B of rows.size() rows.
void GatherPackedRows(const float* packed, size_t k, size_t panels, uint32_t nr, const uint32_t* rows, size_t count,
                      float* dst) noexcept {
  for (size_t p = 0; p < panels; ++p) {
    const float* panel = packed + p * k * nr;
    float* out = dst + p * count * nr;
    for (size_t t = 0; t < count; ++t) std::memcpy(out + t * nr, panel + size_t{rows[t]} * nr, nr * sizeof(float));
  }
}

}  // namespace

Status DenseStackCoalitionValues(const PackedStackView& stack, uint32_t model_layers, const float* x, const float* bg,
                                 size_t bg_rows, const uint8_t* masks, size_t coalitions, size_t output, double* values,
                                 ThreadPool* pool, size_t threads) noexcept {
  if (!stack.kernel || model_layers == 0 || model_layers > stack.count || bg_rows == 0) return Status::kInvalidArgument;
  const F32GemmKernel& kernel = *stack.kernel;
  if (kernel.weights != WeightFormat::kF32) return Status::kUnsupported;
  const PackedLayerView& first = stack.layers[0];
  const size_t d = first.spec.in, h = first.spec.out, n = bg_rows;
  const size_t out_width = stack.layers[model_layers - 1].spec.out;
  if (output >= out_width) return Status::kInvalidArgument;
  const uint32_t nr = kernel.nr;
  const size_t panels = PackedPanels(h, nr);
  // The rest of the stack, as a view of its own.
  PackedStackView rest;
  rest.kernel = stack.kernel;
  rest.count = model_layers - 1;
  for (uint32_t l = 1; l < model_layers; ++l) rest.layers[l - 1] = stack.layers[l];
  rest.max_width = stack.max_width;
  rest.max_k = stack.max_k;
  const size_t per_tile = n >= kTileRows ? 1 : kTileRows / n;
  try {
    std::vector<float> zb(n * h), zx(panels * nr, 0.f), delta(n * d), a(n * d), b_rows(panels * nr * d);
    std::vector<float> tile(per_tile * n * h), y(per_tile * n * out_width);
    std::vector<float> gemm_scratch(kernel.scratch_floats(d));
    std::vector<uint32_t> side(d);
    float* scratch_ptr = gemm_scratch.data();
    DenseScratch rest_scratch;
    // Pre-activations of the background rows and of x (zx padded as a packed bias).
    // One thread and one scratch for these small products (the pool's threads serve the rest of
    // the stack, which brings its own scratch per thread).
    F32GemmArgs args = PackedLayerGemm(first, bg, n, zb.data());
    args.set_activation(Activation::kLinear, {});
    F32GemmParallel(kernel, args, nullptr, 1, &scratch_ptr);
    args = PackedLayerGemm(first, x, 1, zx.data());
    args.set_activation(Activation::kLinear, {});
    F32GemmParallel(kernel, args, nullptr, 1, &scratch_ptr);
    for (size_t r = 0; r < n; ++r)
      for (size_t j = 0; j < d; ++j) delta[r * d + j] = x[j] - bg[r * d + j];

    for (size_t c0 = 0; c0 < coalitions; c0 += per_tile) {
      const size_t count = coalitions - c0 < per_tile ? coalitions - c0 : per_tile;
      for (size_t c = 0; c < count; ++c) {
        const uint8_t* mask = masks + (c0 + c) * d;
        size_t in_s = 0;
        for (size_t j = 0; j < d; ++j) in_s += mask[j] != 0;
        // The smaller side: the coalition's features from the background, or the missing ones from x.
        const bool from_background = in_s <= d - in_s;
        size_t k = 0;
        for (size_t j = 0; j < d; ++j)
          if ((mask[j] != 0) == from_background) side[k++] = static_cast<uint32_t>(j);
        float* z = tile.data() + c * n * h;
        if (k == 0) {
          for (size_t r = 0; r < n; ++r) std::memcpy(z + r * h, from_background ? &zb[r * h] : zx.data(), h * 4);
          continue;
        }
        const float sign = from_background ? 1.f : -1.f;
        for (size_t r = 0; r < n; ++r)
          for (size_t t = 0; t < k; ++t) a[r * k + t] = sign * delta[r * d + side[t]];
        GatherPackedRows(first.weights, d, panels, nr, side.data(), k, b_rows.data());
        F32GemmArgs part;
        part.m = n;
        part.n = h;
        part.k = k;
        part.a = a.data();
        part.lda = k;
        part.b_packed = b_rows.data();
        part.bias = from_background ? nullptr : zx.data();
        part.c = z;
        part.ldc = h;
        F32GemmParallel(kernel, part, nullptr, 1, &scratch_ptr);
        if (from_background)
          for (size_t r = 0; r < n; ++r)
            for (size_t o = 0; o < h; ++o) z[r * h + o] += zb[r * h + o];
      }
      const size_t rows = count * n;
      if (first.spec.act != Activation::kLinear)
        ApplyActivationRows(kernel, tile.data(), rows, h, first.spec.act, first.spec.params());
      const float* out = tile.data();
      if (rest.count > 0) {
        MAAS_RETURN_IF_ERROR(DenseStackForward(rest, tile.data(), rows, y.data(), &rest_scratch, pool, threads));
        out = y.data();
      }
      for (size_t c = 0; c < count; ++c) {
        double sum = 0;
        for (size_t r = 0; r < n; ++r) sum += out[(c * n + r) * out_width + output];
        values[c0 + c] = sum / static_cast<double>(n);
      }
    }
  } catch (...) {  // bad_alloc, or length_error for sizes no buffer can have
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

}  // namespace maas
