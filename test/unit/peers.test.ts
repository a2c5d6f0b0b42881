import { describe, it, expect } from 'vitest';
import { Random } from '../../src/core/random.js';
import { buildDenseOnnx, createOrtSession, type DenseActivation, type DenseSpec } from '../../bench/peers/onnx.js';
import { createTfjsPeer } from '../../bench/peers/tfjs.js';
import { createNaivePeer } from '../../bench/peers/naive.js';

const TOLERANCE = 1e-5;
const BATCH = 4;

/** Seeded numbers in [0, 1), so the models are the same on every run. */
function seeded(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

function uniform(rand: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

type LayerPlan = { out: number; activation: DenseActivation; alpha?: number; bias?: boolean };

function makeLayers(seed: number, inputs: number, plan: LayerPlan[]): DenseSpec[] {
  const rand = seeded(seed);
  let width = inputs;
  return plan.map(({ out, activation, alpha = 0, bias = true }) => {
    const layer = {
      weights: uniform(rand, width * out),
      bias: bias ? uniform(rand, out) : null,
      in: width,
      out,
      activation,
      alpha,
    };
    width = out;
    return layer;
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

const models: Record<string, DenseSpec[]> = {
  'relu → tanh → softmax': makeLayers(1, 7, [
    { out: 5, activation: 'relu' },
    { out: 4, activation: 'tanh' },
    { out: 3, activation: 'softmax' },
  ]),
  'leakyRelu → elu(0.7) → sigmoid → linear': makeLayers(2, 7, [
    { out: 6, activation: 'leakyRelu', alpha: 0.2 },
    { out: 5, activation: 'elu', alpha: 0.7 },
    { out: 4, activation: 'sigmoid', bias: false },
    { out: 3, activation: 'linear' },
  ]),
  'elu(1) → linear without bias': makeLayers(3, 7, [
    { out: 5, activation: 'elu', alpha: 1 },
    { out: 3, activation: 'linear', bias: false },
  ]),
};

describe('benchmark peers agree', () => {
  for (const [name, layers] of Object.entries(models)) {
    it(name, { timeout: 30_000 }, async () => {
      const x = uniform(seeded(99), BATCH * layers[0]!.in);
      const reference = createNaivePeer(layers).run(x, BATCH);
      expect(reference.length).toBe(BATCH * layers[layers.length - 1]!.out);
      expect(reference.every(Number.isFinite)).toBe(true);

      for (const op of ['gemm', 'matmul'] as const) {
        const ort = await createOrtSession(buildDenseOnnx(layers, { op }), 1);
        try {
          expect(maxAbsDiff(await ort.run(x, BATCH), reference), `ort ${op}`).toBeLessThan(TOLERANCE);
        } finally {
          await ort.release();
        }
      }

      for (const backend of ['cpu', 'wasm'] as const) {
        const peer = await createTfjsPeer(backend, layers);
        try {
          expect(peer.info).toMatchObject({ backend });
          expect(maxAbsDiff(peer.run(x, BATCH), reference), `tfjs ${backend}`).toBeLessThan(TOLERANCE);
        } finally {
          peer.dispose();
        }
      }
    });
  }
});

describe('tfjs peers on a shared engine', () => {
  it('each run() switches back to its own backend', { timeout: 30_000 }, async () => {
    const layers = models['relu → tanh → softmax']!;
    const x = uniform(seeded(7), BATCH * layers[0]!.in);
    const reference = createNaivePeer(layers).run(x, BATCH);
    const cpu = await createTfjsPeer('cpu', layers);
    const wasm = await createTfjsPeer('wasm', layers);
    try {
      for (const peer of [cpu, wasm, cpu, wasm]) {
        expect(maxAbsDiff(peer.run(x, BATCH), reference)).toBeLessThan(TOLERANCE);
      }
    } finally {
      cpu.dispose();
      wasm.dispose();
    }
  });
});
