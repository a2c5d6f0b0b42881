// Training in native code: one call runs a whole step for a batch (forward, loss, backward,
// regularization, clipping, optimizer update) over weights the caller owns (row-major in×out
// kernels and biases, updated in place), reusing the fp32 GEMM family for every product.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "maas/dense_stack.h"
#include "maas/f32_gemm.h"
#include "maas/f32_update.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

// Numeric values shared with the JS binding: append only.
enum class Loss : uint32_t {
  kMeanSquaredError = 0,
  kMeanAbsoluteError = 1,
  kBinaryCrossentropy = 2,             // fused with a final sigmoid: computed from logits
  kCategoricalCrossentropy = 3,        // needs a final softmax: computed from logits
  kSparseCategoricalCrossentropy = 4,  // targets are class indices (one float per row)
};
constexpr uint32_t kLossCount = 5;

enum class OptimizerKind : uint32_t { kSgd = 0, kAdam = 1, kAdamW = 2, kRmsProp = 3 };
constexpr uint32_t kOptimizerCount = 4;

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float learning_rate = 0.01f;
  float momentum = 0.f;                // sgd and rmsprop
  bool nesterov = false;               // sgd
  float beta1 = 0.9f, beta2 = 0.999f;  // adam, adamw
  float epsilon = 1e-7f;               // adam, adamw, rmsprop (tfjs's default)
  float rho = 0.9f;                    // rmsprop decay
  float weight_decay = 0.f;            // adamw, decoupled
  float clip_norm = 0.f;               // > 0: clip gradients to this global L2 norm
};

struct TrainLayer {
  DenseLayerSpec spec;
  float* kernel;             // in×out row-major, caller-owned, updated in place
  float* bias;               // out floats or nullptr
  float l1 = 0.f, l2 = 0.f;  // kernel regularizer
};

// What a step returns besides the updated weights.
struct StepResult {
  double loss = 0;       // data loss + regularization penalty
  double penalty = 0;    // regularization part
  double grad_norm = 0;  // global L2 norm of the gradients before clipping; -1 when no clipping asked for it
};

class Trainer {
 public:
  Trainer(std::vector<TrainLayer> layers, Loss loss, const F32GemmKernel& kernel) noexcept;
  // Validates the stack and the loss (e.g. categorical losses need a softmax output).
  Status Check() const noexcept;
  void set_optimizer(const OptimizerConfig& config) noexcept { opt_ = config; }
  const OptimizerConfig& optimizer() const noexcept { return opt_; }
  uint64_t steps() const noexcept { return step_; }

  // One training step: y holds batch×out targets (batch class indices for the sparse loss).
  Status Step(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads, StepResult* out) noexcept;
  // Forward, loss and gradients without the update (tests, evaluation of gradients).
  Status Gradients(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads,
                   StepResult* out) noexcept;
  // Loss without gradients (evaluate): data loss averaged over the batch, no penalty.
  Status EvaluateLoss(const float* x, const float* y, size_t batch, ThreadPool* pool, size_t threads,
                      double* loss) noexcept;
  // Gradient of layer l's kernel (in×out) and bias after Gradients/Step.
  const float* kernel_grad(size_t l) const noexcept { return grads_[l].kernel.data(); }
  const float* bias_grad(size_t l) const noexcept { return grads_[l].bias.data(); }
  // The model's outputs for the last batch (probabilities for a fused last layer): batch×out.
  const float* predictions() const noexcept { return outputs_.back().data(); }
  size_t layer_count() const noexcept { return layers_.size(); }
  const TrainLayer& layer(size_t l) const noexcept { return layers_[l]; }

 private:
  struct LayerGrads {
    std::vector<float> kernel, bias;
    std::vector<float> m_kernel, m_bias, v_kernel, v_bias;  // optimizer state
  };
  Status CheckTargets(const float* y, size_t batch) const noexcept;
  Status ForwardLoss(const float* x, const float* y, size_t batch, bool want_grad, ThreadPool* pool, size_t threads,
                     double* loss) noexcept;
  Status Forward(const float* x, size_t batch, bool logits_last, ThreadPool* pool, size_t threads) noexcept;
  double LossAndOutputGrad(const float* y, size_t batch, bool want_grad) noexcept;
  void Backward(const float* x, size_t batch, ThreadPool* pool, size_t threads) noexcept;
  double RegularizeAndNorm(StepResult* out) noexcept;
  void Update(double clip_scale, ThreadPool* pool, size_t threads) noexcept;
  float* ThreadScratch(size_t ith) noexcept { return pack_scratch_.data() + ith * pack_per_thread_; }
  bool FusedLastActivation() const noexcept;

  std::vector<TrainLayer> layers_;
  Loss loss_;
  const F32GemmKernel& kernel_;
  const F32UpdateKernel* update_;
  OptimizerConfig opt_;
  uint64_t step_ = 0;
  std::vector<LayerGrads> grads_;
  std::vector<std::vector<float>> outputs_;  // per layer, batch×out (logits for a fused last layer)
  std::vector<std::vector<float>> pre_;      // per swish/gelu layer, batch×out pre-activations Z
  std::vector<float> dz_, dy_, packed_b_, bias_padded_, pack_scratch_, grad_t_, dx_t_;
  size_t pack_per_thread_ = 0, capacity_ = 0;
};

}  // namespace maas
