/**
 * LIME for tabular rows (Ribeiro et al., 2016), as the lime package's tabular explainer samples
 * without discretizing: perturbations x + σ·ε (ε standard normal, σ each feature's standard
 * deviation over the background), weighted by the kernel √exp(−‖(z − x)/σ‖² / width²), and a
 * ridge-regularized weighted linear surrogate fitted on the standardized samples. Its slopes (per
 * standard deviation) are the coefficients; an attribution is the slope times the row's distance
 * from the background mean in standard deviations, so a linear model gets w·(x − mean), as SHAP.
 */
import { checkOptions } from '../core/validation.js';
import { invalidParameter } from '../core/errors.js';
import { Random } from '../core/random.js';
import { factorSpd, solveFactored, type SpdFactor } from './linalg.js';
import { BoundedCache } from './cache.js';
import { finish, type Explanation } from './explanation.js';
import { backgroundOf, chooseOutput, inputRows, type ExplainTarget } from './target.js';

export interface LimeOptions {
  /** Rows whose per-feature mean and standard deviation scale the perturbations; default: the model's saved background. */
  background?: unknown;
  /** Perturbed samples per row (default 5000). */
  samples?: number;
  /** Width of the exponential kernel over standardized distance (default 0.75·√d, lime's). */
  kernelWidth?: number;
  /** The surrogate's ridge penalty on its slopes (default 1, lime's Ridge alpha). */
  ridge?: number;
  /** Seed of the sampling (default 0). */
  seed?: number;
  /** The output to explain (default: each row's largest output). */
  output?: number;
}

const MAX_SAMPLES = 1 << 20;

/** Per-feature mean and standard deviation of the background (1 where a feature is constant). */
function scales(data: Float32Array, rows: number, d: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) mean[i] = mean[i]! + data[r * d + i]!;
  for (let i = 0; i < d; i++) mean[i] = mean[i]! / rows;
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) std[i] = std[i]! + (data[r * d + i]! - mean[i]!) ** 2;
  for (let i = 0; i < d; i++) {
    const s = Math.sqrt(std[i]! / rows);
    std[i] = s > 1e-12 ? s : 1;
  }
  return { mean, std };
}

/**
 * LIME's samples and fit, apart from the row: the standard-normal draws e (sample 0 is the row
 * itself, e = 0), their kernel weights, and the factored normal equations. The surrogate is fitted
 * on standardized samples (x − mean)/σ + e; centering on the weighted means removes the row's own
 * part, so the system depends only on (d, samples, width, ridge, seed) and is factored once.
 */
interface LimeDesign {
  e: Float32Array;
  weights: Float64Array;
  weightSum: number;
  /** Weighted mean of each column of e. */
  eMean: Float64Array;
  /** Σ w (e − ē)(e − ē)ᵀ + ridge·I (lower triangle), and its factor. */
  normal: Float64Array;
  ridge: number;
  factor: SpdFactor;
}

const designs = new BoundedCache<string, LimeDesign>(4);

function limeDesign(d: number, samples: number, width: number, ridge: number, seed: number): LimeDesign {
  const key = `${d}/${samples}/${width}/${ridge}/${seed}`;
  const cached = designs.get(key);
  if (cached) return cached;
  const rng = new Random(seed);
  const e = new Float32Array(samples * d);
  const weights = new Float64Array(samples);
  let weightSum = 0;
  for (let s = 1; s < samples; s++) {
    let dist2 = 0;
    for (let i = 0; i < d; i++) {
      const v = rng.normal();
      e[s * d + i] = v;
      dist2 += v * v;
    }
    weights[s] = Math.sqrt(Math.exp(-dist2 / (width * width)));
  }
  weights[0] = 1;
  const eMean = new Float64Array(d);
  for (let s = 0; s < samples; s++) {
    weightSum += weights[s]!;
    for (let i = 0; i < d; i++) eMean[i] = eMean[i]! + weights[s]! * e[s * d + i]!;
  }
  for (let i = 0; i < d; i++) eMean[i] = eMean[i]! / weightSum;
  // Σ w (e − ē)(e − ē)ᵀ + ridge·I, lower triangle.
  const ata = new Float64Array(d * d);
  const centered = new Float64Array(d);
  for (let s = 0; s < samples; s++) {
    const w = weights[s]!;
    if (w === 0) continue;
    for (let i = 0; i < d; i++) centered[i] = e[s * d + i]! - eMean[i]!;
    for (let i = 0; i < d; i++) {
      const wc = w * centered[i]!;
      const row = i * d;
      for (let j = 0; j <= i; j++) ata[row + j] = ata[row + j]! + wc * centered[j]!;
    }
  }
  for (let i = 0; i < d; i++) ata[i * d + i] = ata[i * d + i]! + ridge;
  const design = { e, weights, weightSum, eMean, normal: ata, ridge, factor: factorSpd(ata, d) };
  designs.set(key, design);
  return design;
}

/**
 * The model's output `output` at each sample x + e_s ⊙ scale, and wye = Σ_s w_s y_s e_s: what a
 * target without the native entry computes here, over its own forward pass.
 */
function perturbedValuesInJs(
  target: ExplainTarget,
  row: Float32Array,
  scale: Float32Array,
  design: LimeDesign,
  output: number,
  z: Float32Array,
): { y: Float64Array; wye: Float64Array } {
  const { e, weights } = design;
  const d = row.length;
  const samples = weights.length;
  for (let s = 0; s < samples; s++) for (let i = 0; i < d; i++) z[s * d + i] = row[i]! + e[s * d + i]! * scale[i]!;
  const out = target.predict(z, samples);
  const y = new Float64Array(samples);
  const wye = new Float64Array(d);
  for (let s = 0; s < samples; s++) {
    y[s] = out[s * target.outputs + output]!;
    const wy = weights[s]! * y[s]!;
    if (wy === 0) continue;
    for (let i = 0; i < d; i++) wye[i] = wye[i]! + wy * e[s * d + i]!;
  }
  return { y, wye };
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** cᵀ·(normal − ridge·I)·c from the normal matrix's lower triangle. */
function spreadForm(design: LimeDesign, c: Float64Array): number {
  const d = c.length;
  let sum = 0;
  for (let i = 0; i < d; i++) {
    const row = i * d;
    let off = 0;
    for (let j = 0; j < i; j++) off += design.normal[row + j]! * c[j]!;
    sum += c[i]! * ((design.normal[row + i]! - design.ridge) * c[i]! + 2 * off);
  }
  return sum;
}

/** LIME explanations of each row of x. */
export function limeOf(target: ExplainTarget, x: unknown, options: LimeOptions): Explanation[] {
  checkOptions('lime options', options, ['background', 'samples', 'kernelWidth', 'ridge', 'seed', 'output']);
  const d = target.inputs;
  // The background scales the samples (its per-feature spread).
  const bg = backgroundOf(options?.background, target, 'lime');
  const { data, rows } = inputRows(x, d, 'x');
  const samples = options.samples ?? 5000;
  if (!Number.isInteger(samples) || samples < 2 || samples > MAX_SAMPLES)
    throw invalidParameter('lime options.samples', `an integer in [2, ${MAX_SAMPLES}]`, samples, 'MAAS_ERR_ARG_RANGE');
  const width = options.kernelWidth ?? 0.75 * Math.sqrt(d);
  if (!(width > 0 && Number.isFinite(width)))
    throw invalidParameter('lime options.kernelWidth', 'a positive number', width, 'MAAS_ERR_ARG_RANGE');
  const ridge = options.ridge ?? 1;
  if (!(ridge >= 0 && Number.isFinite(ridge)))
    throw invalidParameter('lime options.ridge', 'a number >= 0', ridge, 'MAAS_ERR_ARG_RANGE');
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw invalidParameter('lime options.seed', 'an integer', seed, 'MAAS_ERR_ARG_RANGE');
  const { mean, std } = scales(bg.data, bg.rows, d);
  const scale = Float32Array.from(std);
  const design = limeDesign(d, samples, width, ridge, seed);
  const { e, weights, weightSum, eMean } = design;
  const fx = target.predict(data, rows);
  const result: Explanation[] = [];
  // The JS path's perturbed rows, made once for every row.
  const z = new Float32Array(target.perturbedValues ? 0 : samples * d);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * d, (r + 1) * d);
    const output = chooseOutput(
      options.output,
      target.outputs,
      fx.subarray(r * target.outputs, (r + 1) * target.outputs),
    );
    const { y, wye } = target.perturbedValues
      ? target.perturbedValues(row, scale, e, samples, weights, output)
      : perturbedValuesInJs(target, row, scale, design, output, z);
    let yMean = 0;
    for (let s = 0; s < samples; s++) yMean += weights[s]! * y[s]!;
    yMean /= weightSum;
    // The right-hand side Σ w (y − ȳ)(e − ē) = Σ w·y·e − ȳ·Σ w·e (as Σ w (y − ȳ) = 0), Σ w·e = W·ē.
    const aty = new Float64Array(d);
    for (let i = 0; i < d; i++) aty[i] = wye[i]! - yMean * weightSum * eMean[i]!;
    let ssTot = 0;
    for (let s = 0; s < samples; s++) ssTot += weights[s]! * (y[s]! - yMean) ** 2;
    const coefficients = solveFactored(design.factor, aty);
    // Weighted R² of the surrogate fit_s = ȳ + c·(e_s − ē): its residual sum expands to
    // ssTot − 2·c·aty + cᵀ·Σ w (e − ē)(e − ē)ᵀ·c, all d-sized (the normal matrix less its ridge).
    const ssRes = Math.max(0, ssTot - 2 * dot(coefficients, aty) + spreadForm(design, coefficients));
    // The samples are t = u + e in standardized units, u = (x − mean)/σ; the surrogate is
    // ȳ + c·(t − t̄), t̄ = u + ē, so at the background mean (t = 0) it is ȳ − c·(u + ē).
    const attributions = new Array<number>(d);
    let atMean = yMean;
    for (let i = 0; i < d; i++) {
      const u = (row[i]! - mean[i]!) / std[i]!;
      attributions[i] = coefficients[i]! * u;
      atMean -= coefficients[i]! * (u + eMean[i]!);
    }
    result.push(
      finish(target, {
        method: 'lime',
        output,
        value: fx[r * target.outputs + output]!,
        base: atMean,
        attributions,
        r2: ssTot > 0 ? 1 - ssRes / ssTot : 1,
        coefficients: Array.from(coefficients),
      }),
    );
  }
  return result;
}
