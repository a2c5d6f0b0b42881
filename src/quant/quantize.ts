/**
 * quantize(): the algorithm. A trained Sequential becomes a QuantizedModel: s8 weights per
 * output channel (or per tensor), u8 activations with ranges calibrated on representative data
 * (or taken per batch), chosen layers kept in fp32. The model lives in quant/model.ts, the loader
 * in quant/load.ts.
 */
import { MAX_SAVED_BACKGROUND_ROWS } from '../model/carried.js';
import { MaasError, invalidParameter } from '../core/errors.js';
import { Tensor, toMatrix, type TensorLike } from '../core/tensor.js';
import { checkBoolean, checkOneOf, checkOptions, isPlainObject } from '../core/validation.js';
import { dense, type Dense } from '../layers/dense.js';
import { sequential, type Sequential } from '../model/sequential.js';
import { activationParams, dequantizeWeights, quantizeWeights } from './arith.js';
import { CALIBRATION_METHODS, calibrateRange, type CalibrationMethod } from './calibrate.js';
import { QuantizedModel, type QuantizationSpec, type QuantizedLayerInfo } from './model.js';

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

const f32 = Math.fround;

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
  twin.trainingHistory.push(...source.trainingHistory);
  if (source.explanationBackground)
    twin.setExplanationBackground(source.explanationBackground, { maxRows: MAX_SAVED_BACKGROUND_ROWS });
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
