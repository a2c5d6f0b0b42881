/**
 * The one opener: a model file is read once, its format (tfjs-layers model.json + shards, Keras
 * .h5, ONNX) and precision (fp32, or int8 when model.json carries maas.quantization) are detected
 * once, and its dense layers come out checked, BatchNormalization folded, with everything a
 * caller needs (loadModel, loadQuantizedModel, maas convert, the repository's load worker). An
 * encrypted model file (sealed.ts: model.json.enc, model.onnx.enc, model.h5.enc) is decrypted
 * once, in memory, and its files go to the same readers.
 * Plain data only: no addon, no layer objects, so it runs in any thread.
 */
import { dirname, join } from 'node:path';
import { MaasError, invalidParameter } from '../core/errors.js';
import { DEFAULT_ALPHA, type ActivationName } from '../layers/activations.js';
import { MAX_MODEL_FILE_BYTES, asLoader, exists } from './files.js';
import { formatOfFileName, type ModelFileFormat } from './formats.js';
import { checkFinite, type IntegrityOptions } from './integrity.js';
import {
  artifactsFromFiles,
  readArtifacts,
  resolveModelJson,
  type MaasExtension,
  type ModelArtifacts,
  type WeightSpec,
} from './artifacts.js';
import { kerasFromBytes, readKerasH5, type KerasModelData } from './keras-h5.js';
import {
  MAX_ONNX_BYTES,
  decodeOnnxBytes,
  onnxDenseLayers,
  readOnnx,
  type OnnxConstant,
  type OnnxDense,
} from './onnx.js';
import {
  SEALED_SUFFIX,
  isSealedPath,
  openSealedFile,
  sealedModelFormat,
  singleModelFile,
  type DecryptionOptions,
} from './sealed.js';
import { foldBatchNorm, fromTopology, type ParsedDense } from './topology.js';

export type { ModelFileFormat } from './formats.js';

/** The precision a model file is served in. */
export type ModelPrecision = 'fp32' | 'int8';

/** One dense layer as a file holds it, checked, any BatchNormalization folded in. */
export interface OpenedLayer {
  name: string;
  inputDim: number;
  units: number;
  activation: ActivationName;
  alpha: number;
  /** kerasRelu's max_value (null: none) and threshold (0 for every other activation). */
  maxValue: number | null;
  threshold: number;
  useBias: boolean;
  /** [inputDim, units], row-major (a view into the file's bytes when they are aligned). */
  kernel: Float32Array;
  bias: Float32Array | null;
  kernelRegularizer: { l1: number; l2: number } | null;
}

/** A model file, opened: what loadModel, loadQuantizedModel, convert and the repository consume. */
export interface OpenedModel {
  /** The file that was read (model.json, .h5 or .onnx). */
  path: string;
  format: ModelFileFormat;
  precision: ModelPrecision;
  layers: OpenedLayer[];
  inputSize: number;
  outputSize: number;
  /** The training configuration the file carries: maas's (a compile() call) or Keras's training_config. */
  training: { source: 'maas' | 'keras'; config: unknown } | null;
  /** maas.preparation (a Pipeline's JSON), when present. */
  preparation: unknown;
  /** maas.quantization as stored (precision 'int8'); quant/load checks it against the layers. */
  quantization: unknown;
  /** maas.trainingHistory as stored (checked where it is used: model/carried). */
  history: unknown;
  /** maas.explanationBackground as stored (checked against the input width where it is used). */
  background: unknown;
  /** Present for an encrypted file (absent for a plaintext one). */
  encryption?: {
    /** The key id the file names, whose key decrypted it. */
    keyId: string;
  };
}

/** What an opened model has besides its layers, from the file's maas field. */
type OpenedExtra = 'training' | 'preparation' | 'quantization' | 'history' | 'background';

/** openModelFile()'s options. */
export interface OpenOptions extends IntegrityOptions, DecryptionOptions {
  /** For a Keras weights-only .h5 (save_weights): the architecture JSON written by to_json. */
  architecture?: string;
  /** For an .onnx graph that takes weights as inputs: their values, by input name. */
  constants?: Record<string, OnnxConstant>;
}

/**
 * Opens a model: a tfjs-layers model.json (or a directory holding one), a Keras .h5 file, an
 * .onnx file (or a directory holding model.onnx), or any of these encrypted (model.json.enc,
 * model.onnx.enc, model.h5.enc; a directory holding model.json.enc or model.onnx.enc), which is
 * decrypted in memory with `options.keys`. The format is detected from the path, the precision
 * from model.json's maas extension. A digest the file records is verified (and, with
 * strictIntegrity, required); every weight must be finite. Every error is a coded MaasError.
 */
export async function openModelFile(path: string, options: OpenOptions = {}): Promise<OpenedModel> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadModel(path)', 'a path to a model directory, model.json, model.h5 or model.onnx', path);
  return asLoader(path, async () => {
    if (isSealedPath(path)) return openSealed(path, options);
    const format = formatOfFileName(path);
    if (format === 'onnx') return openOnnx(path, await readOnnx(path, options.constants, options));
    if (format === 'keras-h5') return openKeras(path, await readKerasH5(path, options));
    const json = await resolveModelJson(path);
    if (!(await exists(json)))
      for (const other of DIRECTORY_FALLBACKS) {
        const candidate = join(dirname(json), other);
        if (await exists(candidate)) return openModelFile(candidate, options);
      }
    return openTfjs(json, await readArtifacts(json, options));
  });
}

/** What a directory without a model.json may hold instead, in the order they are looked for. */
const DIRECTORY_FALLBACKS = ['model.onnx', `model.json${SEALED_SUFFIX}`, `model.onnx${SEALED_SUFFIX}`];

/** An encrypted model file: decrypted once, in memory, its files read as the format they are. */
async function openSealed(path: string, options: OpenOptions): Promise<OpenedModel> {
  const sealed = await openSealedFile(path, options.keys, MAX_MODEL_FILE_BYTES);
  const encryption = { keyId: sealed.keyId };
  switch (sealedModelFormat(sealed, path)) {
    case 'tfjs-layers':
      return { ...openTfjs(path, await artifactsFromFiles(sealed.files, path, options)), encryption };
    case 'onnx': {
      const bytes = singleModelFile(sealed, path, 'onnx', MAX_ONNX_BYTES, 'an .onnx file');
      return {
        ...openOnnx(path, onnxDenseLayers(decodeOnnxBytes(bytes, path, options), path, options.constants)),
        encryption,
      };
    }
    case 'keras-h5': {
      const bytes = singleModelFile(sealed, path, 'keras-h5', MAX_MODEL_FILE_BYTES, 'a Keras HDF5 file');
      return { ...openKeras(path, await kerasFromBytes(bytes, path, options, {}, true)), encryption };
    }
  }
}

/** One manifest entry and where its bytes start in the weights (all files, in manifest order). */
export interface Located {
  spec: WeightSpec;
  offset: number;
  /** Its byte count (float32 values × 4). */
  bytes: number;
}

function locate(specs: WeightSpec[]): Located[] {
  let offset = 0;
  return specs.map((spec) => {
    if (spec.dtype !== 'float32' || spec.quantization) {
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `Weight ${spec.name} is ${spec.quantization ? 'quantized' : spec.dtype}; maas loads float32 weights`,
      );
    }
    const bytes = spec.shape.reduce((a, b) => a * b, 1) * 4;
    const located = { spec, offset, bytes };
    offset += bytes;
    return located;
  });
}

/** A manifest entry's shape must be the one the layer needs. */
function checkShape(w: Located, expected: number[], what: string): void {
  if (w.spec.shape.length !== expected.length || w.spec.shape.some((d, i) => d !== expected[i])) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Weight ${w.spec.name} has shape [${w.spec.shape.join(',')}] but ${what} needs [${expected.join(',')}]`,
    );
  }
}

function read(data: Uint8Array, w: Located): Float32Array {
  if (w.offset + w.bytes > data.length)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The weights file is shorter than the manifest says (at ${w.spec.name})`,
    );
  // A view into the file's bytes when they are 4-byte aligned (loading a large model then holds
  // one copy of its weights, not two); a copy when a converter wrote them unaligned.
  const start = data.byteOffset + w.offset;
  if (start % 4 === 0) return new Float32Array(data.buffer, start, w.bytes / 4);
  return new Float32Array(data.slice(w.offset, w.offset + w.bytes).buffer);
}

/** The manifest entries one tfjs layer takes: its kernel and bias, and a folded BatchNormalization's. */
export interface TfjsLayerSources {
  kernel: Located;
  bias: Located | null;
  batchNorm?: { gamma?: Located; beta?: Located; mean: Located; variance: Located };
}

/**
 * Which manifest entries each layer takes, with their shapes checked, from the names and shapes
 * alone (no weight bytes): a whole-file load and a streamed one read the same entries.
 */
export function planTfjsLayers(parsed: ParsedDense[], weightSpecs: WeightSpec[]): TfjsLayerSources[] {
  const located = locate(weightSpecs);
  const byName = new Map(located.map((l) => [l.spec.name, l]));
  // Weight names are "<layer>/kernel" (tfjs) or carry a scope prefix (converters); fall back to order.
  const find = (layer: string, kind: string, index: number): Located | undefined =>
    byName.get(`${layer}/${kind}`) ??
    located.find((l) => l.spec.name.endsWith(`/${layer}/${kind}`) || l.spec.name.startsWith(`${layer}/${kind}`)) ??
    located[index];
  let index = 0;
  let inputDim = parsed[0]?.inputDim ?? 0;
  return parsed.map((p) => {
    checkUnits(p);
    const kernel = find(p.name, 'kernel', index++);
    if (!kernel) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No kernel weights for layer ${p.name}`);
    checkShape(kernel, [inputDim, p.units], `layer ${p.name}'s kernel`);
    let bias: Located | null = null;
    if (p.useBias) {
      bias = find(p.name, 'bias', index++) ?? null;
      if (!bias) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No bias weights for layer ${p.name}`);
      checkShape(bias, [p.units], `layer ${p.name}'s bias`);
    }
    inputDim = p.units;
    const bn = p.batchNorm;
    if (!bn) return { kernel, bias };
    index += (bn.scale ? 1 : 0) + (bn.center ? 1 : 0) + 2;
    const get = (kind: string) => {
      const w = byName.get(`${bn.name}/${kind}`);
      if (w) checkShape(w, [p.units], `${bn.name}/${kind}`);
      return w;
    };
    const mean = get('moving_mean'),
      variance = get('moving_variance');
    const gamma = get('gamma'),
      beta = get('beta');
    return {
      kernel,
      bias,
      ...(mean && variance
        ? { batchNorm: { ...(gamma ? { gamma } : {}), ...(beta ? { beta } : {}), mean, variance } }
        : {}),
    };
  });
}

/** The weights of a planned layer, each entry's values given by `valuesOf`. */
export function tfjsLayerWeights(sources: TfjsLayerSources, valuesOf: (w: Located) => Float32Array): LayerWeights {
  const bn = sources.batchNorm;
  return {
    kernel: valuesOf(sources.kernel),
    bias: sources.bias ? valuesOf(sources.bias) : null,
    ...(bn
      ? {
          batchNorm: {
            gamma: bn.gamma ? valuesOf(bn.gamma) : undefined,
            beta: bn.beta ? valuesOf(bn.beta) : undefined,
            mean: valuesOf(bn.mean),
            variance: valuesOf(bn.variance),
          },
        }
      : {}),
  };
}

type BatchNormParams = { gamma?: Float32Array; beta?: Float32Array; mean: Float32Array; variance: Float32Array };

/** One layer's weights as a file holds them: its own kernel and bias, and a following BatchNormalization's. */
export interface LayerWeights {
  kernel: Float32Array;
  bias: Float32Array | null;
  batchNorm?: BatchNormParams;
}

function checkUnits(p: ParsedDense): void {
  if (!Number.isInteger(p.units) || p.units < 1 || p.units > 1 << 24)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Layer ${p.name} has ${p.units} units; expected 1 to 2^24`);
}

/**
 * The one place a file's layer is checked: its kernel's size, a BatchNormalization folded into
 * the Dense before it, the bias a folded or biased layer needs, every value finite. The caller
 * has checked p's units (checkUnits) before reading its weights.
 */
export function checkedLayer(path: string, p: ParsedDense, inputDim: number, weights: LayerWeights): OpenedLayer {
  let { kernel, bias } = weights;
  const { batchNorm } = weights;
  if (kernel.length !== inputDim * p.units) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Layer ${p.name}'s kernel holds ${kernel.length} values but [${inputDim}, ${p.units}] needs ${inputDim * p.units}`,
    );
  }
  if (p.batchNorm) {
    if (!batchNorm) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No moving statistics for ${p.batchNorm.name}`);
    ({ kernel, bias } = foldBatchNorm(kernel, bias, p.units, p.batchNorm, batchNorm));
  }
  const useBias = p.useBias || p.batchNorm !== undefined; // folding always yields a bias
  if (useBias && (!bias || bias.length !== p.units)) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Layer ${p.name}'s bias holds ${bias?.length ?? 0} values but needs ${p.units}`,
    );
  }
  // After folding: a BatchNormalization's statistics reach the kernel and bias only through it.
  const folded = p.batchNorm ? ` (with ${p.batchNorm.name} folded in)` : '';
  checkFinite(kernel, `Layer ${p.name}'s kernel${folded}`, path);
  if (useBias) checkFinite(bias!, `Layer ${p.name}'s bias${folded}`, path);
  checkFinite(
    [p.alpha ?? 0, p.maxValue ?? 0, p.threshold ?? 0],
    `Layer ${p.name}'s activation parameters (alpha, max_value, threshold)`,
    path,
  );
  return { ...openedShape(p, inputDim), kernel, bias: useBias ? bias : null };
}

/** An opened layer without its weights: its shape and activation, as checkedLayer gives them. */
export type OpenedShape = Omit<OpenedLayer, 'kernel' | 'bias'>;

/** A layer's shape as it opens (a folded BatchNormalization always yields a bias). */
export function openedShape(p: ParsedDense, inputDim: number): OpenedShape {
  return {
    name: p.name,
    inputDim,
    units: p.units,
    activation: p.activation,
    alpha: p.alpha ?? DEFAULT_ALPHA[p.activation],
    maxValue: p.maxValue ?? null,
    threshold: p.threshold ?? 0,
    useBias: p.useBias || p.batchNorm !== undefined,
    kernelRegularizer: p.kernelRegularizer,
  };
}

/** Each layer checked (checkedLayer), widths chained from the first layer's input. */
function checkedLayers(
  path: string,
  parsed: ParsedDense[],
  weightsOf: (p: ParsedDense, index: number) => LayerWeights,
): OpenedLayer[] {
  const out: OpenedLayer[] = [];
  let inputDim = parsed[0]!.inputDim!;
  for (const p of parsed) {
    checkUnits(p);
    out.push(checkedLayer(path, p, inputDim, weightsOf(p, out.length)));
    inputDim = p.units;
  }
  return out;
}

function opened(
  path: string,
  format: ModelFileFormat,
  layers: OpenedLayer[],
  extras: Partial<Pick<OpenedModel, OpenedExtra>> = {},
): OpenedModel {
  return {
    path,
    format,
    precision: extras.quantization ? 'int8' : 'fp32',
    layers,
    inputSize: layers[0]!.inputDim,
    outputSize: layers[layers.length - 1]!.units,
    training: extras.training ?? null,
    preparation: extras.preparation,
    quantization: extras.quantization,
    history: extras.history,
    background: extras.background,
  };
}

function openOnnx(path: string, layers: OnnxDense[]): OpenedModel {
  const parsed: ParsedDense[] = layers.map((l, i) => ({
    name: l.name,
    units: l.out,
    activation: l.activation,
    ...(l.alpha !== undefined ? { alpha: l.alpha } : {}),
    ...(l.maxValue !== undefined ? { maxValue: l.maxValue } : {}),
    useBias: l.bias !== null,
    inputDim: i === 0 ? l.in : null,
    kernelRegularizer: null,
  }));
  return opened(
    path,
    'onnx',
    checkedLayers(path, parsed, (_, i) => ({ kernel: layers[i]!.kernel, bias: layers[i]!.bias })),
  );
}

function openKeras(path: string, data: KerasModelData): OpenedModel {
  const layers = checkedLayers(path, fromTopology(data.topology, { kerasVersion: data.kerasVersion }), (p) => {
    const w = data.weights.get(p.name);
    if (!w || w.length < (p.useBias ? 2 : 1))
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No weights for layer ${p.name} in ${path}`);
    if (!p.batchNorm) return { kernel: w[0]!, bias: p.useBias ? w[1]! : null };
    // Keras stores gamma (if scale), beta (if center), moving_mean, moving_variance, in that order.
    const bw = data.weights.get(p.batchNorm.name) ?? [];
    let i = 0;
    const gamma = p.batchNorm.scale ? bw[i++] : undefined;
    const beta = p.batchNorm.center ? bw[i++] : undefined;
    const mean = bw[i++],
      variance = bw[i];
    return {
      kernel: w[0]!,
      bias: p.useBias ? w[1]! : null,
      ...(mean && variance ? { batchNorm: { gamma, beta, mean, variance } } : {}),
    };
  });
  return opened(path, 'keras-h5', layers, {
    training: data.trainingConfig ? { source: 'keras', config: data.trainingConfig } : null,
  });
}

function openTfjs(path: string, artifacts: ModelArtifacts): OpenedModel {
  const parsed = fromTopology(artifacts.modelTopology);
  const plan = planTfjsLayers(parsed, artifacts.weightSpecs);
  const layers = checkedLayers(path, parsed, (_, i) =>
    tfjsLayerWeights(plan[i]!, (w) => read(artifacts.weightData, w)),
  );
  return opened(path, 'tfjs-layers', layers, extrasOf(artifacts.maas));
}

/** What a tfjs model.json's maas field gives an opened model besides its layers. */
export function extrasOf(ext: MaasExtension | undefined): Partial<Pick<OpenedModel, OpenedExtra>> {
  return {
    training: ext?.trainingConfig ? { source: 'maas', config: ext.trainingConfig } : null,
    preparation: ext?.preparation,
    quantization: ext?.quantization,
    history: ext?.trainingHistory,
    background: ext?.explanationBackground,
  };
}
