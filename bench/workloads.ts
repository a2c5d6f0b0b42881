/**
 * The benchmark workloads every suite shares: model S (the example model), model L (a large
 * weight-streaming stack) and a raw GEMM, with seeded weights so every peer gets the same model.
 */
import { Random } from '../src/core/random.js';
import { dense, sequential, type Sequential } from '../src/index.js';
import type { DenseSpec, DenseActivation } from './peers/onnx.js';

/** A dense stack to run at several batch sizes. */
export interface Workload {
  name: string;
  layers: DenseSpec[];
  batches: number[];
  /** Multiply-adds per row: flops per row are twice this. */
  macsPerRow: number;
  /** Weight bytes in fp32 (batch-1 runs are bound by reading them). */
  weightBytes: number;
}

function stack(widths: number[], acts: DenseActivation[], seed: number, bias = true): DenseSpec[] {
  const r = new Random(seed);
  return acts.map((activation, i) => {
    const fanIn = widths[i]!,
      fanOut = widths[i + 1]!;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const weights = new Float32Array(fanIn * fanOut);
    for (let j = 0; j < weights.length; j++) weights[j] = r.uniform(-limit, limit);
    const b = bias ? Float32Array.from({ length: fanOut }, () => r.uniform(-0.1, 0.1)) : null;
    return { in: fanIn, out: fanOut, weights, bias: b, activation, alpha: 0 };
  });
}

function workload(name: string, layers: DenseSpec[], batches: number[]): Workload {
  const macs = layers.reduce((n, l) => n + l.in * l.out, 0);
  return { name, layers, batches, macsPerRow: macs, weightBytes: macs * 4 };
}

/** Model S: 100 → 64 relu → 32 relu → 1 sigmoid, the example model of every issue. */
export const modelS = (): Workload =>
  workload('S', stack([100, 64, 32, 1], ['relu', 'relu', 'sigmoid'], 1), [1, 32, 1024]);
/** Model L: 1024 → 4096 relu → 4096 relu → 1024 linear (96 MB of fp32 weights). */
export const modelL = (): Workload =>
  workload('L', stack([1024, 4096, 4096, 1024], ['relu', 'relu', 'linear'], 2), [1, 16, 256]);
/** The explanations' image-sized classifier: 784 → 256 relu → 128 relu → 10 softmax. */
export const model784 = (): Workload =>
  workload('784-256-128-10', stack([784, 256, 128, 10], ['relu', 'relu', 'softmax'], 4), [1, 64]);
/** One linear layer K → N without bias (bench:kernels --dims K,N: a shape to isolate). */
export const layerKxN = (k: number, n: number): Workload =>
  workload(`GEMM ${k}x${n}`, stack([k, n], ['linear'], 5, false), [1024]);
/** The GEMM 1024×4096×4096: one linear layer without bias at batch 1024. */
export const gemm = (): Workload => workload('GEMM 1024x4096x4096', stack([4096, 4096], ['linear'], 3, false), [1024]);

/** Seeded input rows. */
export function inputRows(batch: number, width: number, seed = 7): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: batch * width }, () => r.normal());
}

/** Our Sequential holding a workload's layers and weights. */
export function workloadModel(layers: DenseSpec[]): Sequential {
  const model = sequential({
    layers: layers.map((l, i) =>
      dense({
        units: l.out,
        activation: l.activation,
        useBias: l.bias !== null,
        ...(i === 0 ? { inputShape: [l.in] } : {}),
      }),
    ),
  });
  model.setWeights(layers.flatMap((l) => (l.bias ? [l.weights, l.bias] : [l.weights])));
  return model;
}
