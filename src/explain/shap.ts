/**
 * SHAP values (Lundberg & Lee, 2017) with the interventional value function: v(S) is the mean over
 * the background rows of the model's output when the features in S take the explained row's values
 * and the others keep the background row's. Kernel SHAP fits the Shapley-kernel-weighted linear
 * model over coalitions under the efficiency constraint (Σφ = f(x) − E[f]); every coalition is
 * enumerated up to 12 features, which makes its answer the exact Shapley values; above, whole
 * coalition sizes are enumerated while the sample budget covers them (smallest and largest first,
 * where the kernel puts its weight) and the rest drawn in complementary pairs. exactShap evaluates
 * the Shapley formula over all 2^d coalitions.
 */
import { checkOptions } from '../core/validation.js';
import { invalidParameter } from '../core/errors.js';
import { Random } from '../core/random.js';
import { factorSpd, solveFactored, type SpdFactor } from './linalg.js';
import { BoundedCache } from './cache.js';
import { finish, type Explanation } from './explanation.js';
import { backgroundOf, chooseOutput, inputRows, type Background, type ExplainTarget } from './target.js';

export interface KernelShapOptions {
  /** The rows features are taken from when not in a coalition (at most MAX_BACKGROUND_ROWS); default: the model's saved background. */
  background?: unknown;
  /** Coalitions to evaluate (default 2·d + 2048); all of them when that covers every one. */
  nsamples?: number;
  /** Seed of the coalition sampling (default 0): the same seed gives the same values. */
  seed?: number;
  /** The output to explain (default: each row's largest output). */
  output?: number;
}

export type ExactShapOptions = Omit<KernelShapOptions, 'nsamples' | 'seed'>;

/** Kernel SHAP enumerates every coalition up to this many features. */
export const EXACT_KERNEL_FEATURES = 12;
/** exactShap's limit: 2^16 coalitions, each a forward pass over the background. */
export const EXACT_SHAP_MAX_FEATURES = 16;
const MAX_NSAMPLES = 1 << 20;
/** Floats of masked input per forward call (16 MB). */
const CHUNK_FLOATS = 1 << 22;

/**
 * v(S) for each coalition (a list of feature indices): the background's mean output `output` with
 * the features in S set to the row's values. Coalitions go through the model a chunk at a time.
 */
function coalitionValues(
  target: ExplainTarget,
  row: Float32Array,
  bg: Background,
  coalitions: readonly Int32Array[],
  output: number,
): Float64Array {
  const d = target.inputs;
  const n = bg.rows;
  if (target.coalitionValues) return nativeCoalitionValues(target, row, bg, coalitions, output);
  const perChunk = Math.max(1, Math.floor(CHUNK_FLOATS / (n * d)));
  const values = new Float64Array(coalitions.length);
  const block = new Float32Array(Math.min(perChunk, coalitions.length) * n * d);
  for (let c0 = 0; c0 < coalitions.length; c0 += perChunk) {
    const count = Math.min(perChunk, coalitions.length - c0);
    for (let c = 0; c < count; c++) {
      const base = c * n * d;
      block.set(bg.data, base);
      const members = coalitions[c0 + c]!;
      for (let m = 0; m < members.length; m++) {
        const i = members[m]!;
        const v = row[i]!;
        for (let r = 0; r < n; r++) block[base + r * d + i] = v;
      }
    }
    const y = target.predict(block.subarray(0, count * n * d), count * n);
    const width = target.outputs;
    for (let c = 0; c < count; c++) {
      let sum = 0;
      for (let r = 0; r < n; r++) sum += y[(c * n + r) * width + output]!;
      values[c0 + c] = sum / n;
    }
  }
  return values;
}

/** coalitionValues through the target's native entry: masks a chunk at a time, no mixed rows in JS. */
function nativeCoalitionValues(
  target: ExplainTarget,
  row: Float32Array,
  bg: Background,
  coalitions: readonly Int32Array[],
  output: number,
): Float64Array {
  const d = target.inputs;
  const perChunk = Math.max(1, Math.floor(CHUNK_FLOATS / d));
  const values = new Float64Array(coalitions.length);
  const masks = new Uint8Array(Math.min(perChunk, coalitions.length) * d);
  for (let c0 = 0; c0 < coalitions.length; c0 += perChunk) {
    const count = Math.min(perChunk, coalitions.length - c0);
    masks.fill(0);
    for (let c = 0; c < count; c++) for (const i of coalitions[c0 + c]!) masks[c * d + i] = 1;
    values.set(target.coalitionValues!(row, bg, masks.subarray(0, count * d), count, output), c0);
  }
  return values;
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/** Every k-subset of [0, d), in lexicographic order. */
function* subsets(d: number, k: number): Generator<Int32Array> {
  const idx = Int32Array.from({ length: k }, (_, i) => i);
  for (;;) {
    yield idx.slice();
    let i = k - 1;
    while (i >= 0 && idx[i] === d - k + i) i--;
    if (i < 0) return;
    idx[i]!++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1]! + 1;
  }
}

function complement(members: Int32Array, d: number): Int32Array {
  const out = new Int32Array(d - members.length);
  let m = 0;
  let o = 0;
  for (let i = 0; i < d; i++) {
    if (m < members.length && members[m] === i) m++;
    else out[o++] = i;
  }
  return out;
}

interface WeightedCoalitions {
  coalitions: Int32Array[];
  weights: number[];
  exact: boolean;
}

/**
 * The coalitions Kernel SHAP evaluates and their kernel weights (up to a common factor). Sizes s
 * and d − s share the Shapley kernel's mass (d − 1)/(s(d − s)); from the outside in, a size pair is
 * enumerated when the budget covers all of its coalitions, and the remaining mass goes to
 * complementary pairs drawn with sizes in proportion to it (repeats add up their weight).
 */
function kernelCoalitions(d: number, nsamples: number, seed: number): WeightedCoalitions {
  const coalitions: Int32Array[] = [];
  const weights: number[] = [];
  const kernel = (s: number) => (d - 1) / (binomial(d, s) * s * (d - s));
  if (d <= EXACT_KERNEL_FEATURES || nsamples >= 2 ** d - 2) {
    for (let s = 1; s < d; s++)
      for (const members of subsets(d, s)) {
        coalitions.push(members);
        weights.push(kernel(s));
      }
    return { coalitions, weights, exact: true };
  }
  const half = Math.floor(d / 2);
  const mass = (s: number) => ((d - 1) / (s * (d - s))) * (s === d - s ? 1 : 2); // sizes s and d − s together
  let budget = nsamples;
  let s = 1;
  for (; s <= half; s++) {
    const count = binomial(d, s) * (s === d - s ? 1 : 2);
    if (count > budget) break;
    for (const members of subsets(d, s)) {
      coalitions.push(members);
      weights.push(kernel(s));
      if (s !== d - s) {
        coalitions.push(complement(members, d));
        weights.push(kernel(s));
      }
    }
    budget -= count;
  }
  if (s > half || budget < 2) return { coalitions, weights, exact: s > half };
  // The sizes left, sampled: each draw is a coalition and its complement.
  const sizes: number[] = [];
  const cumulative: number[] = [];
  let remaining = 0;
  for (let t = s; t <= half; t++) {
    remaining += mass(t);
    sizes.push(t);
    cumulative.push(remaining);
  }
  const rng = new Random(seed);
  const drawn = new Map<string, number>();
  const draws = Math.floor(budget / 2);
  const order = Int32Array.from({ length: d }, (_, i) => i);
  for (let k = 0; k < draws; k++) {
    const u = rng.next() * remaining;
    let at = 0;
    while (at < sizes.length - 1 && cumulative[at]! <= u) at++;
    const size = sizes[at]!;
    // A uniform size-subset: the first `size` entries of a partial Fisher–Yates shuffle.
    for (let i = 0; i < size; i++) {
      const j = i + Math.floor(rng.next() * (d - i));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    const members = order.slice(0, size).sort();
    for (const m of size === d - size ? [members] : [members, complement(members, d)]) {
      const key = d < 0xd800 ? String.fromCharCode(...m) : m.join(',');
      drawn.set(key, (drawn.get(key) ?? 0) + 1);
    }
  }
  // Each draw carries remaining / draws of the kernel's mass, split over its pair.
  const perDraw = remaining / draws;
  for (const [key, count] of drawn) {
    const members =
      d < 0xd800 ? Int32Array.from(key, (ch) => ch.charCodeAt(0)) : Int32Array.from(key ? key.split(',') : [], Number);
    coalitions.push(members);
    weights.push((perDraw / (members.length === d - members.length ? 1 : 2)) * count);
  }
  return { coalitions, weights, exact: false };
}

/**
 * The coalitions of a (d, nsamples, seed) plan with their weighted least-squares system factored:
 * neither depends on the row explained, so every row (and every request with the same options)
 * reuses them and pays only for its coalition values and two triangular solves.
 */
interface KernelPlan extends WeightedCoalitions {
  /** The factor of X'ᵀWX' (d − 1 unknowns), null for one feature. */
  factor: SpdFactor | null;
}

const plans = new BoundedCache<string, KernelPlan>(8);

function kernelPlan(d: number, nsamples: number, seed: number): KernelPlan {
  const key = `${d}/${nsamples}/${seed}`;
  let plan = plans.get(key);
  if (!plan) {
    const weighted = kernelCoalitions(d, nsamples, seed);
    plan = { ...weighted, factor: d === 1 ? null : factorSpd(normalMatrix(d, weighted), d - 1) };
    plans.set(key, plan);
  }
  return plan;
}

/**
 * The last feature is eliminated by the efficiency constraint (φ_{d−1} = total − Σ others), leaving
 * weighted least squares in d − 1 unknowns over X'_i = z_i − z_{d−1}. X'ᵀWX' comes from the
 * coalitions' member lists (ZᵀWZ of the 0/1 matrix) rather than a dense pass.
 */
function normalMatrix(d: number, { coalitions, weights }: WeightedCoalitions): Float64Array {
  const zz = new Float64Array(d * d); // Σ w z_i z_j, lower triangle
  for (let c = 0; c < coalitions.length; c++) {
    const w = weights[c]!;
    const members = coalitions[c]!;
    for (let a = 0; a < members.length; a++) {
      const row = members[a]! * d;
      for (let b = 0; b <= a; b++) zz[row + members[b]!] = zz[row + members[b]!]! + w;
    }
  }
  const last = d - 1;
  const k = d - 1;
  const at = (i: number, j: number) => (i >= j ? zz[i * d + j]! : zz[j * d + i]!);
  const ll = at(last, last);
  const a = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j <= i; j++) a[i * k + j] = at(i, j) - at(i, last) - at(j, last) + ll;
  return a;
}

/** φ from the coalitions' values under Σφ = total (the plan's factored system, this row's right-hand side). */
function constrainedFit(d: number, plan: KernelPlan, values: Float64Array, expected: number, total: number): number[] {
  if (!plan.factor) return [total];
  const last = d - 1;
  const zy = new Float64Array(d); // Σ w z_i y'
  for (let c = 0; c < plan.coalitions.length; c++) {
    const members = plan.coalitions[c]!;
    const hasLast = members.length > 0 && members[members.length - 1] === last;
    const wy = plan.weights[c]! * (values[c]! - expected - (hasLast ? total : 0));
    for (let m = 0; m < members.length; m++) zy[members[m]!] = zy[members[m]!]! + wy;
  }
  const b = new Float64Array(d - 1);
  for (let i = 0; i < d - 1; i++) b[i] = zy[i]! - zy[last]!;
  const out = Array.from(solveFactored(plan.factor, b));
  out.push(total - out.reduce((s, v) => s + v, 0));
  return out;
}

function outputsOf(target: ExplainTarget, data: Float32Array, rows: number, requested: number | undefined) {
  const fx = target.predict(data, rows);
  const chosen = Array.from({ length: rows }, (_, r) =>
    chooseOutput(requested, target.outputs, fx.subarray(r * target.outputs, (r + 1) * target.outputs)),
  );
  return { fx, chosen };
}

/** E[f] over the background for every output: one forward pass, whatever the rows explain. */
function expectedValues(target: ExplainTarget, bg: Background): Float64Array {
  const y = target.predict(bg.data, bg.rows);
  const means = new Float64Array(target.outputs);
  for (let r = 0; r < bg.rows; r++)
    for (let j = 0; j < target.outputs; j++) means[j] = means[j]! + y[r * target.outputs + j]! / bg.rows;
  return means;
}

/** Kernel SHAP values of each row of x. */
export function kernelShapOf(target: ExplainTarget, x: unknown, options: KernelShapOptions): Explanation[] {
  checkOptions('kernelShap options', options, ['background', 'nsamples', 'seed', 'output']);
  const d = target.inputs;
  const bg = backgroundOf(options?.background, target, 'kernelShap');
  const { data, rows } = inputRows(x, d, 'x');
  const nsamples = options.nsamples ?? 2 * d + 2048;
  if (!Number.isInteger(nsamples) || nsamples < 2 || nsamples > MAX_NSAMPLES)
    throw invalidParameter(
      'kernelShap options.nsamples',
      `an integer in [2, ${MAX_NSAMPLES}]`,
      nsamples,
      'MAAS_ERR_ARG_RANGE',
    );
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed))
    throw invalidParameter('kernelShap options.seed', 'an integer', seed, 'MAAS_ERR_ARG_RANGE');
  const { fx, chosen } = outputsOf(target, data, rows, options.output);
  const plan = kernelPlan(d, nsamples, seed);
  const expectations = expectedValues(target, bg);
  const result: Explanation[] = [];
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * d, (r + 1) * d);
    const output = chosen[r]!;
    const expected = expectations[output]!;
    const value = fx[r * target.outputs + output]!;
    const values = coalitionValues(target, row, bg, plan.coalitions, output);
    const attributions = constrainedFit(d, plan, values, expected, value - expected);
    const sum = attributions.reduce((s, v) => s + v, 0);
    result.push(
      finish(target, {
        method: 'kernelShap',
        output,
        value,
        base: expected,
        attributions,
        additivityGap: expected + sum - value,
        coalitions: plan.coalitions.length,
        exact: plan.exact,
      }),
    );
  }
  return result;
}

/** Exact Shapley values of each row of x by the Shapley formula over all 2^d coalitions (d ≤ 16). */
export function exactShapOf(target: ExplainTarget, x: unknown, options: ExactShapOptions): Explanation[] {
  checkOptions('exactShap options', options, ['background', 'output']);
  const d = target.inputs;
  if (d > EXACT_SHAP_MAX_FEATURES)
    throw invalidParameter(
      'exactShap',
      `a model of at most ${EXACT_SHAP_MAX_FEATURES} inputs (use kernelShap)`,
      `${d} inputs`,
      'MAAS_ERR_ARG_RANGE',
    );
  const bg = backgroundOf(options?.background, target, 'exactShap');
  const { data, rows } = inputRows(x, d, 'x');
  const { fx, chosen } = outputsOf(target, data, rows, options.output);
  // Coalition m (a bit mask) lists the features whose bit is set; all 2^d of them.
  const count = 1 << d;
  const coalitions = Array.from({ length: count }, (_, m) => {
    const members: number[] = [];
    for (let i = 0; i < d; i++) if (m & (1 << i)) members.push(i);
    return Int32Array.from(members);
  });
  // w(s) = s!(d − s − 1)!/d!, the weight of a coalition of size s in feature i's marginal sum.
  const weight = Array.from({ length: d }, (_, s) => 1 / (d * binomial(d - 1, s)));
  const result: Explanation[] = [];
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * d, (r + 1) * d);
    const output = chosen[r]!;
    const v = coalitionValues(target, row, bg, coalitions, output);
    const attributions = new Array<number>(d).fill(0);
    for (let m = 0; m < count; m++) {
      const size = coalitions[m]!.length;
      for (let i = 0; i < d; i++) {
        if (m & (1 << i)) continue;
        attributions[i] = attributions[i]! + weight[size]! * (v[m | (1 << i)]! - v[m]!);
      }
    }
    const value = fx[r * target.outputs + output]!;
    const base = v[0]!;
    const sum = attributions.reduce((s, a) => s + a, 0);
    result.push(
      finish(target, {
        method: 'exactShap',
        output,
        value,
        base,
        attributions,
        additivityGap: base + sum - value,
        coalitions: count,
        exact: true,
      }),
    );
  }
  return result;
}
