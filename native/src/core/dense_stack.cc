// Packing, opening and running a stack of dense layers: one native call runs every layer,
// ping-ponging between two scratch activation buffers, each layer split over the thread pool.
#include "maas/dense_stack.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "packed_layout.h"

namespace maas {

namespace {

constexpr char kMagic[8] = {'M', 'A', 'A', 'S', 'P', 'K', '0', '1'};
// 2: records carry kerasRelu's max_value and threshold. Buffers are built at load, never stored,
// so a version-1 buffer is refused rather than read.
constexpr uint32_t kFormatVersion = 2;

struct PackedHeader {
  char magic[8];
  uint32_t version;
  uint32_t layer_count;
  uint32_t kernel_isa;
  uint32_t kernel_nr;
  char kernel_name[64];
  uint64_t total_bytes;  // from the aligned start
};

struct PackedLayerRecord {
  uint32_t in, out, act;
  float alpha, max_value, threshold;
  uint32_t has_bias, reserved;
  uint64_t weights_offset, bias_offset;  // from the aligned start
};

using packed::AlignedStart;
using packed::AlignUp;

// Layout from the aligned start: header, records, then each layer's panels and padded bias.
size_t LayoutBytes(const DenseLayerSpec* layers, size_t count, const F32GemmKernel& kernel,
                   PackedLayerRecord* records) {
  size_t off = AlignUp(sizeof(PackedHeader) + count * sizeof(PackedLayerRecord), kPackedAlign);
  for (size_t i = 0; i < count; ++i) {
    const size_t wbytes = PackedWeightFloats(kernel, layers[i].in, layers[i].out) * sizeof(float);
    const size_t bbytes = layers[i].has_bias ? PackedBiasFloats(layers[i].out, kernel.nr) * sizeof(float) : 0;
    if (records) {
      records[i] = PackedLayerRecord{layers[i].in,
                                     layers[i].out,
                                     static_cast<uint32_t>(layers[i].act),
                                     layers[i].alpha,
                                     layers[i].max_value,
                                     layers[i].threshold,
                                     layers[i].has_bias ? 1u : 0u,
                                     0,
                                     off,
                                     0};
    }
    off = AlignUp(off + wbytes, kPackedAlign);
    if (records && bbytes) records[i].bias_offset = off;
    off = AlignUp(off + bbytes, kPackedAlign);
  }
  return off;
}

Status CheckSpecs(const DenseLayerSpec* layers, size_t count) {
  if (count == 0 || count > kMaxDenseLayers) return Status::kInvalidArgument;
  for (size_t i = 0; i < count; ++i) {
    if (layers[i].in == 0 || layers[i].out == 0) return Status::kInvalidArgument;
    if (static_cast<uint32_t>(layers[i].act) >= kActivationCount) return Status::kInvalidArgument;
    if (!ValidActivationParams(layers[i].act, layers[i].params())) return Status::kInvalidArgument;
    if (i > 0 && layers[i].in != layers[i - 1].out) return Status::kInvalidArgument;
  }
  return Status::kOk;
}

}  // namespace

Status PackedStackBytes(const DenseLayerSpec* layers, size_t count, const F32GemmKernel& kernel,
                        size_t* bytes) noexcept {
  MAAS_RETURN_IF_ERROR(CheckSpecs(layers, count));
  *bytes = LayoutBytes(layers, count, kernel, nullptr) + kPackedAlign;
  return Status::kOk;
}

namespace {

// Writes the header and every layer's record (all any single layer's packing needs) into dst.
Status WriteDenseHeader(const DenseLayerSpec* layers, size_t count, const F32GemmKernel& kernel, void* dst,
                        size_t dst_bytes, PackedLayerRecord** records) {
  MAAS_RETURN_IF_ERROR(CheckSpecs(layers, count));
  size_t need = 0;
  MAAS_RETURN_IF_ERROR(PackedStackBytes(layers, count, kernel, &need));
  if (dst_bytes < need) return Status::kInvalidArgument;
  uint8_t* base = AlignedStart(dst);
  PackedHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kFormatVersion;
  header.layer_count = static_cast<uint32_t>(count);
  header.kernel_isa = static_cast<uint32_t>(kernel.isa);
  header.kernel_nr = kernel.nr;
  std::strncpy(header.kernel_name, kernel.name, sizeof(header.kernel_name) - 1);
  *records = reinterpret_cast<PackedLayerRecord*>(base + sizeof(PackedHeader));
  header.total_bytes = LayoutBytes(layers, count, kernel, *records);
  std::memcpy(base, &header, sizeof(header));
  return Status::kOk;
}

void PackDenseLayer(const DenseLayerSpec& layer, const PackedLayerRecord& record, const float* weights,
                    const float* bias, const F32GemmKernel& kernel, uint8_t* base) {
  PackWeights(kernel, weights, layer.out, layer.in, layer.out, reinterpret_cast<float*>(base + record.weights_offset));
  if (layer.has_bias) {
    PackF32Bias(bias, layer.out, kernel.nr, reinterpret_cast<float*>(base + record.bias_offset));
  }
}

}  // namespace

Status PackDenseStack(const DenseLayerSpec* layers, size_t count, const float* const* weights,
                      const float* const* biases, const F32GemmKernel& kernel, void* dst, size_t dst_bytes) noexcept {
  PackedLayerRecord* records = nullptr;
  MAAS_RETURN_IF_ERROR(WriteDenseHeader(layers, count, kernel, dst, dst_bytes, &records));
  for (size_t i = 0; i < count; ++i) {
    PackDenseLayer(layers[i], records[i], weights[i], biases ? biases[i] : nullptr, kernel, AlignedStart(dst));
  }
  return Status::kOk;
}

Status PackDenseStackLayer(const DenseLayerSpec* layers, size_t count, size_t index, const float* weights,
                           const float* bias, const F32GemmKernel& kernel, void* dst, size_t dst_bytes) noexcept {
  if (index >= count || !weights) return Status::kInvalidArgument;
  PackedLayerRecord* records = nullptr;
  MAAS_RETURN_IF_ERROR(WriteDenseHeader(layers, count, kernel, dst, dst_bytes, &records));
  PackDenseLayer(layers[index], records[index], weights, bias, kernel, AlignedStart(dst));
  return Status::kOk;
}

Status OpenDenseStack(const void* buffer, size_t bytes, PackedStackView* view) noexcept {
  const uint8_t* base = AlignedStart(buffer);
  const size_t slack = static_cast<size_t>(base - static_cast<const uint8_t*>(buffer));
  if (bytes < slack + sizeof(PackedHeader)) return Status::kCorruptPacked;
  PackedHeader header;
  std::memcpy(&header, base, sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 || header.version != kFormatVersion) {
    return Status::kCorruptPacked;
  }
  if (header.layer_count == 0 || header.layer_count > kMaxDenseLayers || header.total_bytes > bytes - slack) {
    return Status::kCorruptPacked;
  }
  header.kernel_name[sizeof(header.kernel_name) - 1] = 0;
  const F32GemmKernel* kernel = FindF32Gemm(header.kernel_name);
  if (!kernel || kernel->nr != header.kernel_nr) return Status::kCorruptPacked;
  if (!IsaSupported(kernel->isa)) return Status::kUnsupported;
  DenseLayerSpec specs[kMaxDenseLayers];
  const auto* records = reinterpret_cast<const PackedLayerRecord*>(base + sizeof(PackedHeader));
  for (uint32_t i = 0; i < header.layer_count; ++i) {
    PackedLayerRecord r;
    std::memcpy(&r, &records[i], sizeof(r));
    specs[i] =
        DenseLayerSpec{r.in, r.out, static_cast<Activation>(r.act), r.alpha, r.has_bias != 0, r.max_value, r.threshold};
  }
  if (CheckSpecs(specs, header.layer_count) != Status::kOk) return Status::kCorruptPacked;
  // Offsets must be exactly what packing these specs produces: no pointer can leave the buffer.
  PackedLayerRecord expected[kMaxDenseLayers];
  if (LayoutBytes(specs, header.layer_count, *kernel, expected) != header.total_bytes) return Status::kCorruptPacked;
  view->kernel = kernel;
  view->count = header.layer_count;
  view->max_width = 0;
  view->max_k = 0;
  for (uint32_t i = 0; i < header.layer_count; ++i) {
    if (expected[i].weights_offset != records[i].weights_offset || expected[i].bias_offset != records[i].bias_offset) {
      return Status::kCorruptPacked;
    }
    view->layers[i].spec = specs[i];
    view->layers[i].weights = reinterpret_cast<const float*>(base + expected[i].weights_offset);
    view->layers[i].bias = specs[i].has_bias ? reinterpret_cast<const float*>(base + expected[i].bias_offset) : nullptr;
    if (specs[i].out > view->max_width) view->max_width = specs[i].out;
    if (specs[i].in > view->max_k) view->max_k = specs[i].in;
  }
  return Status::kOk;
}

DenseScratch::~DenseScratch() { Release(); }

void DenseScratch::Release() noexcept {
  std::free(act_a_);
  std::free(act_b_);
  std::free(pack_);
  act_a_ = act_b_ = pack_ = nullptr;
  act_floats_ = pack_per_thread_ = pack_threads_ = 0;
}

namespace {
float* AllocFloats(size_t n) { return static_cast<float*>(packed::AllocAligned(n * sizeof(float))); }
}  // namespace

Status DenseScratch::Reserve(const PackedStackView& view, size_t batch, size_t threads) noexcept {
  const size_t act_floats = batch * view.max_width;
  if (act_floats > act_floats_) {
    std::free(act_a_);
    std::free(act_b_);
    act_a_ = AllocFloats(act_floats);
    act_b_ = AllocFloats(act_floats);
    act_floats_ = (act_a_ && act_b_) ? act_floats : 0;
    if (!act_floats_) return Status::kOutOfMemory;
  }
  const size_t per_thread = AlignUp(view.kernel->scratch_floats(view.max_k), kPackedAlign / sizeof(float));
  if (per_thread > pack_per_thread_ || threads > pack_threads_) {
    std::free(pack_);
    pack_ = AllocFloats(per_thread * threads);
    pack_per_thread_ = pack_ ? per_thread : 0;
    pack_threads_ = pack_ ? threads : 0;
    if (!pack_) return Status::kOutOfMemory;
  }
  return Status::kOk;
}

GemmTile PartitionTiles(size_t m, size_t n, size_t mr, size_t nr, bool whole_rows, size_t ith, size_t nth) noexcept {
  const size_t panels = PackedPanels(n, static_cast<uint32_t>(nr));
  // Measured on a Zen 5 VM, two threads on model L b256 (M 256, N 4096 and 1024): by panels
  // rather than rows, fp32 +4–6% and int8 +5–10%; the 1024×4096×4096 GEMM even.
  const bool by_rows = whole_rows || panels < nth || m > n;
  if (by_rows) {
    const size_t tiles = (m + mr - 1) / mr;
    const size_t begin = tiles * ith / nth * mr, end = tiles * (ith + 1) / nth * mr;
    return GemmTile{begin < m ? begin : m, end < m ? end : m, 0, panels};
  }
  return GemmTile{0, m, panels * ith / nth, panels * (ith + 1) / nth};
}

GemmTile PartitionGemm(size_t m, size_t n, const F32GemmKernel& kernel, Activation act, size_t ith,
                       size_t nth) noexcept {
  // Softmax needs a row whole in one tile, so it always splits by rows.
  return PartitionTiles(m, n, kernel.mr, kernel.nr, act == Activation::kSoftmax, ith, nth);
}

namespace {

struct GemmJob {
  const F32GemmKernel* kernel;
  const F32GemmArgs* args;
  float* const* scratch;
};

void GemmTask(void* ctx, size_t ith, size_t nth) {
  const GemmJob& job = *static_cast<const GemmJob*>(ctx);
  const GemmTile tile = PartitionGemm(job.args->m, job.args->n, *job.kernel, job.args->act, ith, nth);
  if (tile.m_begin < tile.m_end && tile.p_begin < tile.p_end) job.kernel->run(*job.args, tile, job.scratch[ith]);
}

// Below this many flops (about 20 µs of one core) a GEMM runs on the calling thread: handing
// half of it to a worker costs more than it saves (measured on model S's training step).
constexpr double kParallelMinFlops = 2e6;

}  // namespace

void F32GemmParallel(const F32GemmKernel& kernel, const F32GemmArgs& args, ThreadPool* pool, size_t threads,
                     float* const* thread_scratch) noexcept {
  const double flops = 2.0 * args.m * args.n * args.k;
  if (!pool || threads <= 1 || flops < kParallelMinFlops) threads = 1;
  GemmJob job{&kernel, &args, thread_scratch};
  if (threads == 1) {
    GemmTask(&job, 0, 1);
    return;
  }
  pool->Run(threads, &GemmTask, &job);
}

void ApplyActivationRows(const F32GemmKernel& f32, float* c, size_t rows, size_t n, Activation act,
                         const ActivationParams& params) noexcept {
  if (act != Activation::kSoftmax) return f32.activate(act, params, c, c, rows * n);
  for (size_t i = 0; i < rows; ++i) {
    float* row = c + i * n;
    float mx = row[0];
    for (size_t j = 1; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
    float total = 0.f;
    for (size_t j = 0; j < n; ++j) total += (row[j] = std::exp(row[j] - mx));
    for (size_t j = 0; j < n; ++j) row[j] /= total;
  }
}

F32GemmArgs PackedLayerGemm(const PackedLayerView& layer, const float* x, size_t batch, float* y) noexcept {
  F32GemmArgs args;
  args.m = batch;
  args.n = layer.spec.out;
  args.k = layer.spec.in;
  args.a = x;
  args.lda = layer.spec.in;
  args.b_packed = layer.weights;
  args.bias = layer.bias;
  args.c = y;
  args.ldc = layer.spec.out;
  args.set_activation(layer.spec.act, layer.spec.params());
  return args;
}

Status DenseStackForward(const PackedStackView& view, const float* x, size_t batch, float* y, DenseScratch* scratch,
                         ThreadPool* pool, size_t threads) noexcept {
  if (!view.kernel || batch == 0) return Status::kInvalidArgument;
  if (pool && threads > pool->size()) threads = pool->size();
  if (threads < 1) threads = 1;
  MAAS_RETURN_IF_ERROR(scratch->Reserve(view, batch, threads));
  float* thread_scratch[64];
  if (threads > 64) threads = 64;
  for (size_t t = 0; t < threads; ++t) thread_scratch[t] = scratch->thread_scratch(t);
  const float* in = x;
  for (uint32_t l = 0; l < view.count; ++l) {
    const PackedLayerView& layer = view.layers[l];
    float* out = l + 1 == view.count ? y : scratch->activations(l & 1);
    F32GemmParallel(*view.kernel, PackedLayerGemm(layer, in, batch, out), pool, threads, thread_scratch);
    in = out;
  }
  return Status::kOk;
}

}  // namespace maas
