/**
 * Federated averaging: clients train on their own data and send weight deltas with their sample
 * counts, never data. Each update is checked (one delta per weight tensor of the right length,
 * finite, under a norm bound) before it counts; the deltas are averaged, weighted by samples. With
 * differential privacy (the DP-FedAvg recipe) each delta is clipped to an L2 norm C, each client
 * counts once (so one client moves the sum by at most C), and Gaussian noise of standard
 * deviation σ·C is added to the sum before it is divided; the privacy spent over the rounds is
 * reported as (ε, δ) from the Gaussian mechanism's Rényi-DP bound (see dpEpsilon). Secure
 * aggregation is out of scope: the server sees each client's delta.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { Random } from '../core/random.js';
import { checkFinite, checkInteger, checkOptions } from '../core/validation.js';
import { toMatrix, type TensorLike } from '../core/tensor.js';
import type { FitArgs } from '../train/engine.js';
import type { Sequential } from '../model/sequential.js';

/** One client's contribution to a round: a delta per weight tensor (getWeights order) and its row count. */
export interface ClientUpdate {
  client: string;
  samples: number;
  delta: readonly Float32Array[];
}

/** federatedAverage()'s options. */
export interface FedAvgOptions {
  /** Refuse an update whose delta's L2 norm is above this (default: no bound). */
  maxNorm?: number;
  /** Differential privacy: clip each delta to this L2 norm (C). */
  clipNorm?: number;
  /** Differential privacy: noise of standard deviation noiseMultiplier·clipNorm on the sum (σ; needs clipNorm). */
  noiseMultiplier?: number;
  /** Seed of the noise (default: random). */
  seed?: number;
}

/** A refused update and why. */
export interface RefusedUpdate {
  client: string;
  reason: string;
}

/** The round's result: the averaged delta and what went into it. */
export interface FedAvgResult {
  /** The delta to add to the base weights, one per weight tensor. */
  delta: Float32Array[];
  /** Clients counted, and their rows. */
  clients: number;
  samples: number;
  /** Updates whose norm was above clipNorm (scaled down to it). */
  clipped: number;
  refused: RefusedUpdate[];
  /** The noise's standard deviation on the averaged delta (0 without privacy). */
  noiseStd: number;
}

/** The L2 norm of a delta over every tensor, in float64. */
export function deltaNorm(delta: readonly Float32Array[]): number {
  let sum = 0;
  for (const t of delta) for (let i = 0; i < t.length; i++) sum += t[i]! * t[i]!;
  return Math.sqrt(sum);
}

/** Why an update cannot count, or null: its shape against the model's, its values, its norm, its count. */
function refusal(u: ClientUpdate, sizes: readonly number[], maxNorm: number): string | null {
  if (!Number.isInteger(u.samples) || u.samples < 1)
    return `samples must be a positive integer, not ${String(u.samples)}`;
  // From the network: nothing about it is taken on trust, its type included.
  const delta: unknown = u.delta;
  if (!Array.isArray(delta) || delta.length !== sizes.length)
    return `expected ${sizes.length} delta tensors (the model's weights) but received ${Array.isArray(delta) ? delta.length : 'none'}`;
  for (let t = 0; t < sizes.length; t++) {
    const d: unknown = delta[t];
    if (!(d instanceof Float32Array) || d.length !== sizes[t])
      return `delta ${t} must be a Float32Array of ${sizes[t]} values`;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return `delta ${t}[${i}] is not finite`;
  }
  const norm = deltaNorm(u.delta);
  if (norm > maxNorm) return `its L2 norm ${norm.toPrecision(4)} is above the bound ${maxNorm}`;
  return null;
}

/**
 * Averages the valid updates into one delta for weights of `sizes` values each: weighted by
 * samples, or, with clipNorm and noiseMultiplier, each clipped and counted once with Gaussian
 * noise on the sum. Refused updates are listed, not fatal; none valid is an error.
 */
export function federatedAverage(
  sizes: readonly number[],
  updates: readonly ClientUpdate[],
  options: FedAvgOptions = {},
): FedAvgResult {
  const o = checkOptions('federatedAverage options', options, ['maxNorm', 'clipNorm', 'noiseMultiplier', 'seed']);
  const maxNorm = o.maxNorm === undefined ? Infinity : positive('maxNorm', o.maxNorm);
  const clipNorm = o.clipNorm === undefined ? null : positive('clipNorm', o.clipNorm);
  const sigma =
    o.noiseMultiplier === undefined ? 0 : checkFinite('federatedAverage options.noiseMultiplier', o.noiseMultiplier);
  if (sigma < 0)
    throw invalidParameter('federatedAverage options.noiseMultiplier', 'a number >= 0', sigma, 'MAAS_ERR_ARG_RANGE');
  if (sigma > 0 && clipNorm === null)
    throw invalidParameter(
      'federatedAverage options.clipNorm',
      'a clip norm with noiseMultiplier (the noise is σ·C)',
      undefined,
    );
  const seed =
    o.seed === undefined
      ? (Math.random() * 2 ** 32) >>> 0
      : checkInteger('federatedAverage options.seed', o.seed, 0, 2 ** 32 - 1);
  const refused: RefusedUpdate[] = [];
  const valid: ClientUpdate[] = [];
  const seen = new Set<string>();
  for (const u of updates) {
    const why = seen.has(u.client) ? 'a second update from the same client in one round' : refusal(u, sizes, maxNorm);
    if (why) refused.push({ client: String(u.client), reason: why });
    else {
      valid.push(u);
      seen.add(u.client);
    }
  }
  if (valid.length === 0)
    throw new MaasError('MAAS_ERR_FEDERATED_ROUND', `No valid update in the round (${refused.length} refused)`);
  const dp = sigma > 0;
  // With privacy each client counts once: one client then moves the sum by at most C.
  const weights = valid.map((u) => (dp ? 1 : u.samples));
  const total = weights.reduce((a, b) => a + b, 0);
  let clipped = 0;
  const sums = sizes.map((n) => new Float64Array(n));
  valid.forEach((u, k) => {
    let scale = weights[k]!;
    if (clipNorm !== null) {
      const norm = deltaNorm(u.delta);
      if (norm > clipNorm) {
        scale *= clipNorm / norm;
        clipped++;
      }
    }
    u.delta.forEach((d, t) => {
      const s = sums[t]!;
      for (let i = 0; i < d.length; i++) s[i] = s[i]! + scale * d[i]!;
    });
  });
  const random = new Random(seed);
  const noise = dp ? sigma * clipNorm! : 0;
  const delta = sums.map((s) => {
    const out = new Float32Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = (s[i]! + (noise > 0 ? random.normal(0, noise) : 0)) / total;
    return out;
  });
  return {
    delta,
    clients: valid.length,
    samples: valid.reduce((a, u) => a + u.samples, 0),
    clipped,
    refused,
    noiseStd: noise / total,
  };
}

function positive(name: string, value: unknown): number {
  const v = checkFinite(`federatedAverage options.${name}`, value);
  if (!(v > 0)) throw invalidParameter(`federatedAverage options.${name}`, 'a number > 0', v, 'MAAS_ERR_ARG_RANGE');
  return v;
}

/**
 * (ε, δ) spent by `rounds` rounds of the Gaussian mechanism with noise multiplier σ (sensitivity
 * C, noise σ·C), every client in every round (no amplification by sampling is claimed). Rényi DP
 * of order α is α·rounds/(2σ²) (Mironov 2017, composition adds), and converts to
 * ε = RDP(α) + ln(1/δ)/(α − 1); the smallest over α > 1 is
 *   ε = rounds/(2σ²) + √(2·rounds·ln(1/δ))/σ   at α = 1 + σ·√(2·ln(1/δ)/rounds).
 */
export function dpEpsilon(options: { noiseMultiplier: number; rounds: number; delta: number }): {
  epsilon: number;
  delta: number;
  order: number;
} {
  const o = checkOptions('dpEpsilon options', options, ['noiseMultiplier', 'rounds', 'delta']);
  const sigma = checkFinite('dpEpsilon noiseMultiplier', o.noiseMultiplier);
  if (!(sigma > 0)) throw invalidParameter('dpEpsilon noiseMultiplier', 'a number > 0', sigma, 'MAAS_ERR_ARG_RANGE');
  const rounds = checkInteger('dpEpsilon rounds', o.rounds, 1);
  const delta = checkFinite('dpEpsilon delta', o.delta);
  if (!(delta > 0 && delta < 1))
    throw invalidParameter('dpEpsilon delta', 'a number in (0, 1)', delta, 'MAAS_ERR_ARG_RANGE');
  const log = Math.log(1 / delta);
  return {
    epsilon: rounds / (2 * sigma * sigma) + Math.sqrt(2 * rounds * log) / sigma,
    delta,
    order: 1 + sigma * Math.sqrt((2 * log) / rounds),
  };
}

/**
 * (ε, δ) of a mechanism whose Rényi-DP at order α is α·rdp (rdp = Σ 1/(2σᵢ²) over the noised
 * rounds composed, each of sensitivity 1 in units of its clip norm): the smallest
 * ε = α·rdp + ln(1/δ)/(α − 1) over α > 1, which is rdp + 2·√(rdp·ln(1/δ)) at α = 1 + √(ln(1/δ)/rdp).
 * With equal σ over r rounds it is dpEpsilon's value.
 */
export function rdpEpsilon(rdp: number, delta: number): { epsilon: number; delta: number; order: number } {
  if (!(rdp > 0 && Number.isFinite(rdp))) return { epsilon: rdp === 0 ? 0 : Infinity, delta, order: Infinity };
  if (!(delta > 0 && delta < 1))
    throw invalidParameter('rdpEpsilon delta', 'a number in (0, 1)', delta, 'MAAS_ERR_ARG_RANGE');
  const log = Math.log(1 / delta);
  return { epsilon: rdp + 2 * Math.sqrt(rdp * log), delta, order: 1 + Math.sqrt(log / rdp) };
}

/**
 * A client's side of a round: trains `model` from its current weights on the client's own x and y
 * and returns the delta (trained − given weights) with the row count, ready to submit. The model
 * gets its weights and history back afterwards (its optimizer state starts again at the next fit).
 */
export async function localUpdate(
  model: Sequential,
  x: TensorLike,
  y: TensorLike,
  fitArgs: FitArgs & { client: string },
): Promise<ClientUpdate> {
  const { client, ...args } = fitArgs;
  if (typeof client !== 'string' || client.length === 0)
    throw invalidParameter('localUpdate client', "the client's name", client);
  const samples = toMatrix(x, model.inputShape![1], 'localUpdate x').rows;
  const before = model.getWeights().map((t) => Float32Array.from(t.values));
  const epochs = model.trainingHistory.length;
  try {
    await model.fit(x, y, { verbose: 0, ...args });
    const after = model.getWeights();
    return {
      client,
      samples,
      delta: after.map((t, i) => Float32Array.from(t.values, (v, j) => v - before[i]![j]!)),
    };
  } finally {
    model.setWeights(before);
    model.trainingHistory.splice(epochs);
  }
}

/**
 * What a client's side of a round needs of the server: GrpcInferenceClient has both calls (the
 * library does not import the client, so any object with them will do).
 */
export interface RoundServer {
  getRound(
    model: string,
    roundId?: string,
  ): Promise<{ roundId: string; baseVersion: string; weights: { values: Float32Array }[] }>;
  submitUpdate(
    model: string,
    roundId: string,
    update: { client: string; samples: number; delta: readonly Float32Array[] },
  ): Promise<{ clients: number; norm: number }>;
}

/** trainAndSubmit()'s options. */
export interface TrainAndSubmitOptions {
  model: string;
  /** This client's name in the round (one update per client per round). */
  client: string;
  /** A compiled model of the served architecture: its weights are set to the round's base first. */
  localModel: Sequential;
  x: TensorLike;
  y: TensorLike;
  fitArgs?: FitArgs;
  /** The round to join (default: the open one). */
  roundId?: string;
}

/**
 * A federated client's side of a round: fetches the open round's base weights, trains
 * `localModel` from them on x and y (rows that never leave this process) and submits the delta
 * with the row count. `localModel` keeps the base weights after.
 */
export async function trainAndSubmit(
  server: RoundServer,
  options: TrainAndSubmitOptions,
): Promise<{ roundId: string; baseVersion: string; samples: number; clients: number; norm: number }> {
  const round = await server.getRound(options.model, options.roundId);
  const own = options.localModel.getWeights();
  if (own.length !== round.weights.length || own.some((t, i) => t.values.length !== round.weights[i]!.values.length))
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `The local model's weights (${own.map((t) => t.shape.join('×')).join(', ')}) are not the round's (${round.weights.map((t) => t.values.length).join(', ')} values)`,
    );
  options.localModel.setWeights(round.weights.map((t) => t.values));
  const update = await localUpdate(options.localModel, options.x, options.y, {
    ...(options.fitArgs ?? {}),
    client: options.client,
  });
  const answer = await server.submitUpdate(options.model, round.roundId, update);
  return { roundId: round.roundId, baseVersion: round.baseVersion, samples: update.samples, ...answer };
}
