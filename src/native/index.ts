/**
 * The one place that loads the native addon (lazily, on first use), and its typed raw binding.
 * Everything else imports from here; nothing here validates user input (src/core does that at the public boundary).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { packageRoot } from '../core/package-root.js';
import { usableCores } from '../core/cores.js';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

/**
 * ISA levels the kernels are built for, in cap order (a cap admits every level at or below it
 * that the CPU has). The fp32 family uses scalar, avx2 and avx512; the int8 family all six.
 */
export type IsaName = 'scalar' | 'avx2' | 'avxvnni' | 'avx512' | 'avx512vnni' | 'avx512bf16' | 'amx';
export const ISA_LEVELS: readonly IsaName[] = ['scalar', 'avx2', 'avxvnni', 'avx512', 'avx512vnni', 'avx512bf16', 'amx'];

/** Activation codes shared with native/include/maas/activation.h (append only). */
export const ACTIVATION_CODES = {
  linear: 0,
  relu: 1,
  leakyRelu: 2,
  elu: 3,
  sigmoid: 4,
  tanh: 5,
  softmax: 6,
  relu6: 7,
  hardSigmoid: 8,
  swish: 9,
  gelu: 10,
  softplus: 11,
  softsign: 12,
  selu: 13,
  exponential: 14,
  /** Keras ReLU(max_value, negative_slope, threshold): alpha is the slope. */
  kerasRelu: 15,
  /** GELU's tanh approximation (tfjs 'gelu_new'). */
  geluTanh: 16,
} as const;
/** An activation a dense layer can fuse, by its tfjs name. */
export type ActivationName = keyof typeof ACTIVATION_CODES;

/** One dense layer as the packer sees it. */
export interface NativeLayerSpec {
  in: number;
  out: number;
  activation: number;
  alpha: number;
  /** kerasRelu's max_value (absent: none). */
  maxValue?: number;
  /** kerasRelu's threshold (absent: 0). */
  threshold?: number;
  hasBias: boolean;
}

/** The parameters of a parameterised activation, as _gemm and _referenceDense take them. */
export interface NativeActivationParams {
  alpha: number;
  maxValue?: number;
  threshold?: number;
}

/** One fp32 GEMM kernel of the build: its name, ISA, tile shape, and whether this CPU runs it. */
export interface NativeKernelInfo {
  name: string;
  isa: IsaName;
  mr: number;
  nr: number;
  supported: boolean;
}

/** The microarchitecture classes kernels are tuned for (MAAS_CPU_CLASS forces one). */
export type CpuClassName = 'generic' | 'avx2' | 'zen4' | 'zen5' | 'intel-avx512';

/** One fp32 GEMM kernel, with the CPU classes it is tuned for (all of them: its ISA's fallback). */
export interface NativeF32KernelInfo extends NativeKernelInfo {
  cpuClasses: CpuClassName[];
  /** How it stores the weights: fp32, or bf16 pairs along K (A rounded to bf16 as it is packed). */
  weights: 'fp32' | 'bf16';
  /** Its blocking: the K block, and the rows of A packed per block. */
  kc: number;
  mc: number;
}

/** A made-up CPU for the dispatch rules: its features, and the vendor (1 Intel, 2 AMD), family and model. */
export interface NativeCpuIdentity extends Partial<NativeCpuFeatures> {
  vendor?: number;
  family?: number;
  model?: number;
}

/** One int8 GEMM kernel as the addon lists it. */
export interface NativeInt8KernelInfo extends NativeKernelInfo {
  /** K is padded to a multiple of this in the packed panels. */
  kAlign: number;
  /** Largest activation value the kernel computes exactly (127 on the AVX2 path). */
  aMax: number;
  /** The CPU classes it is tuned for (all of them: its ISA's fallback). */
  cpuClasses: CpuClassName[];
}

/** CPU features as the addon reports them (and as _selectInt8Gemm takes made-up ones). */
export interface NativeCpuFeatures {
  avx2Fma: boolean;
  avx512: boolean;
  avx512Vnni: boolean;
  avxVnni: boolean;
  avx512Bf16: boolean;
  amxInt8: boolean;
  amxPermitted: boolean;
}

/** What the addon found: the CPU's features, the ISA cap, and the kernels it selected. */
export interface NativeCpuInfo {
  brand: string;
  vendor: 'intel' | 'amd' | 'other';
  /** CPUID display family and model. */
  family: number;
  model: number;
  /** The class the kernels were chosen for: detected, or MAAS_CPU_CLASS. */
  cpuClass: CpuClassName;
  detectedCpuClass: CpuClassName;
  best: IsaName;
  cap: IsaName;
  isa: IsaName;
  f32Kernel: string;
  f32UpdateKernel: string;
  /** The kernel a model packed in bf16 runs on here. */
  bf16Kernel: string;
  features: NativeCpuFeatures;
  f32Kernels: NativeF32KernelInfo[];
  int8Kernel: string;
  int8Kernels: NativeInt8KernelInfo[];
  backends: { name: string; compiled: boolean; available: boolean }[];
  threads: number;
}

/** A native handle over a packed dense stack; predict writes y synchronously. */
export interface NativeModelHandle {
  readonly inputSize: number;
  readonly outputSize: number;
  readonly kernel: string;
  readonly disposed: boolean;
  predict(x: Float32Array, batch: number, y: Float32Array): void;
  dispose(): void;
}

/** A native handle over a packed quantized stack; the same predict contract as NativeModelHandle. */
/** One CSV field's part in a CsvEncoderHandle (see native/include/maas/csv_encoder.h). */
export interface NativeCsvCell {
  field: number;
  /** CsvCellAction: 1 number, 2 one-hot, 3 category index, 4 date, 5 label class, 6 label value. */
  action: number;
  offset: number;
  texts?: string[];
  /** CsvDatePart codes: 0 year, 1 month, 2 day, 3 weekday, 4 hour. */
  parts?: number[];
  mean?: number;
  std?: number;
  /** A missing cell's fill: a number (number cells) or a category (one-hot cells); null: none. */
  fill?: number | string | null;
}

/** The streaming CSV reader's fast path: plain records straight to unscaled feature rows. */
export interface NativeCsvEncoder {
  /** Rows encoded from data[start, end) into x and y; next[0] is where reading goes on. */
  encode(data: Uint8Array, start: number, end: number, x: Float32Array, y: Float32Array, next: Float64Array): number;
}

/**
 * The handle over a round-trip packed stack (the model's layers, then their kernels transposed in
 * reverse order): per row, dx = (∂y/∂x)ᵀ·dy, the input gradient the explanation methods use.
 */
export interface NativeInputGradientHandle {
  readonly inputSize: number;
  readonly outputSize: number;
  /** x and dx: batch × inputSize; dy (and y, which receives the outputs): batch × outputSize. */
  gradient(x: Float32Array, batch: number, dy: Float32Array, dx: Float32Array, y?: Float32Array): void;
  /**
   * Kernel SHAP's v(S) over the model's half of the round trip: values[c] = the mean over the
   * bgRows background rows of output `output` when the inputs whose byte in row c of masks
   * (coalitions × inputSize) is nonzero take x's values.
   */
  coalitionValues(
    x: Float32Array,
    background: Float32Array,
    bgRows: number,
    masks: Uint8Array,
    coalitions: number,
    output: number,
    values: Float64Array,
  ): void;
  /**
   * LIME's samples over the model's half of the round trip: y[s] = output `output` at x + e_s ⊙
   * scale (e: samples × inputSize), and wye = Σ_s weights[s]·y[s]·e_s.
   */
  perturbedValues(
    x: Float32Array,
    scale: Float32Array,
    e: Float32Array,
    samples: number,
    weights: Float64Array,
    output: number,
    y: Float64Array,
    wye: Float64Array,
  ): void;
  dispose(): void;
}

export interface NativeQuantizedHandle extends NativeModelHandle {
  readonly f32Kernel: string;
}

/** One layer as the quantized packer sees it: int8 or kept fp32, and its input's calibrated range. */
export interface NativeQuantLayerSpec extends NativeLayerSpec {
  int8: boolean;
  inMin: number;
  inMax: number;
}

/** Loss codes shared with native/include/maas/train.h (append only). */
export const LOSS_CODES = {
  meanSquaredError: 0,
  meanAbsoluteError: 1,
  binaryCrossentropy: 2,
  categoricalCrossentropy: 3,
  sparseCategoricalCrossentropy: 4,
} as const;
/** A loss the native training step computes, by its tfjs name. */
export type LossName = keyof typeof LOSS_CODES;

/** Optimizer codes shared with native/include/maas/train.h (append only). */
export const OPTIMIZER_CODES = { sgd: 0, adam: 1, adamw: 2, rmsprop: 3 } as const;
/** An optimizer the native training step applies. */
export type OptimizerName = keyof typeof OPTIMIZER_CODES;

/** Optimizer settings as the native trainer reads them. */
export interface NativeOptimizerConfig {
  kind: number;
  learningRate: number;
  momentum?: number;
  nesterov?: boolean;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  rho?: number;
  weightDecay?: number;
  clipNorm?: number;
}

/** What a native step reports. */
export interface NativeStepResult {
  loss: number;
  penalty: number;
  /** The gradients' global L2 norm before clipping, when the optimizer clips (clipNorm). */
  gradNorm?: number;
}

/** A native training step over caller-owned weight arrays (updated in place). */
export interface NativeTrainer {
  readonly steps: number;
  setOptimizer(config: NativeOptimizerConfig): void;
  step(x: Float32Array, y: Float32Array, batch: number, predictions?: Float32Array): NativeStepResult;
  gradients(x: Float32Array, y: Float32Array, batch: number): NativeStepResult & { kernels: Float32Array[]; biases: Float32Array[] };
  evaluate(x: Float32Array, y: Float32Array, batch: number, predictions?: Float32Array): NativeStepResult;
  dispose(): void;
}

/** A shared weight region as a handle opens it: a descriptor of this process and the packed byte count. */
export interface NativeRegionRef {
  fd: number;
  byteLength: number;
}

/** A writable region's bytes, as createRegion hands them out: only the addon reads or writes them. */
export type RegionView = { readonly __regionView: unique symbol };

/** A shared library the CUDA backend opens at first use (never linked). */
export interface NativeCudaLibrary {
  loaded: boolean;
  /** The library's own version number, 0 where it has none. */
  version: number;
  /** The soname that opened. */
  path: string;
  /** Why it did not load; empty when it did. */
  reason: string;
}

/** What the build and the machine offer the CUDA backend (queried once per process). */
export interface NativeCudaInfo {
  compiled: boolean;
  /** The compute capabilities the build carries code for, e.g. '8.0 8.6 8.9 9.0'. */
  architectures: string;
  /** CUDA's encoding, 1000 × major + 10 × minor (13000 is 13.0); 0 when unknown. */
  runtimeVersion: number;
  driverVersion: number;
  devices: { name: string; computeCapability: string; memoryBytes: number; multiprocessors: number }[];
  /** Why no device is usable ('no CUDA device: …'); empty when there is one. */
  reason: string;
  cublasLt: NativeCudaLibrary;
  nvml: NativeCudaLibrary;
}

/** A dense stack resident on a CUDA device: the predict contract of NativeModelHandle. */
export interface NativeCudaStackHandle extends NativeModelHandle {
  /** Device bytes of the weights and biases. */
  readonly weightBytes: number;
}

/** One GPU as NVML reports it now (Triton's nv_gpu_* metrics). */
export interface NativeNvmlSample {
  uuid: string;
  /** The share of the last sample period a kernel ran, 0..1. */
  utilization: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  /** null where the device does not report its power. */
  powerWatts: number | null;
}

export interface NativeBinding {
  cpuInfo(): NativeCpuInfo;
  /** Every GPU NVML reports now, or null where NVML is absent or finds no driver. */
  nvmlSample(): NativeNvmlSample[] | null;
  /**
   * Uploads a dense stack to the first CUDA device once (precision 0 fp32, 1 TF32, 2 bf16, converted
   * there). MAAS_ERR_CUDA_UNAVAILABLE without a device or cuBLASLt.
   */
  CudaStackHandle: new (
    specs: NativeLayerSpec[],
    weights: Float32Array[],
    biases: (Float32Array | null)[],
    precision: 0 | 1 | 2,
  ) => NativeCudaStackHandle;
  cudaInfo(): NativeCudaInfo;
  /**
   * act(z + bias) row by row on the first CUDA device (row softmax included), from and to host
   * arrays: the device tests' check of the epilogue against the CPU. MAAS_ERR_CUDA_UNAVAILABLE
   * without a device.
   */
  _cudaBiasActivation(
    z: Float32Array,
    bias: Float32Array | null,
    rows: number,
    cols: number,
    activation: number,
    params?: Partial<NativeActivationParams>,
  ): Float32Array;
  /**
   * One dense layer on the first CUDA device, act(x · w + bias) with x [m × k] and w [k × n]
   * row-major, through cuBLASLt; precision 0 fp32, 1 TF32, 2 bf16 (fp32 sums). For the device tests.
   */
  _cudaDense(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array | null,
    m: number,
    k: number,
    n: number,
    activation: number,
    params: Partial<NativeActivationParams> | null,
    precision: 0 | 1 | 2,
  ): Float32Array;
  /**
   * One int8 layer on the first CUDA device (cuBLASLt IMMA): w [k × n] s8 with per-column scales,
   * x quantized per tensor to symmetric s8 there; answers y and the activation scale it used.
   */
  _cudaInt8Dense(
    x: Float32Array,
    w: Int8Array,
    wScale: Float32Array,
    bias: Float32Array | null,
    m: number,
    k: number,
    n: number,
    activation: number,
    params: Partial<NativeActivationParams> | null,
  ): { y: Float32Array; xScale: number };
  setMaxIsa(isa: IsaName): IsaName;
  setThreads(threads: number): void;
  getThreads(): number;
  /** `kernel`: a kernel name, or 'fp32' | 'bf16' for this thread's best kernel storing that precision. */
  packedStackByteLength(specs: NativeLayerSpec[], kernel?: string): number;
  packStack(
    specs: NativeLayerSpec[],
    weights: Float32Array[],
    biases: (Float32Array | null)[],
    dst: RegionView | Uint8Array,
    kernel?: string,
  ): string;
  /**
   * Packs layer `index` alone (with the header every layer shares) into dst, sized for the whole
   * stack: packing each layer once this way gives packStack's bytes, one layer's weights at a time.
   */
  packStackLayer(
    specs: NativeLayerSpec[],
    index: number,
    weights: Float32Array,
    bias: Float32Array | null,
    dst: RegionView | Uint8Array,
    kernel?: string,
  ): string;
  /** The addon's class for an fp32 handle (its native name; TypeScript calls it a model handle). */
  DenseStackHandle: new (packed: Uint8Array | NativeRegionRef) => NativeModelHandle;
  InputGradientHandle: new (packed: Uint8Array | NativeRegionRef) => NativeInputGradientHandle;
  CsvEncoderHandle: new (spec: { delimiter: number; fields: number; width: number; cells: NativeCsvCell[] }) => NativeCsvEncoder;
  packedQuantizedByteLength(specs: NativeQuantLayerSpec[], kernel?: string): number;
  packQuantized(
    specs: NativeQuantLayerSpec[],
    dynamic: boolean,
    weights: (Int8Array | Float32Array)[],
    weightScales: (Float32Array | null)[],
    biases: (Float32Array | null)[],
    dst: RegionView | Uint8Array,
    kernel?: string,
  ): string;
  /** packQuantized for layer `index` alone (see packStackLayer). */
  packQuantizedLayer(
    specs: NativeQuantLayerSpec[],
    dynamic: boolean,
    index: number,
    weights: Int8Array | Float32Array,
    weightScale: Float32Array | null,
    bias: Float32Array | null,
    dst: RegionView | Uint8Array,
    kernel?: string,
  ): string;
  /** The addon's class for an int8 handle. */
  QuantizedStackHandle: new (packed: Uint8Array | NativeRegionRef) => NativeQuantizedHandle;
  /**
   * A new shared-memory region of `bytes` bytes (memfd on Linux) and a writable view to pack into:
   * an opaque handle the pack functions take, since Node 20 makes no buffer above 4 GiB.
   */
  createRegion(bytes: number, tag?: number): { fd: number; view: RegionView };
  /**
   * A region backed by a new file at `path` (created exclusively, mode 0600, not through a
   * symbolic link) and a writable view: other processes map it by opening the file.
   */
  createFileRegion(path: string, bytes: number, tag?: number): { fd: number; view: RegionView };
  /** Takes a writable region view's pages out of the resident set (madvise DONTNEED); the bytes stay in its file. */
  dropRegionPages(view: RegionView): void;
  /** Flushes a file region's bytes to the disk (fdatasync). */
  syncRegion(fd: number): void;
  /**
   * Opens a packed file of a cache read-only, unclaimed under `tag`; refuses (MAAS_ERR_PACKED_CACHE_UNSAFE)
   * anything but a regular file owned by this effective user and writable by no one else.
   */
  openCachedRegion(path: string, tag?: number): { fd: number; byteLength: number };
  /** Unmaps a view from createRegion now (its buffer is detached). */
  releaseRegionView(view: RegionView): void;
  /** Freezes a region's size and bytes (Linux seals; elsewhere nothing). */
  sealRegion(fd: number): void;
  /** Marks a region as owned by its server, so closeUnclaimedRegions leaves it open. */
  claimRegion(fd: number): boolean;
  /** Closes the regions a load tagged `tag` made and never handed over (a stopped load); returns how many. */
  closeUnclaimedRegions(tag: number): number;
  /** Opens a region another process shares (/proc/<pid>/fd/<fd>) read-only; returns this process's descriptor. */
  openRegion(path: string): number;
  closeRegion(fd: number): void;
  /** Returns the allocator's free pages to the system (glibc malloc_trim); false when nothing was released or elsewhere. */
  releaseFreeMemory(): boolean;
  /** A Float32Array of `floats` uninitialized floats: large ones come from a pool of mapped buffers that the collector refills. */
  allocOutput(floats: number): Float32Array;
  /**
   * Detaches a buffer allocOutput lent (every view of it becomes empty) and returns its memory to
   * the pool now; false (and nothing done) for any other array.
   */
  releaseOutput(array: Float32Array): boolean;
  /** The smallest float count allocOutput pools: below it, a plain Float32Array is the same and needs no native call. */
  readonly pooledOutputMinFloats: number;
  Trainer: new (
    specs: NativeLayerSpec[],
    kernels: Float32Array[],
    biases: (Float32Array | null)[],
    regularizers: { l1: number; l2: number }[],
    loss: number,
    precision?: 'fp32' | 'bf16',
  ) => NativeTrainer;
  _gemm(
    kernel: string, x: Float32Array, lda: number, w: Float32Array, bias: Float32Array | null,
    m: number, n: number, k: number, activation: number, alpha: number | NativeActivationParams,
    y: Float32Array, ldy: number, threads: number,
  ): void;
  _referenceDense(
    x: Float32Array, lda: number, w: Float32Array, bias: Float32Array | null,
    m: number, n: number, k: number, activation: number, alpha: number | NativeActivationParams,
    y: Float32Array, ldy: number, magnitude: Float32Array | null,
  ): void;
  /** y = act(z) with a kernel's element-wise activation pass (training and the int8 path use it). */
  _activate(kernel: string, activation: number, params: NativeActivationParams | null, z: Float32Array, y: Float32Array): void;
  _peakFma(isa: 'amx-bf16' | 'avx512bf16' | 'avx512' | 'avx2', iterations: number, threads: number): { flops: number; seconds: number };
  /** 16 dependent adds per iteration, one per cycle: cycles ÷ seconds is the running clock. */
  _clockProbe(iterations: number, threads: number): { cycles: number; seconds: number };
  _qgemm(
    kernel: string, a: Uint8Array, lda: number, aZero: number, w: Int8Array, scale: Float32Array, bias: Float32Array | null,
    m: number, n: number, k: number, activation: number, out: Float32Array | Uint8Array, ldo: number,
    outScale: number, outZero: number, threads: number, params?: NativeActivationParams,
  ): void;
  _referenceQGemm(
    a: Uint8Array, lda: number, aZero: number, w: Int8Array, scale: Float32Array, bias: Float32Array | null,
    m: number, n: number, k: number, activation: number, out: Float32Array | Uint8Array, ldo: number,
    outScale: number, outZero: number, outMax: number, params?: NativeActivationParams,
  ): void;
  _quantizeU8(kernel: string | null, x: Float32Array, scale: number, zero: number, q: Uint8Array): void;
  _activationQuantParams(min: number, max: number, qmax: number): { scale: number; zero: number };
  _selectInt8Gemm(cpu: NativeCpuIdentity, cap: IsaName): string;
  /** The fp32-family dispatch rule for a made-up CPU, under its own class or the one given, for fp32 or bf16 weights. */
  _selectF32Gemm(
    cpu: NativeCpuIdentity,
    cap: IsaName,
    cpuClass?: CpuClassName,
    weights?: 'fp32' | 'bf16',
  ): { kernel: string; cpuClass: CpuClassName };
  _peakInt8(isa: 'avx512vnni' | 'amx', iterations: number, threads: number): { ops: number; seconds: number };
}

/** Where the addon is loaded from: MAAS_ADDON_PATH, else the cmake-js build. */
export function addonPath(): string {
  return process.env.MAAS_ADDON_PATH ?? join(packageRoot(), 'build', 'Release', 'maas.node');
}

function load(): NativeBinding {
  const path = addonPath();
  if (!existsSync(path)) {
    throw new Error(
      `maas: the native addon is missing at ${path}.\n` +
        '  Build it with `npm run build:native` (needs cmake >= 3.19 and a C++17 compiler),\n' +
        '  or point MAAS_ADDON_PATH at a built maas.node.',
    );
  }
  const binding = createRequire(import.meta.url)(path) as NativeBinding;
  // Intra-op threads: the main thread may use every core; inside a pool worker the pool already
  // gives parallelism across requests, so one thread each (DESIGN.md decision 3).
  const fromEnv = Number(process.env.MAAS_THREADS);
  const threads = Number.isInteger(fromEnv) && fromEnv >= 1 ? fromEnv : isMainThread ? usableCores() : 1;
  binding.setThreads(Math.min(threads, 64));
  return binding;
}

let loaded: NativeBinding | undefined;

/**
 * The addon, loaded on first use (one per thread: Node loads it per environment). Importing this
 * module loads nothing, so the protocol, the client and the codes work without a compiled addon.
 */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get(_target, property) {
    loaded ??= load();
    return Reflect.get(loaded, property) as unknown;
  },
});

/** Whether this thread has loaded the addon yet (tests prove that imports alone do not). */
export function isAddonLoaded(): boolean {
  return loaded !== undefined;
}
