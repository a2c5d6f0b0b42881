/**
 * LIME for tabular rows (Ribeiro et al., 2016), as the lime package's tabular explainer samples
 * without discretizing: perturbations x + σ·ε (ε standard normal, σ each feature's standard
 * deviation over the background), weighted by the kernel √exp(−‖(z − x)/σ‖² / width²), and a
 * ridge-regularized weighted linear surrogate fitted on the standardized samples. Its slopes (per
 * standard deviation) are the coefficients; an attribution is the slope times the row's distance
 * from the background mean in standard deviations, so a linear model gets w·(x − mean), as SHAP.
 */
import { checkOptions } from '../core/validation.js';
import { MaasError, invalidParameter } from '../core/errors.js';
import { Random } from '../core/random.js';
import { weightedRidge } from './linalg.js';
import { finish, type Explanation } from './explanation.js';
import { chooseOutput, inputRows, type ExplainTarget } from './target.js';

export interface LimeOptions {
  /** Rows whose per-feature mean and standard deviation scale the perturbations. */
  background: unknown;
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

/** LIME explanations of each row of x. */
export function limeOf(target: ExplainTarget, x: unknown, options: LimeOptions): Explanation[] {
  checkOptions('lime options', options, ['background', 'samples', 'kernelWidth', 'ridge', 'seed', 'output']);
  const d = target.inputs;
  if (options?.background === undefined || options.background === null)
    throw new MaasError(
      'MAAS_ERR_EXPLAIN_BACKGROUND',
      'lime needs background rows (options.background) to scale its samples',
    );
  const bg = inputRows(options.background, d, 'lime options.background');
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
  const fx = target.predict(data, rows);
  const result: Explanation[] = [];
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * d, (r + 1) * d);
    const output = chooseOutput(
      options.output,
      target.outputs,
      fx.subarray(r * target.outputs, (r + 1) * target.outputs),
    );
    // Sample 0 is the row itself, as lime's; the others are Gaussian around it.
    const rng = new Random(seed);
    const z = new Float32Array(samples * d);
    const standardized = new Float64Array(samples * d);
    const weights = new Float64Array(samples);
    for (let s = 0; s < samples; s++) {
      let dist2 = 0;
      for (let i = 0; i < d; i++) {
        const e = s === 0 ? 0 : rng.normal();
        const v = row[i]! + e * std[i]!;
        z[s * d + i] = v;
        standardized[s * d + i] = (v - mean[i]!) / std[i]!;
        dist2 += e * e;
      }
      weights[s] = Math.sqrt(Math.exp(-dist2 / (width * width)));
    }
    const y = target.predict(z, samples);
    const ys = new Float64Array(samples);
    for (let s = 0; s < samples; s++) ys[s] = y[s * target.outputs + output]!;
    const fit = weightedRidge(standardized, ys, weights, samples, d, ridge);
    const attributions = new Array<number>(d);
    for (let i = 0; i < d; i++) attributions[i] = fit.coefficients[i]! * ((row[i]! - mean[i]!) / std[i]!);
    const value = fx[r * target.outputs + output]!;
    result.push(
      finish(target, {
        method: 'lime',
        output,
        value,
        // The surrogate at the background mean (standardized 0): the intercept.
        base: fit.intercept,
        attributions,
        r2: fit.r2,
        coefficients: Array.from(fit.coefficients),
      }),
    );
  }
  return result;
}
