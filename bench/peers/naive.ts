import type { DenseSpec } from './onnx.js';

/** The plain-JavaScript baseline: no SIMD, no threads, no native code. */
export type NaivePeer = {
  run(x: Float32Array, batch: number): Float32Array;
};

/**
 * out[i,:] = bias + x[i,:]·W in i,k,j order: the innermost loop walks one
 * weight row and one output row contiguously, which is the cache-friendly
 * order for a row-major in×out kernel.
 */
function affine(x: Float32Array, batch: number, layer: DenseSpec): Float32Array {
  const { weights: w, bias, in: n, out: m } = layer;
  const y = new Float32Array(batch * m);
  for (let i = 0; i < batch; i++) {
    const row = y.subarray(i * m, (i + 1) * m);
    if (bias !== null) row.set(bias);
    for (let k = 0; k < n; k++) {
      const xv = x[i * n + k]!;
      const wRow = k * m;
      for (let j = 0; j < m; j++) row[j]! += xv * w[wRow + j]!;
    }
  }
  return y;
}

/** Subtracting the row maximum keeps exp() finite without changing the result. */
function softmaxRows(y: Float32Array, batch: number, width: number): void {
  for (let i = 0; i < batch; i++) {
    const row = y.subarray(i * width, (i + 1) * width);
    let max = -Infinity;
    for (let j = 0; j < width; j++) if (row[j]! > max) max = row[j]!;
    let sum = 0;
    for (let j = 0; j < width; j++) {
      row[j] = Math.exp(row[j]! - max);
      sum += row[j]!;
    }
    for (let j = 0; j < width; j++) row[j]! /= sum;
  }
}

/** Applies an element-wise function in place. */
function mapInPlace(y: Float32Array, f: (v: number) => number): void {
  for (let i = 0; i < y.length; i++) y[i] = f(y[i]!);
}

function activate(y: Float32Array, batch: number, layer: DenseSpec): void {
  const alpha = layer.alpha;
  switch (layer.activation) {
    case 'linear':
      return;
    case 'relu':
      return mapInPlace(y, (v) => (v > 0 ? v : 0));
    case 'leakyRelu':
      return mapInPlace(y, (v) => (v > 0 ? v : alpha * v));
    case 'elu':
      // expm1 keeps precision for small negative inputs, where exp(v) - 1 cancels.
      return mapInPlace(y, (v) => (v > 0 ? v : alpha * Math.expm1(v)));
    case 'sigmoid':
      return mapInPlace(y, (v) => 1 / (1 + Math.exp(-v)));
    case 'tanh':
      return mapInPlace(y, Math.tanh);
    case 'softmax':
      return softmaxRows(y, batch, layer.out);
    case 'relu6':
      return mapInPlace(y, (v) => Math.min(Math.max(v, 0), 6));
    case 'hardSigmoid':
      return mapInPlace(y, (v) => Math.min(Math.max(0.2 * v + 0.5, 0), 1));
    case 'swish':
      return mapInPlace(y, (v) => v / (1 + Math.exp(-v)));
    case 'geluTanh':
      return mapInPlace(y, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    case 'softplus':
      return mapInPlace(y, (v) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
    case 'softsign':
      return mapInPlace(y, (v) => v / (1 + Math.abs(v)));
    case 'selu':
      return mapInPlace(y, (v) => 1.0507009873554805 * (v > 0 ? v : 1.6732632423543772 * Math.expm1(v)));
    case 'exponential':
      return mapInPlace(y, Math.exp);
    case 'kerasRelu': {
      const t = layer.threshold ?? 0,
        max = layer.maxValue ?? Infinity;
      return mapInPlace(y, (v) => (v > t ? Math.min(v, max) : alpha * (v - t)));
    }
    case 'gelu':
      // JavaScript has no erf; the peer is a timing baseline, not a reference for this one.
      throw new Error("the naive peer does not implement 'gelu'");
  }
}

/** Builds the naive triple-loop peer over the given dense stack. */
export function createNaivePeer(layers: DenseSpec[]): NaivePeer {
  return {
    run(x: Float32Array, batch: number): Float32Array {
      let h = x;
      for (const layer of layers) {
        h = affine(h, batch, layer);
        activate(h, batch, layer);
      }
      return h;
    },
  };
}
