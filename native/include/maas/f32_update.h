// The optimizer-update kernel family: one fused in-place pass over a parameter array, its
// gradient and its optimizer state (sgd/momentum/nesterov, adam/adamw, rmsprop), per ISA.
// Listed once in src/cpu/f32_update.inc; selected with the same ISA cap as the GEMM kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/isa.h"

namespace maas {

enum class UpdateRule : uint32_t {
  kSgd = 0,
  kMomentum = 1,
  kNesterov = 2,
  kAdam = 3,
  kRmsProp = 4,
  kRmsPropMomentum = 5
};

struct F32UpdateArgs {
  UpdateRule rule = UpdateRule::kSgd;
  float lr = 0.f;
  float scale = 1.f;                                   // gradient scale (global-norm clipping)
  float momentum = 0.f;                                // momentum rules, rmsprop momentum
  float beta1 = 0.f, beta2 = 0.f, c1 = 1.f, c2 = 1.f;  // adam: moments and bias corrections 1 − β^t
  float epsilon = 0.f;
  float rho = 0.f;    // rmsprop decay
  float decay = 0.f;  // adamw: lr × weight decay, applied before the adam step
  float* w = nullptr;
  const float* g = nullptr;
  float* m = nullptr;  // first state array (momentum, adam m, rmsprop momentum), when used
  float* v = nullptr;  // second state array (adam v, rmsprop mean square), when used
};

struct F32UpdateKernel {
  const char* name;
  Isa isa;
  // Updates elements [begin, end). noexcept, no allocation.
  void (*run)(const F32UpdateArgs& args, size_t begin, size_t end);
};

// The best update kernel whose ISA is at most `isa` (the GEMM kernel's, so one cap rules both).
const F32UpdateKernel* SelectF32Update(Isa isa) noexcept;
const F32UpdateKernel* F32UpdateKernels(size_t* count) noexcept;

}  // namespace maas
