// A stack of fused dense layers packed into one caller-provided buffer, and its forward pass.
// The buffer is self-describing (header + per-layer records), so a worker thread given only the
// bytes (a SharedArrayBuffer) can open a view over the same weights without copying them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/activation.h"
#include "maas/f32_gemm.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

struct DenseLayerSpec {
  uint32_t in = 0, out = 0;
  Activation act = Activation::kLinear;
  float alpha = 0.f;
  bool has_bias = true;
  float max_value = __builtin_huge_valf();  // kerasRelu's max_value (+inf: none)
  float threshold = 0.f;                    // kerasRelu's threshold
  ActivationParams params() const noexcept { return ActivationParams{alpha, max_value, threshold}; }
};

constexpr uint32_t kMaxDenseLayers = 256;
constexpr size_t kPackedAlign = 64;

// Bytes a buffer needs to hold the packed stack for `kernel`, alignment slack included.
Status PackedStackBytes(const DenseLayerSpec* layers, size_t count, const F32GemmKernel& kernel,
                        size_t* bytes) noexcept;
// Packs weights (layer i: in×out row-major) and biases (out floats, or nullptr) into dst.
Status PackDenseStack(const DenseLayerSpec* layers, size_t count, const float* const* weights,
                      const float* const* biases, const F32GemmKernel& kernel, void* dst, size_t dst_bytes) noexcept;

// A read-only view over a packed buffer, checked on open.
// Packs layer `index` alone (and the header every layer shares), so a large stack can be packed as
// its layers are read; packing each layer once this way gives the bytes PackDenseStack gives.
Status PackDenseStackLayer(const DenseLayerSpec* layers, size_t count, size_t index, const float* weights,
                           const float* bias, const F32GemmKernel& kernel, void* dst, size_t dst_bytes) noexcept;

struct PackedLayerView {
  DenseLayerSpec spec;
  const float* weights;  // packed panels
  const float* bias;     // padded, or nullptr
};

struct PackedStackView {
  const F32GemmKernel* kernel = nullptr;
  uint32_t count = 0;
  PackedLayerView layers[kMaxDenseLayers];
  size_t max_width = 0;  // widest layer output (scratch sizing)
  size_t max_k = 0;      // widest layer input
};

Status OpenDenseStack(const void* buffer, size_t bytes, PackedStackView* view) noexcept;

// Per-handle scratch: two activation buffers and per-thread A-packing space, grown on demand.
class DenseScratch {
 public:
  DenseScratch() = default;
  ~DenseScratch();
  DenseScratch(const DenseScratch&) = delete;
  DenseScratch& operator=(const DenseScratch&) = delete;
  Status Reserve(const PackedStackView& view, size_t batch, size_t threads) noexcept;
  void Release() noexcept;
  float* activations(int which) const noexcept { return which ? act_b_ : act_a_; }
  float* thread_scratch(size_t ith) const noexcept { return pack_ + ith * pack_per_thread_; }

 private:
  float* act_a_ = nullptr;
  float* act_b_ = nullptr;
  float* pack_ = nullptr;
  size_t act_floats_ = 0, pack_per_thread_ = 0, pack_threads_ = 0;
};

// y[batch × last.out] = stack(x[batch × first.in]). Uses up to `threads` of the pool.
Status DenseStackForward(const PackedStackView& view, const float* x, size_t batch, float* y, DenseScratch* scratch,
                         ThreadPool* pool, size_t threads) noexcept;

// One packed layer's product over `batch` rows of x (contiguous, the layer's input width) into y
// (contiguous, its output width), with the layer's bias and activation fused.
F32GemmArgs PackedLayerGemm(const PackedLayerView& layer, const float* x, size_t batch, float* y) noexcept;

// An activation applied to `rows` rows of n floats in place, after a linear product: element-wise
// ones with the kernel's own epilogue code (the values a fused layer computes), softmax per row.
void ApplyActivationRows(const F32GemmKernel& f32, float* c, size_t rows, size_t n, Activation act,
                         const ActivationParams& params) noexcept;

// One GEMM with a fused epilogue, split over the pool: the building block of the stack.
// `scratch_for(ith)` must hold kernel.scratch_floats(k) floats for each ith < threads.
void F32GemmParallel(const F32GemmKernel& kernel, const F32GemmArgs& args, ThreadPool* pool, size_t threads,
                     float* const* thread_scratch) noexcept;

// Splits an m×n output of mr×nr tiles into nth parts: by nr-wide panels when the output is at
// least as wide as it is tall (each thread then streams its own share of B, the larger operand,
// rather than all of it), by rows (multiples of mr) when it is taller, when there are fewer panels
// than parts, or when `whole_rows` asks for it.
GemmTile PartitionTiles(size_t m, size_t n, size_t mr, size_t nr, bool whole_rows, size_t ith, size_t nth) noexcept;
// Splits the output into nth tiles: by rows when there are enough, else by B panels.
GemmTile PartitionGemm(size_t m, size_t n, const F32GemmKernel& kernel, Activation act, size_t ith,
                       size_t nth) noexcept;

}  // namespace maas
