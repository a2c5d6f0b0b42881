/**
 * The small dense solves the explanation methods' linear fits need (Kernel SHAP's constrained
 * weighted least squares, LIME's ridge surrogate): a symmetric positive definite system factored
 * by Cholesky once, then solved for each row's right-hand side. Sizes are the feature counts
 * (tens to a few thousand), so plain loops in float64 are enough.
 */
import { MaasError } from '../core/errors.js';

/** A Cholesky factor of an n × n system, to solve it for many right-hand sides. */
export interface SpdFactor {
  readonly l: Float64Array;
  readonly n: number;
}

/**
 * L with A = L·Lᵀ for symmetric positive definite A (n × n, row-major, only the lower triangle
 * read). A matrix that is not positive definite to working precision (a feature that never
 * varies) is retried with a diagonal jitter of 1e-10 × its largest diagonal, then refused with
 * MAAS_ERR_EXPLAIN_SINGULAR.
 */
export function factorSpd(a: Float64Array, n: number): SpdFactor {
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]!));
  for (const jitter of [0, 1e-10 * (maxDiag || 1)]) {
    const l = cholesky(a, n, jitter);
    if (l) return { l, n };
  }
  throw new MaasError('MAAS_ERR_EXPLAIN_SINGULAR', `The ${n}×${n} normal equations are not positive definite`);
}

/** x with A·x = b for the A that `factor` factors. */
export function solveFactored(factor: SpdFactor, b: Float64Array): Float64Array {
  return substitute(factor.l, b, factor.n);
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
