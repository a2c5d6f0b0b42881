// The native training step: forward with stored activations, a fused loss gradient, backward
// through every layer with GEMMs of the fp32 family (dW = Xᵀ·dZ, dX = dZ·Wᵀ), regularization,
// global-norm clipping and an in-place optimizer pass. One call per batch; no trip into JS.
#include "maas/train.h"

#include <cmath>
#include <new>

#include "activation_backward.h"

namespace maas {

namespace {

constexpr float kProbEpsilon = 1e-7f;  // tfjs's backend epsilon, used to clip probabilities
constexpr size_t kNarrowOutputs = 4;   // layers this narrow get their weight gradient transposed

// dX = dZ·Wᵀ needs Wᵀ packed, a pass over the weights each step (5% of a model L b256 step). When
// the layer's inputs outnumber the batch rows and the batch fills two tile widths, dXᵀ = W·dZᵀ
// reads W as A, packed a cache-sized block at a time, packs the batch's smaller dZᵀ instead and
// transposes the result (measured on a Zen 5 VM: model L b256 steps 2–4% faster on one thread,
// 7–10% on two; model S b1024, whose layers are narrower than its batch, keeps the other form).
bool TransposedInputGrad(size_t batch, size_t in, const F32GemmKernel& kernel) {
  return batch >= 2 * size_t{kernel.nr} && in >= batch;
}

// dst (cols × rows) = srcᵀ for src of rows × cols, in 16 × 16 blocks that stay in L1.
void Transpose(const float* src, size_t rows, size_t cols, float* dst) {
  constexpr size_t kBlock = 16;
  for (size_t i0 = 0; i0 < rows; i0 += kBlock)
    for (size_t j0 = 0; j0 < cols; j0 += kBlock) {
      const size_t i1 = i0 + kBlock < rows ? i0 + kBlock : rows, j1 = j0 + kBlock < cols ? j0 + kBlock : cols;
      for (size_t i = i0; i < i1; ++i)
        for (size_t j = j0; j < j1; ++j) dst[j * rows + i] = src[i * cols + j];
    }
}

inline float Sigmoid(float z) { return z >= 0 ? 1.f / (1.f + std::exp(-z)) : std::exp(z) / (1.f + std::exp(z)); }

void SoftmaxRow(float* row, size_t n) {
  float mx = row[0];
  for (size_t j = 1; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
  double sum = 0;
  for (size_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - mx));
  const float inv = static_cast<float>(1.0 / sum);
  for (size_t j = 0; j < n; ++j) row[j] *= inv;
}

}  // namespace

Trainer::Trainer(std::vector<TrainLayer> layers, Loss loss, const F32GemmKernel& kernel) noexcept
    : layers_(std::move(layers)), loss_(loss), kernel_(kernel), update_(SelectF32Update(kernel.isa)) {}

Status Trainer::Check() const noexcept {
  if (layers_.empty() || layers_.size() > kMaxDenseLayers) return Status::kInvalidArgument;
  if (static_cast<uint32_t>(loss_) >= kLossCount) return Status::kInvalidArgument;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DenseLayerSpec& s = layers_[l].spec;
    if (s.in == 0 || s.out == 0 || !layers_[l].kernel || (s.has_bias && !layers_[l].bias))
      return Status::kInvalidArgument;
    if (l > 0 && s.in != layers_[l - 1].spec.out) return Status::kInvalidArgument;
    if (!ValidActivationParams(s.act, s.params())) return Status::kInvalidArgument;
  }
  const Activation last = layers_.back().spec.act;
  const bool categorical = loss_ == Loss::kCategoricalCrossentropy || loss_ == Loss::kSparseCategoricalCrossentropy;
  if (categorical && last != Activation::kSoftmax) return Status::kInvalidArgument;
  if (!categorical && last == Activation::kSoftmax && loss_ == Loss::kBinaryCrossentropy)
    return Status::kInvalidArgument;
  return Status::kOk;
}

bool Trainer::FusedLastActivation() const noexcept {
  const Activation last = layers_.back().spec.act;
  return (loss_ == Loss::kBinaryCrossentropy && last == Activation::kSigmoid) ||
         ((loss_ == Loss::kCategoricalCrossentropy || loss_ == Loss::kSparseCategoricalCrossentropy) &&
          last == Activation::kSoftmax);
}

Status Trainer::Forward(const float* x, size_t batch, bool logits_last, ThreadPool* pool, size_t threads) noexcept {
  if (pool && threads > pool->size()) threads = pool->size();
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  size_t max_in = 0, max_out = 0, max_b = 0;
  for (const TrainLayer& l : layers_) {
    max_in = l.spec.in > max_in ? l.spec.in : max_in;
    max_out = l.spec.out > max_out ? l.spec.out : max_out;
    const size_t fwd = PackedWeightFloats(kernel_, l.spec.in, l.spec.out);
    const size_t dw = PackedWeightFloats(kernel_, batch, l.spec.out);
    const size_t dx = TransposedInputGrad(batch, l.spec.in, kernel_)
                          ? PackedWeightFloats(kernel_, l.spec.out, batch)
                          : PackedWeightFloats(kernel_, l.spec.out, l.spec.in);
    const size_t dwt = l.spec.out <= kNarrowOutputs ? PackedWeightFloats(kernel_, batch, l.spec.in) : 0;
    max_b = dwt > max_b ? dwt : max_b;
    if (l.spec.out <= kNarrowOutputs && grad_t_.size() < static_cast<size_t>(l.spec.in) * l.spec.out) {
      try {
        grad_t_.resize(static_cast<size_t>(l.spec.in) * l.spec.out);
      } catch (const std::bad_alloc&) {
        return Status::kOutOfMemory;
      }
    }
    max_b = fwd > max_b ? fwd : max_b;
    max_b = dw > max_b ? dw : max_b;
    max_b = dx > max_b ? dx : max_b;
  }
  try {
    if (grads_.size() != layers_.size()) {
      grads_.resize(layers_.size());
      outputs_.resize(layers_.size());
      pre_.resize(layers_.size());
      for (size_t l = 0; l < layers_.size(); ++l) {
        grads_[l].kernel.assign(static_cast<size_t>(layers_[l].spec.in) * layers_[l].spec.out, 0.f);
        grads_[l].bias.assign(layers_[l].spec.out, 0.f);
      }
    }
    if (batch > capacity_) {
      for (size_t l = 0; l < layers_.size(); ++l) {
        outputs_[l].resize(batch * layers_[l].spec.out);
        if (NeedsPreActivation(layers_[l].spec.act)) pre_[l].resize(batch * layers_[l].spec.out);
      }
      dz_.resize(batch * max_out);
      dy_.resize(batch * (max_in > max_out ? max_in : max_out));
      capacity_ = batch;
    }
    // Sized for this batch whatever the capacity: a smaller batch than an earlier one may take the
    // transposed input gradient where the earlier one did not.
    if (TransposedInputGrad(batch, max_in, kernel_) && dx_t_.size() < batch * max_in) dx_t_.resize(batch * max_in);
    if (packed_b_.size() < max_b) packed_b_.resize(max_b);
    if (bias_padded_.size() < PackedBiasFloats(max_out, kernel_.nr))
      bias_padded_.resize(PackedBiasFloats(max_out, kernel_.nr));
    size_t max_k = max_in > max_out ? max_in : max_out;
    max_k = batch > max_k ? batch : max_k;
    const size_t per_thread = kernel_.scratch_floats(max_k);
    if (pack_per_thread_ < per_thread || pack_scratch_.size() < per_thread * threads) {
      pack_per_thread_ = per_thread;
      pack_scratch_.resize(per_thread * threads);
    }
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  float* scratch[64];
  for (size_t t = 0; t < threads; ++t) scratch[t] = ThreadScratch(t);
  const float* in = x;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const TrainLayer& layer = layers_[l];
    PackWeights(kernel_, layer.kernel, layer.spec.out, layer.spec.in, layer.spec.out, packed_b_.data());
    if (layer.bias) PackF32Bias(layer.bias, layer.spec.out, kernel_.nr, bias_padded_.data());
    F32GemmArgs g;
    g.m = batch;
    g.n = layer.spec.out;
    g.k = layer.spec.in;
    g.a = in;
    g.lda = layer.spec.in;
    g.b_packed = packed_b_.data();
    g.bias = layer.bias ? bias_padded_.data() : nullptr;
    g.c = outputs_[l].data();
    g.ldc = layer.spec.out;
    const Activation act = (logits_last && l + 1 == layers_.size()) ? Activation::kLinear : layer.spec.act;
    g.set_activation(act, layer.spec.params());
    if (NeedsPreActivation(act)) {
      // Z for the backward pass, then Y = act(Z) from it.
      g.c = pre_[l].data();
      g.act = Activation::kLinear;
      F32GemmParallel(kernel_, g, pool, threads, scratch);
      kernel_.activate(act, layer.spec.params(), pre_[l].data(), outputs_[l].data(), batch * layer.spec.out);
    } else {
      F32GemmParallel(kernel_, g, pool, threads, scratch);
    }
    in = outputs_[l].data();
  }
  return Status::kOk;
}

// The data loss (mean over the batch, and over outputs for the element-wise losses) and, when
// asked, dL/dZ of the last layer in dz_. A fused last layer holds logits on entry and its
// probabilities on exit, so callers always find the model's predictions in outputs_.back().
double Trainer::LossAndOutputGrad(const float* t, size_t batch, bool want_grad) noexcept {
  const TrainLayer& last = layers_.back();
  const size_t n = last.spec.out;
  float* out = outputs_.back().data();
  float* dz = dz_.data();
  const double inv_bn = 1.0 / (static_cast<double>(batch) * n), inv_b = 1.0 / static_cast<double>(batch);
  double loss = 0;
  const bool fused = FusedLastActivation();
  switch (loss_) {
    case Loss::kMeanSquaredError:
    case Loss::kMeanAbsoluteError:
      for (size_t i = 0; i < batch * n; ++i) {
        const float diff = out[i] - t[i];
        const bool mse = loss_ == Loss::kMeanSquaredError;
        loss += mse ? static_cast<double>(diff) * diff : std::fabs(diff);
        if (want_grad)
          dz[i] = static_cast<float>((mse ? 2.0 * diff : (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0)) * inv_bn);
      }
      loss *= inv_bn;
      break;
    case Loss::kBinaryCrossentropy:
      for (size_t i = 0; i < batch * n; ++i) {
        if (fused) {
          const float z = out[i];
          // max(z, 0) − z·t + log(1 + e^{−|z|}): finite for any logit
          loss += std::fmax(z, 0.f) - z * t[i] + std::log1p(std::exp(-std::fabs(z)));
          out[i] = Sigmoid(z);
          if (want_grad) dz[i] = static_cast<float>((out[i] - t[i]) * inv_bn);
        } else {
          const float p = std::fmin(std::fmax(out[i], kProbEpsilon), 1.f - kProbEpsilon);
          loss -= t[i] * std::log(p) + (1.f - t[i]) * std::log(1.f - p);
          if (want_grad) dz[i] = static_cast<float>((p - t[i]) / (p * (1.f - p)) * inv_bn);
        }
      }
      loss *= inv_bn;
      break;
    case Loss::kCategoricalCrossentropy:
    case Loss::kSparseCategoricalCrossentropy: {
      const bool sparse = loss_ == Loss::kSparseCategoricalCrossentropy;
      for (size_t i = 0; i < batch; ++i) {
        float* z = out + i * n;
        float mx = z[0];
        for (size_t j = 1; j < n; ++j) mx = z[j] > mx ? z[j] : mx;
        double sum = 0;
        for (size_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
        const double lse = mx + std::log(sum);
        double t_sum = 0;
        if (sparse) {
          const size_t label = static_cast<size_t>(t[i]);
          loss += lse - z[label];
          t_sum = 1;
        } else {
          for (size_t j = 0; j < n; ++j) {
            loss += t[i * n + j] * (lse - z[j]);
            t_sum += t[i * n + j];
          }
        }
        SoftmaxRow(z, n);
        if (want_grad) {
          float* d = dz + i * n;
          for (size_t j = 0; j < n; ++j) {
            const double target = sparse ? (j == static_cast<size_t>(t[i]) ? 1.0 : 0.0) : t[i * n + j];
            d[j] = static_cast<float>((z[j] * t_sum - target) * inv_b);
          }
        }
      }
      loss *= inv_b;
      break;
    }
  }
  return loss;
}

void Trainer::Backward(const float* x, size_t batch, ThreadPool* pool, size_t threads) noexcept {
  if (pool && threads > pool->size()) threads = pool->size();
  threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
  float* scratch[64];
  for (size_t t = 0; t < threads; ++t) scratch[t] = ThreadScratch(t);
  const bool fused = FusedLastActivation();
  for (size_t l = layers_.size(); l-- > 0;) {
    const TrainLayer& layer = layers_[l];
    const size_t in = layer.spec.in, out = layer.spec.out;
    // dz_ holds dL/dY of this layer; turn it into dL/dZ (a fused last layer already did).
    const Activation act = l + 1 == layers_.size() && fused ? Activation::kLinear : layer.spec.act;
    ActivationBackward(act, layer.spec.params(), outputs_[l].data(), NeedsPreActivation(act) ? pre_[l].data() : nullptr,
                       dz_.data(), batch, out, grads_[l].bias.data());
    const float* x_l = l == 0 ? x : outputs_[l - 1].data();
    if (out <= kNarrowOutputs) {
      // A narrow layer (a sigmoid head) would fill one column of each NR-wide tile: compute
      // dWᵀ = dZᵀ · X_l instead (out rows, in columns: full tiles), then transpose the few rows.
      PackWeights(kernel_, x_l, in, batch, in, packed_b_.data());
      F32GemmArgs gt;
      gt.m = out;
      gt.n = in;
      gt.k = batch;
      gt.a = dz_.data();
      gt.lda = out;
      gt.a_transposed = true;
      gt.b_packed = packed_b_.data();
      gt.c = grad_t_.data();
      gt.ldc = in;
      F32GemmParallel(kernel_, gt, pool, threads, scratch);
      float* gw = grads_[l].kernel.data();
      for (size_t j = 0; j < out; ++j)
        for (size_t i = 0; i < in; ++i) gw[i * out + j] = grad_t_[j * in + i];
    } else {
      // dW = X_lᵀ · dZ: A is X_l read transposed, B is dZ packed into panels.
      PackWeights(kernel_, dz_.data(), out, batch, out, packed_b_.data());
      F32GemmArgs gw;
      gw.m = in;
      gw.n = out;
      gw.k = batch;
      gw.a = x_l;
      gw.lda = in;
      gw.a_transposed = true;
      gw.b_packed = packed_b_.data();
      gw.c = grads_[l].kernel.data();
      gw.ldc = out;
      F32GemmParallel(kernel_, gw, pool, threads, scratch);
    }
    if (l == 0) break;
    // dY_{l−1} = dZ · W_lᵀ, then it becomes the next layer's dz_. Turned: dYᵀ = W_l · dZᵀ, with
    // W_l (in × out) the A it is stored as, dZᵀ the packed B, and the in × batch result transposed.
    const bool turned = TransposedInputGrad(batch, in, kernel_);
    PackWeightsTransposed(kernel_, turned ? dz_.data() : layer.kernel, out, turned ? batch : in, out, packed_b_.data());
    F32GemmArgs gx;
    gx.m = turned ? in : batch;
    gx.n = turned ? batch : in;
    gx.k = out;
    gx.a = turned ? layer.kernel : dz_.data();
    gx.lda = out;
    gx.b_packed = packed_b_.data();
    gx.c = turned ? dx_t_.data() : dy_.data();
    gx.ldc = gx.n;
    F32GemmParallel(kernel_, gx, pool, threads, scratch);
    if (turned) Transpose(dx_t_.data(), in, batch, dy_.data());
    dz_.swap(dy_);
  }
}

namespace {

// Σ x² in double with eight independent partial sums: one running sum is a chain of dependent
// adds (about 25 ms per step on model L's 21M weights); eight lanes vectorize and are bound by
// reading the gradients instead.
double SumOfSquares(const float* x, size_t n) noexcept {
  double part[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  double sum = 0;
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  for (double p : part) sum += p;
  return sum;
}

}  // namespace

double Trainer::RegularizeAndNorm(StepResult* out) noexcept {
  const bool clip = opt_.clip_norm > 0.f;
  double penalty = 0, norm2 = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const TrainLayer& layer = layers_[l];
    float* g = grads_[l].kernel.data();
    const size_t size = grads_[l].kernel.size();
    if (layer.l1 != 0.f || layer.l2 != 0.f) {
      for (size_t i = 0; i < size; ++i) {
        const float w = layer.kernel[i];
        penalty += static_cast<double>(layer.l2) * w * w + static_cast<double>(layer.l1) * std::fabs(w);
        g[i] += 2.f * layer.l2 * w + layer.l1 * (w > 0.f ? 1.f : w < 0.f ? -1.f : 0.f);
      }
    }
    // The norm reads every gradient once more (2% of a model L step): only clipping needs it.
    if (clip) {
      norm2 += SumOfSquares(g, size);
      if (layer.bias) norm2 += SumOfSquares(grads_[l].bias.data(), grads_[l].bias.size());
    }
  }
  out->penalty = penalty;
  out->grad_norm = clip ? std::sqrt(norm2) : -1.0;
  return (clip && out->grad_norm > opt_.clip_norm) ? opt_.clip_norm / out->grad_norm : 1.0;
}

namespace {

struct UpdateJob {
  const F32UpdateKernel* kernel;
  const F32UpdateArgs* args;
  size_t size;
};

void UpdateTask(void* ctx, size_t ith, size_t nth) {
  const UpdateJob& job = *static_cast<const UpdateJob*>(ctx);
  // Split on 64-float boundaries so no two threads share a cache line.
  const size_t blocks = (job.size + 63) / 64;
  const size_t begin = blocks * ith / nth * 64, end = blocks * (ith + 1) / nth * 64;
  job.kernel->run(*job.args, begin, end < job.size ? end : job.size);
}

// Arrays below this many floats update on the calling thread.
constexpr size_t kParallelUpdateMin = 1 << 16;

}  // namespace

void Trainer::Update(double clip_scale, ThreadPool* pool, size_t threads) noexcept {
  const OptimizerConfig& o = opt_;
  F32UpdateArgs base;
  base.lr = o.learning_rate;
  base.scale = static_cast<float>(clip_scale);
  base.momentum = o.momentum;
  base.beta1 = o.beta1;
  base.beta2 = o.beta2;
  base.epsilon = o.epsilon;
  base.rho = o.rho;
  bool needs_m = false, needs_v = false;
  switch (o.kind) {
    case OptimizerKind::kSgd:
      base.rule = o.momentum == 0.f ? UpdateRule::kSgd : (o.nesterov ? UpdateRule::kNesterov : UpdateRule::kMomentum);
      needs_m = o.momentum != 0.f;
      break;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      base.rule = UpdateRule::kAdam;
      base.c1 = 1.f - static_cast<float>(std::pow(o.beta1, static_cast<double>(step_)));
      base.c2 = 1.f - static_cast<float>(std::pow(o.beta2, static_cast<double>(step_)));
      base.decay = o.kind == OptimizerKind::kAdamW ? o.learning_rate * o.weight_decay : 0.f;
      needs_m = needs_v = true;
      break;
    case OptimizerKind::kRmsProp:
      base.rule = o.momentum == 0.f ? UpdateRule::kRmsProp : UpdateRule::kRmsPropMomentum;
      needs_m = o.momentum != 0.f;
      needs_v = true;
      break;
  }
  if (pool && threads > pool->size()) threads = pool->size();
  auto run = [&](float* w, const float* g, std::vector<float>& m, std::vector<float>& v, size_t size) {
    if (needs_m && m.size() != size) m.assign(size, 0.f);
    if (needs_v && v.size() != size) v.assign(size, 0.f);
    F32UpdateArgs a = base;
    a.w = w;
    a.g = g;
    a.m = needs_m ? m.data() : nullptr;
    a.v = needs_v ? v.data() : nullptr;
    UpdateJob job{update_, &a, size};
    if (pool && threads > 1 && size >= kParallelUpdateMin)
      pool->Run(threads, &UpdateTask, &job);
    else
      update_->run(a, 0, size);
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    LayerGrads& gr = grads_[l];
    run(layers_[l].kernel, gr.kernel.data(), gr.m_kernel, gr.v_kernel, gr.kernel.size());
    if (layers_[l].bias) run(layers_[l].bias, gr.bias.data(), gr.m_bias, gr.v_bias, gr.bias.size());
  }
}

Status Trainer::CheckTargets(const float* y, size_t batch) const noexcept {
  if (loss_ != Loss::kSparseCategoricalCrossentropy) return Status::kOk;
  const float classes = static_cast<float>(layers_.back().spec.out);
  for (size_t i = 0; i < batch; ++i) {
    if (!(y[i] >= 0.f && y[i] < classes) || y[i] != std::floor(y[i])) return Status::kInvalidArgument;
  }
  return Status::kOk;
}

// Checks, runs the forward pass and computes the loss (and dL/dZ of the last layer when asked).
Status Trainer::ForwardLoss(const float* x, const float* y, size_t batch, bool want_grad, ThreadPool* pool,
                            size_t threads, double* loss) noexcept {
  if (batch == 0) return Status::kInvalidArgument;
  MAAS_RETURN_IF_ERROR(Check());
  MAAS_RETURN_IF_ERROR(CheckTargets(y, batch));
  MAAS_RETURN_IF_ERROR(Forward(x, batch, FusedLastActivation(), pool, threads));
  *loss = LossAndOutputGrad(y, batch, want_grad);
  return Status::kOk;
}

Status Trainer::Gradients(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads,
                          StepResult* out) noexcept {
  MAAS_RETURN_IF_ERROR(ForwardLoss(x, y, batch, true, pool, threads, &out->loss));
  Backward(x, batch, pool, threads);
  return Status::kOk;
}

Status Trainer::Step(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads,
                     StepResult* out) noexcept {
  MAAS_RETURN_IF_ERROR(Gradients(x, y, batch, pool, threads, out));
  const double clip_scale = RegularizeAndNorm(out);
  out->loss += out->penalty;
  ++step_;
  Update(clip_scale, pool, threads);
  return Status::kOk;
}

Status Trainer::EvaluateLoss(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads,
                             double* loss) noexcept {
  return ForwardLoss(x, y, batch, false, pool, threads, loss);
}

}  // namespace maas
