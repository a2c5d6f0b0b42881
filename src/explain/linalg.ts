/**
 * The small dense solves the explanation surrogates need: a symmetric positive definite system by
 * Cholesky factorization, and the weighted (ridge) least squares built on it. Sizes are the
 * feature counts (tens to a few thousand), so plain loops in float64 are enough.
 */
import { MaasError } from '../core/errors.js';

/**
 * Solves A·x = b for symmetric positive definite A (n × n, row-major, only the lower triangle
 * read), by A = L·Lᵀ. A matrix that is not positive definite to working precision (a feature that
 * never varies) is retried with a diagonal jitter of 1e-10 × its largest diagonal, then refused.
 */
export function solveSpd(a: Float64Array, b: Float64Array, n: number): Float64Array {
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]!));
  for (const jitter of [0, 1e-10 * (maxDiag || 1)]) {
    const l = cholesky(a, n, jitter);
    if (l) return substitute(l, b, n);
  }
  throw new MaasError('MAAS_ERR_EXPLAIN_SINGULAR', `The ${n}×${n} normal equations are not positive definite`);
}

/** L with A + jitter·I = L·Lᵀ, or null when a pivot is not positive. */
function cholesky(a: Float64Array, n: number, jitter: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]! + jitter;
    for (let k = 0; k < j; k++) d -= l[j * n + k]! * l[j * n + k]!;
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** x with L·Lᵀ·x = b: forward, then backward substitution. */
function substitute(l: Float64Array, b: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * n + k]! * y[k]!;
    y[i] = s / l[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[k]!;
    x[i] = s / l[i * n + i]!;
  }
  return x;
}

/** A weighted linear fit: y ≈ intercept + Σ coef_j·x_j, and its weighted R². */
export interface LinearFit {
  intercept: number;
  coefficients: Float64Array;
  r2: number;
}

/**
 * Weighted least squares with a ridge term on the coefficients (not the intercept): minimizes
 * Σ w_i (y_i − b − cᵀx_i)² + ridge·‖c‖². x is rows × cols row-major. Centering on the weighted
 * means first takes the intercept out of the system. LIME's surrogate.
 */
export function weightedRidge(
  x: Float64Array | Float32Array,
  y: Float64Array,
  w: Float64Array,
  rows: number,
  cols: number,
  ridge: number,
): LinearFit {
  let wSum = 0;
  const mean = new Float64Array(cols);
  let yMean = 0;
  for (let i = 0; i < rows; i++) {
    const wi = w[i]!;
    wSum += wi;
    yMean += wi * y[i]!;
    for (let j = 0; j < cols; j++) mean[j] = mean[j]! + wi * x[i * cols + j]!;
  }
  yMean /= wSum;
  for (let j = 0; j < cols; j++) mean[j] = mean[j]! / wSum;
  const ata = new Float64Array(cols * cols);
  const aty = new Float64Array(cols);
  const centered = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const wi = w[i]!;
    if (wi === 0) continue;
    for (let j = 0; j < cols; j++) centered[j] = x[i * cols + j]! - mean[j]!;
    const yi = y[i]! - yMean;
    for (let j = 0; j < cols; j++) {
      const wc = wi * centered[j]!;
      aty[j] = aty[j]! + wc * yi;
      const row = j * cols;
      for (let k = 0; k <= j; k++) ata[row + k] = ata[row + k]! + wc * centered[k]!;
    }
  }
  for (let j = 0; j < cols; j++) ata[j * cols + j] = ata[j * cols + j]! + ridge;
  const coefficients = solveSpd(ata, aty, cols);
  let intercept = yMean;
  for (let j = 0; j < cols; j++) intercept -= coefficients[j]! * mean[j]!;
  let ssRes = 0;
  let ssTot = 0;
  for (let i = 0; i < rows; i++) {
    let fit = intercept;
    for (let j = 0; j < cols; j++) fit += coefficients[j]! * x[i * cols + j]!;
    ssRes += w[i]! * (y[i]! - fit) ** 2;
    ssTot += w[i]! * (y[i]! - yMean) ** 2;
  }
  return { intercept, coefficients, r2: ssTot > 0 ? 1 - ssRes / ssTot : 1 };
}
