/**
 * Model selection: candidate architectures and training settings compared by k-fold
 * cross-validation on raw rows. Each fold fits the preparation on its training rows only (no test
 * row leaks into the scaler or the categories), trains each candidate with seeded initializers and
 * shuffles, and scores it on the held-out rows in the label's own units; each candidate's predict
 * latency is measured on one row. The winner (best mean of the chosen metric) is trained again on
 * every row and returned with its pipeline, ready to save.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { checkInteger, checkOptions, isPlainObject } from '../core/validation.js';
import { frameOf, prepare, type Pipeline, type PreparationOptions, type RawRows } from '../data/pipeline.js';
import { seededFolds } from '../data/seeded-split.js';
import { ACTIVATIONS } from '../layers/activations.js';
import { dense } from '../layers/dense.js';
import { initializers } from '../layers/initializers.js';
import { sequential, type Sequential } from '../model/sequential.js';
import type { ActivationName, LossName, OptimizerName } from '../native/index.js';
import { adam, adamw, rmsprop, sgd } from '../train/optimizers.js';

/** One candidate: hidden layers (the output layer follows from the task) and how it trains. */
export interface CandidateSpec {
  /** Its name in the table (default: the hidden layers, e.g. "64relu-32relu"). */
  name?: string;
  /** Hidden layers, first to last. */
  layers: { units: number; activation?: ActivationName }[];
  /** 'adam' (default), 'sgd', 'adamw' or 'rmsprop'. */
  optimizer?: OptimizerName;
  /** The optimizer's learning rate (default 0.001; sgd 0.01). */
  learningRate?: number;
  /** Passes over the training rows (default 20). */
  epochs?: number;
  /** Rows per step (default 32). */
  batchSize?: number;
}

/** The metrics a selection scores: classification's, or regression's in the label's units. */
export type SelectionMetric = 'accuracy' | 'loss' | 'mae' | 'rmse';

/** selectModel()'s options. */
export interface SelectOptions {
  /** The column to predict. */
  label: string;
  /** Folds of the cross-validation (default 5). */
  folds?: number;
  /** What ranks the candidates (default accuracy for classification, mae for regression). */
  metric?: SelectionMetric;
  /** Seed of the folds, the initializers and the shuffles (default 0). */
  seed?: number;
  /** The preparation's options (missing values, scaling, …), as prepare() takes them, but the label; scaleLabel defaults to true. */
  preparation?: Omit<PreparationOptions, 'label'>;
}

/** A metric over the folds. */
export interface FoldScores {
  mean: number;
  sd: number;
  folds: number[];
}

/** One candidate's scores. */
export interface CandidateResult {
  name: string;
  spec: CandidateSpec;
  /** Weights of the model (on the whole table's features). */
  params: number;
  metrics: Partial<Record<SelectionMetric, FoldScores>>;
  /** Median time of predict on one row, µs (the model on the whole table's features). */
  latencyUs: number;
}

/** What selectModel() found. */
export interface Selection {
  task: 'classification' | 'regression';
  metric: SelectionMetric;
  /** Every candidate, in the order given. */
  results: CandidateResult[];
  /** The best by the metric's mean (ties: the first given). */
  winner: CandidateResult;
  /** The winner trained on every row, with its preparation pipeline set. */
  model: Sequential;
}

const MAX_CANDIDATES = 64;
const MAX_FOLDS = 20;
const LATENCY_CALLS = 200;

/** The metrics a task reports, and whether more is better. */
const TASK_METRICS: Record<'classification' | 'regression', SelectionMetric[]> = {
  classification: ['accuracy', 'loss'],
  regression: ['mae', 'rmse'],
};
const HIGHER_IS_BETTER: Record<SelectionMetric, boolean> = { accuracy: true, loss: false, mae: false, rmse: false };

/** Checks one candidate; `what` names it in errors ("candidates[2]"). */
export function checkCandidate(value: unknown, what: string): CandidateSpec {
  const o = checkOptions(what, value, ['name', 'layers', 'optimizer', 'learningRate', 'epochs', 'batchSize']);
  if (!Array.isArray(o.layers) || o.layers.length === 0 || o.layers.length > 16)
    throw invalidParameter(`${what}.layers`, 'an array of 1 to 16 hidden layers', o.layers);
  o.layers.forEach((l: unknown, j) => {
    const layer = checkOptions(`${what}.layers[${j}]`, l, ['units', 'activation']);
    checkInteger(`${what}.layers[${j}].units`, layer.units, 1, 65536);
    if (layer.activation !== undefined && !ACTIVATIONS.includes(layer.activation as ActivationName))
      throw invalidParameter(`${what}.layers[${j}].activation`, `one of ${ACTIVATIONS.join(', ')}`, layer.activation);
  });
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 64))
    throw invalidParameter(`${what}.name`, 'a name of 1 to 64 characters', o.name);
  if (o.epochs !== undefined) checkInteger(`${what}.epochs`, o.epochs, 1, 10_000);
  if (o.batchSize !== undefined) checkInteger(`${what}.batchSize`, o.batchSize, 1, 65536);
  if (o.optimizer !== undefined && !['adam', 'adamw', 'rmsprop', 'sgd'].includes(o.optimizer as string))
    throw invalidParameter(
      `${what}.optimizer`,
      "'adam', 'adamw', 'rmsprop' or 'sgd'",
      o.optimizer,
      'MAAS_ERR_ARG_RANGE',
    );
  if (
    o.learningRate !== undefined &&
    !(typeof o.learningRate === 'number' && o.learningRate > 0 && o.learningRate < 10)
  )
    throw invalidParameter(`${what}.learningRate`, 'a number in (0, 10)', o.learningRate, 'MAAS_ERR_ARG_RANGE');
  return value as CandidateSpec;
}

/** The candidate's name: its own, or its hidden layers ("64relu-32relu"). */
function nameOf(spec: CandidateSpec): string {
  return spec.name ?? spec.layers.map((l) => `${l.units}${l.activation ?? 'relu'}`).join('-');
}

/** The candidate as a compiled model for `inputs` features and the pipeline's task, seeded. */
function buildModel(spec: CandidateSpec, pipeline: Pipeline, seed: number): Sequential {
  const classes = pipeline.classes;
  const outputs = classes ? (classes.length === 2 ? 1 : classes.length) : 1;
  const head: ActivationName = classes ? (classes.length === 2 ? 'sigmoid' : 'softmax') : 'linear';
  const loss: LossName = classes
    ? classes.length === 2
      ? 'binaryCrossentropy'
      : 'sparseCategoricalCrossentropy'
    : 'meanSquaredError';
  const widths = [
    ...spec.layers.map((l) => ({ units: l.units, activation: l.activation ?? 'relu' })),
    { units: outputs, activation: head },
  ];
  const model = sequential({
    layers: widths.map((l, i) =>
      dense({
        units: l.units,
        activation: l.activation,
        kernelInitializer: initializers.glorotUniform({ seed: (seed + i) >>> 0 }),
        ...(i === 0 ? { inputShape: [pipeline.width] } : {}),
      }),
    ),
  });
  const name = spec.optimizer ?? 'adam';
  const learningRate = spec.learningRate ?? (name === 'sgd' ? 0.01 : 0.001);
  const optimizer = { adam, adamw, rmsprop, sgd }[name]({ learningRate });
  model.compile({ optimizer, loss });
  return model;
}

/** The candidate's scores on rows it did not train on, in the label's units. */
function score(
  model: Sequential,
  pipeline: Pipeline,
  x: Float32Array,
  y: Float32Array,
): Partial<Record<SelectionMetric, number>> {
  const rows = y.length;
  const out = model.predict(x);
  const p = out.values;
  const width = p.length / rows;
  try {
    const classes = pipeline.classes;
    if (classes) {
      let right = 0;
      let loss = 0;
      for (let r = 0; r < rows; r++) {
        const truth = y[r]!;
        let predicted: number;
        let probability: number;
        if (width === 1) {
          predicted = p[r]! > 0.5 ? 1 : 0;
          probability = truth === 1 ? p[r]! : 1 - p[r]!;
        } else {
          predicted = 0;
          for (let j = 1; j < width; j++) if (p[r * width + j]! > p[r * width + predicted]!) predicted = j;
          probability = p[r * width + truth]!;
        }
        if (predicted === truth) right++;
        loss -= Math.log(Math.min(1, Math.max(1e-7, probability)));
      }
      return { accuracy: right / rows, loss: loss / rows };
    }
    // Regression: decode gives the label's units (the label may be standardized: scaleLabel).
    const predicted = pipeline.decode(p, rows) as number[];
    const truth = pipeline.decode(y, rows) as number[];
    let abs = 0;
    let sq = 0;
    for (let r = 0; r < rows; r++) {
      const e = predicted[r]! - truth[r]!;
      abs += Math.abs(e);
      sq += e * e;
    }
    return { mae: abs / rows, rmse: Math.sqrt(sq / rows) };
  } finally {
    out.dispose();
  }
}

function summary(values: number[]): FoldScores {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / Math.max(1, values.length - 1));
  return { mean, sd, folds: values };
}

/** Median µs of predict on one row. */
function latencyOf(model: Sequential, width: number): number {
  const row = new Float32Array(width);
  for (let i = 0; i < 20; i++) model.predict(row).dispose();
  const times: number[] = [];
  for (let i = 0; i < LATENCY_CALLS; i++) {
    const start = process.hrtime.bigint();
    model.predict(row).dispose();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

/**
 * Compares `candidates` by k-fold cross-validation on `table` (records, a DataFrame or a CSV
 * table) predicting `options.label`, and returns every candidate's scores and the winner trained
 * on every row.
 */
export async function selectModel(
  candidates: readonly CandidateSpec[],
  table: RawRows,
  options: SelectOptions,
): Promise<Selection> {
  const o = checkOptions('selectModel options', options, ['label', 'folds', 'metric', 'seed', 'preparation']);
  if (!Array.isArray(candidates) || candidates.length === 0 || candidates.length > MAX_CANDIDATES)
    throw invalidParameter('candidates', `an array of 1 to ${MAX_CANDIDATES} candidate specs`, candidates);
  const specs = candidates.map((c, i) => checkCandidate(c, `candidates[${i}]`));
  if (typeof o.label !== 'string' || o.label.length === 0)
    throw invalidParameter('selectModel options.label', 'the name of the column to predict', o.label);
  const label = o.label;
  const folds = o.folds === undefined ? 5 : checkInteger('selectModel options.folds', o.folds, 2, MAX_FOLDS);
  const seed = o.seed === undefined ? 0 : checkInteger('selectModel options.seed', o.seed, 0, 2 ** 32 - 1);
  if (o.preparation !== undefined && !isPlainObject(o.preparation))
    throw invalidParameter('selectModel options.preparation', 'prepare() options', o.preparation);
  // A regression trains on the standardized label (scaleLabel) unless told otherwise; its scores
  // are in the label's units all the same.
  const preparation = {
    scaleLabel: true,
    ...(o.preparation as Omit<PreparationOptions, 'label'> | undefined),
    label,
    onWarning: 'ignore' as const,
  };
  const frame = frameOf(table, 'ignore', 'selectModel table');
  if (!frame.has(label))
    throw new MaasError(
      'MAAS_ERR_DATA_COLUMNS',
      `The table has no column '${label}' to predict (columns: ${frame.columns.join(', ')})`,
    );

  // The whole table's pipeline says the task and sizes the latency measurement.
  const whole = prepare(frame, preparation);
  const task: 'classification' | 'regression' =
    whole.pipeline.task === 'classification' ? 'classification' : 'regression';
  const metric = (o.metric ?? (task === 'classification' ? 'accuracy' : 'mae')) as SelectionMetric;
  if (!TASK_METRICS[task].includes(metric))
    throw invalidParameter(
      'selectModel options.metric',
      `one of ${TASK_METRICS[task].join(', ')} for ${task}`,
      metric,
      'MAAS_ERR_ARG_RANGE',
    );

  const labels = frame.column(label);
  if (task === 'classification') {
    // Every class must be in every fold's training rows, or that fold cannot score its own rows.
    const counts = new Map<string, number>();
    for (const v of labels) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
    const rare = [...counts].filter(([, n]) => n < folds);
    if (rare.length > 0)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `${folds}-fold cross-validation needs at least ${folds} rows of each class of '${label}'; ${rare
          .slice(0, 5)
          .map(([c, n]) => `'${c}' has ${n}`)
          .join(', ')}: use fewer folds, or more rows`,
      );
  }
  const parts = seededFolds(frame.length, (r) => (task === 'classification' ? String(labels[r]) : ''), { folds, seed });
  // Each fold's preparation is told the task the whole table has, so a fold cannot read it otherwise.
  const foldPreparation = { ...preparation, task };
  const scores = specs.map(() => TASK_METRICS[task].map(() => [] as number[]));
  for (let k = 0; k < folds; k++) {
    const test = parts[k]!;
    const train = parts.filter((_, j) => j !== k).flat();
    const { pipeline, x, y } = prepare(frame.take(train), foldPreparation);
    const held = pipeline.apply(frame.take(test), { onWarning: 'ignore' });
    for (const [c, spec] of specs.entries()) {
      const model = buildModel(spec, pipeline, (seed + 101 * c) >>> 0);
      try {
        await model.fit(x, y!, {
          epochs: spec.epochs ?? 20,
          batchSize: spec.batchSize ?? 32,
          seed: (seed + k) >>> 0,
          verbose: 0,
        });
        const got = score(model, pipeline, held.x, held.y!);
        TASK_METRICS[task].forEach((m, i) => scores[c]![i]!.push(got[m]!));
      } finally {
        model.dispose();
      }
    }
  }

  const results: CandidateResult[] = specs.map((spec, c) => {
    const model = buildModel(spec, whole.pipeline, (seed + 101 * c) >>> 0);
    const result = {
      name: nameOf(spec),
      spec,
      params: model.countParams(),
      metrics: Object.fromEntries(TASK_METRICS[task].map((m, i) => [m, summary(scores[c]![i]!)])),
      latencyUs: latencyOf(model, whole.pipeline.width),
    };
    model.dispose();
    return result;
  });
  // A candidate that diverged (NaN) never wins; ties go to the first given.
  const better = HIGHER_IS_BETTER[metric] ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  let best = -1;
  for (let c = 0; c < results.length; c++) {
    const mean = results[c]!.metrics[metric]!.mean;
    if (!Number.isNaN(mean) && (best < 0 || better(mean, results[best]!.metrics[metric]!.mean))) best = c;
  }
  if (best < 0)
    throw new MaasError(
      'MAAS_ERR_TRAIN_DIVERGED',
      `Every candidate's ${metric} is NaN: training diverged (try a smaller learningRate)`,
    );
  const winner = results[best]!;
  const model = buildModel(specs[best]!, whole.pipeline, (seed + 101 * best) >>> 0);
  await model.fit(whole.x, whole.y!, {
    epochs: winner.spec.epochs ?? 20,
    batchSize: winner.spec.batchSize ?? 32,
    seed,
    verbose: 0,
  });
  model.setPreparation(whole.pipeline);
  return { task, metric, results, winner, model };
}
