/**
 * CSV loading with csv-parse (quoted fields, delimiters, BOM, comments): a header row, inferred
 * column types, and optionally a target column split off for training.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { parse as parseStream } from 'csv-parse';
import { parse } from 'csv-parse/sync';
import { MaasError } from '../core/errors.js';
import { checkOptions, checkString } from '../core/validation.js';
import { inferTable, splitColumn, type Cell, type ColumnType, type Table } from './table.js';
import { DataFrame, type FrameOptions } from './frame.js';

/** loadCsv()'s options. */
export interface CsvOptions {
  /** A column to split off as the target (labels or values to predict). */
  target?: string;
  /** Field delimiter (default ','). */
  delimiter?: string;
  /** Column names when the file has no header row. */
  columns?: string[];
}

/** A loaded CSV: the feature table and, when a target was named, its column. */
export interface CsvData {
  /** Every column but the target. */
  features: Table;
  /** The target column, or null when none was named. */
  target: { name: string; values: Cell[]; type: ColumnType } | null;
}

/** Parses CSV text. */
export function parseCsv(text: string, options: CsvOptions = {}): CsvData {
  const o = checkOptions('loadCsv options', options, ['target', 'delimiter', 'columns']);
  let records: string[][];
  try {
    records = parse(text, csvSettings(o.delimiter as string | undefined));
  } catch (e) {
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `Cannot parse CSV: ${(e as Error).message}`, { cause: e });
  }
  const columns = (o.columns as string[] | undefined) ?? records.shift();
  if (!columns || columns.length === 0)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', 'Expected a header row (or options.columns) but the CSV is empty');
  const table: Table = inferTable(columns, records);
  if (o.target === undefined) return { features: table, target: null };
  const target = checkString('loadCsv options.target', o.target);
  const { rest, column, type } = splitColumn(table, target);
  return { features: rest, target: { name: target, values: column, type } };
}

/** Reads and parses a CSV file. */
export async function loadCsv(path: string, options: CsvOptions = {}): Promise<CsvData> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseCsv(text, options);
}

/** readCsv()'s options. */
export interface ReadCsvOptions extends FrameOptions {
  /** Field delimiter (default ','). */
  delimiter?: string;
  /** Column names when the file has no header row. */
  columns?: string[];
}

/** The csv-parse settings every reader shares (and the streaming scanner reads alike). */
export function csvSettings(delimiter: string | undefined) {
  return {
    delimiter: delimiter ?? ',',
    bom: true,
    skip_empty_lines: true,
    trim: true,
    relax_column_count: true,
    comment: '#',
  } as const;
}

/** A source of CSV bytes: a file path, or a stream (or any iterable) of text or bytes. */
export type CsvSource = string | NodeJS.ReadableStream | Iterable<string | Buffer> | AsyncIterable<string | Buffer>;

/** The records of a CSV source, one string array at a time, parsed as the bytes arrive. */
export async function* csvRecords(source: CsvSource, delimiter?: string): AsyncGenerator<string[]> {
  const input: Readable =
    typeof source === 'string'
      ? createReadStream(source)
      : source instanceof Readable
        ? source
        : Readable.from(source as AsyncIterable<string | Buffer>);
  const parser = parseStream(csvSettings(delimiter));
  let failure: unknown = null;
  input.on('error', (error: Error) => parser.destroy(error));
  input.pipe(parser);
  try {
    for await (const record of parser) yield record as string[];
  } catch (error) {
    failure = error;
  } finally {
    if (typeof source === 'string') input.destroy();
  }
  if (failure) {
    const message = (failure as Error).message;
    const cannotRead = (failure as NodeJS.ErrnoException).code?.startsWith('E') && typeof source === 'string';
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      cannotRead ? `Cannot read ${source}: ${message}` : `Cannot parse CSV: ${message}`,
      { cause: failure },
    );
  }
}

/**
 * Reads a CSV file (or stream) into a DataFrame, parsing as it reads: column kinds are inferred
 * (numbers, categories, ISO dates, text) unless given, and cells a numeric column cannot read are
 * reported and left missing.
 */
export async function readCsv(source: CsvSource, options: ReadCsvOptions = {}): Promise<DataFrame> {
  const o = checkOptions('readCsv options', options, ['delimiter', 'columns', 'types', 'onWarning']);
  let header = o.columns as string[] | undefined;
  const rows: string[][] = [];
  for await (const record of csvRecords(source, o.delimiter as string | undefined)) {
    if (header === undefined) header = record;
    else rows.push(record);
  }
  if (!header || header.length === 0)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', 'Expected a header row (or options.columns) but the CSV is empty');
  return DataFrame.fromRows(header, rows, { types: o.types, onWarning: o.onWarning } as FrameOptions);
}
