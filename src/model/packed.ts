/**
 * Packed models: a dense stack's weights laid out once for one kernel in a SharedArrayBuffer
 * (fp32 or int8), and the native handle any thread opens over those bytes. Posting the buffer to
 * a worker shares it, so every worker's handle reads the same weights (no copy per worker).
 * Packing takes plain layer data, so a model object, a freshly opened file or a loader thread
 * all pack the same way.
 */
import { rmSync } from 'node:fs';
import { fromNative, invalidParameter } from '../core/errors.js';
import type { ActivationName } from '../layers/activations.js';
import {
  ACTIVATION_CODES,
  native,
  type NativeInputGradientHandle,
  type NativeModelHandle,
  type NativeQuantLayerSpec,
  type RegionView,
} from '../native/index.js';

/**
 * The packed formats a handle can be opened over: fp32 weights, the same model with its weights
 * stored as bf16 (fp32 in and out, products summed in fp32), or an int8 stack.
 */
export type PackedFormat = 'fp32' | 'bf16' | 'int8';

/** The precisions an fp32 model can be packed in: as trained, or with bf16 weights and activations. */
export type DensePrecision = 'fp32' | 'bf16';

/** The precisions packDenseStack takes, for checking a caller's or a config's value. */
export const DENSE_PRECISIONS: readonly DensePrecision[] = ['fp32', 'bf16'];

/** A model's weights packed for one kernel: shareable with workers as is. */
export interface PackedModel {
  /** The packed bytes (header, layer records, weight panels). */
  readonly buffer: SharedArrayBuffer;
  /** The kernel the panels are laid out for. */
  readonly kernel: string;
  /** 'fp32' (also when absent), 'bf16' or 'int8'. */
  readonly format?: PackedFormat;
}

/** One dense layer as packing needs it (a built Dense layer has these fields). */
export interface PackLayer {
  readonly inputDim: number | null;
  readonly units: number;
  readonly activation: ActivationName;
  readonly alpha: number;
  /** kerasRelu's max_value (null: none) and threshold (0 for every other activation). */
  readonly maxValue: number | null;
  readonly threshold: number;
  readonly useBias: boolean;
  readonly kernel: Float32Array | null;
  readonly bias: Float32Array | null;
}

/** One layer of an int8 stack: its s8 kernel and scales, or null for a layer kept in fp32. */
export interface Int8PackLayer {
  /** The s8 kernel [in, out] (null: the layer runs in fp32 from PackLayer.kernel). */
  weights: Int8Array | null;
  scales: Float32Array | null;
  /** The calibrated range of the layer's input (0, 0 for dynamic or fp32 layers). */
  inMin: number;
  inMax: number;
}

/** A layer's shape and activation without its weights: what sizing a packed stack needs. */
export type LayerShape = Omit<PackLayer, 'kernel' | 'bias'>;

/** A layer as the addon describes it: packing and the native trainer both take this. */
export function nativeLayerSpec(l: LayerShape) {
  return {
    in: l.inputDim!,
    out: l.units,
    activation: ACTIVATION_CODES[l.activation],
    alpha: l.alpha,
    ...(l.maxValue !== null ? { maxValue: l.maxValue } : {}),
    ...(l.threshold !== 0 ? { threshold: l.threshold } : {}),
    hasBias: l.useBias,
  };
}

function packShared<F extends PackedFormat>(
  packer: () => LayerPacker,
  layers: readonly PackLayer[],
  int8?: readonly Int8PackLayer[],
): PackedModel & { readonly format: F } {
  try {
    const p = packer();
    const buffer = new SharedArrayBuffer(p.bytes);
    return { buffer, kernel: packEach(p, layers, int8)(new Uint8Array(buffer)), format: p.format as F };
  } catch (e) {
    throw fromNative(e);
  }
}

/** Packs an fp32 dense stack for this thread's kernel, its weights kept in fp32 or stored as bf16. */
export function packDenseStack<P extends DensePrecision = 'fp32'>(
  layers: readonly PackLayer[],
  precision: P = 'fp32' as P,
): PackedModel & { readonly format: P } {
  return packShared(() => denseLayerPacker(layers, precision), layers);
}

/** Packs an int8 stack (layers with null weights stay fp32) for this thread's int8 kernel. */
export function packInt8Stack(
  layers: readonly PackLayer[],
  int8: readonly Int8PackLayer[],
  dynamic: boolean,
): PackedModel & { readonly format: 'int8' } {
  return packShared(() => int8LayerPacker(layers, int8Shapes(int8), dynamic), layers, int8);
}

/**
 * A stack packed into a shared-memory region (what a server loads): every worker thread and
 * worker process maps the same pages, and the memory is returned to the system when the last
 * descriptor and mapping close, not when a garbage collector gets to it. A region may be a file
 * of a packed cache, so other processes map the same pages from the page cache.
 */
export interface PackedRegion {
  /** The region's descriptor in the process that packed it (it stays open until closeRegion). */
  readonly fd: number;
  readonly byteLength: number;
  readonly kernel: string;
  readonly format: PackedFormat;
}

/** An int8 stack's layer as sizing needs it: whether it runs in int8, and its calibrated input range. */
export type Int8LayerShape = Pick<Int8PackLayer, 'inMin' | 'inMax'> & { readonly int8: boolean };

/** The sizing part of each int8 packing input (a layer with null weights stays fp32). */
function int8Shapes(int8: readonly Int8PackLayer[]): Int8LayerShape[] {
  return int8.map((q) => ({ int8: q.weights !== null, inMin: q.inMin, inMax: q.inMax }));
}

/**
 * A stack's packing, one layer at a time: the region's size, and the call that packs layer
 * `index` into the region's view (returning the kernel), so a large model's layers can be
 * packed as they are read and dropped.
 */
export interface LayerPacker {
  readonly bytes: number;
  readonly format: PackedFormat;
  /** `int8`: the layer's s8 weights and scales (an int8 stack; null weights keep the layer fp32). */
  packLayer(dst: RegionView | Uint8Array, index: number, layer: PackLayer, int8?: Int8PackLayer): string;
}

/** A dense stack's layout for `precision`: its native specs, byte count and format (the precision checked). */
function denseLayout(shapes: readonly LayerShape[], precision: DensePrecision) {
  if (!DENSE_PRECISIONS.includes(precision))
    throw invalidParameter('precision', "'fp32' or 'bf16'", precision, 'MAAS_ERR_ARG_RANGE');
  const specs = shapes.map(nativeLayerSpec);
  // The addon takes a precision where it takes a kernel name: this thread's best kernel for it.
  return { specs, bytes: native.packedStackByteLength(specs, precision), format: precision };
}

/** Packs an fp32 stack's layers (as fp32 or bf16) for this thread's kernel. */
export function denseLayerPacker(shapes: readonly LayerShape[], precision: DensePrecision = 'fp32'): LayerPacker {
  const { specs, bytes, format } = denseLayout(shapes, precision);
  return {
    bytes,
    format,
    packLayer: (dst, index, layer) => native.packStackLayer(specs, index, layer.kernel!, layer.bias, dst, precision),
  };
}

/** Packs an int8 stack's layers (those with int8 false stay fp32) for this thread's int8 kernel. */
export function int8LayerPacker(
  shapes: readonly LayerShape[],
  int8: readonly Int8LayerShape[],
  dynamic: boolean,
): LayerPacker {
  const specs: NativeQuantLayerSpec[] = shapes.map((l, i) => ({
    ...nativeLayerSpec(l),
    int8: int8[i]!.int8,
    inMin: int8[i]!.inMin,
    inMax: int8[i]!.inMax,
  }));
  return {
    bytes: native.packedQuantizedByteLength(specs),
    format: 'int8',
    packLayer: (dst, index, layer, q) =>
      native.packQuantizedLayer(
        specs,
        dynamic,
        index,
        specs[index]!.int8 ? q!.weights! : layer.kernel!,
        q?.scales ?? null,
        layer.bias,
        dst,
      ),
  };
}

/** Where a region is packed: anonymous shared memory, or a new file at `file` (a packed cache's entry). */
export interface RegionTarget {
  readonly file?: string;
}

/**
 * Packs into a new region through `fill` (which packs every layer into the view and returns the
 * kernel), then unmaps the writable view and seals the region, or, for a file, flushes it to
 * the disk. `tag` names the load, so a stopped load's region can be closed
 * (native.closeUnclaimedRegions). A failure closes the region and removes its file.
 */
export async function packIntoRegion(
  packer: LayerPacker,
  fill: (view: RegionView) => Promise<string> | string,
  tag = 0,
  target: RegionTarget = {},
): Promise<PackedRegion> {
  let region: { fd: number; view: RegionView } | null = null;
  let mapped = false;
  try {
    region = target.file
      ? native.createFileRegion(target.file, packer.bytes, tag)
      : native.createRegion(packer.bytes, tag);
    mapped = true;
    const kernel = await fill(region.view);
    mapped = false;
    native.releaseRegionView(region.view);
    if (target.file) native.syncRegion(region.fd);
    else native.sealRegion(region.fd);
    return { fd: region.fd, byteLength: packer.bytes, kernel, format: packer.format };
  } catch (e) {
    if (region) {
      if (mapped) native.releaseRegionView(region.view);
      native.closeRegion(region.fd);
      if (target.file) rmSync(target.file, { force: true });
    }
    throw fromNative(e);
  }
}

/** Packs layers held in memory, each in turn (the int8 ones with `int8[i]`). */
function packEach(packer: LayerPacker, layers: readonly PackLayer[], int8?: readonly Int8PackLayer[]) {
  return (view: RegionView | Uint8Array): string => {
    let kernel = '';
    layers.forEach((layer, i) => (kernel = packer.packLayer(view, i, layer, int8?.[i])));
    return kernel;
  };
}

/** packDenseStack into a region (shared memory, or a cache file). */
export function packDenseStackRegion(
  layers: readonly PackLayer[],
  tag = 0,
  precision: DensePrecision = 'fp32',
  target: RegionTarget = {},
): Promise<PackedRegion> {
  const packer = denseLayerPacker(layers, precision);
  return packIntoRegion(packer, packEach(packer, layers), tag, target);
}

/** packInt8Stack into a region (shared memory, or a cache file). */
export function packInt8StackRegion(
  layers: readonly PackLayer[],
  int8: readonly Int8PackLayer[],
  dynamic: boolean,
  tag = 0,
  target: RegionTarget = {},
): Promise<PackedRegion> {
  const packer = int8LayerPacker(layers, int8Shapes(int8), dynamic);
  return packIntoRegion(packer, packEach(packer, layers, int8), tag, target);
}

/**
 * Opens a native handle over a packed model, e.g. inside a worker thread that received
 * `packed` (or just its buffer and format) in a message. The handle's
 * predict(x: Float32Array, batch, y: Float32Array) writes batch × outputSize floats into y
 * synchronously, using this thread's ISA cap and intra-op threads; dispose() releases it.
 * Throws MAAS_ERR_PACKED_CORRUPT for bytes that fail the header checks and
 * MAAS_ERR_PACKED_ISA_ABOVE_CAP when the buffer was packed for an ISA above this thread's cap.
 */
export function openPackedModel(packed: Pick<PackedModel, 'buffer' | 'format'>): NativeModelHandle {
  const buffer: unknown = packed?.buffer;
  if (!(buffer instanceof SharedArrayBuffer || buffer instanceof ArrayBuffer)) {
    throw invalidParameter(
      'openPackedModel(packed)',
      'an object with the SharedArrayBuffer from model.packed()',
      packed,
    );
  }
  const format = packed.format ?? 'fp32';
  if (format !== 'fp32' && format !== 'bf16' && format !== 'int8')
    throw invalidParameter('openPackedModel(packed).format', "'fp32', 'bf16' or 'int8'", format, 'MAAS_ERR_ARG_RANGE');
  try {
    const bytes = new Uint8Array(packed.buffer);
    return format === 'int8' ? new native.QuantizedStackHandle(bytes) : new native.DenseStackHandle(bytes);
  } catch (e) {
    throw fromNative(e);
  }
}

/** kernel [rows, cols] row-major, transposed into [cols, rows]. */
function transposed(kernel: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = kernel[i * cols + j]!;
  return out;
}

/**
 * Packs the round-trip stack input gradients run on (fp32, this thread's kernel): the layers, then
 * each kernel transposed, last layer first, as a linear layer without bias. The second half holds
 * the backward products' operands (dX = dZ·Wᵀ), so workers share one buffer for both directions.
 */
export function packRoundTrip(layers: readonly PackLayer[]): PackedModel & { readonly format: 'fp32' } {
  return packDenseStack(roundTripLayers(layers));
}

/** packRoundTrip into a shared-memory region (what a server loads for explanations). */
export function packRoundTripRegion(
  layers: readonly PackLayer[],
  tag = 0,
  target: RegionTarget = {},
): Promise<PackedRegion> {
  return packDenseStackRegion(roundTripLayers(layers), tag, 'fp32', target);
}

/** The layers, then each kernel transposed (last layer first) as a linear layer without bias. */
function roundTripLayers(layers: readonly PackLayer[]): PackLayer[] {
  const turned: PackLayer[] = layers
    .map((l) => ({
      inputDim: l.units,
      units: l.inputDim!,
      activation: 'linear' as const,
      alpha: 0,
      maxValue: null,
      threshold: 0,
      useBias: false,
      kernel: transposed(l.kernel!, l.inputDim!, l.units),
      bias: null,
    }))
    .reverse();
  return [...layers, ...turned];
}

/**
 * Opens the input-gradient handle over packRoundTrip's buffer (in any thread it was posted to), or
 * over a round-trip region through a descriptor of this process (the handle maps it itself).
 */
export function openInputGradients(
  packed: Pick<PackedModel, 'buffer'> | { fd: number; byteLength: number },
): NativeInputGradientHandle {
  if ('fd' in packed) {
    try {
      return new native.InputGradientHandle({ fd: packed.fd, byteLength: packed.byteLength });
    } catch (e) {
      throw fromNative(e);
    }
  }
  const buffer: unknown = packed?.buffer;
  if (!(buffer instanceof SharedArrayBuffer || buffer instanceof ArrayBuffer))
    throw invalidParameter(
      'openInputGradients(packed)',
      'an object with the SharedArrayBuffer of packRoundTrip',
      packed,
    );
  try {
    return new native.InputGradientHandle(new Uint8Array(packed.buffer));
  } catch (e) {
    throw fromNative(e);
  }
}

/**
 * Opens a native handle over a packed region through a descriptor of this process (the handle
 * maps the region itself and unmaps it on dispose(); the descriptor may be closed afterwards).
 */
export function openPackedRegion(region: { fd: number; byteLength: number; format: PackedFormat }): NativeModelHandle {
  try {
    const ref = { fd: region.fd, byteLength: region.byteLength };
    return region.format === 'int8' ? new native.QuantizedStackHandle(ref) : new native.DenseStackHandle(ref);
  } catch (e) {
    throw fromNative(e);
  }
}
