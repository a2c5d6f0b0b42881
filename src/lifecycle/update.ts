/**
 * Updating a served model from new rows: a candidate is trained (fine-tuned from the serving
 * version's file, or from scratch with a given architecture), scored beside the serving version on
 * held-out rows, and staged as the next version only when it beats it by the configured margin on
 * the configured metric. The caller commits the staged directory (commitVersion): until then a
 * cancelled update leaves nothing a server would read.
 */
import { MaasError, describeValue, invalidParameter } from '../core/errors.js';
import { checkFinite, checkInteger, isPlainObject } from '../core/validation.js';
import { readRegularFile } from '../io/files.js';
import { dense } from '../layers/dense.js';
import { initializers } from '../layers/initializers.js';
import { loadModel } from '../model/load.js';
import { sequential, type Sequential } from '../model/sequential.js';
import type { LossName, OptimizerName } from '../native/index.js';
import { LOSS_NAMES } from '../train/engine.js';
import { METRIC_NAMES, type MetricName } from '../train/metrics.js';
import { Optimizer, getOptimizer } from '../train/optimizers.js';
import { checkCandidate, type CandidateSpec } from './select.js';
import { stageVersion, type StagedFileName, type VersionRecord } from './publish.js';

/** What decides a promotion: the loss, or one of compile()'s metrics. */
export type UpdateMetric = 'loss' | MetricName;

/** Metrics where more is better; the loss, mse and mae are better lower. */
const HIGHER_IS_BETTER: ReadonlySet<UpdateMetric> = new Set([
  'accuracy',
  'binaryAccuracy',
  'categoricalAccuracy',
  'precision',
  'recall',
  'auc',
]);

/** How the candidate trains (the update's parameters). */
export interface UpdateTraining {
  /** Passes over the new rows (default 10). */
  epochs: number;
  /** Rows per step (default 32). */
  batchSize: number;
  /** Overrides the optimizer's learning rate (default: the serving version's, or the architecture's). */
  learningRate?: number;
  /** Another optimizer, with its default settings (default: the serving version's). */
  optimizer?: OptimizerName;
  /** The loss, for a serving version saved without one (default: the serving version's). */
  loss?: LossName;
  /** Seed of the shuffles and, from scratch, the initializers (default: random). */
  seed?: number;
  /** Train from scratch: these hidden layers (and settings), with the serving version's output layer. */
  architecture?: CandidateSpec;
}

/** What a promotion must show, from the model's config (never from the client). */
export interface UpdatePolicy {
  metric: UpdateMetric;
  /** The least improvement on the metric, in its units, that promotes (default 0: any). */
  margin: number;
}

/** Rows of inputs and targets, flat. */
export interface UpdateRows {
  x: Float32Array;
  y: Float32Array;
  rows: number;
}

/** One update, as the thread that runs it receives it. */
export interface UpdateJob {
  /** The model's directory: the candidate is staged in it, at `staging`. */
  modelDir: string;
  staging: string;
  /** The serving version's model file and number. */
  baseFile: string;
  baseVersion: number;
  /** The file the candidate is written as (the serving version's format). */
  fileName: StagedFileName;
  training: UpdateTraining;
  policy: UpdatePolicy;
  train: UpdateRows;
  /** The held-out rows sent with the update, or a JSON file of them ({"x": [[…]], "y": [[…]]}). */
  holdout: UpdateRows | { file: string };
  /** SHA-256 of the training rows as they arrived, hex. */
  dataSha256: string;
  /**
   * The differential privacy the base version's lineage carries (federated rounds): training on
   * new rows is post-processing for those clients, so the record carries it on unchanged.
   */
  lineagePrivacy?: Record<string, unknown>;
}

/** An epoch of the candidate's training. */
export interface UpdateEpoch {
  epoch: number;
  epochs: number;
  logs: Record<string, number>;
}

/** How the candidate compared, and whether it was staged. */
export interface UpdateVerdict {
  promoted: boolean;
  metric: UpdateMetric;
  margin: number;
  candidate: Record<string, number>;
  serving: Record<string, number>;
  /** The candidate's gain on the metric (positive: better), in its units. */
  improvement: number;
  holdoutRows: number;
  /** Why it was or was not promoted, in words. */
  reason: string;
}

/** The most weights an update's `architecture` may have (400 MB of fp32, with room to train). */
export const MAX_ARCHITECTURE_PARAMS = 100_000_000;

/** The largest held-out file read. */
export const MAX_HOLDOUT_FILE_BYTES = 64 * 1024 * 1024;
/** The model file names an update can write, by how the serving version's file ends. */
const STAGED_NAMES: readonly StagedFileName[] = ['model.json', 'model.h5', 'model.keras.h5', 'model.onnx'];

/** The file a candidate of a version served from `fileName` is written as (null: a format it cannot write). */
export function stagedFileName(fileName: string): StagedFileName | null {
  return STAGED_NAMES.find((name) => name === fileName) ?? null;
}

/** A parameter's value: JSON from REST, a string from gRPC; numbers may come as strings from either. */
function numberParameter(name: string, value: unknown): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return checkFinite(`update parameter ${name}`, n);
}

const TRAINING_PARAMETERS = ['epochs', 'batch_size', 'learning_rate', 'optimizer', 'loss', 'seed', 'architecture'];

/**
 * The update's training settings from its parameters (snake_case, as on the wire), over the
 * model config's update_epochs and update_batch_size; an unknown parameter is refused, so a
 * misspelt one does not train with a default silently.
 */
export function parseUpdateTraining(
  parameters: Readonly<Record<string, unknown>>,
  defaults: { epochs?: number; batchSize?: number } = {},
): UpdateTraining {
  for (const key of Object.keys(parameters))
    if (!TRAINING_PARAMETERS.includes(key))
      throw new MaasError(
        'MAAS_ERR_UPDATE_PARAMETER',
        `Unknown update parameter '${key}' (expected ${TRAINING_PARAMETERS.join(', ')})`,
      );
  const p = parameters;
  const integer = (name: string, min: number, max: number, fallback: number) =>
    p[name] === undefined
      ? fallback
      : checkInteger(`update parameter ${name}`, numberParameter(name, p[name]), min, max);
  const training: UpdateTraining = {
    epochs: integer('epochs', 1, 10_000, defaults.epochs ?? 10),
    batchSize: integer('batch_size', 1, 65_536, defaults.batchSize ?? 32),
  };
  if (p.learning_rate !== undefined) {
    const lr = numberParameter('learning_rate', p.learning_rate);
    if (!(lr > 0 && lr < 10))
      throw invalidParameter('update parameter learning_rate', 'a number in (0, 10)', lr, 'MAAS_ERR_ARG_RANGE');
    training.learningRate = lr;
  }
  if (p.optimizer !== undefined) {
    if (!['adam', 'adamw', 'rmsprop', 'sgd'].includes(p.optimizer as string))
      throw invalidParameter(
        'update parameter optimizer',
        "'adam', 'adamw', 'rmsprop' or 'sgd'",
        p.optimizer,
        'MAAS_ERR_ARG_RANGE',
      );
    training.optimizer = p.optimizer as OptimizerName;
  }
  if (p.loss !== undefined) {
    if (!(LOSS_NAMES as unknown[]).includes(p.loss))
      throw invalidParameter('update parameter loss', `one of ${LOSS_NAMES.join(', ')}`, p.loss, 'MAAS_ERR_ARG_RANGE');
    training.loss = p.loss as LossName;
  }
  if (p.seed !== undefined) training.seed = integer('seed', 0, 2 ** 32 - 1, 0);
  if (p.architecture !== undefined) {
    let spec: unknown = p.architecture;
    if (typeof spec === 'string') {
      if (spec.length > 64 * 1024)
        throw invalidParameter(
          'update parameter architecture',
          'a JSON candidate of at most 64 KiB',
          `${spec.length} characters`,
          'MAAS_ERR_UPDATE_PARAMETER',
        );
      try {
        spec = JSON.parse(spec) as unknown;
      } catch (error) {
        throw new MaasError(
          'MAAS_ERR_UPDATE_PARAMETER',
          `Expected a JSON candidate ({"layers": [{"units": 64}]}) for update parameter architecture but parsing failed: ${(error as Error).message}`,
        );
      }
    }
    training.architecture = checkCandidate(spec, 'update parameter architecture');
  }
  return training;
}

/** The promotion policy from a model config's parameters update_metric and update_margin. */
export function parseUpdatePolicy(metric: unknown, margin: unknown): UpdatePolicy {
  const m = metric === undefined ? 'loss' : metric;
  if (m !== 'loss' && !(METRIC_NAMES as readonly unknown[]).includes(m))
    throw new MaasError(
      'MAAS_ERR_MODEL_CONFIG',
      `Expected 'loss' or one of ${METRIC_NAMES.join(', ')} for parameter update_metric but received ${describeValue(m)}`,
    );
  const g = margin === undefined ? 0 : Number(margin);
  if (!(Number.isFinite(g) && g >= 0))
    throw new MaasError(
      'MAAS_ERR_MODEL_CONFIG',
      `Expected a number >= 0 for parameter update_margin but received ${String(margin)}`,
    );
  return { metric: m as UpdateMetric, margin: g };
}

/** Whether `candidate` beats `serving` on `metric` by at least `margin` (and at all). */
export function judge(
  metric: UpdateMetric,
  margin: number,
  candidate: number,
  serving: number,
): { promoted: boolean; improvement: number } {
  const improvement = HIGHER_IS_BETTER.has(metric) ? candidate - serving : serving - candidate;
  return { promoted: Number.isFinite(improvement) && improvement > 0 && improvement >= margin, improvement };
}

/** Held-out rows from a JSON file: {"x": rows of inputs, "y": rows of targets, or one class index a row}. */
export async function readHoldoutFile(path: string, inputs: number): Promise<UpdateRows> {
  const text = (await readRegularFile(path, MAX_HOLDOUT_FILE_BYTES, 'a held-out rows file')).toString('utf8');
  const bad = (what: string) =>
    new MaasError('MAAS_ERR_DATA_FORMAT', `Expected ${what} in the held-out file ${path} (update_holdout)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw bad(`JSON {"x": [[…]], "y": […]}, but parsing failed: ${(error as Error).message};`);
  }
  if (!isPlainObject(parsed) || !Array.isArray(parsed.x) || !Array.isArray(parsed.y))
    throw bad('{"x": [[…]], "y": […]}');
  const rows = parsed.x.length;
  if (rows === 0 || parsed.y.length !== rows) throw bad(`x and y with the same number of rows, at least one`);
  const flat = (values: unknown[], width: number | null, what: string): Float32Array => {
    const w = width ?? (Array.isArray(values[0]) ? (values[0] as unknown[]).length : 1);
    const out = new Float32Array(rows * w);
    values.forEach((row, r) => {
      const cells = Array.isArray(row) ? (row as unknown[]) : [row];
      if (cells.length !== w) throw bad(`${what} rows of ${w} numbers`);
      cells.forEach((v, j) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`finite numbers in ${what}`);
        out[r * w + j] = v;
      });
    });
    return out;
  };
  return { x: flat(parsed.x, inputs, 'x'), y: flat(parsed.y, null, 'y'), rows };
}

/** A model of the architecture's hidden layers and the serving version's output layer, compiled like it. */
function fromScratch(
  spec: CandidateSpec,
  base: Sequential,
  compile: { loss: LossName; metrics: MetricName[]; learningRate?: number },
  seed: number,
): Sequential {
  const out = base.layers.at(-1)!;
  const widths = [
    ...spec.layers.map((l) => ({ units: l.units, activation: l.activation ?? 'relu' })),
    { units: out.units, activation: out.activation },
  ];
  // Counted before anything is allocated: a request must not size the process's memory.
  let params = 0;
  let fanIn = base.inputShape![1];
  for (const { units } of widths) {
    params += (fanIn + 1) * units;
    fanIn = units;
  }
  if (params > MAX_ARCHITECTURE_PARAMS)
    throw new MaasError(
      'MAAS_ERR_UPDATE_PARAMETER',
      `Expected an architecture of at most ${MAX_ARCHITECTURE_PARAMS} weights for update parameter architecture but it has ${params}`,
    );
  const model = sequential({
    layers: widths.map((l, i) =>
      dense({
        units: l.units,
        activation: l.activation,
        kernelInitializer: initializers.glorotUniform({ seed: (seed + i) >>> 0 }),
        ...(i === 0 ? { inputShape: [base.inputShape![1]] } : {}),
      }),
    ),
  });
  const name = spec.optimizer ?? 'adam';
  const optimizer = getOptimizer(name);
  optimizer.learningRate = compile.learningRate ?? spec.learningRate ?? (name === 'sgd' ? 0.01 : 0.001);
  model.compile({ optimizer, loss: compile.loss, metrics: compile.metrics });
  const pipeline = base.pipeline;
  if (pipeline) model.setPreparation(pipeline);
  return model;
}

/** The loss and metric of `model` on rows, by name. */
function scores(model: Sequential, rows: UpdateRows, metric: UpdateMetric): Record<string, number> {
  const out = model.evaluate(rows.x, rows.y, { batchSize: 256 });
  const values = (Array.isArray(out) ? out : [out]).map((t) => t.values[0]!);
  const names = ['loss', ...(model.compileInfo?.metrics ?? [])];
  const result: Record<string, number> = {};
  names.forEach((name, i) => (result[name] = values[i]!));
  if (!(metric in result)) throw new MaasError('MAAS_ERR_NATIVE_INTERNAL', `evaluate did not report ${metric}`);
  return result;
}

/** Scores a candidate and the serving version on held-out rows and judges the candidate by `policy`. */
export function judgeCandidate(
  candidate: Sequential,
  serving: Sequential,
  holdout: UpdateRows,
  policy: UpdatePolicy,
): UpdateVerdict {
  const servingScores = scores(serving, holdout, policy.metric);
  const candidateScores = scores(candidate, holdout, policy.metric);
  const { metric, margin } = policy;
  const { promoted, improvement } = judge(metric, margin, candidateScores[metric]!, servingScores[metric]!);
  return {
    promoted,
    metric,
    margin,
    candidate: candidateScores,
    serving: servingScores,
    improvement,
    holdoutRows: holdout.rows,
    reason: promoted
      ? `${metric} improved by ${improvement.toPrecision(4)} (margin ${margin})`
      : `${metric} ${candidateScores[metric]!.toPrecision(6)} against the serving ${servingScores[metric]!.toPrecision(6)}: an improvement of ${improvement.toPrecision(4)}, not above the margin ${margin}`,
  };
}

/** Compiles `model` for evaluation with `metric` (its own optimizer kept, or adam when it has none). */
export function compileForJudging(model: Sequential, loss: LossName, metric: UpdateMetric): void {
  model.compile({
    optimizer: model.compileSettings?.optimizer ?? getOptimizer('adam'),
    loss,
    metrics: metric === 'loss' ? [] : [metric],
  });
}

/**
 * Runs one update: trains the candidate (calling `onEpoch` after each epoch), scores it and the
 * serving version on the held-out rows, and stages it at job.staging when it wins.
 */
export async function runUpdate(job: UpdateJob, onEpoch: (epoch: UpdateEpoch) => void): Promise<UpdateVerdict> {
  const { training, policy } = job;
  const base = await loadModel(job.baseFile);
  const saved = base.compileSettings;
  const loss = training.loss ?? saved?.loss;
  if (!loss)
    throw new MaasError(
      'MAAS_ERR_UPDATE_REFUSED',
      `Version ${job.baseVersion} was saved without a loss (it was never compiled): send the update parameter loss`,
    );
  const metrics: MetricName[] = policy.metric === 'loss' ? [] : [policy.metric];
  const seed = training.seed ?? (Math.random() * 2 ** 32) >>> 0;
  let candidate: Sequential;
  if (training.architecture) {
    const { learningRate } = training;
    candidate = fromScratch(
      training.architecture,
      base,
      { loss, metrics, ...(learningRate !== undefined ? { learningRate } : {}) },
      seed,
    );
  } else {
    // A copy of the serving version: its file again, so the serving version is never touched.
    candidate = await loadModel(job.baseFile);
    const was = saved?.optimizer;
    const name = training.optimizer ?? was?.name ?? 'adam';
    const optimizer =
      was && name === was.name
        ? new Optimizer(name, training.learningRate ?? was.learningRate, was.config)
        : getOptimizer(name);
    if (training.learningRate !== undefined) optimizer.learningRate = training.learningRate;
    candidate.compile({ optimizer, loss, metrics });
  }
  compileForJudging(base, loss, policy.metric);
  const holdout = 'file' in job.holdout ? await readHoldoutFile(job.holdout.file, base.inputShape![1]) : job.holdout;
  const holdoutRows = holdout.rows;
  try {
    await candidate.fit(job.train.x, job.train.y, {
      epochs: training.epochs,
      batchSize: training.batchSize,
      seed,
      verbose: 0,
      callbacks: {
        onEpochEnd: (epoch: number, logs?: Record<string, number>) =>
          onEpoch({ epoch: epoch + 1, epochs: training.epochs, logs: { ...logs } }),
      },
    });
    const verdict = judgeCandidate(candidate, base, holdout, policy);
    if (verdict.promoted) {
      const record: VersionRecord = {
        source: 'update',
        parent: job.baseVersion,
        dataSha256: job.dataSha256,
        metrics: verdict.candidate,
        details: {
          serving: verdict.serving,
          metric: policy.metric,
          margin: policy.margin,
          improvement: verdict.improvement,
          rows: job.train.rows,
          holdoutRows,
          training: { ...training, loss, seed },
          ...(job.lineagePrivacy ? { privacy: job.lineagePrivacy } : {}),
        },
      };
      await stageVersion(job.modelDir, candidate, record, { fileName: job.fileName, staging: job.staging });
    }
    return verdict;
  } finally {
    candidate.dispose();
    base.dispose();
  }
}
