/**
 * Training throughput: one optimizer step (adam) per call on model S and model L, maas against
 * tfjs cpu and wasm running the same model, loss and optimizer, and maas in mixed precision
 * (`maas-bf16`: the step's products in bf16, fp32 weights and updates) where the CPU has a bf16
 * dot product (AVX512_BF16 or AMX). A step counts as 3× the forward flops (forward, input
 * gradient, weight gradient).
 */
import * as tf from '@tensorflow/tfjs';
import { adam, backendInfo, dense, sequential, setThreads } from '../src/index.js';
import { time, type Measurement } from './harness.js';
import { inputRows, type Workload } from './workloads.js';
import type { DenseSpec } from './peers/onnx.js';
import { activateBackend } from './peers/tfjs.js';

/** One measured training case. */
export interface TrainRow {
  workload: string;
  impl: string;
  threads: number;
  m: Measurement | null;
  flops: number;
  batch: number;
  note: string;
}

/** Rough GFLOP/s of the tfjs peers in training, to skip steps that would take minutes. */
const PEER_TRAIN_GFLOPS: Record<string, number> = { 'tfjs-cpu': 0.25, 'tfjs-wasm': 2.5 };
const MAX_STEP_SECONDS = 20;

function lossFor(w: Workload): 'binaryCrossentropy' | 'meanSquaredError' {
  return w.layers[w.layers.length - 1]!.activation === 'sigmoid' ? 'binaryCrossentropy' : 'meanSquaredError';
}

function targets(batch: number, width: number, binary: boolean): Float32Array {
  return Float32Array.from({ length: batch * width }, (_, i) =>
    binary ? ((i * 7919) % 3 === 0 ? 1 : 0) : Math.sin(i),
  );
}

function ours(layers: DenseSpec[], loss: string, precision: 'fp32' | 'bf16' = 'fp32') {
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
  model.setWeights(layers.flatMap((l) => (l.bias ? [l.weights.slice(), l.bias.slice()] : [l.weights.slice()])));
  model.compile({ optimizer: adam({ learningRate: 1e-4 }), loss: loss as 'meanSquaredError', precision });
  return model;
}

async function tfjsModel(backend: 'cpu' | 'wasm', layers: DenseSpec[], loss: string): Promise<tf.Sequential> {
  await activateBackend(backend);
  const model = tf.sequential({
    layers: layers.map((l, i) =>
      tf.layers.dense({
        units: l.out,
        activation: l.activation as 'relu',
        useBias: l.bias !== null,
        ...(i === 0 ? { inputShape: [l.in] } : {}),
      }),
    ),
  });
  model.setWeights(
    layers.flatMap((l) =>
      l.bias ? [tf.tensor2d(l.weights, [l.in, l.out]), tf.tensor1d(l.bias)] : [tf.tensor2d(l.weights, [l.in, l.out])],
    ),
  );
  model.compile({ optimizer: tf.train.adam(1e-4), loss });
  return model;
}

/** Measures maas (1 and 2 threads) and tfjs cpu/wasm training steps for each batch size. */
export async function runTrainWorkload(
  w: Workload,
  batches: number[],
  budget: number,
  rows: TrainRow[],
  print: (r: TrainRow) => void,
): Promise<void> {
  const loss = lossFor(w);
  const inDim = w.layers[0]!.in,
    outDim = w.layers[w.layers.length - 1]!.out;
  for (const batch of batches) {
    const x = inputRows(batch, inDim);
    const y = targets(batch, outDim, loss === 'binaryCrossentropy');
    const flops = 3 * 2 * w.macsPerRow * batch;
    const add = (impl: string, threads: number, m: Measurement | null, note = ''): void => {
      const row = { workload: `train ${w.name} b${batch}`, impl, threads, m, flops, batch, note };
      rows.push(row);
      print(row);
    };
    const bf16Dot = backendInfo().features.avx512Bf16;
    for (const precision of bf16Dot ? (['fp32', 'bf16'] as const) : (['fp32'] as const)) {
      const model = ours(w.layers, loss, precision);
      for (const threads of [1, 2]) {
        setThreads(threads);
        add(
          precision === 'fp32' ? 'maas' : 'maas-bf16',
          threads,
          await time(() => model.trainOnBatch(x, y), { budget }),
        );
      }
      model.dispose();
    }
    for (const peer of ['tfjs-wasm', 'tfjs-cpu'] as const) {
      const estimate = flops / 1e9 / PEER_TRAIN_GFLOPS[peer]!;
      if (estimate > MAX_STEP_SECONDS) {
        add(peer, 1, null, `skipped: ≈ ${estimate.toFixed(0)} s per step at ≈ ${PEER_TRAIN_GFLOPS[peer]} GFLOP/s`);
        continue;
      }
      const m = await tfjsModel(peer === 'tfjs-wasm' ? 'wasm' : 'cpu', w.layers, loss);
      const xt = tf.tensor2d(x, [batch, inDim]),
        yt = tf.tensor2d(y, [batch, outDim]);
      const slow = estimate > 1;
      add(
        peer,
        1,
        await time(() => m.trainOnBatch(xt, yt), {
          budget: slow ? 0 : budget,
          warmup: slow ? 0 : 2,
          minSamples: slow ? 1 : 5,
        }),
      );
      tf.dispose([xt, yt]);
      m.dispose();
    }
  }
}
