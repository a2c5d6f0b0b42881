/**
 * Federated rounds as a service (maas.FederatedService): an operator opens a round on a model's
 * serving version; clients fetch its weights, train on their own rows, and submit weight deltas
 * with their sample counts — never rows; each delta is checked as it arrives (tensors, values,
 * norm bound, one per client). Closing the round averages the deltas in the update thread (with
 * DP-FedAvg clipping and noise when the round asks), judges the result on the model's held-out
 * rows like any update, and promotes it only when it wins. One open round per model; a close
 * takes the model like an update does (one at a time).
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MaasError, describeValue } from '../core/errors.js';
import { deltaNorm, type ClientUpdate, type FedAvgOptions } from '../lifecycle/federated.js';
import { lineagePrivacy, type FederatedVerdict } from '../lifecycle/federated-round.js';
import { commitVersion, stagingPath } from '../lifecycle/publish.js';
import { stagedFileName } from '../lifecycle/update.js';
import type { ModelRepository, ServedVersion } from './repository/repository.js';
import type { ModelUpdates } from './updates.js';

/** A weight tensor as rounds send it: its shape and its values. */
export interface RoundTensor {
  shape: number[];
  values: Float32Array;
}

/** A round as clients see it. */
export interface RoundInfo {
  model: string;
  roundId: string;
  baseVersion: number;
  /** The base version's weights (getWeights order), when asked for. */
  weights?: RoundTensor[];
  clients: number;
  samples: number;
  clipNorm: number | null;
  noiseMultiplier: number;
  maxNorm: number | null;
  minClients: number;
}

/** How a round ended. */
export interface RoundResult {
  model: string;
  roundId: string;
  baseVersion: number;
  verdict: FederatedVerdict;
  promoted: boolean;
  version?: number;
  serving: boolean;
  loadError?: string;
}

interface Round {
  id: string;
  base: ServedVersion;
  weights: RoundTensor[];
  options: FedAvgOptions;
  minClients: number;
  maxClients: number;
  delta: number;
  updates: Map<string, ClientUpdate>;
  bytes: number;
  closing: boolean;
}

const ROUND_PARAMETERS = ['clip_norm', 'noise_multiplier', 'max_norm', 'seed', 'min_clients', 'max_clients', 'delta'];
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
/**
 * The most rows one client may claim. Without privacy the average weighs clients by the rows they
 * claim, and nothing checks the claim: a round's operator who does not trust its clients' counts
 * uses clip_norm (each client then counts once).
 */
const MAX_CLIENT_SAMPLES = 1_000_000_000;

function roundParameter(
  parameters: Readonly<Record<string, unknown>>,
  name: string,
  check: (v: number) => boolean,
  expected: string,
): number | undefined {
  const raw = parameters[name];
  if (raw === undefined) return undefined;
  const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v))
    throw new MaasError(
      'MAAS_ERR_UPDATE_PARAMETER',
      `Expected ${expected} for round parameter ${name} but received ${describeValue(raw)}`,
    );
  return v;
}

/** The open rounds, one per model. */
export class FederatedRounds {
  private readonly rounds = new Map<string, Round>();

  constructor(
    private readonly repository: ModelRepository,
    private readonly updates: ModelUpdates,
  ) {}

  /**
   * Opens a round on model `name`'s serving version (or `version`) with the round's settings:
   * clip_norm and noise_multiplier (DP-FedAvg), max_norm (refuse larger deltas), seed,
   * min_clients (default 1), max_clients (default 10 000), delta (δ of the report, default 1e-5).
   */
  async open(name: string, version: string | undefined, parameters: Record<string, unknown>): Promise<RoundInfo> {
    for (const key of Object.keys(parameters))
      if (!ROUND_PARAMETERS.includes(key))
        throw new MaasError(
          'MAAS_ERR_UPDATE_PARAMETER',
          `Unknown round parameter '${key}' (expected ${ROUND_PARAMETERS.join(', ')})`,
        );
    const base = await this.updates.updatableBase(name, version);
    if (base.update.holdoutFile === undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Model '${name}' names no update_holdout file in its config: a round's result must be judged on held-out rows before it is promoted`,
      );
    if (this.rounds.has(name))
      throw new MaasError(
        'MAAS_ERR_FEDERATED_ROUND',
        `Round ${this.rounds.get(name)!.id} of '${name}' is open: close it before opening another`,
      );
    const p = parameters;
    const clipNorm = roundParameter(p, 'clip_norm', (v) => v > 0, 'a number > 0');
    const noiseMultiplier = roundParameter(p, 'noise_multiplier', (v) => v >= 0, 'a number >= 0') ?? 0;
    if (noiseMultiplier > 0 && clipNorm === undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_PARAMETER',
        'Round parameter noise_multiplier needs clip_norm (the noise is σ·C)',
      );
    const maxNorm = roundParameter(p, 'max_norm', (v) => v > 0, 'a number > 0');
    const seed = roundParameter(
      p,
      'seed',
      (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32,
      'an integer in [0, 2^32)',
    );
    const minClients = roundParameter(p, 'min_clients', (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1') ?? 1;
    const maxClients =
      roundParameter(
        p,
        'max_clients',
        (v) => Number.isInteger(v) && v >= 1 && v <= 1_000_000,
        'an integer in [1, 1e6]',
      ) ?? 10_000;
    const delta = roundParameter(p, 'delta', (v) => v > 0 && v < 1, 'a number in (0, 1)') ?? 1e-5;
    if (minClients > maxClients)
      throw new MaasError('MAAS_ERR_UPDATE_PARAMETER', `min_clients ${minClients} is above max_clients ${maxClients}`);
    const lineage = await lineagePrivacy(join(this.repository.modelDir(name), String(base.version)));
    if (lineage.rounds > 0 && noiseMultiplier === 0)
      throw new MaasError(
        'MAAS_ERR_UPDATE_PARAMETER',
        `Version ${base.version} of '${name}' carries a differential-privacy guarantee over ${lineage.rounds} noised rounds: a round without noise_multiplier (and clip_norm) would end it`,
      );
    const weights = await this.repository.readWeights(base.file);
    // Another open may have raced this one while the weights were read.
    if (this.rounds.has(name))
      throw new MaasError('MAAS_ERR_FEDERATED_ROUND', `A round of '${name}' was opened meanwhile: close it first`);
    const round: Round = {
      id: randomBytes(8).toString('hex'),
      base,
      weights,
      options: {
        ...(clipNorm !== undefined ? { clipNorm } : {}),
        ...(noiseMultiplier > 0 ? { noiseMultiplier } : {}),
        ...(maxNorm !== undefined ? { maxNorm } : {}),
        ...(seed !== undefined ? { seed } : {}),
      },
      minClients,
      maxClients,
      delta,
      updates: new Map(),
      bytes: 0,
      closing: false,
    };
    this.rounds.set(name, round);
    this.repository.logger.info({ model: name, round: round.id, baseVersion: base.version }, 'federated round open');
    return this.info(name, round, false);
  }

  /** The open round of `name` (checked against `roundId` when given), with its base weights. */
  get(name: string, roundId?: string): RoundInfo {
    return this.info(name, this.round(name, roundId === '' ? undefined : roundId), true);
  }

  /**
   * Takes one client's update: `delta` one tensor per weight tensor, finite, under the round's
   * max_norm; one per client. Refused updates do not count (MAAS_ERR_FEDERATED_UPDATE).
   */
  submit(
    name: string,
    roundId: string,
    client: string,
    samples: number,
    delta: Float32Array[],
  ): { clients: number; norm: number } {
    const round = this.round(name, roundId);
    const refuse = (why: string) =>
      new MaasError('MAAS_ERR_FEDERATED_UPDATE', `The update of client ${describeValue(client)} is refused: ${why}`);
    if (round.closing) throw new MaasError('MAAS_ERR_FEDERATED_ROUND', `Round ${round.id} of '${name}' is closing`);
    if (typeof client !== 'string' || !CLIENT_NAME.test(client))
      throw refuse('a client name is 1 to 128 letters, digits or . _ : @ -');
    if (round.updates.has(client)) throw refuse('a second update from the same client in one round');
    if (round.updates.size >= round.maxClients) throw refuse(`the round has its ${round.maxClients} clients`);
    if (!Number.isInteger(samples) || samples < 1 || samples > MAX_CLIENT_SAMPLES)
      throw refuse(`samples must be an integer in [1, ${MAX_CLIENT_SAMPLES}], not ${samples}`);
    if (delta.length !== round.weights.length)
      throw refuse(`expected ${round.weights.length} delta tensors (the model's weights) but received ${delta.length}`);
    let bytes = 0;
    delta.forEach((d, t) => {
      const want = round.weights[t]!.values.length;
      if (d.length !== want) throw refuse(`delta ${t} has ${d.length} values, not ${want}`);
      for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) throw refuse(`delta ${t}[${i}] is not finite`);
      bytes += d.byteLength;
    });
    const norm = deltaNorm(delta);
    const maxNorm = round.options.maxNorm;
    if (maxNorm !== undefined && norm > maxNorm)
      throw refuse(`its L2 norm ${norm.toPrecision(4)} is above the round's bound ${maxNorm}`);
    if (round.bytes + bytes > round.base.update.maxBytes)
      throw new MaasError(
        'MAAS_ERR_UPDATE_TOO_LARGE',
        `Round ${round.id} of '${name}' holds ${round.bytes} bytes of deltas: another would pass update_max_bytes`,
      );
    round.bytes += bytes;
    round.updates.set(client, { client, samples, delta });
    return { clients: round.updates.size, norm };
  }

  /**
   * Closes the round: averages its updates onto the base in the update thread, judges the result
   * on the model's held-out rows, and promotes it when it wins. The round ends whatever the
   * verdict; a close refused because the model is busy leaves it open.
   */
  async close(name: string, roundId: string): Promise<RoundResult> {
    const round = this.round(name, roundId);
    if (round.closing) throw new MaasError('MAAS_ERR_FEDERATED_ROUND', `Round ${round.id} of '${name}' is closing`);
    if (round.updates.size < round.minClients)
      throw new MaasError(
        'MAAS_ERR_FEDERATED_ROUND',
        `Round ${round.id} of '${name}' has ${round.updates.size} updates; it closes at ${round.minClients} (min_clients)`,
      );
    const unlock = await this.updates.lock(name);
    round.closing = true;
    const { base } = round;
    const moved = () => {
      const now = this.repository.servingVersion(name);
      return now === base.version
        ? null
        : new MaasError(
            'MAAS_ERR_FEDERATED_ROUND',
            `The serving version of '${name}' changed from ${base.version} to ${now} since round ${round.id} opened: its deltas are from version ${base.version}, so the round is discarded`,
          );
    };
    const modelDir = this.repository.modelDir(name);
    const staging = stagingPath(modelDir);
    try {
      const before = moved();
      if (before) throw before;
      const privacy = await lineagePrivacy(join(modelDir, String(base.version)));
      const verdict = await this.repository.runFederatedRound(
        {
          modelDir,
          staging,
          baseFile: base.file,
          baseVersion: base.version,
          fileName: stagedFileName(basename(base.file))!,
          roundId: round.id,
          policy: base.update.policy,
          holdoutFile: join(modelDir, base.update.holdoutFile!),
          updates: [...round.updates.values()],
          options: round.options,
          privacy: { delta: round.delta, rdpBefore: privacy.rdp, roundsBefore: privacy.rounds },
        },
        base.update.workerShare,
        new AbortController().signal,
      );
      const result: RoundResult = {
        model: name,
        roundId: round.id,
        baseVersion: base.version,
        verdict,
        promoted: false,
        serving: false,
      };
      const after = verdict.promoted ? moved() : null;
      if (after) throw after;
      if (verdict.promoted) {
        result.version = await commitVersion(modelDir, staging);
        result.promoted = true;
        try {
          await this.updates.promote(name);
          result.serving = this.repository.servedVersions(name).some((v) => v.version === result.version);
          if (!result.serving) result.loadError = "the model's version policy does not serve it";
        } catch (error) {
          result.loadError = (error as Error).message;
        }
      }
      this.repository.logger.info(
        { model: name, round: round.id, clients: verdict.clients, promoted: result.promoted, version: result.version },
        'federated round closed',
      );
      return result;
    } finally {
      this.rounds.delete(name);
      try {
        await rm(staging, { recursive: true, force: true });
      } finally {
        await unlock();
      }
    }
  }

  private round(name: string, roundId?: string): Round {
    const round = this.rounds.get(name);
    if (!round) {
      this.repository.resolve(name); // an unknown model is its own error
      throw new MaasError('MAAS_ERR_FEDERATED_ROUND', `No federated round of '${name}' is open`);
    }
    if (roundId !== undefined && roundId !== round.id)
      throw new MaasError(
        'MAAS_ERR_FEDERATED_ROUND',
        `Round ${describeValue(roundId)} of '${name}' is not the open one (${round.id}): fetch the round again`,
      );
    return round;
  }

  private info(name: string, round: Round, withWeights: boolean): RoundInfo {
    let samples = 0;
    for (const u of round.updates.values()) samples += u.samples;
    return {
      model: name,
      roundId: round.id,
      baseVersion: round.base.version,
      ...(withWeights ? { weights: round.weights } : {}),
      clients: round.updates.size,
      samples,
      clipNorm: round.options.clipNorm ?? null,
      noiseMultiplier: round.options.noiseMultiplier ?? 0,
      maxNorm: round.options.maxNorm ?? null,
      minClients: round.minClients,
    };
  }
}
