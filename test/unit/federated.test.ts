/**
 * Federated averaging: the weighted mean exactly without noise; refusals of bad updates listed,
 * not fatal; clipping to the norm; Gaussian noise of the stated standard deviation and mean zero,
 * repeatable by seed; the (ε, δ) formula against a direct minimization of the Rényi-DP bound; and
 * a client's local update computed from its own data with the model left as it was.
 */
import { describe, expect, it } from 'vitest';
import { dense, initializers, sequential } from '../../src/index.js';
import {
  deltaNorm,
  dpEpsilon,
  federatedAverage,
  localUpdate,
  type ClientUpdate,
} from '../../src/lifecycle/federated.js';
import { rng } from '../helpers.js';

const SIZES = [6, 3];

function update(client: string, samples: number, seed: number, scale = 1): ClientUpdate {
  const r = rng(seed);
  return { client, samples, delta: SIZES.map((n) => Float32Array.from({ length: n }, () => r.normal() * scale)) };
}

describe('federatedAverage', () => {
  it('is the sample-weighted mean of the deltas, exactly, without noise', () => {
    const updates = [update('a', 10, 1), update('b', 30, 2), update('c', 60, 3)];
    const got = federatedAverage(SIZES, updates);
    expect([got.clients, got.samples, got.clipped, got.noiseStd, got.refused]).toEqual([3, 100, 0, 0, []]);
    SIZES.forEach((n, t) => {
      const want = Float32Array.from({ length: n }, (_, i) =>
        Math.fround(
          (10 * updates[0]!.delta[t]![i]! + 30 * updates[1]!.delta[t]![i]! + 60 * updates[2]!.delta[t]![i]!) / 100,
        ),
      );
      expect(got.delta[t]).toEqual(want);
    });
  });

  it('lists refused updates (shape, values, norm, count, a second one from a client) and averages the rest', () => {
    const good = update('good', 5, 4);
    const nan = update('nan', 5, 5);
    nan.delta[1]![2] = NaN;
    const big = update('big', 5, 6, 100);
    const got = federatedAverage(
      SIZES,
      [
        good,
        { client: 'short', samples: 5, delta: [new Float32Array(6)] },
        { client: 'wide', samples: 5, delta: [new Float32Array(6), new Float32Array(4)] },
        nan,
        big,
        { ...update('none', 0, 7) },
        update('good', 5, 8),
      ],
      { maxNorm: 50 },
    );
    expect(got.clients).toBe(1);
    expect(got.refused.map((r) => r.client)).toEqual(['short', 'wide', 'nan', 'big', 'none', 'good']);
    expect(got.refused[3]!.reason).toMatch(/above the bound 50/);
    expect(got.delta).toEqual(good.delta.map((d) => Float32Array.from(d)));
    expect(() => federatedAverage(SIZES, [nan])).toThrow(expect.objectContaining({ code: 'MAAS_ERR_FEDERATED_ROUND' }));
  });

  it('clips each delta to the norm, keeping its direction', () => {
    const u = update('a', 1, 9, 10);
    const norm = deltaNorm(u.delta);
    const got = federatedAverage(SIZES, [u], { clipNorm: 1 });
    expect(got.clipped).toBe(1);
    expect(deltaNorm(got.delta)).toBeCloseTo(1, 5);
    got.delta.forEach((d, t) => d.forEach((v, i) => expect(v).toBeCloseTo(u.delta[t]![i]! / norm, 5)));
  });

  it('adds noise of standard deviation σ·C / clients with mean 0, the same for a seed', () => {
    const sizes = [20000];
    const zero = (client: string): ClientUpdate => ({ client, samples: 3, delta: [new Float32Array(20000)] });
    const options = { clipNorm: 2, noiseMultiplier: 1.5, seed: 42 };
    const got = federatedAverage(sizes, [zero('a'), zero('b'), zero('c'), zero('d')], options);
    // Each client counts once under privacy: σ·C over 4 clients.
    expect(got.noiseStd).toBeCloseTo((1.5 * 2) / 4, 12);
    const v = got.delta[0]!;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
    // 20 000 draws: the mean within 4 standard errors, the sd within 3%.
    expect(Math.abs(mean)).toBeLessThan((4 * got.noiseStd) / Math.sqrt(v.length));
    expect(Math.abs(sd / got.noiseStd - 1)).toBeLessThan(0.03);
    expect(federatedAverage(sizes, [zero('a'), zero('b'), zero('c'), zero('d')], options).delta).toEqual(got.delta);
    expect(() => federatedAverage(sizes, [zero('a')], { noiseMultiplier: 1 })).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_TYPE' }),
    );
  });
});

describe('dpEpsilon', () => {
  it("equals the Gaussian mechanism's Rényi bound minimized over the order", () => {
    for (const [sigma, rounds, delta] of [
      [1.1, 1, 1e-5],
      [0.8, 10, 1e-6],
      [4, 100, 1e-5],
    ] as const) {
      const got = dpEpsilon({ noiseMultiplier: sigma, rounds, delta });
      let best = Infinity;
      for (let alpha = 1.0001; alpha < 2000; alpha *= 1.0005)
        best = Math.min(best, (alpha * rounds) / (2 * sigma * sigma) + Math.log(1 / delta) / (alpha - 1));
      expect(got.epsilon).toBeCloseTo(best, 4);
      expect(got.epsilon).toBeLessThanOrEqual(best + 1e-12);
    }
    expect(() => dpEpsilon({ noiseMultiplier: 0, rounds: 1, delta: 1e-5 })).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
  });
});

describe('localUpdate', () => {
  it("returns the trained weights' change and leaves the model as it was", async () => {
    const model = sequential({
      layers: [dense({ units: 2, inputShape: [3], kernelInitializer: initializers.glorotUniform({ seed: 1 }) })],
    });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const x = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
      [1, 1, 1],
    ];
    const y = [
      [1, 0],
      [0, 1],
      [1, 1],
      [2, 2],
    ];
    const before = model.getWeights().map((t) => Float32Array.from(t.values));
    const u = await localUpdate(model, x, y, { client: 'x', epochs: 3, batchSize: 2, seed: 1 });
    expect(u.samples).toBe(4);
    expect(deltaNorm(u.delta)).toBeGreaterThan(0);
    expect(model.getWeights().map((t) => Float32Array.from(t.values))).toEqual(before);
    expect(model.trainingHistory).toEqual([]);
    // The delta is what the same training does to a model that keeps it.
    await model.fit(x, y, { epochs: 3, batchSize: 2, seed: 1, verbose: 0 });
    model
      .getWeights()
      .forEach((t, i) => t.values.forEach((v, j) => expect(v).toBeCloseTo(before[i]![j]! + u.delta[i]![j]!, 6)));
  });
});
