/**
 * The two passes of training from a CSV file larger than memory, over a stream of its bytes:
 * the fitting pass (column kinds inferred from the first rows, then the preparation fitted on
 * every row in one go) and the batch pass (each row prepared by the fitted pipeline, shuffled
 * through a bounded buffer, handed out in batches). Both hold a bounded amount of memory however
 * long the file is. csv-dataset-thread.ts runs them in a thread for a file; csvDataset runs them
 * in-process for other sources.
 */
import { createReadStream } from 'node:fs';
import { MaasError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { CsvScanner, delimiterCode, scanCsv } from './csv-scan.js';
import { COLUMN_KINDS, dateOf, inferKind, numberOf, textOf, type ColumnKind } from './frame.js';
import { native, type NativeCsvCell, type NativeCsvEncoder } from '../native/index.js';
import {
  Pipeline,
  planWidth,
  preparationSettings,
  type DatePart,
  type PipelineJson,
  type PreparationReport,
} from './pipeline.js';
import { StreamingFitter } from './stream-fit.js';
import { isMissing, type Cell } from './table.js';
import type { DataWarning } from './warnings.js';

/** A file's bytes in chunks of `chunkBytes`; an unreadable file is a coded error naming it. */
export async function* fileChunks(path: string, chunkBytes = 2 ** 20): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) yield chunk as Buffer;
  } catch (e) {
    if (e instanceof MaasError) throw e;
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `Cannot read ${path}: ${(e as Error).message}`);
  }
}

/** How a column's cells are read. */
type Read = 'number' | 'date' | 'text';

/** What both passes need to know about the file. */
export interface CsvShape {
  delimiter: string;
  /** Column names when the file has no header row. */
  columns?: string[];
}

/** The fitting pass's settings. */
export interface FitPassOptions extends CsvShape {
  /** Kinds given for some columns. */
  types?: Record<string, ColumnKind>;
  /** Rows read before the columns' kinds are inferred. */
  inferenceRows: number;
  /** preparation() options without onWarning (warnings come back in the report). */
  preparation: Record<string, unknown>;
}

/** What the fitting pass found. */
export interface FitPassResult {
  pipeline: PipelineJson;
  report: PreparationReport;
  columns: string[];
  kinds: ColumnKind[];
}

/** The batch pass's settings. */
export interface BatchPassOptions extends CsvShape {
  pipeline: PipelineJson;
  batchSize: number;
  /** Rows in the shuffle buffer; 0 reads the file's order. */
  shuffle: number;
  seed: number;
  /** Fill input columns the file lacks with the saved policy instead of refusing it. */
  allowMissing: boolean;
  /** The label column's kind in the fitting pass (numbers name their classes as String(number) does). */
  labelKind: ColumnKind;
  /** Read plain records natively (default true; false reads every record in JavaScript, for tests). */
  fastPath?: boolean;
}

/** What a batch pass counted: rows kept, rows left out, and the kept rows the native reader read. */
export interface BatchPassResult {
  rows: number;
  skipped: number;
  nativeRows: number;
}

/** One batch: rows × width features, and rows labels (class index or scaled value). */
export interface RowBatch {
  x: Float32Array;
  y: Float32Array;
  rows: number;
}

/** Reads a record's cells by column reads, remembering cells a column could not read. */
class CellReader {
  private readonly bad: { count: number; shown: string[] }[];

  constructor(
    private readonly names: readonly string[],
    private readonly reads: readonly Read[],
    private readonly kinds: readonly ColumnKind[],
  ) {
    this.bad = names.map(() => ({ count: 0, shown: [] }));
  }

  /** A text cell read by column c's kind (as DataFrame reads it). */
  cell(c: number, text: string, line: number): Cell {
    if (isMissing(text)) return null;
    const read = this.reads[c]!;
    if (read === 'text') return textOf(text);
    const v = read === 'number' ? numberOf(text) : dateOf(text);
    if (v !== undefined) return v;
    const bad = this.bad[c]!;
    if (bad.count++ < 3) bad.shown.push(`'${text}' on line ${line}`);
    return null;
  }

  /** The scanner's current record's field `field` as column c's cell (numbers straight from the bytes). */
  fromScanner(scanner: CsvScanner, field: number, c: number): Cell {
    if (this.reads[c] === 'number') {
      const v = scanner.number(field);
      if (v !== undefined) return v;
    }
    return this.cell(c, scanner.text(field), scanner.line);
  }

  /** MAAS_WARN_UNPARSED_CELLS for each column with cells its kind could not read. */
  warnings(): DataWarning[] {
    const out: DataWarning[] = [];
    this.bad.forEach((b, c) => {
      if (b.count === 0) return;
      const name = this.names[c]!;
      out.push({
        code: 'MAAS_WARN_UNPARSED_CELLS',
        column: name,
        message: `Column '${name}' is ${this.kinds[c] === 'number' ? 'numeric' : 'a date'} but ${b.count} cell${b.count === 1 ? ' is' : 's are'} not (${b.shown.join(', ')}${b.count > 3 ? ', …' : ''}): treated as missing`,
      });
    });
    return out;
  }
}

const readOf = (kind: ColumnKind): Read => (kind === 'number' ? 'number' : kind === 'date' ? 'date' : 'text');

/** Columns a CSV may have: each costs the fitting pass a set of sums and counts. */
const MAX_COLUMNS = 100_000;

function checkHeader(names: readonly string[]): string[] {
  if (names.length > MAX_COLUMNS)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `The CSV header has ${names.length} columns; at most ${MAX_COLUMNS} are read`,
    );
  const header = names.map((n, i) => {
    if (typeof n !== 'string' || n === '')
      throw new MaasError('MAAS_ERR_DATA_FORMAT', `The CSV header's column ${i + 1} has no name`);
    return n;
  });
  const duplicate = header.find((n, i) => header.indexOf(n) !== i);
  if (duplicate !== undefined)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `The header names column '${duplicate}' twice`);
  return header;
}

function fieldCountError(line: number, count: number, expected: number): MaasError {
  return new MaasError('MAAS_ERR_DATA_FORMAT', `Line ${line} has ${count} fields but the header has ${expected}`);
}

/** The fitting pass: kinds from the first rows (or as given), then the preparation fitted on every row. */
export async function fitPass(input: AsyncIterable<Buffer | string>, options: FitPassOptions): Promise<FitPassResult> {
  const settings = preparationSettings(options.preparation);
  let header: string[] | null = options.columns ? checkHeader(options.columns) : null;
  const sample: { fields: string[]; line: number }[] = [];
  let reader: CellReader | null = null;
  let fitter: StreamingFitter | null = null;
  let kinds: ColumnKind[] = [];
  const row: Cell[] = [];

  const start = () => {
    const names = header!;
    for (const name of Object.keys(options.types ?? {}))
      if (!names.includes(name))
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `options.types names '${name}' but the columns are ${names.map((n) => `'${n}'`).join(', ')}`,
        );
    kinds = names.map((name, c) => {
      const given = options.types?.[name];
      if (given !== undefined) {
        if (!COLUMN_KINDS.includes(given))
          throw new MaasError('MAAS_ERR_ARG_RANGE', `options.types.${name} must be one of ${COLUMN_KINDS.join(', ')}`);
        return given;
      }
      return inferKind(sample.map((r) => r.fields[c]!));
    });
    reader = new CellReader(names, kinds.map(readOf), kinds);
    fitter = new StreamingFitter(names, kinds, settings);
    row.length = names.length;
    for (const r of sample) {
      for (let c = 0; c < names.length; c++) row[c] = reader.cell(c, r.fields[c]!, r.line);
      fitter.add(row);
    }
    sample.length = 0;
  };

  await scanCsv(input, options.delimiter, (scanner) => {
    if (header === null) {
      header = checkHeader(Array.from({ length: scanner.count }, (_, i) => scanner.text(i)));
      return;
    }
    if (scanner.count !== header.length) throw fieldCountError(scanner.line, scanner.count, header.length);
    if (fitter === null) {
      sample.push({ fields: Array.from({ length: scanner.count }, (_, i) => scanner.text(i)), line: scanner.line });
      if (sample.length >= options.inferenceRows) start();
      return;
    }
    for (let c = 0; c < row.length; c++) row[c] = reader!.fromScanner(scanner, c, c);
    fitter.add(row);
  });
  if (header === null)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', 'Expected a header row (or options.columns) but the CSV is empty');
  if (fitter === null) start();
  const { json, report } = (fitter as unknown as StreamingFitter).finish((reader as unknown as CellReader).warnings());
  return { pipeline: json, report, columns: header, kinds };
}

/** Where the pipeline's inputs and label are in the file, checked strictly (unknown columns are refused). */
function locate(header: readonly string[], pipeline: Pipeline, allowMissing: boolean) {
  const unknown = header.filter((n) => !pipeline.knowsColumn(n));
  if (unknown.length > 0)
    throw new MaasError(
      'MAAS_ERR_DATA_COLUMNS',
      `Unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')} in the CSV: the model takes ${pipeline.inputColumns.map((n) => `'${n}'`).join(', ')}`,
    );
  const inputs = pipeline.inputColumns.map((n) => header.indexOf(n));
  const absent = pipeline.inputColumns.filter((_, i) => inputs[i]! < 0);
  if (absent.length > 0 && !allowMissing)
    throw new MaasError(
      'MAAS_ERR_DATA_COLUMNS',
      `Missing column${absent.length > 1 ? 's' : ''} ${absent.map((n) => `'${n}'`).join(', ')} in the CSV (allowMissing fills them with the saved policy)`,
    );
  const label = pipeline.label;
  const labelAt = label === null ? -1 : header.indexOf(label);
  if (labelAt < 0)
    throw new MaasError(
      'MAAS_ERR_DATA_COLUMNS',
      label === null
        ? 'The pipeline was fitted without a label column, so the CSV cannot give training targets'
        : `The CSV has no label column '${label}'`,
    );
  return { inputs, labelAt };
}

/** Rows the native reader encodes per call. */
const FAST_ROWS = 256;

/** csv_encoder.h's CsvCellAction and CsvDatePart codes. */
const CSV_ACTION = { number: 1, oneHot: 2, index: 3, date: 4, labelClass: 5, labelValue: 6 } as const;
const DATE_PART_CODE: Record<DatePart, number> = { year: 0, month: 1, day: 2, weekday: 3, hour: 4 };

/**
 * The native reader for this file's plain records (csv_encoder.h), or null where it cannot encode
 * as the pipeline does: hashed text, an input column the file lacks, or classes named by numbers
 * (String(1.0) is '1': the JavaScript reader's to name).
 */
function plainRecordEncoder(
  options: BatchPassOptions,
  width: number,
  fields: number,
  place: { inputs: number[]; labelAt: number },
): NativeCsvEncoder | null {
  const { columns, label } = options.pipeline;
  if (!label || (label.kind === 'classes' && options.labelKind === 'number')) return null;
  const cells: NativeCsvCell[] = [];
  let offset = 0;
  for (let c = 0; c < columns.length; c++) {
    const plan = columns[c]!;
    const field = place.inputs[c]!;
    if (field < 0 || plan.kind === 'hash') return null;
    // A missing cell's fill goes along (the native reader takes a number's or a category's; other
    // missing cells are read in JavaScript).
    if (plan.kind === 'number') cells.push({ field, action: CSV_ACTION.number, offset, fill: plan.fill });
    else if (plan.kind === 'oneHot')
      cells.push({ field, action: CSV_ACTION.oneHot, offset, texts: plan.categories, fill: plan.fill });
    else if (plan.kind === 'label') cells.push({ field, action: CSV_ACTION.index, offset, texts: plan.classes });
    else cells.push({ field, action: CSV_ACTION.date, offset, parts: plan.parts?.map((p) => DATE_PART_CODE[p]) ?? [] });
    offset += planWidth(plan);
  }
  if (offset !== width) return null;
  cells.push(
    label.kind === 'classes'
      ? { field: place.labelAt, action: CSV_ACTION.labelClass, offset: 0, texts: label.classes }
      : { field: place.labelAt, action: CSV_ACTION.labelValue, offset: 0, mean: label.mean, std: label.std },
  );
  try {
    return new native.CsvEncoderHandle({ delimiter: delimiterCode(options.delimiter), fields, width: offset, cells });
  } catch {
    // A plan the native reader refuses (a column named twice): the JavaScript reader reads it all.
    return null;
  }
}

/**
 * The batch pass: every row with a label, prepared, through a shuffle buffer of `shuffle` rows
 * (each row leaves it for a random slot's row, as tf.data's shuffle does), in batches. Rows the
 * pipeline would drop (a missing cell with missing: 'drop', or no label) are skipped.
 */
export async function* batchPass(
  input: AsyncIterable<Buffer | string>,
  options: BatchPassOptions,
): AsyncGenerator<RowBatch, BatchPassResult> {
  const pipeline = Pipeline.fromJSON(options.pipeline);
  const width = pipeline.width;
  const reads = pipeline.inputReads;
  const classification = pipeline.task === 'classification';
  // A class read as a number is named as String(number) names it, as the fitting pass named it.
  const numericClasses = options.labelKind === 'number';
  const rng = new Random(options.seed);
  const capacity = options.shuffle;
  const slotX = new Float32Array(Math.max(capacity, 1) * width);
  const slotY = new Float32Array(Math.max(capacity, 1));
  let held = 0;
  const ready: RowBatch[] = [];
  let batch: RowBatch | null = null;
  let rows = 0;
  let skipped = 0;
  let header: string[] | null = options.columns ? checkHeader(options.columns) : null;
  let place: { inputs: number[]; labelAt: number } | null = null;
  let reader: CellReader | null = null;
  const cells: Cell[] = new Array<Cell>(reads.length).fill(null);
  const fills = options.pipeline.columns.map((c) => c.fill);

  const emit = (x: Float32Array, xAt: number, y: number) => {
    batch ??= { x: new Float32Array(options.batchSize * width), y: new Float32Array(options.batchSize), rows: 0 };
    const bx = batch.x;
    const at = batch.rows * width;
    for (let k = 0; k < width; k++) bx[at + k] = x[xAt + k]!;
    batch.y[batch.rows++] = y;
    if (batch.rows === options.batchSize) finishBatch();
  };
  const finishBatch = () => {
    if (!batch || batch.rows === 0) return;
    const b = batch;
    batch = null;
    const x = b.rows === options.batchSize ? b.x : b.x.slice(0, b.rows * width);
    pipeline.scaleRows(x);
    ready.push({ x, y: b.rows === options.batchSize ? b.y : b.y.slice(0, b.rows), rows: b.rows });
  };

  const onRecord = (scanner: CsvScanner) => {
    if (header === null) {
      header = checkHeader(Array.from({ length: scanner.count }, (_, i) => scanner.text(i)));
      return;
    }
    if (scanner.count !== header.length) throw fieldCountError(scanner.line, scanner.count, header.length);
    if (place === null) {
      place = locate(header, pipeline, options.allowMissing);
      reader = new CellReader(
        pipeline.inputColumns,
        reads,
        reads.map((r) => (r === 'text' ? 'category' : r)),
      );
      const encoder = options.fastPath === false ? null : plainRecordEncoder(options, width, header.length, place);
      if (encoder) scanner.setFastPath(fastPath(encoder));
    }
    const labelText = scanner.text(place.labelAt);
    if (isMissing(labelText)) {
      skipped++;
      return;
    }
    let labelCell: Cell;
    if (numericClasses || !classification) {
      const n = scanner.number(place.labelAt) ?? numberOf(labelText);
      // The fitting pass (and DataFrame) read a label that is not a number as missing: the row is left out.
      if (n === undefined) {
        skipped++;
        return;
      }
      labelCell = classification ? String(n) : n;
    } else labelCell = textOf(labelText);
    const y = pipeline.labelValue(labelCell, scanner.line);
    for (let c = 0; c < cells.length; c++) {
      const at = place.inputs[c]!;
      const v = at < 0 ? null : reader!.fromScanner(scanner, at, c);
      if (v === null && fills[c] === null) {
        skipped++;
        return;
      }
      cells[c] = v;
    }
    rowScratch.fill(0);
    pipeline.encodeRow(cells, rowScratch, 0, scanner.line);
    placeRow(rowScratch, 0, y);
  };
  const rowScratch = new Float32Array(width);
  // A prepared row (x[at…at+width), label y) into the shuffle buffer: a full buffer gives up a
  // random row for the new one; until then rows only go in.
  const placeRow = (x: Float32Array, at: number, y: number) => {
    rows++;
    if (capacity === 0) {
      emit(x, at, y);
      return;
    }
    let slot = held;
    if (held === capacity) {
      slot = Math.floor(rng.next() * capacity);
      emit(slotX, slot * width, slotY[slot]!);
    } else held++;
    const to = slot * width;
    for (let k = 0; k < width; k++) slotX[to + k] = x[at + k]!;
    slotY[slot] = y;
  };

  const scanner = new CsvScanner(delimiterCode(options.delimiter), onRecord);
  // The native reader's rows go through placeRow in file order, as the records onRecord reads, so
  // the batches are the same with or without it.
  const stageX = new Float32Array(FAST_ROWS * width);
  const stageY = new Float32Array(FAST_ROWS);
  const next = new Float64Array(1);
  let nativeRows = 0;
  const fastPath = (encoder: NativeCsvEncoder) => (data: Buffer, start: number, end: number) => {
    let p = start;
    for (;;) {
      const n = encoder.encode(data, p, end, stageX, stageY, next);
      for (let r = 0; r < n; r++) placeRow(stageX, r * width, stageY[r]!);
      nativeRows += n;
      scanner.countLines(n);
      p = next[0]!;
      if (n < FAST_ROWS) return p;
    }
  };
  for await (const chunk of input) {
    scanner.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    while (ready.length > 0) yield ready.shift()!;
  }
  scanner.end();
  if (header === null)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', 'Expected a header row (or options.columns) but the CSV is empty');
  // Drain the buffer in a random order.
  for (let i = held - 1; i >= 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    emit(slotX, j * width, slotY[j]!);
    if (j !== i) {
      slotX.copyWithin(j * width, i * width, (i + 1) * width);
      slotY[j] = slotY[i]!;
    }
  }
  finishBatch();
  while (ready.length > 0) yield ready.shift()!;
  return { rows, skipped, nativeRows };
}
