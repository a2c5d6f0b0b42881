/**
 * DataFrame: the table a pandas or Danfo user expects, built from CSV, JSON records or columns,
 * with each column's kind inferred (number, category, date, text) and settable (asType), columns
 * selected, dropped and renamed, and rows split (seeded, stratified) before anything is fitted.
 *
 * Columnar and immutable: every operation returns a new frame that shares the untouched columns'
 * arrays. Plain arrays, not Apache Arrow: preparation reads cells of mixed kinds column by column
 * and rows by index, which arrays do directly, and the frames it handles fit in memory (data
 * larger than memory streams in batches instead of becoming a frame).
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { checkInteger, checkOneOf, checkOptions, isPlainObject } from '../core/validation.js';
import { seededSplit, splitSettings } from './seeded-split.js';
import { isMissing, type Cell, type Table } from './table.js';
import { warn, type DataWarning, type WarningSink } from './warnings.js';

/** What a column holds: numbers, categories, dates (kept as epoch milliseconds) or free text. */
export type ColumnKind = 'number' | 'category' | 'date' | 'text';

/** The kinds, for checks and messages. */
export const COLUMN_KINDS: readonly ColumnKind[] = ['number', 'category', 'date', 'text'];

/** How a frame is built. */
export interface FrameOptions {
  /** Kinds to give columns instead of inferring them. */
  types?: Record<string, ColumnKind>;
  /** Where warnings about the data go (default: process warnings). */
  onWarning?: WarningSink;
}

/** A column: its kind and one cell per row (a date is epoch milliseconds, missing is null). */
interface Column {
  kind: ColumnKind;
  values: readonly Cell[];
}

/** Distinct values above which, at half the rows or more, a string column is taken for text or IDs. */
const TEXT_MIN_DISTINCT = 20;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** A cell read as a number, or undefined when it is not one. */
export function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '') return undefined;
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** 'YYYY-MM-DD' as epoch ms at midnight UTC when it names a real day; undefined for anything else. */
function isoDay(s: string): number | undefined {
  let year = 0;
  let month = 0;
  let day = 0;
  for (let i = 0; i < 10; i++) {
    const c = s.charCodeAt(i);
    if (i === 4 || i === 7) {
      if (c !== 0x2d) return undefined;
      continue;
    }
    const d = c - 0x30;
    if (d < 0 || d > 9) return undefined;
    if (i < 4) year = year * 10 + d;
    else if (i < 7) month = month * 10 + d;
    else day = day * 10 + d;
  }
  // A day that does not exist (02-30) is left to Date.parse, which decides as it always has.
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  return daysFromCivil(year, month, day) * 86_400_000;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** A cell read as a date (epoch ms), or undefined. Strings must be ISO 8601 dates. */
export function dateOf(v: unknown): number | undefined {
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.getTime() : undefined;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.length === 10) {
    const day = isoDay(v);
    if (day !== undefined) return day;
  }
  if (typeof v === 'string' && ISO_DATE.test(v.trim())) {
    const s = v.trim();
    // A bare date is midnight UTC (as Date.parse reads it); a date-time without a zone is read as UTC too.
    const t = Date.parse(/[T ]\d{2}:\d{2}/.test(s) && !/(Z|[+-]\d{2}:?\d{2})$/.test(s) ? `${s.replace(' ', 'T')}Z` : s);
    return Number.isFinite(t) ? t : undefined;
  }
  return undefined;
}

export function textOf(v: unknown): string {
  return typeof v === 'string' ? v.trim() : String(v);
}

/** Up to three examples of bad cells, for a message. */
function examples(bad: { row: number; value: unknown }[]): string {
  const shown = bad
    .slice(0, 3)
    .map((b) => `'${String(b.value)}' in row ${b.row + 1}`)
    .join(', ');
  return bad.length > 3 ? `${shown}, …` : shown;
}

/** Cells converted to `kind`; cells that cannot be are missing, and a warning says which. */
function convert(name: string, raw: readonly unknown[], kind: ColumnKind, warnings: DataWarning[]): Column {
  const bad: { row: number; value: unknown }[] = [];
  const read = kind === 'number' ? numberOf : kind === 'date' ? dateOf : null;
  const values = raw.map((v, row): Cell => {
    if (isMissing(v) && !(v instanceof Date)) return null;
    if (!read) return textOf(v);
    const n = read(v);
    if (n === undefined) bad.push({ row, value: v });
    return n ?? null;
  });
  if (bad.length > 0)
    warnings.push({
      code: 'MAAS_WARN_UNPARSED_CELLS',
      column: name,
      message: `Column '${name}' is ${kind === 'number' ? 'numeric' : 'a date'} but ${bad.length} cell${bad.length === 1 ? ' is' : 's are'} not (${examples(bad)}): treated as missing`,
    });
  return { kind, values };
}

/** A column's kind from its cells: numbers (a few stray cells allowed), ISO dates, categories or text. */
export function inferKind(raw: readonly unknown[]): ColumnKind {
  let present = 0;
  let numeric = 0;
  let dates = 0;
  const distinct = new Set<string>();
  let length = 0;
  for (const v of raw) {
    if (isMissing(v) && !(v instanceof Date)) continue;
    present++;
    if (numberOf(v) !== undefined && typeof v !== 'boolean') numeric++;
    else if (dateOf(v) !== undefined) dates++;
    const s = textOf(v);
    distinct.add(s);
    length += s.length;
  }
  if (present === 0) return 'number';
  // One stray cell ("39.5mm") in a numeric column is reported, not a reason to flip its type.
  if (present - numeric <= Math.max(1, Math.floor(present * 0.05)) && numeric > 0) return 'number';
  if (dates === present) return 'date';
  const idLike = distinct.size > TEXT_MIN_DISTINCT && distinct.size >= present / 2;
  return idLike || length / present > 60 ? 'text' : 'category';
}

/** Array.isArray without narrowing a typed array to any[]. */
const isArray = (value: unknown): boolean => Array.isArray(value);

function checkColumnName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw invalidParameter(what, 'a non-empty column name', name);
  return name;
}

/** A table of named, typed columns; see the module's comment. */
export class DataFrame {
  /** What was noticed while the frame was built (cells that could not be read as their column's kind). */
  readonly warnings: readonly DataWarning[];

  private constructor(
    private readonly names: readonly string[],
    private readonly data: ReadonlyMap<string, Column>,
    readonly length: number,
    warnings: readonly DataWarning[] = [],
  ) {
    this.warnings = warnings;
  }

  /** A frame from columns of raw values (strings are parsed by the inferred or given kind). */
  static fromColumns(columns: Record<string, readonly unknown[]>, options: FrameOptions = {}): DataFrame {
    if (!isPlainObject(columns))
      throw invalidParameter('DataFrame.fromColumns(columns)', 'an object of arrays', columns);
    const o = checkOptions('DataFrame options', options, ['types', 'onWarning']);
    const types = (o.types ?? {}) as Record<string, unknown>;
    const names = Object.keys(columns);
    let length = -1;
    for (const name of names) {
      const values = columns[name];
      if (!Array.isArray(values))
        throw invalidParameter(`DataFrame.fromColumns column '${name}'`, 'an array of values', values);
      if (length >= 0 && values.length !== length)
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `Expected every column to have ${length} values but '${name}' has ${values.length}`,
        );
      length = values.length;
    }
    for (const name of Object.keys(types))
      if (!names.includes(name))
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `options.types names '${name}' but the columns are ${names.map((n) => `'${n}'`).join(', ')}`,
        );
    const warnings: DataWarning[] = [];
    const data = new Map<string, Column>();
    for (const name of names) {
      const raw = columns[name]!;
      const kind =
        types[name] === undefined ? inferKind(raw) : checkOneOf(`options.types.${name}`, types[name], COLUMN_KINDS);
      data.set(name, convert(name, raw, kind, warnings));
    }
    for (const w of warnings) warn(o.onWarning as WarningSink | undefined, w);
    return new DataFrame(names, data, Math.max(length, 0), warnings);
  }

  /** A frame from JSON records; the columns are every key met, in order of first appearance (absent keys are missing). */
  static fromRecords(records: readonly Record<string, unknown>[], options: FrameOptions = {}): DataFrame {
    if (!Array.isArray(records))
      throw invalidParameter('DataFrame.fromRecords(records)', 'an array of objects', records);
    const names: string[] = [];
    const seen = new Set<string>();
    records.forEach((r, i) => {
      if (!isPlainObject(r)) throw invalidParameter(`records[${i}]`, 'an object of column values', r);
      for (const key of Object.keys(r))
        if (!seen.has(key)) {
          seen.add(key);
          names.push(key);
        }
    });
    const columns: Record<string, unknown[]> = {};
    const list: readonly Record<string, unknown>[] = records;
    for (const name of names) columns[name] = list.map((r) => r[name]);
    return DataFrame.fromColumns(columns, options);
  }

  /** A frame from rows of values under a header (what a CSV reader gives). */
  static fromRows(
    header: readonly string[],
    rows: readonly (readonly unknown[])[],
    options: FrameOptions = {},
  ): DataFrame {
    const names = header.map((h, i) => checkColumnName(h, `header[${i}]`));
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate !== undefined)
      throw new MaasError('MAAS_ERR_DATA_FORMAT', `The header names column '${duplicate}' twice`);
    rows.forEach((r, i) => {
      if (r.length !== names.length)
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `Row ${i + 1} has ${r.length} fields but the header has ${names.length}`,
        );
    });
    const columns: Record<string, unknown[]> = {};
    names.forEach((name, c) => (columns[name] = rows.map((r) => r[c])));
    return DataFrame.fromColumns(columns, options);
  }

  /** A frame from the older row table (loadCsv's features): numbers stay numbers, strings are inferred again. */
  static fromTable(table: Table, options: FrameOptions = {}): DataFrame {
    return DataFrame.fromRows(table.columns, table.rows, {
      ...options,
      types: {
        ...Object.fromEntries(table.columns.map((c, i) => [c, table.types[i] === 'number' ? 'number' : undefined])),
        ...options.types,
      } as Record<string, ColumnKind>,
    });
  }

  /** Column names, in order. */
  get columns(): string[] {
    return [...this.names];
  }

  /** Each column's kind, as pandas names it. */
  get dtypes(): Record<string, ColumnKind> {
    return Object.fromEntries(this.names.map((n) => [n, this.data.get(n)!.kind]));
  }

  /** [rows, columns]. */
  get shape(): [number, number] {
    return [this.length, this.names.length];
  }

  /** Whether the frame has this column. */
  has(name: string): boolean {
    return this.data.has(name);
  }

  private col(name: string): Column {
    const column = this.data.get(name);
    if (!column)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `Expected a column named '${String(name)}' but the columns are ${this.names.map((c) => `'${c}'`).join(', ')}`,
      );
    return column;
  }

  /** A column's cells (dates as epoch milliseconds; missing as null). */
  column(name: string): readonly Cell[] {
    return this.col(name).values;
  }

  /** A column's kind. */
  kind(name: string): ColumnKind {
    return this.col(name).kind;
  }

  /** Only these columns, in this order. */
  select(names: readonly string[]): DataFrame {
    const list: readonly string[] = names;
    if (!isArray(list)) throw invalidParameter('select(names)', 'an array of column names', list);
    const data = new Map(list.map((n) => [n, this.col(n)] as const));
    if (data.size !== list.length) throw new MaasError('MAAS_ERR_DATA_FORMAT', 'select() names a column twice');
    return new DataFrame([...list], data, this.length, this.warningsOf(list));
  }

  /** Every column but these. */
  drop(names: string | readonly string[]): DataFrame {
    const gone = typeof names === 'string' ? [names] : names;
    for (const n of gone) this.col(n);
    return this.select(this.names.filter((n) => !gone.includes(n)));
  }

  /** The same columns under new names ({old: new}). */
  rename(mapping: Record<string, string>): DataFrame {
    if (!isPlainObject(mapping)) throw invalidParameter('rename(mapping)', 'an object of old: new names', mapping);
    for (const [from, to] of Object.entries(mapping)) {
      this.col(from);
      checkColumnName(to, `rename('${from}')`);
    }
    const names = this.names.map((n) => mapping[n] ?? n);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate !== undefined)
      throw new MaasError('MAAS_ERR_DATA_FORMAT', `rename() gives two columns the name '${duplicate}'`);
    const data = new Map(this.names.map((n, i) => [names[i]!, this.data.get(n)!] as const));
    const warnings = this.warnings.map((w) =>
      w.column && mapping[w.column] ? { ...w, column: mapping[w.column] } : w,
    );
    return new DataFrame(names, data, this.length, warnings);
  }

  /** The frame with one column read as another kind (cells that are not are missing, with a warning). */
  asType(name: string, kind: ColumnKind, options: Pick<FrameOptions, 'onWarning'> = {}): DataFrame {
    const column = this.col(name);
    checkOneOf(`asType('${name}')`, kind, COLUMN_KINDS);
    if (column.kind === kind) return this;
    // A date column as text or a category reads its ISO form; anything else reads the cells as they are.
    const raw =
      column.kind === 'date'
        ? column.values.map((v) => (v === null ? null : new Date(v).toISOString()))
        : column.values;
    const warnings: DataWarning[] = [];
    const converted = convert(name, raw, kind, warnings);
    for (const w of warnings) warn(options.onWarning, w);
    const data = new Map(this.data);
    data.set(name, converted);
    return new DataFrame(this.names, data, this.length, [
      ...this.warningsOf(this.names.filter((n) => n !== name)),
      ...warnings,
    ]);
  }

  private warningsOf(names: readonly string[]): DataWarning[] {
    return this.warnings.filter((w) => w.column === undefined || names.includes(w.column));
  }

  /** These rows, in this order. */
  take(rows: readonly number[]): DataFrame {
    for (const r of rows)
      if (!Number.isInteger(r) || r < 0 || r >= this.length)
        throw invalidParameter('take(rows)', `row indices in [0, ${this.length})`, r, 'MAAS_ERR_ARG_RANGE');
    const data = new Map(
      this.names.map((n) => {
        const c = this.data.get(n)!;
        return [n, { kind: c.kind, values: rows.map((r) => c.values[r]!) }] as const;
      }),
    );
    return new DataFrame(this.names, data, rows.length, this.warnings);
  }

  /** The first n rows. */
  head(n = 5): DataFrame {
    checkInteger('head(n)', n, 0);
    return this.take(Array.from({ length: Math.min(n, this.length) }, (_, i) => i));
  }

  /** Row i as a record (dates as ISO strings). */
  row(i: number): Record<string, Cell> {
    checkInteger('row(i)', i, 0, Math.max(0, this.length - 1));
    return Object.fromEntries(
      this.names.map((n) => {
        const c = this.data.get(n)!;
        const v = c.values[i]!;
        return [n, c.kind === 'date' && v !== null ? new Date(v).toISOString() : v];
      }),
    );
  }

  /** Every row as a record. */
  toRecords(): Record<string, Cell>[] {
    return Array.from({ length: this.length }, (_, i) => this.row(i));
  }

  /**
   * Train and test rows, shuffled with a seed; `stratify` names a column whose every value keeps
   * its share in both parts (a classification label).
   */
  split(options: SplitFrameOptions = {}): { train: DataFrame; test: DataFrame } {
    const o = checkOptions('split options', options, ['testSize', 'seed', 'stratify']);
    const settings = splitSettings('split', o.testSize, o.seed);
    const by = o.stratify === undefined ? null : this.column(checkColumnName(o.stratify, 'split.stratify'));
    const { train, test } = seededSplit(this.length, (r) => (by ? String(by[r]) : ''), settings);
    return { train: this.take(train), test: this.take(test) };
  }

  /** The older row table (dates as epoch milliseconds, every other non-number as a string). */
  toTable(): Table {
    return {
      columns: this.columns,
      types: this.names.map((n) => (['number', 'date'].includes(this.data.get(n)!.kind) ? 'number' : 'string')),
      rows: Array.from({ length: this.length }, (_, i) => this.names.map((n) => this.data.get(n)!.values[i]!)),
    };
  }
}

/** DataFrame.split()'s options. */
export interface SplitFrameOptions {
  /** Fraction of rows for the test part (default 0.25). */
  testSize?: number;
  /** Seed of the shuffle; random when omitted. */
  seed?: number;
  /** A column whose values keep their shares in both parts. */
  stratify?: string;
}
