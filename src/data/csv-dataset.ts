/**
 * csvDataset: training data from a CSV file larger than memory, for model.fitDataset. One
 * streaming pass fits the preparation (kinds inferred from the first rows, then means, variances
 * and categories over every row); every later pass reads the file again, prepares each row with
 * the fitted pipeline, shuffles through a bounded buffer and hands out batches {xs, ys}. For a
 * file, the reading runs in a thread of its own, so parsing overlaps the training step; memory
 * holds the buffer and a few batches whatever the file's size.
 */
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { ERRORS, MaasError, invalidParameter, type ErrorCode } from '../core/errors.js';
import { usableCores } from '../core/cores.js';
import { moduleEntry } from '../core/module-entry.js';
import { randomSeed } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { checkBoolean, checkInteger, checkOptions, isPlainObject } from '../core/validation.js';
import {
  batchPass,
  fitPass,
  type BatchPassOptions,
  type FitPassOptions,
  type FitPassResult,
  type RowBatch,
} from './csv-passes.js';
import type { DataThreadJob, DataThreadReply } from './csv-dataset-thread.js';
import type { ColumnKind } from './frame.js';
import {
  PREPARATION_OPTIONS,
  Pipeline,
  preparationSettings,
  type PreparationOptions,
  type PreparationReport,
} from './pipeline.js';
import { warn, type WarningSink } from './warnings.js';
import { delimiterCode } from './csv-scan.js';
import { native } from '../native/index.js';

/** csvDataset()'s options: how to read the file, how to batch it, and preparation()'s options. */
export interface CsvDatasetOptions extends PreparationOptions {
  /** Field delimiter (default ','). */
  delimiter?: string;
  /** Column names when the file has no header row. */
  columns?: string[];
  /** Kinds to give columns instead of inferring them from the first rows. */
  types?: Record<string, ColumnKind>;
  /** Rows read before the columns' kinds are inferred (default 10 000). */
  inferenceRows?: number;
  /** Rows per batch (default 32). */
  batchSize?: number;
  /** Rows in the shuffle buffer (default 10 000); false or 0 keeps the file's order. */
  shuffle?: number | boolean;
  /** Seed of the shuffles (each pass shuffles differently, reproducibly); random when omitted. */
  seed?: number;
  /** A fitted pipeline to apply instead of fitting one (validation and test files). */
  pipeline?: Pipeline;
  /** Fill input columns the file lacks with the saved policy instead of refusing the file. */
  allowMissing?: boolean;
}

/** One batch of a dataset, as tfjs's fitDataset takes it. */
export interface DatasetBatch {
  /** rows × features. */
  xs: Tensor;
  /** Class indices [rows] (classification) or values [rows, 1] (regression). */
  ys: Tensor;
}

/** Where the bytes come from: a file path (read in a thread), or a function giving a fresh stream per pass. */
export type CsvDatasetSource =
  string | (() => NodeJS.ReadableStream | Iterable<string | Buffer> | AsyncIterable<string | Buffer>);

/**
 * Batches a thread may have ready before the caller takes them: enough to cover the thread's
 * reading of a whole chunk (about 40 batches of 256 narrow rows, during which it sends none), in
 * at most PREFETCH_BYTES. With 4, training waited on the thread for two thirds of the batches.
 */
const PREFETCH_BATCHES = { least: 4, most: 32 };
const PREFETCH_BYTES = 8 * 2 ** 20;

function prefetchBatches(batchSize: number, width: number): number {
  const batchBytes = batchSize * (width + 1) * Float32Array.BYTES_PER_ELEMENT;
  return Math.min(PREFETCH_BATCHES.most, Math.max(PREFETCH_BATCHES.least, Math.floor(PREFETCH_BYTES / batchBytes)));
}
const DEFAULT_SHUFFLE = 10_000;

/** A CSV file as batches of prepared rows; each `for await` is one pass (one epoch). */
export class CsvDataset implements AsyncIterable<DatasetBatch> {
  private passes = 0;

  /** @internal made by csvDataset() */
  constructor(
    private readonly source: CsvDatasetSource,
    /** The preparation the batches are made with: save it with the model (setPreparation). */
    readonly pipeline: Pipeline,
    /** What the fitting pass found, or null when the pipeline was given. */
    readonly report: PreparationReport | null,
    /** Rows the fitting pass kept (an epoch's rows), or null when the pipeline was given. */
    readonly rows: number | null,
    private readonly pass: Omit<BatchPassOptions, 'seed'>,
    private readonly seed: number,
  ) {}

  /** Features per row (the model's input size). */
  get width(): number {
    return this.pipeline.width;
  }

  /** Rows per batch. */
  get batchSize(): number {
    return this.pass.batchSize;
  }

  /** Batches in one pass, when the fitting pass counted the rows. */
  get batchesPerEpoch(): number | null {
    return this.rows === null ? null : Math.ceil(this.rows / this.pass.batchSize);
  }

  /** One pass over the file, shuffled with this pass's seed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<DatasetBatch> {
    const seed = (this.seed + Math.imul(this.passes++, 0x9e3779b9)) >>> 0;
    const options: BatchPassOptions = { ...this.pass, seed };
    const batches =
      typeof this.source === 'string'
        ? threadBatches(this.source, options, this.width)
        : batchPass(asyncChunks(this.source()), options);
    const classification = this.pipeline.task === 'classification';
    for await (const b of batches) {
      yield {
        xs: new Tensor(b.x, [b.rows, this.width]),
        ys: new Tensor(b.y, classification ? [b.rows] : [b.rows, 1]),
      };
    }
  }
}

/**
 * Opens a CSV source for fitDataset: fits the preparation in one streaming pass (unless a fitted
 * `pipeline` is given), then reads it again for each epoch. Warnings (text columns, unparsed cells,
 * constant columns) go to `onWarning`, as prepare()'s do.
 */
export async function csvDataset(source: CsvDatasetSource, options: CsvDatasetOptions = {}): Promise<CsvDataset> {
  if (typeof source !== 'string' && typeof source !== 'function')
    throw invalidParameter(
      'csvDataset(source)',
      'a file path, or a function returning a fresh stream for each pass',
      source,
    );
  const reading = [
    'delimiter',
    'columns',
    'types',
    'inferenceRows',
    'batchSize',
    'shuffle',
    'seed',
    'pipeline',
    'allowMissing',
  ];
  const o = checkOptions('csvDataset options', options, [...PREPARATION_OPTIONS, ...reading]);
  const delimiter = o.delimiter === undefined ? ',' : (o.delimiter as string);
  delimiterCode(delimiter);
  const columns = o.columns as string[] | undefined;
  if (columns !== undefined && (!Array.isArray(columns) || !columns.every((c) => typeof c === 'string')))
    throw invalidParameter('csvDataset options.columns', 'an array of column names', columns);
  if (o.types !== undefined && !isPlainObject(o.types))
    throw invalidParameter('csvDataset options.types', 'an object of column: kind', o.types);
  const batchSize =
    o.batchSize === undefined ? 32 : checkInteger('csvDataset options.batchSize', o.batchSize, 1, 1 << 20);
  const shuffle =
    o.shuffle === undefined || o.shuffle === true
      ? DEFAULT_SHUFFLE
      : o.shuffle === false
        ? 0
        : checkInteger('csvDataset options.shuffle', o.shuffle, 0, 1 << 24);
  const seed = o.seed === undefined ? randomSeed() : checkInteger('csvDataset options.seed', o.seed, 0, 2 ** 32 - 1);
  const allowMissing =
    o.allowMissing === undefined ? false : checkBoolean('csvDataset options.allowMissing', o.allowMissing);
  const inferenceRows =
    o.inferenceRows === undefined ? 10_000 : checkInteger('csvDataset options.inferenceRows', o.inferenceRows, 1);
  const preparation = Object.fromEntries(
    PREPARATION_OPTIONS.filter((k) => o[k] !== undefined && k !== 'onWarning').map((k) => [k, o[k]]),
  );
  const sink = o.onWarning as WarningSink | undefined;

  let pipeline: Pipeline;
  let report: PreparationReport | null = null;
  let rows: number | null = null;
  let labelKind: ColumnKind;
  if (o.pipeline !== undefined) {
    if (!(o.pipeline instanceof Pipeline))
      throw invalidParameter('csvDataset options.pipeline', 'a fitted Pipeline (prepare(…).pipeline)', o.pipeline);
    const fitting = Object.keys(preparation);
    if (fitting.length > 0)
      throw invalidParameter(
        'csvDataset options',
        'either a fitted pipeline or preparation options, not both',
        fitting.join(', '),
        'MAAS_ERR_ARG_RANGE',
      );
    pipeline = o.pipeline;
    const classes = pipeline.classes;
    labelKind = classes && classes.every((c) => c !== '' && Number.isFinite(Number(c))) ? 'number' : 'category';
  } else {
    preparationSettings(preparation); // checks the options here, before the thread starts
    const fit: FitPassOptions = {
      delimiter,
      ...(columns ? { columns } : {}),
      ...(o.types ? { types: o.types as Record<string, ColumnKind> } : {}),
      inferenceRows,
      preparation,
    };
    const result =
      typeof source === 'string' ? await threadFit(source, fit) : await fitPass(asyncChunks(source()), fit);
    pipeline = Pipeline.fromJSON(result.pipeline);
    report = result.report;
    rows = result.report.rows - result.report.droppedRows;
    for (const w of report.warnings) warn(sink, w);
    const label = pipeline.label;
    labelKind = label === null ? 'category' : result.kinds[result.columns.indexOf(label)]!;
  }
  if (pipeline.label === null)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      'csvDataset needs a label column to train on: name it with options.label (or give a pipeline fitted with one)',
    );
  const pass: Omit<BatchPassOptions, 'seed'> = {
    delimiter,
    ...(columns ? { columns } : {}),
    pipeline: pipeline.toJSON(),
    batchSize,
    shuffle,
    allowMissing,
    labelKind,
  };
  return new CsvDataset(source, pipeline, report, rows, pass, seed);
}

/** Any accepted stream or iterable as an async iterable of chunks. */
function asyncChunks(input: unknown): AsyncIterable<Buffer | string> {
  if (typeof input === 'string' || Buffer.isBuffer(input)) return Readable.from([input]);
  if (input !== null && typeof input === 'object' && Symbol.asyncIterator in input)
    return input as AsyncIterable<Buffer | string>;
  if (input !== null && typeof input === 'object' && Symbol.iterator in input)
    return Readable.from(input as Iterable<Buffer | string>);
  throw invalidParameter('csvDataset(source)()', 'a stream or an iterable of text or bytes', input);
}

/** Starts the reading thread on a job; messages and the end come to `on`. */
function startThread(job: DataThreadJob, on: (reply: DataThreadReply | { type: 'exit'; why: string }) => void): Worker {
  const entry = moduleEntry(import.meta.url, 'csv-dataset-thread');
  const worker = new Worker(entry.threadEntry, {
    execArgv: entry.execArgv,
    workerData: { ...job, maasModule: entry.threadModule },
  });
  let failure: Error | null = null;
  worker.on('message', (m: DataThreadReply) => on(m));
  worker.on('error', (e) => (failure = e));
  worker.on('exit', (code) => on({ type: 'exit', why: failure ? failure.message : `exit code ${code}` }));
  return worker;
}

function threadError(reply: DataThreadReply | { type: 'exit'; why: string }): MaasError {
  if (reply.type === 'error') {
    const code = (reply.code in ERRORS ? reply.code : 'MAAS_ERR_DATA_FORMAT') as ErrorCode;
    return new MaasError(code, reply.message);
  }
  return new MaasError(
    'MAAS_ERR_DATA_THREAD',
    `The thread reading the CSV file stopped without an answer (${reply.type === 'exit' ? reply.why : reply.type})`,
  );
}

/** The fitting pass in a thread. */
function threadFit(path: string, options: FitPassOptions): Promise<FitPassResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const worker = startThread({ job: 'fit', path, options }, (reply) => {
      if (settled) return;
      settled = true;
      if (reply.type === 'fitted') resolve(reply.result);
      else reject(threadError(reply));
      void worker.terminate();
    });
  });
}

/** A batch pass in a thread: batches move to this thread as the caller takes them. */
async function* threadBatches(path: string, options: BatchPassOptions, width: number): AsyncGenerator<RowBatch> {
  const queue: (DataThreadReply | { type: 'exit'; why: string })[] = [];
  let wake: (() => void) | null = null;
  const credit = prefetchBatches(options.batchSize, width);
  const lent = lendCoreToReader();
  const worker = startThread({ job: 'batches', path, options, credit }, (reply) => {
    queue.push(reply);
    wake?.();
  });
  try {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      const reply = queue.shift()!;
      if (reply.type === 'batch') {
        worker.postMessage({ type: 'credit' });
        // While the caller holds a batch the thread keeps the process alive only if the caller
        // does: an iterator dropped mid-pass (never returned) must not keep Node from exiting.
        worker.unref();
        yield { x: reply.x, y: reply.y, rows: reply.rows };
        worker.ref();
      } else if (reply.type === 'end') return;
      else throw threadError(reply);
    }
  } finally {
    void worker.terminate();
    lent.giveBack();
  }
}

/**
 * The reading thread needs a core of its own: while it reads, this thread's native pool leaves one
 * when it would otherwise take them all. On 2 cores, 2 native threads beside the reader made each
 * training step about 3× slower (the pool's second thread and the reader preempting each other)
 * and fitDataset 0.59× as fast as with 1. The count comes back at the pass's end, unless the
 * caller changed it meanwhile.
 */
function lendCoreToReader(): { giveBack(): void } {
  const threads = native.getThreads();
  if (threads <= 1 || threads < usableCores()) return { giveBack() {} };
  native.setThreads(threads - 1);
  return {
    giveBack() {
      if (native.getThreads() === threads - 1) native.setThreads(threads);
    },
  };
}
