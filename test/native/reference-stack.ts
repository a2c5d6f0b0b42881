/**
 * A float64 reference of a dense stack, independent of the addon: each activation by its
 * definition, and random layers for the gradient checks (the trainer's and the input gradient's).
 */
import type { ActivationName } from '../../src/native/index.js';
import type { Random } from '../../src/core/random.js';
import type { PackLayer } from '../../src/model/packed.js';

export interface RefLayer {
  in: number;
  out: number;
  act: ActivationName;
  alpha: number;
  /** kerasRelu's max_value and threshold. */
  maxValue?: number;
  threshold?: number;
  w: Float64Array;
  b: Float64Array | null;
}

/** erf in float64: its Maclaurin series below 2, erfc's continued fraction above (both < 1e-14). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2) {
    let term = a, sum = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = e^{−a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated from the tail.
  let f = a;
  for (let n = 80; n >= 1; n--) f = a + n / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const SELU_ALPHA = 1.6732632423543772;
export const SELU_SCALE = 1.0507009873554805;

export function activate(act: ActivationName, l: { alpha: number; maxValue?: number; threshold?: number }, z: number[]): number[] {
  const alpha = l.alpha;
  switch (act) {
    case 'linear': return z;
    case 'relu': return z.map((v) => Math.max(v, 0));
    case 'leakyRelu': return z.map((v) => (v > 0 ? v : alpha * v));
    case 'elu': return z.map((v) => (v > 0 ? v : alpha * (Math.exp(v) - 1)));
    case 'sigmoid': return z.map((v) => 1 / (1 + Math.exp(-v)));
    case 'tanh': return z.map(Math.tanh);
    case 'softmax': {
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    }
    case 'relu6': return z.map((v) => Math.min(Math.max(v, 0), 6));
    case 'hardSigmoid': return z.map((v) => Math.min(Math.max(0.2 * v + 0.5, 0), 1));
    case 'swish': return z.map((v) => v / (1 + Math.exp(-v)));
    case 'gelu': return z.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    case 'softplus': return z.map((v) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
    case 'softsign': return z.map((v) => v / (1 + Math.abs(v)));
    case 'selu': return z.map((v) => SELU_SCALE * (v > 0 ? v : SELU_ALPHA * (Math.exp(v) - 1)));
    case 'exponential': return z.map(Math.exp);
    case 'geluTanh':
      return z.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    case 'kerasRelu': {
      const t = l.threshold ?? 0, mx = l.maxValue ?? Infinity;
      return z.map((v) => (v > t ? Math.min(v, mx) : alpha * (v - t)));
    }
  }
}

/** One row through the stack in float64. */
export function refForward(layers: readonly RefLayer[], row: ArrayLike<number>): number[] {
  let h = Array.from(row);
  for (const l of layers) {
    const z: number[] = [];
    for (let j = 0; j < l.out; j++) {
      let s = l.b ? l.b[j]! : 0;
      for (let k = 0; k < l.in; k++) s += h[k]! * l.w[k * l.out + j]!;
      z.push(s);
    }
    h = activate(l.act, l, z);
  }
  return h;
}

export function randomLayers(r: Random, widths: number[], acts: ActivationName[]): RefLayer[] {
  return acts.map((act, i) => ({
    in: widths[i]!,
    out: widths[i + 1]!,
    act,
    alpha: act === 'leakyRelu' ? 0.2 : act === 'elu' ? 0.7 : act === 'kerasRelu' ? 0.15 : 0,
    ...(act === 'kerasRelu' ? { maxValue: 1.2, threshold: 0.3 } : {}),
    w: Float64Array.from({ length: widths[i]! * widths[i + 1]! }, () => r.uniform(-0.8, 0.8)),
    b: i % 2 === 0 ? Float64Array.from({ length: widths[i + 1]! }, () => r.uniform(-0.3, 0.3)) : null,
  }));
}

/** The layers as the packers take them (float32 weights, as the packed stack holds them). */
export function packLayers(layers: readonly RefLayer[]): PackLayer[] {
  return layers.map((l) => ({
    inputDim: l.in,
    units: l.out,
    activation: l.act,
    alpha: l.alpha,
    maxValue: l.maxValue ?? null,
    threshold: l.threshold ?? 0,
    useBias: l.b !== null,
    kernel: Float32Array.from(l.w),
    bias: l.b ? Float32Array.from(l.b) : null,
  }));
}
