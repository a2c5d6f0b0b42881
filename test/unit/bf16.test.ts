/**
 * Models served in bf16: setPrecision and loadModel's precision pack the weights as bf16 for this
 * thread's bf16 kernel, predict stays within bf16's rounding of fp32, the bundled classic model
 * decides as in fp32, and a packed bf16 buffer opens in another handle like an fp32 one.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classicData } from '../../examples/classic.js';
import { dense, initializers, loadModel, openPackedModel, sequential, tensor } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { rng } from '../helpers.js';

/** bf16 keeps 8 significant bits: each operand is within 2^-9 of its fp32 value. */
const BF16_UNIT = 2 ** -9;

function model(seed: number) {
  return sequential({
    layers: [
      dense({
        units: 96,
        activation: 'relu',
        inputShape: [200],
        kernelInitializer: initializers.glorotUniform({ seed }),
      }),
      dense({ units: 40, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }) }),
      dense({ units: 5, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }) }),
    ],
  });
}

/** n rows of `width` uniform values in [-1, 1) (the run's seed, as every test's inputs). */
const rows = (n: number, width: number, salt: number) => {
  const r = rng(salt);
  return Float32Array.from({ length: n * width }, () => r.uniform(-1, 1));
};

describe('bf16 precision', () => {
  it('packs for the bf16 kernel, stays within bf16 rounding of fp32, and switches back exactly', () => {
    const m = model(11);
    const x = rows(33, 200, 5);
    const fp32 = m.predict(x).values;
    expect(m.precision).toBe('fp32');
    m.setPrecision('bf16');
    expect(m.precision).toBe('bf16');
    expect(m.packed().format).toBe('bf16');
    expect(m.packed().kernel).toBe(native.cpuInfo().bf16Kernel);
    expect(m.packed().kernel).toMatch(/^bf16_gemm_/);
    // Half the weight bytes of fp32 (give or take panel padding and the biases, kept in fp32).
    const bf16Bytes = m.packed().buffer.byteLength;
    const bf16 = m.predict(x).values;
    let maxError = 0;
    for (let i = 0; i < fp32.length; i++) maxError = Math.max(maxError, Math.abs(bf16[i]! - fp32[i]!));
    // Softmax probabilities: each output moves by a few bf16 units of the logits' scale, never more.
    expect(maxError).toBeGreaterThan(0);
    expect(maxError).toBeLessThan(40 * BF16_UNIT);
    // Rows still sum to one, and the most likely class is the same for nearly every row.
    for (let r = 0; r < 33; r++) expect(bf16.subarray(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    m.setPrecision('fp32');
    expect(m.packed().buffer.byteLength).toBeGreaterThan(1.6 * bf16Bytes);
    expect(Array.from(m.predict(x).values)).toEqual(Array.from(fp32));
  });

  it('refuses a precision it does not have, with a coded error', () => {
    const m = model(3);
    expect(() => m.setPrecision('fp16' as 'bf16')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
    expect(m.precision).toBe('fp32');
  });

  it('shares a packed bf16 buffer with another handle, which predicts the same', () => {
    const m = model(21);
    m.setPrecision('bf16');
    const x = rows(9, 200, 8);
    const handle = openPackedModel(m.packed());
    try {
      const y = new Float32Array(9 * 5);
      handle.predict(x, 9, y);
      expect(Array.from(y)).toEqual(Array.from(m.predict(x).values));
    } finally {
      handle.dispose();
    }
  });

  it('after training, predicts from the new weights in bf16', () => {
    const m = model(31);
    m.setPrecision('bf16');
    const x = rows(64, 200, 9);
    const before = m.predict(x).values;
    m.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
    const y = new Float32Array(64 * 5).map((_, i) => (i % 5 === 0 ? 1 : 0));
    m.trainOnBatch(tensor(x, [64, 200]), tensor(y, [64, 5]));
    expect(m.precision).toBe('bf16');
    expect(m.packed().format).toBe('bf16');
    expect(Array.from(m.predict(x).values)).not.toEqual(Array.from(before));
  });

  it('trains in mixed precision (compile precision bf16) as well as in fp32 on the classic data', async () => {
    const { x, y } = classicData(3000, 5);
    const accuracy: Record<string, number> = {};
    for (const precision of ['fp32', 'bf16'] as const) {
      const m = sequential({
        layers: [
          dense({
            units: 32,
            activation: 'relu',
            inputShape: [100],
            kernelInitializer: initializers.glorotUniform({ seed: 1 }),
          }),
          dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
      m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'], precision });
      await m.fit(tensor(x.subarray(0, 2500 * 100), [2500, 100]), tensor(y.subarray(0, 2500), [2500, 1]), {
        epochs: 5,
        batchSize: 32,
        seed: 3,
        verbose: 0,
      });
      const [, acc] = m.evaluate(tensor(x.subarray(2500 * 100), [500, 100]), tensor(y.subarray(2500), [500, 1])) as {
        values: Float32Array;
      }[];
      accuracy[precision] = acc!.values[0]!;
      m.dispose();
    }
    expect(accuracy.bf16).toBeGreaterThan(0.85);
    expect(Math.abs(accuracy.bf16! - accuracy.fp32!)).toBeLessThan(0.03);
    expect(() =>
      model(1).compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', precision: 'fp16' as 'bf16' }),
    ).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
  });

  it('the bundled classic model decides as in fp32 on at least 99.5% of 20,000 rows', async () => {
    const path = join(packageRoot(), 'models', 'classic', '1');
    const fp32 = await loadModel(path);
    const bf16 = await loadModel(path, { precision: 'bf16' });
    expect(bf16.precision).toBe('bf16');
    const { x } = classicData(20_000, 7);
    const a = fp32.predict(tensor(x, [20_000, 100])).values;
    const b = bf16.predict(tensor(x, [20_000, 100])).values;
    let agree = 0;
    let maxError = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i]! > 0.5 === b[i]! > 0.5) agree++;
      maxError = Math.max(maxError, Math.abs(a[i]! - b[i]!));
    }
    expect(agree / a.length).toBeGreaterThanOrEqual(0.995);
    expect(maxError).toBeLessThan(0.05);
    fp32.dispose();
    bf16.dispose();
  });
});
