// A quantized dense stack packed into one caller-provided buffer ("MAASQ801"), and its forward
// pass: int8 layers run the int8 GEMM family (u8 activations, s8 per-channel weights), layers
// kept in fp32 run the fp32 family. Like the fp32 stack the buffer is self-describing and every
// offset is re-derived and checked on open, so workers open views over one SharedArrayBuffer.
#pragma once
#include <cstddef>
#include <cstdint>

#include "maas/dense_stack.h"
#include "maas/f32_gemm.h"
#include "maas/int8_gemm.h"
#include "maas/status.h"
#include "maas/thread_pool.h"

namespace maas {

// Where activation quantization parameters come from: the calibrated range of each layer's input
// (static), or the min and max of each batch's input to the layer (dynamic). Format values.
enum class QuantMode : uint32_t { kStatic = 0, kDynamic = 1 };

struct QuantLayerSpec {
  DenseLayerSpec dense;
  bool int8 = true;              // false: the layer is kept in fp32
  float in_min = 0, in_max = 0;  // calibrated range of the layer's input (static mode)
};

// Bytes a buffer needs for the packed stack, alignment slack included.
Status PackedQuantStackBytes(const QuantLayerSpec* layers, size_t count, const Int8GemmKernel& kernel,
                             const F32GemmKernel& f32, size_t* bytes) noexcept;
// Packs every layer: an int8 layer takes weights[i] as in×out int8 (row-major) and w_scales[i]
// (out floats); an fp32 layer takes weights[i] as in×out floats. biases[i]: out floats or null.
Status PackQuantStack(const QuantLayerSpec* layers, size_t count, QuantMode mode, const void* const* weights,
                      const float* const* w_scales, const float* const* biases, const Int8GemmKernel& kernel,
                      const F32GemmKernel& f32, void* dst, size_t dst_bytes) noexcept;

// Packs layer `index` alone (and the header every layer shares): packing each layer once this way
// gives the bytes PackQuantStack gives, without holding every layer's weights at once.
Status PackQuantStackLayer(const QuantLayerSpec* layers, size_t count, QuantMode mode, size_t index,
                           const void* weights, const float* w_scale, const float* bias, const Int8GemmKernel& kernel,
                           const F32GemmKernel& f32, void* dst, size_t dst_bytes) noexcept;

struct QuantLayerView {
  QuantLayerSpec spec;
  QuantParams in;              // static input quantization for the kernel's a_max
  const int8_t* w8 = nullptr;  // int8 layers: packed panels, column sums, scales
  const int32_t* colsum = nullptr;
  const float* w_scale = nullptr;
  const float* scale = nullptr;  // in.scale · w_scale[j] (static mode)
  const float* w32 = nullptr;    // fp32 layers: packed panels
  const float* bias = nullptr;   // padded to the layer's kernel, or null
};

struct QuantStackView {
  const Int8GemmKernel* kernel = nullptr;
  const F32GemmKernel* f32 = nullptr;
  QuantMode mode = QuantMode::kStatic;
  uint32_t count = 0;
  QuantLayerView layers[kMaxDenseLayers];
  size_t max_width = 0;  // widest layer output
  size_t max_k32 = 0;    // widest fp32 layer input
  size_t max_row8 = 0;   // widest u8 activation row (RoundUp(in, 4) of int8 layers)
  size_t max_scale = 0;  // widest padded scale vector of int8 layers
  size_t max_k8 = 0;     // widest int8 layer input
};

Status OpenQuantStack(const void* buffer, size_t bytes, QuantStackView* view) noexcept;

// Per-handle scratch, grown on demand and reused: fp32 and u8 activation ping-pong buffers, the
// dynamic-mode scale vector and per-thread kernel scratch.
class QuantScratch {
 public:
  QuantScratch() = default;
  ~QuantScratch();
  QuantScratch(const QuantScratch&) = delete;
  QuantScratch& operator=(const QuantScratch&) = delete;
  Status Reserve(const QuantStackView& view, size_t batch, size_t threads) noexcept;
  void Release() noexcept;
  float* f32(int which) const noexcept { return which ? f32_b_ : f32_a_; }
  uint8_t* u8(int which) const noexcept { return which ? u8_b_ : u8_a_; }
  float* scale() const noexcept { return scale_; }
  float* f32_thread(size_t ith) const noexcept { return f32_pack_ + ith * f32_per_thread_; }
  void* int8_thread(size_t ith) const noexcept { return int8_pack_ + ith * int8_per_thread_; }

 private:
  float *f32_a_ = nullptr, *f32_b_ = nullptr, *scale_ = nullptr, *f32_pack_ = nullptr;
  uint8_t *u8_a_ = nullptr, *u8_b_ = nullptr, *int8_pack_ = nullptr;
  size_t f32_floats_ = 0, u8_bytes_ = 0, scale_floats_ = 0;
  size_t f32_per_thread_ = 0, int8_per_thread_ = 0, threads_ = 0;
};

// y[batch × last.out] = stack(x[batch × first.in]). Uses up to `threads` of the pool.
Status QuantStackForward(const QuantStackView& view, const float* x, size_t batch, float* y, QuantScratch* scratch,
                         ThreadPool* pool, size_t threads) noexcept;

// One int8 GEMM split over the pool by rows or panels; scratch[ith] holds scratch_bytes(k).
void Int8GemmParallel(const Int8GemmKernel& kernel, const Int8GemmArgs& args, ThreadPool* pool, size_t threads,
                      void* const* thread_scratch) noexcept;

}  // namespace maas
