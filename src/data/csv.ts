/**
 * CSV loading with csv-parse (quoted fields, delimiters, BOM, comments): a header row, inferred
 * column types, and optionally a target column split off for training.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { MaasError } from '../core/errors.js';
import { checkOptions, checkString } from '../core/validation.js';
import { inferTable, splitColumn, type Cell, type ColumnType, type Table } from './table.js';

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
    records = parse(text, {
      delimiter: (o.delimiter as string | undefined) ?? ',',
      bom: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
      comment: '#',
    });
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
