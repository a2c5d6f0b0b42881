/**
 * loadModel: reads a tfjs-layers model (ours, or one saved by @tensorflow/tfjs, tfjs-node or a
 * converter), a Keras .h5 or an .onnx chain into a Sequential, restoring maas's training
 * configuration and preparation pipeline when the file carries them.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MaasError, invalidParameter } from '../core/errors.js';
import { readArtifacts, resolveModelJson, type WeightSpec } from '../io/artifacts.js';
import { readOnnx, type OnnxConstant } from '../io/onnx.js';
import { readKerasH5 } from '../io/keras-h5.js';
import { dense } from '../layers/dense.js';
import { regularizers } from '../layers/regularizers.js';
import { Pipeline } from '../data/pipeline.js';
import { Optimizer, sgd, adam, adamw, rmsprop, type OptimizerName } from '../train/optimizers.js';
import type { LossName } from '../native/index.js';
import type { MetricName } from '../train/metrics.js';
import { foldBatchNorm, fromTopology, type ParsedDense } from './topology.js';
import { Sequential } from './sequential.js';

interface Located {
  spec: WeightSpec;
  offset: number;
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
    const located = { spec, offset };
    offset += spec.shape.reduce((a, b) => a * b, 1) * 4;
    return located;
  });
}

function read(data: Uint8Array, w: Located, expected: number[], what: string): Float32Array {
  const size = expected.reduce((a, b) => a * b, 1);
  if (w.spec.shape.length !== expected.length || w.spec.shape.some((d, i) => d !== expected[i])) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Weight ${w.spec.name} has shape [${w.spec.shape.join(',')}] but ${what} needs [${expected.join(',')}]`,
    );
  }
  if (w.offset + size * 4 > data.length)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The weights file is shorter than the manifest says (at ${w.spec.name})`,
    );
  // A view into the file's bytes when they are 4-byte aligned (loading a large model then holds
  // one copy of its weights, not two); a copy when a converter wrote them unaligned.
  const start = data.byteOffset + w.offset;
  if (start % 4 === 0) return new Float32Array(data.buffer, start, size);
  return new Float32Array(data.slice(w.offset, w.offset + size * 4).buffer);
}

type BatchNormParams = { gamma?: Float32Array; beta?: Float32Array; mean: Float32Array; variance: Float32Array };

/** One layer's weights as a file holds them: its own kernel and bias, and a following BatchNormalization's. */
interface LayerWeights {
  kernel: Float32Array;
  bias: Float32Array | null;
  batchNorm?: BatchNormParams;
}

/**
 * The one place a file's layers become a Sequential: creates each Dense, checks its kernel size,
 * folds a BatchNormalization into it, and sets every weight at once.
 */
function buildSequential(
  parsed: ParsedDense[],
  weightsOf: (p: ParsedDense, inputDim: number) => LayerWeights,
): Sequential {
  const model = new Sequential();
  let inputDim = parsed[0]!.inputDim!;
  for (const p of parsed) {
    let { kernel, bias, batchNorm } = weightsOf(p, inputDim);
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
    const layer = dense({
      units: p.units,
      activation: p.activation,
      ...(p.alpha !== undefined ? { alpha: p.alpha } : {}),
      ...(p.maxValue !== undefined ? { maxValue: p.maxValue } : {}),
      ...(p.threshold !== undefined ? { threshold: p.threshold } : {}),
      useBias,
      name: p.name,
      ...(model.layers.length === 0 ? { inputShape: [inputDim] } : {}),
      ...(p.kernelRegularizer ? { kernelRegularizer: regularizers.l1l2(p.kernelRegularizer) } : {}),
    });
    // The file's weights go in before add() builds the layer, so no initializer runs (for a large
    // model that is a full-size array and a random fill saved).
    layer.kernel = kernel;
    layer.bias = useBias ? bias : null;
    model.add(layer);
    inputDim = p.units;
  }
  return model;
}

/** Builds a Sequential from ONNX dense layers. */
async function loadOnnxModel(path: string, constants?: Record<string, OnnxConstant>): Promise<Sequential> {
  const layers = await readOnnx(path, constants);
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
  const source = new Map(parsed.map((p, i) => [p, layers[i]!]));
  return buildSequential(parsed, (p) => ({ kernel: source.get(p)!.kernel, bias: source.get(p)!.bias }));
}

const KERAS_LOSSES: Record<string, LossName> = {
  mean_squared_error: 'meanSquaredError',
  mse: 'meanSquaredError',
  mean_absolute_error: 'meanAbsoluteError',
  mae: 'meanAbsoluteError',
  binary_crossentropy: 'binaryCrossentropy',
  categorical_crossentropy: 'categoricalCrossentropy',
  sparse_categorical_crossentropy: 'sparseCategoricalCrossentropy',
};

/** Keras's training_config as a compile() call, when every part of it has a maas equivalent. */
function compileFromKeras(model: Sequential, config: unknown): void {
  const c = config as {
    loss?: unknown;
    optimizer_config?: { class_name?: string; config?: Record<string, number | boolean> };
  } | null;
  const loss = typeof c?.loss === 'string' ? KERAS_LOSSES[c.loss] : undefined;
  const opt = c?.optimizer_config;
  if (!loss || !opt?.class_name) return;
  const o = opt.config ?? {};
  const learningRate = Number(o.learning_rate ?? o.lr);
  const lr = Number.isFinite(learningRate) && learningRate > 0 ? { learningRate } : {};
  const optimizer =
    opt.class_name === 'SGD'
      ? sgd({ ...lr, momentum: Number(o.momentum ?? 0), nesterov: Boolean(o.nesterov) })
      : opt.class_name === 'Adam'
        ? adam({ ...lr, beta1: Number(o.beta_1 ?? 0.9), beta2: Number(o.beta_2 ?? 0.999) })
        : opt.class_name === 'AdamW'
          ? adamw({ ...lr, weightDecay: Number(o.weight_decay ?? 0.004) })
          : opt.class_name === 'RMSprop'
            ? rmsprop({ ...lr, rho: Number(o.rho ?? 0.9), momentum: Number(o.momentum ?? 0) })
            : null;
  if (!optimizer) return;
  try {
    model.compile({ optimizer, loss });
  } catch (e) {
    if (!(e instanceof MaasError)) throw e; // a loss that does not fit the folded output: leave it uncompiled
  }
}

/** Builds a Sequential from a Keras .h5 (whole model, or weights with an architecture JSON). */
async function loadKerasModel(path: string, architecture?: string): Promise<Sequential> {
  const data = await readKerasH5(path, architecture);
  const model = buildSequential(fromTopology(data.topology, { kerasVersion: data.kerasVersion }), (p) => {
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
      variance = bw[i++];
    return {
      kernel: w[0]!,
      bias: p.useBias ? w[1]! : null,
      ...(mean && variance ? { batchNorm: { gamma, beta, mean, variance } } : {}),
    };
  });
  compileFromKeras(model, data.trainingConfig);
  return model;
}

/** loadModel()'s options. */
export interface LoadOptions {
  /** For a Keras weights-only .h5 (save_weights): the architecture JSON written by to_json. */
  architecture?: string;
  /** For an .onnx graph that takes weights as inputs: their values, by input name. */
  constants?: Record<string, OnnxConstant>;
}

/**
 * Loads a model: a tfjs-layers model.json (or a directory holding one), a Keras .h5 file, or an
 * .onnx file (or a directory holding model.onnx). The format is detected from the path.
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<Sequential> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadModel(path)', 'a path to a model directory, model.json, model.h5 or model.onnx', path);
  if (path.endsWith('.onnx')) return loadOnnxModel(path, options.constants);
  if (/\.(h5|hdf5)$/i.test(path)) return loadKerasModel(path, options.architecture);
  const json = await resolveModelJson(path);
  if (!existsSync(json) && existsSync(join(dirname(json), 'model.onnx')))
    return loadOnnxModel(join(dirname(json), 'model.onnx'), options.constants);
  const artifacts = await readArtifacts(path);
  const parsed = fromTopology(artifacts.modelTopology);
  const located = locate(artifacts.weightSpecs);
  const byName = new Map(located.map((l) => [l.spec.name, l]));
  // Weight names are "<layer>/kernel" (tfjs) or carry a scope prefix (converters); fall back to order.
  const find = (layer: string, kind: string, index: number): Located | undefined =>
    byName.get(`${layer}/${kind}`) ??
    located.find((l) => l.spec.name.endsWith(`/${layer}/${kind}`) || l.spec.name.startsWith(`${layer}/${kind}`)) ??
    located[index];
  let index = 0;
  const model = buildSequential(parsed, (p, inputDim) => {
    const k = find(p.name, 'kernel', index++);
    if (!k) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No kernel weights for layer ${p.name}`);
    const kernel = read(artifacts.weightData, k, [inputDim, p.units], `layer ${p.name}'s kernel`);
    let bias: Float32Array | null = null;
    if (p.useBias) {
      const b = find(p.name, 'bias', index++);
      if (!b) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No bias weights for layer ${p.name}`);
      bias = read(artifacts.weightData, b, [p.units], `layer ${p.name}'s bias`);
    }
    const bn = p.batchNorm;
    if (!bn) return { kernel, bias };
    index += (bn.scale ? 1 : 0) + (bn.center ? 1 : 0) + 2;
    const get = (kind: string) => {
      const w = byName.get(`${bn.name}/${kind}`);
      return w ? read(artifacts.weightData, w, [p.units], `${bn.name}/${kind}`) : undefined;
    };
    const mean = get('moving_mean'),
      variance = get('moving_variance');
    return {
      kernel,
      bias,
      ...(mean && variance ? { batchNorm: { gamma: get('gamma'), beta: get('beta'), mean, variance } } : {}),
    };
  });
  const ext = artifacts.maas;
  const training = ext?.trainingConfig as
    | {
        loss: LossName;
        metrics: MetricName[];
        optimizer: { name: OptimizerName; learningRate: number; config: Record<string, unknown> };
      }
    | undefined;
  if (training) {
    model.compile({
      optimizer: new Optimizer(training.optimizer.name, training.optimizer.learningRate, training.optimizer.config),
      loss: training.loss,
      metrics: training.metrics,
    });
  }
  if (ext?.preparation) model.setPreparation(Pipeline.fromJSON(ext.preparation));
  return model;
}
