/**
 * The training loop behind compile/fit/evaluate/trainOnBatch: validates x and y at the boundary,
 * batches (shuffled with a seed), calls the native step once per batch, accumulates metrics,
 * runs callbacks, and yields to the event loop so fit never blocks it for long.
 */
import { SingleBar, Presets } from 'cli-progress';
import { MaasError, fromNative, invalidParameter } from '../core/errors.js';
import { Random, randomSeed } from '../core/random.js';
import { Tensor, toMatrix } from '../core/tensor.js';
import { checkBoolean, checkFinite, checkInteger, checkOptions } from '../core/validation.js';
import { LOSS_CODES, type LossName, type NativeTrainer } from '../native/index.js';
import { Callback, History, type CustomCallbackArgs, type Logs, type Stoppable } from './callbacks.js';
import { createMetric, type MetricAccumulator, type MetricName } from './metrics.js';
import { getOptimizer, type Optimizer } from './optimizers.js';

/** The loss names compile() accepts. */
export const LOSS_NAMES = Object.keys(LOSS_CODES) as LossName[];

/** compile()'s arguments, as in tfjs. */
export interface CompileArgs {
  /** An optimizer (sgd(), adam(), …) or its name with default settings. */
  optimizer: Optimizer | 'sgd' | 'adam' | 'adamw' | 'rmsprop';
  /** The loss to minimise; see LOSS_NAMES. */
  loss: LossName;
  /** Metrics evaluated with the loss and logged per epoch; see METRIC_NAMES. */
  metrics?: MetricName[] | MetricName;
  /**
   * The precision of the training step's products: 'fp32' (default), or 'bf16' for mixed
   * precision: the forward and backward matrix products round their operands to bf16 and sum in
   * fp32, while weights, gradients, losses and optimizer updates stay fp32 (the master weights).
   */
  precision?: 'fp32' | 'bf16';
}

/** A validated compile configuration. */
export interface CompiledConfig {
  optimizer: Optimizer;
  loss: LossName;
  metrics: MetricName[];
  precision: 'fp32' | 'bf16';
}

/** Checks compile() arguments. */
export function parseCompileArgs(args: unknown): CompiledConfig {
  const o = checkOptions('compile', args, ['optimizer', 'loss', 'metrics', 'precision']);
  if (o.precision !== undefined && o.precision !== 'fp32' && o.precision !== 'bf16')
    throw invalidParameter('compile.precision', "'fp32' or 'bf16'", o.precision, 'MAAS_ERR_ARG_RANGE');
  if (typeof o.loss !== 'string' || !(LOSS_NAMES as string[]).includes(o.loss)) {
    throw invalidParameter(
      'compile.loss',
      `one of ${LOSS_NAMES.map((l) => `'${l}'`).join(', ')}`,
      o.loss,
      'MAAS_ERR_ARG_RANGE',
    );
  }
  const metrics = o.metrics === undefined ? [] : Array.isArray(o.metrics) ? o.metrics : [o.metrics];
  for (const m of metrics) createMetric(m, o.loss as LossName, 1); // validates the name
  return {
    optimizer: getOptimizer(o.optimizer),
    loss: o.loss as LossName,
    metrics: metrics as MetricName[],
    precision: o.precision ?? 'fp32',
  };
}

/** What the engine needs from a model. */
export interface TrainingTarget extends Stoppable {
  readonly inputDim: number;
  readonly outputDim: number;
  readonly config: CompiledConfig;
  /** The native trainer over the model's current weight arrays. */
  trainer(): NativeTrainer;
  /** Called after weights changed, so inference repacks them. */
  weightsChanged(): void;
}

/** x and y as flat rows. */
export interface Dataset {
  x: Float32Array;
  y: Float32Array;
  rows: number;
  yWidth: number;
}

/** Reads and checks x and y: matching rows, the model's widths, finite targets and class indices. */
export function toDataset(
  x: unknown,
  y: unknown,
  target: Pick<TrainingTarget, 'inputDim' | 'outputDim' | 'config'>,
): Dataset {
  const xm = toMatrix(x, target.inputDim, 'x');
  const sparse = target.config.loss === 'sparseCategoricalCrossentropy';
  const yWidth = sparse ? 1 : target.outputDim;
  // Sparse labels may come as a rank-1 vector of class indices, as tfjs takes them.
  const labels =
    sparse && Array.isArray(y) && y.every((v) => typeof v === 'number')
      ? Float32Array.from(y)
      : sparse && y instanceof Tensor && y.rank === 1
        ? y.values
        : y;
  const ym = toMatrix(labels, yWidth, 'y');
  if (ym.rows !== xm.rows) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected y to have as many rows as x (${xm.rows}) but received ${ym.rows}`,
    );
  }
  for (let i = 0; i < ym.data.length; i++) {
    const v = ym.data[i]!;
    if (!Number.isFinite(v) || (sparse && (v < 0 || v >= target.outputDim || !Number.isInteger(v)))) {
      const want = sparse ? `class indices in [0, ${target.outputDim})` : 'finite targets';
      throw new MaasError(
        'MAAS_ERR_TARGETS_INVALID',
        `Expected ${want} for y but row ${Math.floor(i / yWidth)} holds ${v}`,
      );
    }
  }
  return { x: xm.data, y: ym.data, rows: xm.rows, yWidth };
}

/** fit()'s options, as in tfjs. */
export interface FitArgs {
  /** Passes over the training rows (default 1). */
  epochs?: number;
  /** Rows per training step (default 32). */
  batchSize?: number;
  /** Fraction of the rows, taken from the end, held out for validation (val_ logs). */
  validationSplit?: number;
  /** Validation rows as [x, y], instead of validationSplit. */
  validationData?: [unknown, unknown];
  /** Shuffle the rows before each epoch (default true). */
  shuffle?: boolean;
  /** Seed of the per-epoch shuffles (reproducible runs); random when omitted. */
  seed?: number;
  /** Callback objects or hook objects called during training. */
  callbacks?: (Callback | CustomCallbackArgs)[] | Callback | CustomCallbackArgs;
  /** 0 silent, 1 progress bar on a terminal (one line per epoch elsewhere), 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** The epoch to start counting from (to resume training; default 0). */
  initialEpoch?: number;
}

/** Yields to the event loop when this much time passed since the last yield. */
const YIELD_EVERY_MS = 10;
const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function slice(d: Dataset, begin: number, end: number): Dataset {
  return {
    x: d.x.subarray(begin * (d.x.length / d.rows), end * (d.x.length / d.rows)),
    y: d.y.subarray(begin * d.yWidth, end * d.yWidth),
    rows: end - begin,
    yWidth: d.yWidth,
  };
}

/** Copies rows `order[begin..end)` into the batch buffers (a shuffled batch is one copy). */
function gather(d: Dataset, order: Uint32Array, begin: number, end: number, bx: Float32Array, by: Float32Array): void {
  const xw = d.x.length / d.rows;
  for (let i = begin; i < end; i++) {
    const r = order[i]!;
    bx.set(d.x.subarray(r * xw, (r + 1) * xw), (i - begin) * xw);
    by.set(d.y.subarray(r * d.yWidth, (r + 1) * d.yWidth), (i - begin) * d.yWidth);
  }
}

function accumulators(t: TrainingTarget): MetricAccumulator[] {
  return t.config.metrics.map((m) => createMetric(m, t.config.loss, t.outputDim));
}

/** Loss and metrics over batches evaluated one after another, without updating the model. */
class Evaluation {
  private readonly trainer: NativeTrainer;
  private readonly metrics: MetricAccumulator[];
  private readonly sparse: boolean;
  private preds = new Float32Array(0);
  private lossSum = 0;
  private rows = 0;

  constructor(private readonly t: TrainingTarget) {
    this.trainer = t.trainer();
    this.metrics = accumulators(t);
    this.sparse = t.config.loss === 'sparseCategoricalCrossentropy';
  }

  add(d: Dataset): void {
    const width = this.t.outputDim;
    if (this.preds.length < d.rows * width) this.preds = new Float32Array(d.rows * width);
    const p = this.preds.subarray(0, d.rows * width);
    let r;
    try {
      r = this.trainer.evaluate(d.x, d.y, d.rows, p);
    } catch (e) {
      throw fromNative(e);
    }
    this.lossSum += r.loss * d.rows;
    this.rows += d.rows;
    for (const m of this.metrics) m.add(p, d.y, d.rows, width, this.sparse);
  }

  logs(): Logs {
    const logs: Logs = { loss: this.lossSum / this.rows };
    for (const m of this.metrics) logs[m.name] = m.result();
    return logs;
  }

  get empty(): boolean {
    return this.rows === 0;
  }
}

/** Runs the model over a dataset in batches without updating it: loss and metric values. */
export function evaluateDataset(t: TrainingTarget, d: Dataset, batchSize: number): Logs {
  const evaluation = new Evaluation(t);
  for (let b = 0; b < d.rows; b += batchSize) evaluation.add(slice(d, b, Math.min(d.rows, b + batchSize)));
  return evaluation.logs();
}

/**
 * One native step on rows of x and y: sets the optimizer (its learning rate may have changed),
 * runs the step, feeds the predictions to the metrics. Returns the batch loss.
 */
function step(
  t: TrainingTarget,
  x: Float32Array,
  y: Float32Array,
  rows: number,
  preds: Float32Array,
  metrics: MetricAccumulator[],
): number {
  const trainer = t.trainer();
  trainer.setOptimizer(t.config.optimizer.toNative());
  const p = preds.subarray(0, rows * t.outputDim);
  let loss: number;
  try {
    loss = trainer.step(x, y, rows, p).loss;
  } catch (e) {
    throw fromNative(e);
  }
  for (const m of metrics) m.add(p, y, rows, t.outputDim, t.config.loss === 'sparseCategoricalCrossentropy');
  return loss;
}

/** One native step on one batch; returns the loss and metrics of that batch. */
export function trainBatch(t: TrainingTarget, d: Dataset): Logs {
  const metrics = accumulators(t);
  const logs: Logs = { loss: step(t, d.x, d.y, d.rows, new Float32Array(d.rows * t.outputDim), metrics) };
  t.weightsChanged();
  for (const m of metrics) logs[m.name] = m.result();
  return logs;
}

function parseFitArgs(args: unknown) {
  const o = checkOptions('fit', args, [
    'epochs',
    'batchSize',
    'validationSplit',
    'validationData',
    'shuffle',
    'seed',
    'callbacks',
    'verbose',
    'initialEpoch',
  ]);
  const split = o.validationSplit === undefined ? 0 : checkFinite('fit.validationSplit', o.validationSplit);
  if (split < 0 || split >= 1)
    throw invalidParameter('fit.validationSplit', 'a number in [0, 1)', o.validationSplit, 'MAAS_ERR_ARG_RANGE');
  if (o.validationData !== undefined && (!Array.isArray(o.validationData) || o.validationData.length !== 2)) {
    throw invalidParameter('fit.validationData', 'an array [x, y]', o.validationData);
  }
  const callbacks = o.callbacks === undefined ? [] : Array.isArray(o.callbacks) ? o.callbacks : [o.callbacks];
  return {
    epochs: o.epochs === undefined ? 1 : checkInteger('fit.epochs', o.epochs, 1),
    batchSize: o.batchSize === undefined ? 32 : checkInteger('fit.batchSize', o.batchSize, 1),
    split,
    validationData: o.validationData as [unknown, unknown] | undefined,
    shuffle: o.shuffle === undefined ? true : checkBoolean('fit.shuffle', o.shuffle),
    seed: o.seed === undefined ? randomSeed() : checkInteger('fit.seed', o.seed, 0, 2 ** 32 - 1),
    callbacks: callbacks as (Callback | CustomCallbackArgs)[],
    verbose: o.verbose === undefined ? 1 : checkInteger('fit.verbose', o.verbose, 0, 2),
    initialEpoch: o.initialEpoch === undefined ? 0 : checkInteger('fit.initialEpoch', o.initialEpoch, 0),
  };
}

function formatLogs(logs: Logs): string {
  return Object.entries(logs)
    .map(([k, v]) => `${k}=${v.toPrecision(4)}`)
    .join(' ');
}

/** Trains on x and y in memory for `epochs`, shuffling the rows each epoch (fit). */
export async function fitArrays(t: TrainingTarget, x: unknown, y: unknown, args: unknown): Promise<History> {
  const a = parseFitArgs(args);
  const all = toDataset(x, y, t);
  let train = all;
  let validation: Dataset | null = null;
  if (a.validationData) {
    validation = toDataset(a.validationData[0], a.validationData[1], t);
  } else if (a.split > 0) {
    // As tfjs: the last fraction of the rows, taken before any shuffling.
    const cut = Math.floor(all.rows * (1 - a.split));
    if (cut === 0 || cut === all.rows)
      throw invalidParameter(
        'fit.validationSplit',
        `a split leaving rows on both sides of ${all.rows}`,
        a.split,
        'MAAS_ERR_ARG_RANGE',
      );
    train = slice(all, 0, cut);
    validation = slice(all, cut, all.rows);
  }
  const rng = new Random(a.seed);
  const order = Uint32Array.from({ length: train.rows }, (_, i) => i);
  const bx = new Float32Array(Math.min(a.batchSize, train.rows) * t.inputDim);
  const by = new Float32Array(Math.min(a.batchSize, train.rows) * train.yWidth);
  const batches = Math.ceil(train.rows / a.batchSize);
  function* epochBatches(): Generator<Dataset> {
    if (a.shuffle) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const tmp = order[i]!;
        order[i] = order[j]!;
        order[j] = tmp;
      }
    }
    for (let b = 0; b < batches; b++) {
      const begin = b * a.batchSize;
      const end = Math.min(train.rows, begin + a.batchSize);
      if (!a.shuffle) {
        yield slice(train, begin, end);
        continue;
      }
      gather(train, order, begin, end, bx, by);
      const rows = end - begin;
      yield {
        x: bx.subarray(0, rows * t.inputDim),
        y: by.subarray(0, rows * train.yWidth),
        rows,
        yWidth: train.yWidth,
      };
    }
  }
  return trainEpochs(t, a, {
    batches,
    epoch: epochBatches,
    validate: validation ? () => Promise.resolve(evaluateDataset(t, validation, a.batchSize)) : null,
  });
}

/** What trainEpochs runs over: each epoch's batches, how many (when known), and the validation. */
interface EpochSource {
  batches: number | null;
  epoch(): Iterable<Dataset> | AsyncIterable<Dataset>;
  validate: (() => Promise<Logs>) | null;
  /** Called when an epoch's batches end; false stops training (a dataset that cannot be read again). */
  more?: () => boolean;
}

/** The epoch loop of fit and fitDataset: callbacks, one native step per batch, metrics, yields to the event loop. */
async function trainEpochs(
  t: TrainingTarget,
  a: Pick<ReturnType<typeof parseFitArgs>, 'epochs' | 'callbacks' | 'verbose' | 'initialEpoch'>,
  source: EpochSource,
): Promise<History> {
  const history = new History();
  const callbacks = a.callbacks;
  for (const cb of callbacks) if (cb instanceof Callback) cb.setModel(t);
  const call = async <K extends keyof CustomCallbackArgs>(
    hook: K,
    ...params: Parameters<NonNullable<CustomCallbackArgs[K]>>
  ): Promise<void> => {
    for (const cb of callbacks) {
      const fn = (cb as CustomCallbackArgs)[hook] as ((...p: unknown[]) => unknown) | undefined;
      if (fn) await fn.apply(cb, params);
    }
  };
  let preds = new Float32Array(0);
  const bar =
    a.verbose === 1 && process.stdout.isTTY && source.batches !== null
      ? new SingleBar(
          { format: 'epoch {epoch} [{bar}] {value}/{total} | {logs}', hideCursor: true },
          Presets.shades_classic,
        )
      : null;
  t.stopTraining = false;
  await call('onTrainBegin');
  let lastYield = performance.now();
  for (let epoch = a.initialEpoch; epoch < a.epochs && !t.stopTraining; epoch++) {
    await call('onEpochBegin', epoch);
    const metrics = accumulators(t);
    let lossSum = 0;
    let seen = 0;
    let b = 0;
    bar?.start(source.batches!, 0, { epoch: epoch + 1, logs: '' });
    for await (const batch of source.epoch()) {
      await call('onBatchBegin', b);
      if (preds.length < batch.rows * t.outputDim) preds = new Float32Array(batch.rows * t.outputDim);
      const loss = step(t, batch.x, batch.y, batch.rows, preds, metrics);
      lossSum += loss * batch.rows;
      seen += batch.rows;
      bar?.update(b + 1, { logs: `loss=${loss.toPrecision(4)}` });
      await call('onBatchEnd', b, { loss, size: batch.rows });
      b++;
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await nextTick();
        lastYield = performance.now();
      }
    }
    t.weightsChanged();
    // Every epoch gives the event loop a turn, however fast the epoch was.
    await nextTick();
    lastYield = performance.now();
    if (seen === 0)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `Epoch ${epoch + 1} had no rows to train on: the dataset gave no batches`,
      );
    const logs: Logs = { loss: lossSum / seen };
    for (const m of metrics) logs[m.name] = m.result();
    if (source.validate) {
      const v = await source.validate();
      for (const [k, val] of Object.entries(v)) logs[`val_${k}`] = val;
    }
    bar?.update(b, { logs: formatLogs(logs) });
    bar?.stop();
    if (!bar && a.verbose >= 1) console.log(`Epoch ${epoch + 1}/${a.epochs} ${formatLogs(logs)}`);
    history.record(epoch, logs);
    await call('onEpochEnd', epoch, logs);
    if (source.more && !source.more()) break;
  }
  await call(
    'onTrainEnd',
    history.epoch.length
      ? Object.fromEntries(Object.entries(history.history).map(([k, v]) => [k, v[v.length - 1]!]))
      : {},
  );
  return history;
}

/** One element of a dataset: a batch of features and targets, as tfjs's fitDataset takes it. */
export interface BatchLike {
  /** Features: rows × the model's inputs (a Tensor, a Float32Array or nested arrays). */
  xs: unknown;
  /** Targets for those rows, as fit takes y. */
  ys: unknown;
}

/** tfjs's Dataset, as fitDataset reads it: iterator() resolves to an iterator of batches. */
export interface DatasetLike {
  /** A new pass over the dataset: an iterator whose next() resolves to each batch in turn. */
  iterator(): Promise<{
    /** The next batch, or done at the pass's end. */
    next(): Promise<IteratorResult<BatchLike>>;
  }>;
}

/**
 * A source of batches for fitDataset: an async (or sync) iterable whose iterator starts a new
 * pass each time (csvDataset, an array of batches, tfjs's Dataset through its iterator()), or a
 * function returning a fresh iterable. A generator object can be read once: one epoch.
 */
export type BatchSource =
  AsyncIterable<BatchLike> | Iterable<BatchLike> | DatasetLike | (() => AsyncIterable<BatchLike> | Iterable<BatchLike>);

/** fitDataset()'s options, as in tfjs. */
export interface FitDatasetArgs {
  /** Passes over the dataset (default 1). */
  epochs?: number;
  /** Batches per epoch: the iterator then runs on across epochs, starting a new pass when it ends. */
  batchesPerEpoch?: number;
  /** Validation batches (a dataset) or [x, y] in memory, evaluated after each epoch (val_ logs). */
  validationData?: BatchSource | [unknown, unknown];
  /** Callback objects or hook objects called during training. */
  callbacks?: (Callback | CustomCallbackArgs)[] | Callback | CustomCallbackArgs;
  /** 0 silent, 1 progress bar on a terminal when the batch count is known, 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** The epoch to start counting from (default 0). */
  initialEpoch?: number;
}

/** A fresh pass over a batch source, and whether it can give another. */
function openPass(source: BatchSource): { batches: AsyncIterator<BatchLike> | Iterator<BatchLike>; again: boolean } {
  const what = 'fitDataset(dataset)';
  let s: unknown = source;
  if (typeof s === 'function') s = (s as () => unknown)();
  if (s !== null && typeof s === 'object') {
    const o = s as Record<PropertyKey, unknown>;
    if (typeof o[Symbol.asyncIterator] === 'function') {
      const it = (o[Symbol.asyncIterator] as () => AsyncIterator<BatchLike>).call(s);
      return { batches: it, again: typeof source === 'function' || it !== s };
    }
    if (typeof o[Symbol.iterator] === 'function') {
      const it = (o[Symbol.iterator] as () => Iterator<BatchLike>).call(s);
      return { batches: it, again: typeof source === 'function' || it !== s };
    }
    if (typeof o.iterator === 'function') {
      // tfjs's Dataset: iterator() resolves to a LazyIterator with next().
      const pending = (o.iterator as () => Promise<{ next(): Promise<IteratorResult<BatchLike>> }>).call(s);
      let lazy: { next(): Promise<IteratorResult<BatchLike>> } | null = null;
      return {
        batches: { next: async () => (lazy ??= await pending).next() },
        again: true,
      };
    }
  }
  throw invalidParameter(what, 'an iterable of {xs, ys} batches, a tfjs Dataset, or a function returning one', source);
}

/** A pass's batches checked and read as Datasets (xs rows × inputs, ys matching rows). */
async function* readBatches(
  t: TrainingTarget,
  it: AsyncIterator<BatchLike> | Iterator<BatchLike>,
  limit: number,
  what: string,
): AsyncGenerator<Dataset> {
  for (let i = 0; i < limit; i++) {
    const next = await it.next();
    if (next.done) return;
    const batch = next.value as unknown;
    if (batch === null || typeof batch !== 'object' || !('xs' in batch) || !('ys' in batch))
      throw invalidParameter(`${what} batch ${i}`, 'an object {xs, ys}', batch);
    yield toDataset(batch.xs, batch.ys, t);
  }
}

/**
 * Trains on a dataset of batches (tfjs's fitDataset): data that does not fit in memory, read as
 * it trains. Each epoch is one pass (or batchesPerEpoch batches); validation data is evaluated
 * after each epoch.
 */
export async function fitDataset(t: TrainingTarget, dataset: unknown, args: unknown): Promise<History> {
  const o = checkOptions('fitDataset', args, [
    'epochs',
    'batchesPerEpoch',
    'validationData',
    'callbacks',
    'verbose',
    'initialEpoch',
  ]);
  const a = {
    epochs: o.epochs === undefined ? 1 : checkInteger('fitDataset.epochs', o.epochs, 1),
    callbacks: (o.callbacks === undefined ? [] : Array.isArray(o.callbacks) ? o.callbacks : [o.callbacks]) as (
      Callback | CustomCallbackArgs
    )[],
    verbose: o.verbose === undefined ? 1 : checkInteger('fitDataset.verbose', o.verbose, 0, 2),
    initialEpoch: o.initialEpoch === undefined ? 0 : checkInteger('fitDataset.initialEpoch', o.initialEpoch, 0),
  };
  const perEpoch =
    o.batchesPerEpoch === undefined ? null : checkInteger('fitDataset.batchesPerEpoch', o.batchesPerEpoch, 1);
  const source = dataset as BatchSource;
  let pass = openPass(source);
  if (!pass.again && perEpoch === null && a.epochs - a.initialEpoch > 1)
    throw invalidParameter(
      'fitDataset(dataset)',
      `a dataset that can be read once per epoch for ${a.epochs - a.initialEpoch} epochs (an iterable whose iterator starts a new pass, or a function returning a fresh one); a generator can be read once`,
      dataset,
    );
  let exhausted = false;
  const known = (dataset as { batchesPerEpoch?: unknown }).batchesPerEpoch;
  let validate: (() => Promise<Logs>) | null = null;
  const v = o.validationData;
  if (Array.isArray(v) && v.length === 2 && !(v[0] !== null && typeof v[0] === 'object' && 'xs' in v[0])) {
    const d = toDataset(v[0], v[1], t);
    validate = () => Promise.resolve(evaluateDataset(t, d, 256));
  } else if (v !== undefined) {
    const check = openPass(v as BatchSource);
    if (!check.again && a.epochs - a.initialEpoch > 1)
      throw invalidParameter('fitDataset.validationData', 'a dataset that can be read once per epoch, or [x, y]', v);
    let first: typeof check | null = check;
    validate = async () => {
      const p = first ?? openPass(v as BatchSource);
      first = null;
      return evaluateBatches(t, readBatches(t, p.batches, Infinity, 'validationData'));
    };
  }
  return trainEpochs(t, a, {
    batches: perEpoch ?? (typeof known === 'number' ? known : null),
    epoch: () => {
      if (exhausted) {
        pass = openPass(source);
        exhausted = false;
      }
      const reading = readBatches(t, pass.batches, perEpoch ?? Infinity, 'fitDataset');
      return (async function* () {
        let n = 0;
        for await (const d of reading) {
          n++;
          yield d;
        }
        // Without batchesPerEpoch every epoch is a whole pass; with it, a pass ends when it runs short.
        if (perEpoch === null || n < perEpoch) exhausted = true;
      })();
    },
    validate,
    more: () => !exhausted || pass.again,
  });
}

/** Loss and metrics over batches, without updating the model. */
async function evaluateBatches(t: TrainingTarget, batches: AsyncIterable<Dataset>): Promise<Logs> {
  const evaluation = new Evaluation(t);
  for await (const d of batches) evaluation.add(d);
  if (evaluation.empty) throw new MaasError('MAAS_ERR_DATA_FORMAT', 'The validation data gave no batches');
  return evaluation.logs();
}

/** Scalar tensors in tfjs's evaluate() shape: loss alone, or [loss, ...metrics]. */
export function toScalars(logs: Logs): Tensor | Tensor[] {
  const values = Object.values(logs).map((v) => new Tensor(Float32Array.of(v), []));
  return values.length === 1 ? values[0]! : values;
}
