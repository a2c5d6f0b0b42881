/**
 * quantize(): a trained Sequential becomes a QuantizedModel: s8 weights per output channel (or
 * per tensor), u8 activations with ranges calibrated on representative data (or taken per batch),
 * chosen layers kept in fp32. The quantized model predicts natively through the int8 kernels,
 * packs into one SharedArrayBuffer for workers, and saves as a tfjs-layers model whose weights
 * are the dequantized values (tfjs loads it as fp32) with scales and zero points under
 * maas.quantization, from which loadQuantizedModel recovers the int8 weights exactly.
 */
import { MaasError, fromNative, invalidParameter } from '../core/errors.js';
import { Tensor, toMatrix, type TensorLike } from '../core/tensor.js';
import { checkBoolean, checkOneOf, checkOptions, isPlainObject } from '../core/validation.js';
import { dense, type Dense } from '../layers/dense.js';
import { loadModel } from '../model/load.js';
import { sequential, type PackedModel, type Sequential } from '../model/sequential.js';
import { writeFile } from 'node:fs/promises';
import { readArtifacts, writeArtifacts, type WriteHooks } from '../io/artifacts.js';
import { buildQuantizedOnnx } from '../io/onnx-int8-export.js';
import { ACTIVATION_CODES, native, type NativeCompiledModel, type NativeQuantLayerSpec } from '../native/index.js';
import { openPackedModel } from '../model/packed.js';
import type { RawRows } from '../data/pipeline.js';
import { activationParams, dequantizeWeights, quantizeWeights, requantizeWeights } from './arith.js';
import { CALIBRATION_METHODS, calibrateRange, type CalibrationMethod } from './calibrate.js';

/** Options of quantize(). */
export interface QuantizeOptions {
  /** Representative inputs [rows, inputDim]; required unless method is 'dynamic'. */
  calibrationData?: TensorLike;
  /** How activation ranges are chosen (default 'minmax'). */
  method?: CalibrationMethod;
  /** For method 'percentile': keep the [100 − p, p] percentiles (default 99.99). */
  percentile?: number;
  /** One weight scale per output channel (default true) or one per layer. */
  perChannel?: boolean;
  /** Layers kept in fp32: 'first', 'last', indices or names (an array or a comma-separated string). */
  keepFloat?: readonly (string | number)[] | string;
}

/** One layer's entry in maas.quantization. */
export interface QuantizedLayerInfo {
  name: string;
  int8: boolean;
  /** Per output channel (or one repeated per channel when perChannel is false). */
  weightScales?: number[];
  /** Static activation range of the layer's input and its u8 parameters (levels 0..255). */
  input?: { min: number; max: number; scale: number; zeroPoint: number };
}

/** What a quantized model.json carries under maas.quantization. */
export interface QuantizationSpec {
  formatVersion: 1;
  scheme: 'u8-asymmetric-activations/s8-symmetric-weights';
  method: CalibrationMethod;
  mode: 'static' | 'dynamic';
  perChannel: boolean;
  percentile?: number;
  layers: QuantizedLayerInfo[];
}

/** A packed quantized model: share `buffer` with workers and open it there with openPackedModel. */
export interface PackedQuantizedModel extends PackedModel {
  readonly format: 'int8';
}

const f32 = Math.fround;

/** A model whose dense layers run in int8 (except those kept in fp32); predict returns fp32. */
export class QuantizedModel {
  private handle: NativeCompiledModel | null = null;
  private packedModel: PackedQuantizedModel | null = null;
  private disposed = false;

  /**
   * @param float the fp32 twin: the same layers with dequantized weights (topology, preparation, save)
   * @param spec scales, zero points, ranges and the layers kept in fp32
   * @param int8Weights each int8 layer's s8 kernel [in, out] (null for layers kept in fp32)
   * @param extras training configuration and preparation to save with the model
   */
  constructor(
    readonly float: Sequential,
    readonly spec: QuantizationSpec,
    private readonly int8Weights: (Int8Array | null)[],
    private readonly extras: { trainingConfig?: unknown; preparation?: unknown } = {},
  ) {}

  /** The model's name (its fp32 twin's). */
  get name(): string {
    return this.float.name;
  }

  /** The layers (with dequantized weights for int8 layers). */
  get layers(): readonly Dense[] {
    return this.float.layers;
  }

  /** [null, inputDim]. */
  get inputShape(): [null, number] | null {
    return this.float.inputShape;
  }

  /** [null, units of the last layer]. */
  get outputShape(): [null, number] | null {
    return this.float.outputShape;
  }

  /** Runs the quantized model on a batch [batch, inputDim]: fp32 in, fp32 out. */
  predict(x: TensorLike, options?: { batchSize?: number }): Tensor {
    this.checkLive();
    if (options !== undefined) checkOptions('predict options', options, ['batchSize', 'verbose']);
    const handle = this.compiled();
    const inputDim = this.layers[0]!.inputDim!;
    const units = this.layers[this.layers.length - 1]!.units;
    const input = toMatrix(x, inputDim, 'x');
    const out = new Float32Array(input.rows * units);
    try {
      handle.predict(input.data, input.rows, out);
    } catch (e) {
      throw fromNative(e);
    }
    return new Tensor(out, [input.rows, units]);
  }

  /** Predicts from raw rows through the model's saved preparation pipeline. */
  predictRaw(rows: RawRows): Tensor {
    const pipeline = this.float.preparation;
    if (!pipeline)
      throw new MaasError(
        'MAAS_ERR_MODEL_EMPTY',
        `Model ${this.name} has no preparation pipeline: use predict() on numeric features`,
      );
    return this.predict(pipeline.transform(rows));
  }

  /**
   * The quantized stack packed for this thread's int8 kernel in a SharedArrayBuffer (made once).
   * Post `buffer` to workers and call openPackedModel there: every worker shares these bytes.
   */
  packed(): PackedQuantizedModel {
    this.checkLive();
    if (this.packedModel) return this.packedModel;
    const specs: NativeQuantLayerSpec[] = this.layers.map((l, i) => {
      const info = this.spec.layers[i]!;
      return {
        in: l.inputDim!,
        out: l.units,
        activation: ACTIVATION_CODES[l.activation],
        ...l.nativeActivationParams(),
        hasBias: l.useBias,
        int8: info.int8,
        inMin: info.input?.min ?? 0,
        inMax: info.input?.max ?? 0,
      };
    });
    const weights = this.layers.map((l, i) => this.int8Weights[i] ?? l.kernel!);
    const scales = this.spec.layers.map((info) => (info.int8 ? Float32Array.from(info.weightScales!) : null));
    try {
      const buffer = new SharedArrayBuffer(native.packedQuantizedByteLength(specs));
      const kernel = native.packQuantized(
        specs,
        this.spec.mode === 'dynamic',
        weights,
        scales,
        this.layers.map((l) => l.bias),
        new Uint8Array(buffer),
      );
      this.packedModel = { buffer, kernel, format: 'int8' };
    } catch (e) {
      throw fromNative(e);
    }
    return this.packedModel;
  }

  /** Saves as tfjs-layers model.json + weights (dequantized fp32) with maas.quantization; atomic. */
  async save(dir: string, hooks?: WriteHooks): Promise<{ modelJson: string }> {
    this.checkLive();
    if (typeof dir !== 'string' || dir.length === 0) throw invalidParameter('save(dir)', 'a directory path', dir);
    const artifacts = this.float.toArtifacts();
    artifacts.maas = { ...artifacts.maas!, ...this.extras, quantization: this.spec };
    return { modelJson: await writeArtifacts(dir, artifacts, hooks) };
  }

  /**
   * The quantized model as ONNX bytes (opset 13) for onnxruntime: per int8 layer QuantizeLinear
   * with the calibrated u8 scale and zero point (static) or DynamicQuantizeLinear (dynamic), then
   * MatMulInteger with the s8 weights, Cast, Mul by the scales, Add bias, activation; fp32 layers
   * as Gemm. The u8 parameters are the 0..255 ones; a 7-bit kernel (AVX2 without VNNI) predicts
   * with 0..127 levels, so there the graph is the model's 8-bit twin.
   */
  toOnnx(): Uint8Array {
    this.checkLive();
    return buildQuantizedOnnx(
      this.layers.map((l, i) => {
        const info = this.spec.layers[i]!;
        const q = this.int8Weights[i];
        return {
          in: l.inputDim!,
          out: l.units,
          weights: l.kernel!,
          bias: l.bias,
          activation: l.activation,
          ...l.nativeActivationParams(),
          int8:
            info.int8 && q
              ? {
                  weights: q,
                  scales: Float32Array.from(info.weightScales!),
                  ...(info.input ? { input: { scale: info.input.scale, zeroPoint: info.input.zeroPoint } } : {}),
                }
              : null,
        };
      }),
      this.spec.mode,
    );
  }

  /** Writes the quantized model as an .onnx file (see toOnnx). */
  async saveOnnx(path: string): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) throw invalidParameter('saveOnnx(path)', 'a file path', path);
    await writeFile(path, this.toOnnx());
  }

  /** Frees the native handle and packed buffer; later calls throw MAAS_ERR_MODEL_DISPOSED. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
    this.packedModel = null;
    this.disposed = true;
  }

  private compiled(): NativeCompiledModel {
    this.handle ??= openPackedModel(this.packed());
    return this.handle;
  }

  private checkLive(): void {
    if (this.disposed) throw new MaasError('MAAS_ERR_MODEL_DISPOSED', `Model ${this.name} was disposed`);
  }
}

/** Indices of the layers to keep in fp32. */
function keepFloatSet(keep: QuantizeOptions['keepFloat'], layers: readonly Dense[]): Set<number> {
  if (keep === undefined) return new Set();
  const items =
    typeof keep === 'string'
      ? keep
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : keep;
  if (!Array.isArray(items))
    throw invalidParameter('quantize.keepFloat', "an array of 'first', 'last', layer indices or names", keep);
  const out = new Set<number>();
  for (const item of items) {
    const index =
      item === 'first'
        ? 0
        : item === 'last'
          ? layers.length - 1
          : typeof item === 'number'
            ? item
            : /^\d+$/.test(String(item))
              ? Number(item)
              : layers.findIndex((l) => l.name === item);
    if (!Number.isInteger(index) || index < 0 || index >= layers.length) {
      throw invalidParameter(
        'quantize.keepFloat',
        `'first', 'last', an index in [0, ${layers.length - 1}] or a layer name`,
        item,
        'MAAS_ERR_ARG_RANGE',
      );
    }
    out.add(index);
  }
  return out;
}

/** The calibration rows as a checked matrix: the model's width, at least one row, finite. */
function calibrationMatrix(data: TensorLike | undefined, inputDim: number): { data: Float32Array; rows: number } {
  if (data === undefined || data === null) {
    throw new MaasError(
      'MAAS_ERR_CALIBRATION_MISSING',
      "Expected calibrationData (rows of model inputs) for quantize unless method is 'dynamic' but received undefined",
    );
  }
  const empty =
    (data instanceof Float32Array && data.length === 0) ||
    (Array.isArray(data) && data.length === 0) ||
    (data instanceof Tensor && data.size === 0);
  if (empty)
    throw new MaasError(
      'MAAS_ERR_CALIBRATION_EMPTY',
      'Expected at least one row for quantize.calibrationData but received 0 rows',
    );
  const m = toMatrix(data, inputDim, 'quantize.calibrationData');
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i])) {
      throw new MaasError(
        'MAAS_ERR_CALIBRATION_NOT_FINITE',
        `Expected finite values for quantize.calibrationData but row ${Math.floor(i / inputDim)}, column ${i % inputDim} is ${m.data[i]}`,
      );
    }
  }
  return m;
}

/** One layer's fp32 output on `x` (calibration runs the model a layer at a time). */
function layerOutput(layer: Dense, x: Float32Array): Float32Array {
  const single = sequential({
    layers: [
      dense({
        units: layer.units,
        ...layer.activationArgs(),
        useBias: layer.useBias,
        inputShape: [layer.inputDim!],
      }),
    ],
  });
  try {
    single.setWeights(layer.bias ? [layer.kernel!, layer.bias] : [layer.kernel!]);
    return single.predict(x).values;
  } finally {
    single.dispose();
  }
}

/** The fp32 twin: the source's layers with `weights` (dequantized for int8 layers). */
function twinOf(source: Sequential, weights: Float32Array[]): Sequential {
  const twin = sequential({
    name: source.name,
    layers: source.layers.map((l, i) =>
      dense({
        units: l.units,
        ...l.activationArgs(),
        useBias: l.useBias,
        name: l.name,
        ...(i === 0 ? { inputShape: [l.inputDim!] } : {}),
      }),
    ),
  });
  twin.setWeights(source.layers.flatMap((l, i) => (l.bias ? [weights[i]!, l.bias] : [weights[i]!])));
  if (source.preparation) twin.setPreparation(source.preparation);
  return twin;
}

/**
 * Quantizes a trained model: weights to s8 (per output channel unless perChannel is false),
 * activations to u8 with ranges from `calibrationData` (minmax, percentile or entropy) or from
 * each batch ('dynamic'); layers named in keepFloat stay fp32. Check the result with
 * compareQuantized.
 */
export function quantize(model: Sequential, options: QuantizeOptions = {}): QuantizedModel {
  if (!isPlainObject(options)) throw invalidParameter('quantize(model, options)', 'an options object', options);
  const o = checkOptions('quantize', options, ['calibrationData', 'method', 'percentile', 'perChannel', 'keepFloat']);
  if (!model || typeof (model as Partial<Sequential>).toArtifacts !== 'function')
    throw invalidParameter('quantize(model)', 'a Sequential model', model);
  const layers = model.layers;
  if (layers.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${model.name} has no layers`);
  const method = o.method === undefined ? 'minmax' : checkOneOf('quantize.method', o.method, CALIBRATION_METHODS);
  const perChannel = o.perChannel === undefined ? true : checkBoolean('quantize.perChannel', o.perChannel);
  const percentile = o.percentile === undefined ? 99.99 : Number(o.percentile);
  if (!(percentile > 50 && percentile <= 100))
    throw invalidParameter('quantize.percentile', 'a number in (50, 100]', o.percentile, 'MAAS_ERR_ARG_RANGE');
  const keep = keepFloatSet(o.keepFloat as QuantizeOptions['keepFloat'], layers);
  const dynamic = method === 'dynamic';
  let x = dynamic ? null : calibrationMatrix(o.calibrationData as TensorLike | undefined, layers[0]!.inputDim!).data;
  if (dynamic && o.calibrationData !== undefined)
    calibrationMatrix(o.calibrationData as TensorLike, layers[0]!.inputDim!);

  const infos: QuantizedLayerInfo[] = [];
  const int8Weights: (Int8Array | null)[] = [];
  const twinWeights: Float32Array[] = [];
  layers.forEach((layer, i) => {
    const info: QuantizedLayerInfo = { name: layer.name, int8: !keep.has(i) };
    if (x && info.int8) {
      const r = calibrateRange(x, method, percentile);
      const min = f32(r.min),
        max = f32(r.max);
      info.input = { min, max, ...activationParams(min, max, 255) };
    }
    if (info.int8) {
      const { q, scales } = quantizeWeights(layer.kernel!, layer.inputDim!, layer.units, perChannel);
      info.weightScales = Array.from(scales);
      int8Weights.push(q);
      twinWeights.push(dequantizeWeights(q, scales, layer.units));
    } else {
      int8Weights.push(null);
      twinWeights.push(layer.kernel!);
    }
    infos.push(info);
    if (x && i + 1 < layers.length) x = layerOutput(layer, x);
  });
  const spec: QuantizationSpec = {
    formatVersion: 1,
    scheme: 'u8-asymmetric-activations/s8-symmetric-weights',
    method,
    mode: dynamic ? 'dynamic' : 'static',
    perChannel,
    ...(method === 'percentile' ? { percentile } : {}),
    layers: infos,
  };
  const ext = model.toArtifacts().maas;
  return new QuantizedModel(twinOf(model, twinWeights), spec, int8Weights, {
    ...(ext?.trainingConfig ? { trainingConfig: ext.trainingConfig } : {}),
    ...(ext?.preparation ? { preparation: ext.preparation } : {}),
  });
}

/** Checks a saved maas.quantization against the loaded layers. */
function checkSpec(spec: unknown, layers: readonly Dense[], path: string): QuantizationSpec {
  const s = spec as Partial<QuantizationSpec> | undefined;
  const bad = (why: string): MaasError =>
    new MaasError('MAAS_ERR_MODEL_FORMAT', `The maas.quantization field of ${path} is invalid: ${why}`);
  if (!s || s.formatVersion !== 1 || !Array.isArray(s.layers)) throw bad('expected formatVersion 1 and a layers array');
  if (s.layers.length !== layers.length)
    throw bad(`it describes ${s.layers.length} layers but the model has ${layers.length}`);
  if (s.mode !== 'static' && s.mode !== 'dynamic') throw bad(`mode '${String(s.mode)}'`);
  s.layers.forEach((l, i) => {
    if (!l || typeof l !== 'object') throw bad(`layer ${i} is not an object`);
    if (!l.int8) return;
    if (
      !Array.isArray(l.weightScales) ||
      l.weightScales.length !== layers[i]!.units ||
      !l.weightScales.every((v) => v > 0 && Number.isFinite(v))
    ) {
      throw bad(`layer ${i} needs ${layers[i]!.units} positive weight scales`);
    }
    if (
      s.mode === 'static' &&
      !(l.input && Number.isFinite(l.input.min) && Number.isFinite(l.input.max) && l.input.min <= l.input.max)
    ) {
      throw bad(`layer ${i} needs a finite input range`);
    }
  });
  return s as QuantizationSpec;
}

/**
 * Loads a model saved by QuantizedModel.save: the int8 weights are recovered exactly from the
 * stored dequantized values and scales. (loadModel on the same directory gives the fp32 view.)
 * An .onnx path is a model quantized by ONNX Runtime's tools or by toOnnx (quant/from-onnx.ts).
 */
export async function loadQuantizedModel(path: string): Promise<QuantizedModel> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadQuantizedModel(path)', 'a quantized model directory, model.json or .onnx file', path);
  if (/\.onnx$/i.test(path)) return (await import('./from-onnx.js')).loadQuantizedOnnx(path);
  const artifacts = await readArtifacts(path);
  if (!artifacts.maas?.quantization) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a quantized model (a model.json with maas.quantization, or a quantized .onnx file) at ${path}; use loadModel for fp32 models`,
    );
  }
  const float = await loadModel(path);
  const spec = checkSpec(artifacts.maas.quantization, float.layers, path);
  const weights = float.layers.map((l, i) => {
    const info = spec.layers[i]!;
    if (!info.int8) return null;
    const q = requantizeWeights(l.kernel!, Float32Array.from(info.weightScales!), l.units);
    if (!q)
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `Layer ${l.name}'s weights are not on the int8 grid its scales define (edited or corrupt)`,
      );
    return q;
  });
  const { trainingConfig, preparation } = artifacts.maas;
  return new QuantizedModel(float, spec, weights, {
    ...(trainingConfig ? { trainingConfig } : {}),
    ...(preparation ? { preparation } : {}),
  });
}
