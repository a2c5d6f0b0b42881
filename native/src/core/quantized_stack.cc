// Packing, opening and running a quantized dense stack. Between two int8 layers whose
// activation the epilogue fuses (linear, relu, relu6, Keras ReLU) and whose parameters are static, the first layer
// writes u8 straight into the second's input; everywhere else a layer writes fp32 and the next
// int8 layer quantizes it (with the calibrated parameters, or the batch's own range).
#include "maas/quantized_stack.h"

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "packed_layout.h"

namespace maas {

namespace {

constexpr char kMagic[8] = {'M', 'A', 'A', 'S', 'Q', '8', '0', '1'};
// 2: records carry kerasRelu's max_value and threshold (buffers are built at load, never stored).
constexpr uint32_t kFormatVersion = 2;

struct QuantHeader {
  char magic[8];
  uint32_t version;
  uint32_t layer_count;
  uint32_t mode;
  uint32_t reserved;
  char kernel_name[64];  // the int8 kernel the panels are laid out for
  char f32_name[64];     // the fp32 kernel of layers kept in fp32
  uint64_t total_bytes;  // from the aligned start
};

struct QuantLayerRecord {
  uint32_t in, out, act;
  float alpha, max_value, threshold;
  uint32_t has_bias, int8;
  float in_min, in_max;
  uint64_t w_offset, colsum_offset, wscale_offset, scale_offset, bias_offset;  // from the aligned start
};

using packed::AlignedStart;
using packed::AlignUp;
using packed::Take;

// Layout from the aligned start: header, records, then each layer's arrays in record order.
size_t LayoutBytes(const QuantLayerSpec* layers, size_t count, const Int8GemmKernel& kernel, const F32GemmKernel& f32,
                   QuantLayerRecord* records) {
  size_t off = AlignUp(sizeof(QuantHeader) + count * sizeof(QuantLayerRecord), kPackedAlign);
  for (size_t i = 0; i < count; ++i) {
    const DenseLayerSpec& d = layers[i].dense;
    QuantLayerRecord r{d.in,
                       d.out,
                       static_cast<uint32_t>(d.act),
                       d.alpha,
                       d.max_value,
                       d.threshold,
                       d.has_bias ? 1u : 0u,
                       layers[i].int8 ? 1u : 0u,
                       layers[i].in_min,
                       layers[i].in_max,
                       0,
                       0,
                       0,
                       0,
                       0};
    if (layers[i].int8) {
      const size_t padded = PackedBiasFloats(d.out, kernel.nr);
      r.w_offset = Take(&off, PackedInt8BBytes(d.in, d.out, kernel));
      r.colsum_offset = Take(&off, padded * sizeof(int32_t));
      r.wscale_offset = Take(&off, padded * sizeof(float));
      r.scale_offset = Take(&off, padded * sizeof(float));
      if (d.has_bias) r.bias_offset = Take(&off, padded * sizeof(float));
    } else {
      r.w_offset = Take(&off, PackedBFloats(d.in, d.out, f32.nr) * sizeof(float));
      if (d.has_bias) r.bias_offset = Take(&off, PackedBiasFloats(d.out, f32.nr) * sizeof(float));
    }
    if (records) records[i] = r;
  }
  return off;
}

Status CheckSpecs(const QuantLayerSpec* layers, size_t count) {
  if (count == 0 || count > kMaxDenseLayers) return Status::kInvalidArgument;
  for (size_t i = 0; i < count; ++i) {
    const DenseLayerSpec& d = layers[i].dense;
    if (d.in == 0 || d.out == 0 || static_cast<uint32_t>(d.act) >= kActivationCount) return Status::kInvalidArgument;
    if (!ValidActivationParams(d.act, d.params())) return Status::kInvalidArgument;
    if (i > 0 && d.in != layers[i - 1].dense.out) return Status::kInvalidArgument;
    if (layers[i].int8 && d.in > kMaxInt8K) return Status::kInvalidArgument;
    if (!std::isfinite(layers[i].in_min) || !std::isfinite(layers[i].in_max) || layers[i].in_min > layers[i].in_max) {
      return Status::kInvalidArgument;
    }
  }
  return Status::kOk;
}

// Combined per-column scales a_scale · w_scale[j] over the padded width.
void CombineScales(float a_scale, const float* w_scale, size_t padded, float* out) {
  for (size_t j = 0; j < padded; ++j) out[j] = a_scale * w_scale[j];
}

}  // namespace

Status PackedQuantStackBytes(const QuantLayerSpec* layers, size_t count, const Int8GemmKernel& kernel,
                             const F32GemmKernel& f32, size_t* bytes) noexcept {
  MAAS_RETURN_IF_ERROR(CheckSpecs(layers, count));
  *bytes = LayoutBytes(layers, count, kernel, f32, nullptr) + kPackedAlign;
  return Status::kOk;
}

namespace {

// Writes the header and every layer's record (all any single layer's packing needs) into dst.
Status WriteQuantHeader(const QuantLayerSpec* layers, size_t count, QuantMode mode, const Int8GemmKernel& kernel,
                        const F32GemmKernel& f32, void* dst, size_t dst_bytes, QuantLayerRecord** records) {
  size_t need = 0;
  MAAS_RETURN_IF_ERROR(PackedQuantStackBytes(layers, count, kernel, f32, &need));
  if (dst_bytes < need || (mode != QuantMode::kStatic && mode != QuantMode::kDynamic)) return Status::kInvalidArgument;
  uint8_t* base = AlignedStart(dst);
  QuantHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kFormatVersion;
  header.layer_count = static_cast<uint32_t>(count);
  header.mode = static_cast<uint32_t>(mode);
  std::strncpy(header.kernel_name, kernel.name, sizeof(header.kernel_name) - 1);
  std::strncpy(header.f32_name, f32.name, sizeof(header.f32_name) - 1);
  *records = reinterpret_cast<QuantLayerRecord*>(base + sizeof(QuantHeader));
  header.total_bytes = LayoutBytes(layers, count, kernel, f32, *records);
  std::memcpy(base, &header, sizeof(header));
  return Status::kOk;
}

bool LayerOperandsPresent(const QuantLayerSpec& layer, const void* weights, const float* w_scale, const float* bias) {
  return weights && (!layer.int8 || w_scale) && (!layer.dense.has_bias || bias);
}

void PackQuantLayer(const QuantLayerSpec& layer, const QuantLayerRecord& r, const void* weights, const float* w_scale,
                    const float* bias, const Int8GemmKernel& kernel, const F32GemmKernel& f32, uint8_t* base) {
  const DenseLayerSpec& d = layer.dense;
  if (!layer.int8) {
    PackF32B(static_cast<const float*>(weights), d.out, d.in, d.out, f32.nr,
             reinterpret_cast<float*>(base + r.w_offset));
    if (d.has_bias) PackF32Bias(bias, d.out, f32.nr, reinterpret_cast<float*>(base + r.bias_offset));
    return;
  }
  const size_t padded = PackedBiasFloats(d.out, kernel.nr);
  PackInt8B(static_cast<const int8_t*>(weights), d.out, d.in, d.out, kernel,
            reinterpret_cast<int8_t*>(base + r.w_offset), reinterpret_cast<int32_t*>(base + r.colsum_offset));
  PackF32Bias(w_scale, d.out, kernel.nr, reinterpret_cast<float*>(base + r.wscale_offset));
  const QuantParams in = ActivationQuantParams(layer.in_min, layer.in_max, kernel.a_max);
  CombineScales(in.scale, reinterpret_cast<const float*>(base + r.wscale_offset), padded,
                reinterpret_cast<float*>(base + r.scale_offset));
  if (d.has_bias) PackF32Bias(bias, d.out, kernel.nr, reinterpret_cast<float*>(base + r.bias_offset));
}

}  // namespace

Status PackQuantStack(const QuantLayerSpec* layers, size_t count, QuantMode mode, const void* const* weights,
                      const float* const* w_scales, const float* const* biases, const Int8GemmKernel& kernel,
                      const F32GemmKernel& f32, void* dst, size_t dst_bytes) noexcept {
  QuantLayerRecord* records = nullptr;
  MAAS_RETURN_IF_ERROR(WriteQuantHeader(layers, count, mode, kernel, f32, dst, dst_bytes, &records));
  for (size_t i = 0; i < count; ++i) {
    if (!LayerOperandsPresent(layers[i], weights[i], w_scales[i], biases[i])) return Status::kInvalidArgument;
  }
  for (size_t i = 0; i < count; ++i) {
    PackQuantLayer(layers[i], records[i], weights[i], w_scales[i], biases[i], kernel, f32, AlignedStart(dst));
  }
  return Status::kOk;
}

Status PackQuantStackLayer(const QuantLayerSpec* layers, size_t count, QuantMode mode, size_t index,
                           const void* weights, const float* w_scale, const float* bias, const Int8GemmKernel& kernel,
                           const F32GemmKernel& f32, void* dst, size_t dst_bytes) noexcept {
  if (index >= count) return Status::kInvalidArgument;
  QuantLayerRecord* records = nullptr;
  MAAS_RETURN_IF_ERROR(WriteQuantHeader(layers, count, mode, kernel, f32, dst, dst_bytes, &records));
  if (!LayerOperandsPresent(layers[index], weights, w_scale, bias)) return Status::kInvalidArgument;
  PackQuantLayer(layers[index], records[index], weights, w_scale, bias, kernel, f32, AlignedStart(dst));
  return Status::kOk;
}

Status OpenQuantStack(const void* buffer, size_t bytes, QuantStackView* view) noexcept {
  const uint8_t* base = AlignedStart(buffer);
  const size_t slack = static_cast<size_t>(base - static_cast<const uint8_t*>(buffer));
  if (bytes < slack + sizeof(QuantHeader)) return Status::kCorruptPacked;
  QuantHeader header;
  std::memcpy(&header, base, sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 || header.version != kFormatVersion)
    return Status::kCorruptPacked;
  if (header.layer_count == 0 || header.layer_count > kMaxDenseLayers || header.mode > 1 ||
      header.total_bytes > bytes - slack ||
      sizeof(QuantHeader) + header.layer_count * sizeof(QuantLayerRecord) > bytes - slack) {
    return Status::kCorruptPacked;
  }
  header.kernel_name[sizeof(header.kernel_name) - 1] = 0;
  header.f32_name[sizeof(header.f32_name) - 1] = 0;
  const Int8GemmKernel* kernel = FindInt8Gemm(header.kernel_name);
  const F32GemmKernel* f32 = FindF32Gemm(header.f32_name);
  if (!kernel || !f32) return Status::kCorruptPacked;
  if (!IsaSupported(kernel->isa) || !IsaSupported(f32->isa)) return Status::kUnsupported;
  QuantLayerSpec specs[kMaxDenseLayers];
  QuantLayerRecord stored[kMaxDenseLayers];
  std::memcpy(stored, base + sizeof(QuantHeader), header.layer_count * sizeof(QuantLayerRecord));
  for (uint32_t i = 0; i < header.layer_count; ++i) {
    const QuantLayerRecord& r = stored[i];
    if (r.act >= kActivationCount || r.int8 > 1 || r.has_bias > 1) return Status::kCorruptPacked;
    specs[i].dense =
        DenseLayerSpec{r.in, r.out, static_cast<Activation>(r.act), r.alpha, r.has_bias != 0, r.max_value, r.threshold};
    specs[i].int8 = r.int8 != 0;
    specs[i].in_min = r.in_min;
    specs[i].in_max = r.in_max;
  }
  if (CheckSpecs(specs, header.layer_count) != Status::kOk) return Status::kCorruptPacked;
  // Offsets must be exactly what packing these specs produces: no pointer can leave the buffer.
  QuantLayerRecord expected[kMaxDenseLayers];
  if (LayoutBytes(specs, header.layer_count, *kernel, *f32, expected) != header.total_bytes)
    return Status::kCorruptPacked;
  *view = QuantStackView{};
  view->kernel = kernel;
  view->f32 = f32;
  view->mode = static_cast<QuantMode>(header.mode);
  view->count = header.layer_count;
  for (uint32_t i = 0; i < header.layer_count; ++i) {
    const QuantLayerRecord& e = expected[i];
    const QuantLayerRecord& s = stored[i];
    if (e.w_offset != s.w_offset || e.colsum_offset != s.colsum_offset || e.wscale_offset != s.wscale_offset ||
        e.scale_offset != s.scale_offset || e.bias_offset != s.bias_offset) {
      return Status::kCorruptPacked;
    }
    QuantLayerView& l = view->layers[i];
    const DenseLayerSpec& d = specs[i].dense;
    l.spec = specs[i];
    l.bias = d.has_bias ? reinterpret_cast<const float*>(base + e.bias_offset) : nullptr;
    if (specs[i].int8) {
      l.in = ActivationQuantParams(specs[i].in_min, specs[i].in_max, kernel->a_max);
      l.w8 = reinterpret_cast<const int8_t*>(base + e.w_offset);
      l.colsum = reinterpret_cast<const int32_t*>(base + e.colsum_offset);
      l.w_scale = reinterpret_cast<const float*>(base + e.wscale_offset);
      l.scale = reinterpret_cast<const float*>(base + e.scale_offset);
      const size_t row8 = RoundUpTo(d.in, 4), padded = PackedBiasFloats(d.out, kernel->nr);
      if (row8 > view->max_row8) view->max_row8 = row8;
      if (padded > view->max_scale) view->max_scale = padded;
      if (d.in > view->max_k8) view->max_k8 = d.in;
    } else {
      l.w32 = reinterpret_cast<const float*>(base + e.w_offset);
      if (d.in > view->max_k32) view->max_k32 = d.in;
    }
    if (d.out > view->max_width) view->max_width = d.out;
  }
  return Status::kOk;
}

namespace {

void* AllocBytes(size_t n) { return packed::AllocAligned(n); }

// Grows *p to at least `need` units of `unit` bytes; false when the allocation fails.
template <typename T>
bool Grow(T** p, size_t* have, size_t need) {
  if (need <= *have && *p) return true;
  std::free(*p);
  *p = static_cast<T*>(AllocBytes(need * sizeof(T)));
  *have = *p ? need : 0;
  return *p != nullptr;
}

}  // namespace

QuantScratch::~QuantScratch() { Release(); }

void QuantScratch::Release() noexcept {
  for (void* p : {static_cast<void*>(f32_a_), static_cast<void*>(f32_b_), static_cast<void*>(scale_),
                  static_cast<void*>(f32_pack_), static_cast<void*>(u8_a_), static_cast<void*>(u8_b_),
                  static_cast<void*>(int8_pack_)}) {
    std::free(p);
  }
  f32_a_ = f32_b_ = scale_ = f32_pack_ = nullptr;
  u8_a_ = u8_b_ = int8_pack_ = nullptr;
  f32_floats_ = u8_bytes_ = scale_floats_ = f32_per_thread_ = int8_per_thread_ = threads_ = 0;
}

Status QuantScratch::Reserve(const QuantStackView& view, size_t batch, size_t threads) noexcept {
  const size_t f32_need = batch * view.max_width, u8_need = batch * (view.max_row8 ? view.max_row8 : 4);
  size_t have_a = f32_floats_, have_b = f32_floats_;
  if (f32_need > f32_floats_) {
    if (!Grow(&f32_a_, &have_a, f32_need) || !Grow(&f32_b_, &have_b, f32_need)) return Release(), Status::kOutOfMemory;
    f32_floats_ = f32_need;
  }
  have_a = have_b = u8_bytes_;
  if (u8_need > u8_bytes_) {
    if (!Grow(&u8_a_, &have_a, u8_need) || !Grow(&u8_b_, &have_b, u8_need)) return Release(), Status::kOutOfMemory;
    u8_bytes_ = u8_need;
  }
  if (!Grow(&scale_, &scale_floats_, view.max_scale ? view.max_scale : 1)) return Release(), Status::kOutOfMemory;
  const size_t f32_per =
      AlignUp(view.max_k32 ? view.f32->scratch_floats(view.max_k32) : 1, kPackedAlign / sizeof(float));
  const size_t int8_per = AlignUp(view.kernel->scratch_bytes(view.max_k8) + 1, kPackedAlign);
  if (f32_per > f32_per_thread_ || int8_per > int8_per_thread_ || threads > threads_) {
    std::free(f32_pack_);
    std::free(int8_pack_);
    f32_pack_ = static_cast<float*>(AllocBytes(f32_per * threads * sizeof(float)));
    int8_pack_ = static_cast<uint8_t*>(AllocBytes(int8_per * threads));
    if (!f32_pack_ || !int8_pack_) return Release(), Status::kOutOfMemory;
    f32_per_thread_ = f32_per;
    int8_per_thread_ = int8_per;
    threads_ = threads;
  }
  return Status::kOk;
}

namespace {

struct Int8Job {
  const Int8GemmKernel* kernel;
  const Int8GemmArgs* args;
  void* const* scratch;
};

void Int8Task(void* ctx, size_t ith, size_t nth) {
  const Int8Job& job = *static_cast<const Int8Job*>(ctx);
  const GemmTile tile = PartitionTiles(job.args->m, job.args->n, job.kernel->mr, job.kernel->nr, false, ith, nth);
  if (tile.m_begin < tile.m_end && tile.p_begin < tile.p_end) job.kernel->run(*job.args, tile, job.scratch[ith]);
}

// As for fp32: below this many operations a second thread costs more than it saves.
constexpr double kParallelMinOps = 2e6;

// The batch's own range, as DynamicQuantizeLinear takes it (NaNs are passed over). Four vectors of
// running minima and maxima: the single scalar chain ran at one element per compare latency, a fifth
// of a 1024×4096×4096 int8 GEMM on AMX. SSE is x86-64's baseline; minps(x, lo) answers lo when x is
// NaN, as the scalar compare does.
QuantParams DynamicParams(const float* x, size_t count, int32_t qmax) {
  __m128 lo[4], hi[4];
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= count; i += 16)
    for (int j = 0; j < 4; ++j) {
      const __m128 v = _mm_loadu_ps(x + i + 4 * j);
      lo[j] = _mm_min_ps(v, lo[j]);
      hi[j] = _mm_max_ps(v, hi[j]);
    }
  alignas(16) float lanes_lo[16], lanes_hi[16];
  for (int j = 0; j < 4; ++j) {
    _mm_store_ps(lanes_lo + 4 * j, lo[j]);
    _mm_store_ps(lanes_hi + 4 * j, hi[j]);
  }
  float low = 0.f, high = 0.f;
  for (int j = 0; j < 16; ++j) {
    low = lanes_lo[j] < low ? lanes_lo[j] : low;
    high = lanes_hi[j] > high ? lanes_hi[j] : high;
  }
  for (; i < count; ++i) {
    low = x[i] < low ? x[i] : low;
    high = x[i] > high ? x[i] : high;
  }
  return ActivationQuantParams(low, high, qmax);
}

// Quantizes rows of n floats (stride n) into rows of stride ld, zeroing the pad bytes.
void QuantizeRows(const Int8GemmKernel& kernel, const float* x, size_t rows, size_t n, QuantParams p, uint8_t* q,
                  size_t ld) {
  for (size_t i = 0; i < rows; ++i) {
    kernel.quantize(x + i * n, n, p.scale, p.zero, q + i * ld);
    std::memset(q + i * ld + n, 0, ld - n);
  }
}

}  // namespace

void Int8GemmParallel(const Int8GemmKernel& kernel, const Int8GemmArgs& args, ThreadPool* pool, size_t threads,
                      void* const* thread_scratch) noexcept {
  if (!pool || threads <= 1 || 2.0 * args.m * args.n * args.k < kParallelMinOps) threads = 1;
  Int8Job job{&kernel, &args, thread_scratch};
  if (threads == 1) {
    Int8Task(&job, 0, 1);
    return;
  }
  pool->Run(threads, &Int8Task, &job);
}

Status QuantStackForward(const QuantStackView& view, const float* x, size_t batch, float* y, QuantScratch* scratch,
                         ThreadPool* pool, size_t threads) noexcept {
  if (!view.kernel || !view.f32 || batch == 0) return Status::kInvalidArgument;
  if (pool && threads > pool->size()) threads = pool->size();
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  MAAS_RETURN_IF_ERROR(scratch->Reserve(view, batch, threads));
  float* f32_scratch[64];
  void* int8_scratch[64];
  for (size_t t = 0; t < threads; ++t) {
    f32_scratch[t] = scratch->f32_thread(t);
    int8_scratch[t] = scratch->int8_thread(t);
  }
  const Int8GemmKernel& kernel = *view.kernel;
  const float* in = x;             // the current fp32 input, when `u8_in` is null
  const uint8_t* u8_in = nullptr;  // the current input already quantized by the previous layer
  int f32_next = 0, u8_next = 0;   // which ping-pong buffer the next write uses
  for (uint32_t l = 0; l < view.count; ++l) {
    const QuantLayerView& layer = view.layers[l];
    const DenseLayerSpec& d = layer.spec.dense;
    const bool last = l + 1 == view.count;
    float* out = last ? y : scratch->f32(f32_next);
    if (!layer.spec.int8) {
      F32GemmArgs a;
      a.m = batch;
      a.n = d.out;
      a.k = d.in;
      a.a = in;
      a.lda = d.in;
      a.b_packed = layer.w32;
      a.bias = layer.bias;
      a.c = out;
      a.ldc = d.out;
      a.set_activation(d.act, d.params());
      F32GemmParallel(*view.f32, a, pool, threads, f32_scratch);
      in = out;
      f32_next ^= 1;
      continue;
    }
    const size_t lda = RoundUpTo(d.in, 4);
    Int8GemmArgs g;
    g.m = batch;
    g.n = d.out;
    g.k = d.in;
    g.b_packed = layer.w8;
    g.colsum = layer.colsum;
    g.bias = layer.bias;
    g.lda = lda;
    if (u8_in) {
      g.a = u8_in;
      g.a_zero = layer.in.zero;
      g.scale = layer.scale;
    } else {
      const QuantParams p = view.mode == QuantMode::kDynamic ? DynamicParams(in, batch * d.in, kernel.a_max) : layer.in;
      uint8_t* q = scratch->u8(u8_next);
      u8_next ^= 1;
      QuantizeRows(kernel, in, batch, d.in, p, q, lda);
      g.a = q;
      g.a_zero = p.zero;
      if (view.mode == QuantMode::kDynamic) {
        CombineScales(p.scale, layer.w_scale, PackedBiasFloats(d.out, kernel.nr), scratch->scale());
        g.scale = scratch->scale();
      } else {
        g.scale = layer.scale;
      }
    }
    const QuantLayerView* next = last ? nullptr : &view.layers[l + 1];
    const bool requant = next && next->spec.int8 && view.mode == QuantMode::kStatic && Int8Fusable(d.act);
    g.act = Int8Fusable(d.act) ? d.act : Activation::kLinear;
    g.params = d.params();
    if (requant) {
      uint8_t* q = scratch->u8(u8_next);
      u8_next ^= 1;
      g.q = q;
      g.ldq = RoundUpTo(d.out, 4);
      g.out_scale = next->in.scale;
      g.out_zero = next->in.zero;
      g.out_max = kernel.a_max;
      for (size_t i = 0; i < batch; ++i) std::memset(q + i * g.ldq + d.out, 0, g.ldq - d.out);
      Int8GemmParallel(kernel, g, pool, threads, int8_scratch);
      u8_in = q;
      continue;
    }
    g.c = out;
    g.ldc = d.out;
    Int8GemmParallel(kernel, g, pool, threads, int8_scratch);
    if (!Int8Fusable(d.act)) ApplyActivationRows(*view.f32, out, batch, d.out, d.act, d.params());
    u8_in = nullptr;
    in = out;
    f32_next ^= 1;
  }
  return Status::kOk;
}

}  // namespace maas
