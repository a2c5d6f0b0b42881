/**
 * loadModel: reads a tfjs-layers model (ours, or one saved by @tensorflow/tfjs, tfjs-node or a
 * converter) into a Sequential, restoring maas's training configuration and preparation
 * pipeline when the file carries them.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { readArtifacts, resolveModelJson, type WeightSpec } from '../io/artifacts.js';
import { readOnnx } from '../io/onnx.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dense } from '../layers/dense.js';
import { regularizers } from '../layers/regularizers.js';
import { Pipeline } from '../data/pipeline.js';
import { Optimizer, type OptimizerName } from '../train/optimizers.js';
import type { LossName } from '../native/index.js';
import type { MetricName } from '../train/metrics.js';
import { fromTopology } from './topology.js';
import { Sequential } from './sequential.js';

interface Located {
  spec: WeightSpec;
  offset: number;
}

function locate(specs: WeightSpec[]): Located[] {
  let offset = 0;
  return specs.map((spec) => {
    if (spec.dtype !== 'float32' || spec.quantization) {
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Weight ${spec.name} is ${spec.quantization ? 'quantized' : spec.dtype}; maas loads float32 weights`);
    }
    const located = { spec, offset };
    offset += spec.shape.reduce((a, b) => a * b, 1) * 4;
    return located;
  });
}

function read(data: Uint8Array, w: Located, expected: number[], what: string): Float32Array {
  const size = expected.reduce((a, b) => a * b, 1);
  if (w.spec.shape.length !== expected.length || w.spec.shape.some((d, i) => d !== expected[i])) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Weight ${w.spec.name} has shape [${w.spec.shape.join(',')}] but ${what} needs [${expected.join(',')}]`);
  }
  if (w.offset + size * 4 > data.length) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `The weights file is shorter than the manifest says (at ${w.spec.name})`);
  // Copy out: offsets in the file need not be 4-byte aligned, and the model owns its arrays.
  return new Float32Array(data.slice(w.offset, w.offset + size * 4).buffer);
}

/** Builds a Sequential from ONNX dense layers. */
async function loadOnnxModel(path: string): Promise<Sequential> {
  const layers = await readOnnx(path);
  const model = new Sequential();
  for (const l of layers) {
    model.add(dense({ units: l.out, activation: l.activation, ...(l.alpha !== undefined ? { alpha: l.alpha } : {}), useBias: l.bias !== null, ...(model.layers.length === 0 ? { inputShape: [l.in] } : {}) }));
  }
  model.setWeights(layers.flatMap((l) => (l.bias ? [l.kernel, l.bias] : [l.kernel])));
  return model;
}

/**
 * Loads a model: a tfjs-layers model.json (or a directory holding one), or an .onnx file (or a
 * directory holding model.onnx).
 */
export async function loadModel(path: string): Promise<Sequential> {
  if (typeof path !== 'string' || path.length === 0) throw invalidParameter('loadModel(path)', 'a path to a model directory, model.json or model.onnx', path);
  if (path.endsWith('.onnx')) return loadOnnxModel(path);
  const json = await resolveModelJson(path);
  if (!existsSync(json) && existsSync(join(dirname(json), 'model.onnx'))) return loadOnnxModel(join(dirname(json), 'model.onnx'));
  const artifacts = await readArtifacts(path);
  const parsed = fromTopology(artifacts.modelTopology);
  const located = locate(artifacts.weightSpecs);
  const byName = new Map(located.map((l) => [l.spec.name, l]));
  // Weight names are "<layer>/kernel" (tfjs) or carry a scope prefix (converters); fall back to order.
  const find = (layer: string, kind: string, index: number): Located | undefined =>
    byName.get(`${layer}/${kind}`) ?? located.find((l) => l.spec.name.endsWith(`/${layer}/${kind}`) || l.spec.name.startsWith(`${layer}/${kind}`)) ??
    located[index];
  const model = new Sequential();
  const weights: Float32Array[] = [];
  let index = 0;
  let inputDim = parsed[0]!.inputDim!;
  for (const p of parsed) {
    model.add(dense({
      units: p.units,
      activation: p.activation,
      ...(p.alpha !== undefined ? { alpha: p.alpha } : {}),
      useBias: p.useBias,
      name: p.name,
      ...(model.layers.length === 0 ? { inputShape: [p.inputDim!] } : {}),
      ...(p.kernelRegularizer ? { kernelRegularizer: regularizers.l1l2(p.kernelRegularizer) } : {}),
    }));
    const k = find(p.name, 'kernel', index++);
    if (!k) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No kernel weights for layer ${p.name}`);
    weights.push(read(artifacts.weightData, k, [inputDim, p.units], `layer ${p.name}'s kernel`));
    if (p.useBias) {
      const b = find(p.name, 'bias', index++);
      if (!b) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `No bias weights for layer ${p.name}`);
      weights.push(read(artifacts.weightData, b, [p.units], `layer ${p.name}'s bias`));
    }
    inputDim = p.units;
  }
  model.setWeights(weights);
  const ext = artifacts.maas;
  const training = ext?.trainingConfig as { loss: LossName; metrics: MetricName[]; optimizer: { name: OptimizerName; learningRate: number; config: Record<string, unknown> } } | undefined;
  if (training) {
    model.compile({ optimizer: new Optimizer(training.optimizer.name, training.optimizer.learningRate, training.optimizer.config), loss: training.loss, metrics: training.metrics });
  }
  if (ext?.preparation) model.setPreparation(Pipeline.fromJSON(ext.preparation));
  return model;
}
