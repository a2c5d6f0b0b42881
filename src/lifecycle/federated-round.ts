/**
 * A federated round's close, as the update thread runs it: the clients' deltas averaged
 * (federatedAverage: validated, optionally clipped and noised), added to the round's base
 * weights, and the result judged beside the serving version on held-out rows like any update —
 * staged as the next version only when it wins. The privacy spent is carried along the versions'
 * lineage as a Rényi-DP sum, so ε covers every noised round that went into a version.
 */
import { join } from 'node:path';
import { MaasError } from '../core/errors.js';
import { readRegularFile } from '../io/files.js';
import { loadModel } from '../model/load.js';
import type { Sequential } from '../model/sequential.js';
import {
  federatedAverage,
  rdpEpsilon,
  type ClientUpdate,
  type FedAvgOptions,
  type RefusedUpdate,
} from './federated.js';
import { VERSION_RECORD_FILE, stageVersion, type StagedFileName } from './publish.js';
import { compileForJudging, judgeCandidate, readHoldoutFile, type UpdatePolicy, type UpdateVerdict } from './update.js';

/** A round to close, as the thread receives it. */
export interface FederatedRoundJob {
  modelDir: string;
  staging: string;
  baseFile: string;
  baseVersion: number;
  fileName: StagedFileName;
  roundId: string;
  policy: UpdatePolicy;
  /** The model's held-out rows file (update_holdout): a round has no rows of its own. */
  holdoutFile: string;
  updates: ClientUpdate[];
  options: FedAvgOptions;
  /** δ of the (ε, δ) report, and the Rényi-DP sum Σ 1/(2σ²) of the base version's lineage. */
  privacy: { delta: number; rdpBefore: number; roundsBefore: number };
}

/** What a closed round produced. */
export interface FederatedVerdict extends UpdateVerdict {
  clients: number;
  samples: number;
  clipped: number;
  refused: RefusedUpdate[];
  noiseStd: number;
  /** The lineage's privacy after this round (absent: no noised round in it). */
  privacy?: { epsilon: number; delta: number; rdp: number; rounds: number };
}

/** Largest version.json read for a lineage's privacy. */
const MAX_RECORD_BYTES = 1024 * 1024;

/** What a version's lineage spent of privacy: the Rényi-DP sum over its noised rounds, their count and δ. */
export interface LineagePrivacy {
  rdp: number;
  rounds: number;
  delta?: number;
}

/**
 * The privacy a version's lineage spent already, from its version.json's details.privacy (no
 * record, or none in it: nothing). A record that cannot be read or parsed is an error, never
 * "nothing": the report must not understate ε.
 */
export async function lineagePrivacy(versionDir: string): Promise<LineagePrivacy> {
  const path = join(versionDir, VERSION_RECORD_FILE);
  let text: string;
  try {
    text = (await readRegularFile(path, MAX_RECORD_BYTES, 'a version record')).toString('utf8');
  } catch (error) {
    if (error instanceof MaasError && error.code === 'MAAS_ERR_MODEL_NOT_FOUND') return { rdp: 0, rounds: 0 };
    throw error;
  }
  let privacy: { rdp?: unknown; rounds?: unknown; delta?: unknown } | undefined;
  try {
    privacy = (JSON.parse(text) as { details?: { privacy?: typeof privacy } }).details?.privacy;
  } catch (error) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} is not JSON: ${(error as Error).message}`);
  }
  if (privacy === undefined) return { rdp: 0, rounds: 0 };
  const rdp = privacy.rdp;
  const rounds = privacy.rounds;
  if (
    typeof rdp !== 'number' ||
    !(rdp >= 0) ||
    !Number.isFinite(rdp) ||
    !Number.isInteger(rounds) ||
    (rounds as number) < 0
  )
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} records a privacy it cannot be read from (details.privacy)`);
  return { rdp, rounds: rounds as number, ...(typeof privacy.delta === 'number' ? { delta: privacy.delta } : {}) };
}

/** The base weights of a model file, in getWeights order (for a round's clients). */
export async function baseWeights(file: string): Promise<{ shape: number[]; values: Float32Array }[]> {
  const model = await loadModel(file);
  try {
    return model.getWeights().map((t) => ({ shape: [...t.shape], values: Float32Array.from(t.values) }));
  } finally {
    model.dispose();
  }
}

/** Averages the round's deltas onto its base, judges the result, and stages it when it wins. */
export async function runFederatedRound(job: FederatedRoundJob): Promise<FederatedVerdict> {
  const base = await loadModel(job.baseFile);
  let candidate: Sequential | null = null;
  try {
    const loss = base.compileSettings?.loss;
    if (!loss)
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Version ${job.baseVersion} was saved without a loss (it was never compiled): a round cannot be judged`,
      );
    const weights = base.getWeights();
    const average = federatedAverage(
      weights.map((t) => t.values.length),
      job.updates,
      job.options,
    );
    candidate = await loadModel(job.baseFile);
    candidate.setWeights(weights.map((t, i) => Float32Array.from(t.values, (v, j) => v + average.delta[i]![j]!)));
    compileForJudging(base, loss, job.policy.metric);
    compileForJudging(candidate, loss, job.policy.metric);
    const holdout = await readHoldoutFile(job.holdoutFile, base.inputShape![1]);
    const verdict = judgeCandidate(candidate, base, holdout, job.policy);
    const sigma = job.options.noiseMultiplier ?? 0;
    const privacy =
      sigma > 0 || job.privacy.roundsBefore > 0
        ? (() => {
            const rdp = job.privacy.rdpBefore + (sigma > 0 ? 1 / (2 * sigma * sigma) : 0);
            const rounds = job.privacy.roundsBefore + (sigma > 0 ? 1 : 0);
            return { ...rdpEpsilon(rdp, job.privacy.delta), rdp, rounds };
          })()
        : undefined;
    const result: FederatedVerdict = {
      ...verdict,
      clients: average.clients,
      samples: average.samples,
      clipped: average.clipped,
      refused: average.refused,
      noiseStd: average.noiseStd,
      ...(privacy ? { privacy } : {}),
    };
    if (verdict.promoted)
      await stageVersion(
        job.modelDir,
        candidate,
        {
          source: 'federated',
          parent: job.baseVersion,
          metrics: verdict.candidate,
          details: {
            round: job.roundId,
            serving: verdict.serving,
            metric: job.policy.metric,
            margin: job.policy.margin,
            improvement: verdict.improvement,
            clients: average.clients,
            samples: average.samples,
            clipped: average.clipped,
            noiseStd: average.noiseStd,
            clipNorm: job.options.clipNorm ?? null,
            noiseMultiplier: sigma,
            ...(privacy ? { privacy } : {}),
          },
        },
        { fileName: job.fileName, staging: job.staging },
      );
    return result;
  } finally {
    candidate?.dispose();
    base.dispose();
  }
}
