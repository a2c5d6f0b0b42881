/**
 * Integrated gradients (Sundararajan et al., 2017): attribution_i = (x_i − x'_i) · ∫₀¹ ∂f/∂x_i
 * (x' + α(x − x')) dα, the integral by a quadrature over `steps` points of the straight path from
 * the baseline x'. Every point of every row goes through the native input gradient in one batch.
 */
import { checkOptions } from '../core/validation.js';
import { invalidParameter } from '../core/errors.js';
import { finish, type Explanation } from './explanation.js';
import { chooseOutput, inputRows, type ExplainTarget } from './target.js';
import { BoundedCache } from './cache.js';

export type IntegrationRule = 'gaussLegendre' | 'riemannMiddle' | 'riemannTrapezoid';

export interface IntegratedGradientsOptions {
  /** The reference input: one row (default all zeros). */
  baseline?: ArrayLike<number>;
  /** Quadrature points along the path (default 50). */
  steps?: number;
  /** The quadrature (default 'gaussLegendre', Captum's default). */
  rule?: IntegrationRule;
  /** The output to explain (default: each row's largest output). */
  output?: number;
}

const MAX_STEPS = 4096;
/** Rows per native call: bounds the scratch the forward and backward passes keep. */
const CHUNK_ROWS = 8192;

type Rule = { nodes: Float64Array; weights: Float64Array };

/** Rules already made: Gauss–Legendre's Newton iterations cost more than a small model's gradients. */
const rules = new BoundedCache<string, Rule>(8);

/** Nodes in [0, 1] and weights summing to 1 of the rule over n points (made once per rule and n). */
export function quadrature(rule: IntegrationRule, n: number): Rule {
  const key = `${rule}/${n}`;
  let made = rules.get(key);
  if (!made) rules.set(key, (made = makeRule(rule, n)));
  return made;
}

function makeRule(rule: IntegrationRule, n: number): Rule {
  const nodes = new Float64Array(n);
  const weights = new Float64Array(n);
  if (rule === 'riemannMiddle') {
    for (let k = 0; k < n; k++) {
      nodes[k] = (k + 0.5) / n;
      weights[k] = 1 / n;
    }
  } else if (rule === 'riemannTrapezoid') {
    if (n === 1) {
      nodes[0] = 1;
      weights[0] = 1;
    } else
      for (let k = 0; k < n; k++) {
        nodes[k] = k / (n - 1);
        weights[k] = (k === 0 || k === n - 1 ? 0.5 : 1) / (n - 1);
      }
  } else {
    // Gauss–Legendre: the roots of P_n by Newton's method from the Chebyshev-like guess, P_n and
    // its derivative by the three-term recurrence; mapped from [−1, 1] to [0, 1].
    for (let i = 0; i < n; i++) {
      let t = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
      let dp = 1;
      for (let iter = 0; iter < 100; iter++) {
        let p0 = 1;
        let p1 = t;
        for (let k = 2; k <= n; k++) {
          const p2 = ((2 * k - 1) * t * p1 - (k - 1) * p0) / k;
          p0 = p1;
          p1 = p2;
        }
        dp = (n * (t * p1 - p0)) / (t * t - 1); // p1 = P_n(t), p0 = P_{n−1}(t)
        const dt = p1 / dp;
        t -= dt;
        if (Math.abs(dt) < 1e-15) break;
      }
      nodes[i] = (1 - t) / 2;
      weights[i] = 1 / ((1 - t * t) * dp * dp);
    }
  }
  return { nodes, weights };
}

/** Integrated gradients of each row of x (one row, or rows of the model's input width). */
export function integratedGradientsOf(
  target: ExplainTarget,
  x: unknown,
  options: IntegratedGradientsOptions = {},
): Explanation[] {
  checkOptions('integratedGradients options', options, ['baseline', 'steps', 'rule', 'output']);
  const d = target.inputs;
  const { data, rows } = inputRows(x, d, 'x');
  const steps = options.steps ?? 50;
  if (!Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS)
    throw invalidParameter(
      'integratedGradients options.steps',
      `an integer in [1, ${MAX_STEPS}]`,
      steps,
      'MAAS_ERR_ARG_RANGE',
    );
  const rule = options.rule ?? 'gaussLegendre';
  if (rule !== 'gaussLegendre' && rule !== 'riemannMiddle' && rule !== 'riemannTrapezoid')
    throw invalidParameter(
      'integratedGradients options.rule',
      "'gaussLegendre', 'riemannMiddle' or 'riemannTrapezoid'",
      rule,
      'MAAS_ERR_ARG_RANGE',
    );
  const baseline =
    options.baseline === undefined ? new Float32Array(d) : inputRows(Array.from(options.baseline), d, 'baseline').data;
  const { nodes, weights } = quadrature(rule, steps);
  const outputs = target.outputs;

  // f(x) for every row and f(baseline), in one forward pass.
  const ends = new Float32Array((rows + 1) * d);
  ends.set(data);
  ends.set(baseline, rows * d);
  const endValues = target.predict(ends, rows + 1);
  const chosen = Array.from({ length: rows }, (_, r) =>
    chooseOutput(options.output, outputs, endValues.subarray(r * outputs, (r + 1) * outputs)),
  );

  // Every (row, step) point of the paths, a chunk of whole rows at a time.
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ROWS / steps));
  const result: Explanation[] = [];
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, rows - r0);
    const points = new Float32Array(count * steps * d);
    const dy = new Float32Array(count * steps * outputs);
    for (let r = 0; r < count; r++) {
      const row = data.subarray((r0 + r) * d, (r0 + r + 1) * d);
      for (let k = 0; k < steps; k++) {
        const alpha = nodes[k]!;
        const at = (r * steps + k) * d;
        for (let i = 0; i < d; i++) points[at + i] = baseline[i]! + alpha * (row[i]! - baseline[i]!);
        dy[(r * steps + k) * outputs + chosen[r0 + r]!] = 1;
      }
    }
    const grads = target.gradient(points, count * steps, dy);
    for (let r = 0; r < count; r++) {
      const row = data.subarray((r0 + r) * d, (r0 + r + 1) * d);
      const attributions = new Array<number>(d).fill(0);
      for (let k = 0; k < steps; k++) {
        const w = weights[k]!;
        const g = (r * steps + k) * d;
        for (let i = 0; i < d; i++) attributions[i] = attributions[i]! + w * grads[g + i]!;
      }
      let sum = 0;
      for (let i = 0; i < d; i++) {
        attributions[i] = attributions[i]! * (row[i]! - baseline[i]!);
        sum += attributions[i]!;
      }
      const output = chosen[r0 + r]!;
      const value = endValues[(r0 + r) * outputs + output]!;
      const base = endValues[rows * outputs + output]!;
      result.push(
        finish(target, {
          method: 'integratedGradients',
          output,
          value,
          base,
          attributions,
          completenessGap: sum - (value - base),
        }),
      );
    }
  }
  return result;
}
