/**
 * The int8 loader: a model saved by QuantizedModel.save, opened once by openModelFile, becomes a
 * QuantizedModel (loadQuantizedModel) or the spec and s8 weights a packer needs (readInt8, used
 * by the repository's load worker).
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { checkOptions } from '../core/validation.js';
import { int8ParamsProblem, type IntegrityOptions } from '../io/integrity.js';
import type { DecryptionOptions } from '../io/sealed.js';
import { openModelFile, type OpenedModel } from '../io/open.js';
import { sequentialFromOpened } from '../model/load.js';
import { activationParams, requantizeWeights } from './arith.js';
import { QuantizedModel, type QuantizationSpec } from './model.js';

/** Checks a saved maas.quantization against the loaded layers (their shapes are enough). */
export function checkSpec(spec: unknown, layers: readonly { units: number }[], path: string): QuantizationSpec {
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
    const problem = int8ParamsProblem(l);
    if (problem) throw bad(`layer ${i}: ${problem}`);
    if (l.input) checkInputParams(l.input, i, bad);
  });
  return s as QuantizationSpec;
}

/**
 * A static layer's stored input scale and zero point must be the ones its range gives (the
 * kernels derive them from the range; the ONNX export writes the stored ones), and the range's
 * own scale must lie within the bounds the int8 arithmetic takes.
 */
function checkInputParams(
  input: NonNullable<QuantizationSpec['layers'][number]['input']>,
  layer: number,
  bad: (why: string) => MaasError,
): void {
  const derived = activationParams(input.min, input.max);
  const problem = int8ParamsProblem({ input: derived });
  if (problem) throw bad(`layer ${layer}'s input range [${input.min}, ${input.max}]: ${problem}`);
  if (input.scale !== derived.scale || input.zeroPoint !== derived.zeroPoint)
    throw bad(
      `layer ${layer}'s input scale ${input.scale} and zero point ${input.zeroPoint} are not the ${derived.scale} and ${derived.zeroPoint} its range [${input.min}, ${input.max}] gives`,
    );
}

/** loadQuantizedModel()'s options. */
export type QuantizedLoadOptions = IntegrityOptions & DecryptionOptions;

/**
 * Loads a model saved by QuantizedModel.save: the int8 weights are recovered exactly from the
 * stored dequantized values and scales. (loadModel on the same directory gives the fp32 view.)
 * An .onnx path is a model quantized by ONNX Runtime's tools or by toOnnx (quant/from-onnx.ts).
 * An encrypted file (model.json.enc, .onnx.enc) is decrypted in memory with options.keys.
 */
export async function loadQuantizedModel(path: string, options: QuantizedLoadOptions = {}): Promise<QuantizedModel> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadQuantizedModel(path)', 'a quantized model directory, model.json or .onnx file', path);
  checkOptions('loadQuantizedModel options', options ?? undefined, ['strictIntegrity', 'keys']);
  if (/\.onnx(\.enc)?$/i.test(path)) return (await import('./from-onnx.js')).loadQuantizedOnnx(path, options);
  return quantizedFromOpened(await openModelFile(path, options));
}

/** An opened int8 file as a QuantizedModel (its fp32 twin over the file's dequantized weights). */
export function quantizedFromOpened(opened: OpenedModel): QuantizedModel {
  const { spec, int8Weights } = readInt8(opened);
  const training = opened.training?.source === 'maas' ? opened.training.config : undefined;
  return new QuantizedModel(sequentialFromOpened({ ...opened, training: null }), spec, int8Weights, {
    ...(training ? { trainingConfig: training } : {}),
    ...(opened.preparation ? { preparation: opened.preparation } : {}),
  });
}

/**
 * An opened int8 file's quantization: maas.quantization checked against the layers, and each
 * int8 layer's s8 weights recovered exactly from the stored dequantized values and scales.
 */
export function readInt8(opened: OpenedModel): { spec: QuantizationSpec; int8Weights: (Int8Array | null)[] } {
  if (opened.precision !== 'int8') {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a quantized model (a model.json with maas.quantization, or a quantized .onnx file) at ${opened.path}; use loadModel for fp32 models`,
    );
  }
  const spec = checkSpec(opened.quantization, opened.layers, opened.path);
  const int8Weights = opened.layers.map((l, i) => int8WeightsOf(spec, i, l));
  return { spec, int8Weights };
}

/**
 * Layer `index`'s s8 weights, recovered exactly from its stored dequantized values and scales
 * (null for a layer kept in fp32); a streamed load calls it a layer at a time, with `into` (an
 * Int8Array of the kernel's length) to reuse.
 */
export function int8WeightsOf(
  spec: QuantizationSpec,
  index: number,
  layer: { name: string; kernel: Float32Array; units: number },
  into?: Int8Array,
): Int8Array | null {
  const info = spec.layers[index]!;
  if (!info.int8) return null;
  const q = requantizeWeights(layer.kernel, Float32Array.from(info.weightScales!), layer.units, into);
  if (!q)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Layer ${layer.name}'s weights are not on the int8 grid its scales define (edited or corrupt)`,
    );
  return q;
}
