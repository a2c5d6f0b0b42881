// Input gradients through a round-trip packed stack: the forward pass keeps every layer's output,
// then each layer's activation derivative and one GEMM with its transposed kernel carry dY back.
#include "maas/input_gradient.h"

#include <cstring>
#include <new>

#include "activation_backward.h"

namespace maas {

Status CheckRoundTripStack(const PackedStackView& view, uint32_t* model_layers) noexcept {
  if (!view.kernel || view.count < 2 || view.count % 2 != 0) return Status::kInvalidArgument;
  const uint32_t layers = view.count / 2;
  for (uint32_t j = 0; j < layers; ++j) {
    const DenseLayerSpec& fwd = view.layers[layers - 1 - j].spec;
    const DenseLayerSpec& bwd = view.layers[layers + j].spec;
    if (bwd.in != fwd.out || bwd.out != fwd.in || bwd.act != Activation::kLinear || bwd.has_bias)
      return Status::kInvalidArgument;
  }
  *model_layers = layers;
  return Status::kOk;
}

void InputGradientScratch::Release() noexcept {
  outputs_.clear();
  outputs_.shrink_to_fit();
  pre_.clear();
  pre_.shrink_to_fit();
  grad_a_ = {};
  grad_b_ = {};
  pack_ = {};
  pack_per_thread_ = 0;
}

Status InputGradientScratch::Reserve(const PackedStackView& view, uint32_t model_layers, size_t batch,
                                     size_t threads) noexcept {
  try {
    outputs_.resize(model_layers);
    pre_.resize(model_layers);
    size_t widest = view.layers[0].spec.in;
    for (uint32_t l = 0; l < model_layers; ++l) {
      const DenseLayerSpec& s = view.layers[l].spec;
      const size_t floats = batch * s.out;
      if (outputs_[l].size() < floats) outputs_[l].resize(floats);
      if (NeedsPreActivation(s.act) && pre_[l].size() < floats) pre_[l].resize(floats);
      widest = s.out > widest ? s.out : widest;
    }
    if (grad_a_.size() < batch * widest) {
      grad_a_.resize(batch * widest);
      grad_b_.resize(batch * widest);
    }
    const size_t per_thread = view.kernel->scratch_floats(view.max_k);
    if (pack_per_thread_ < per_thread || pack_.size() < per_thread * threads) {
      pack_per_thread_ = per_thread;
      pack_.resize(per_thread * threads);
    }
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

Status DenseStackInputGradient(const PackedStackView& round_trip, const float* x, size_t batch, const float* dy,
                               float* dx, float* y, InputGradientScratch* scratch, ThreadPool* pool,
                               size_t threads) noexcept {
  uint32_t layers = 0;
  MAAS_RETURN_IF_ERROR(CheckRoundTripStack(round_trip, &layers));
  if (batch == 0 || !x || !dy || !dx) return Status::kInvalidArgument;
  if (pool && threads > pool->size()) threads = pool->size();
  threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
  MAAS_RETURN_IF_ERROR(scratch->Reserve(round_trip, layers, batch, threads));
  float* thread_scratch[64];
  for (size_t t = 0; t < threads; ++t) thread_scratch[t] = scratch->pack_.data() + t * scratch->pack_per_thread_;
  const F32GemmKernel& kernel = *round_trip.kernel;

  // Forward, keeping each layer's output (and its pre-activation where the derivative needs it).
  const float* in = x;
  for (uint32_t l = 0; l < layers; ++l) {
    const PackedLayerView& layer = round_trip.layers[l];
    const bool keep_pre = NeedsPreActivation(layer.spec.act);
    F32GemmArgs g = PackedLayerGemm(layer, in, batch, keep_pre ? scratch->pre_[l].data() : scratch->outputs_[l].data());
    if (keep_pre) g.act = Activation::kLinear;  // the activation runs below, from Z
    F32GemmParallel(kernel, g, pool, threads, thread_scratch);
    if (keep_pre)
      kernel.activate(layer.spec.act, layer.spec.params(), scratch->pre_[l].data(), scratch->outputs_[l].data(),
                      batch * layer.spec.out);
    in = scratch->outputs_[l].data();
  }
  const size_t out_width = round_trip.layers[layers - 1].spec.out;
  if (y) std::memcpy(y, in, batch * out_width * sizeof(float));

  // Backward: dZ = dY ⊙ act'(·), then dX = dZ·Wᵀ with Wᵀ from the stack's second half.
  std::memcpy(scratch->grad_a_.data(), dy, batch * out_width * sizeof(float));
  float* d = scratch->grad_a_.data();
  float* next = scratch->grad_b_.data();
  for (uint32_t l = layers; l-- > 0;) {
    const PackedLayerView& layer = round_trip.layers[l];
    const PackedLayerView& turned = round_trip.layers[2 * layers - 1 - l];
    ActivationBackward(layer.spec.act, layer.spec.params(), scratch->outputs_[l].data(),
                       NeedsPreActivation(layer.spec.act) ? scratch->pre_[l].data() : nullptr, d, batch, layer.spec.out,
                       nullptr);
    // The transposed layer is linear and has no bias: its product is dX = dZ·Wᵀ alone.
    F32GemmParallel(kernel, PackedLayerGemm(turned, d, batch, l == 0 ? dx : next), pool, threads, thread_scratch);
    float* done = d;
    d = next;
    next = done;
  }
  return Status::kOk;
}

}  // namespace maas
