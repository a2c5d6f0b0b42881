/**
 * A minimal column-typed table for data preparation: named columns, each numeric or categorical,
 * with missing cells as null (empty, NA, NaN, ±Infinity all count as missing).
 */
import { MaasError } from '../core/errors.js';

/** One cell: a number, a category, or missing. */
export type Cell = number | string | null;
/** A column's type, inferred from its values. */
export type ColumnType = 'number' | 'string';

/** Rows of cells under named, typed columns. */
export interface Table {
  /** Column names, in order. */
  columns: string[];
  /** Each column's inferred type: number, or string for categories. */
  types: ColumnType[];
  /** The rows; a missing cell is null. */
  rows: Cell[][];
}

const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', 'none', '?', 'inf', '-inf', 'infinity', '-infinity']);

/** True for a cell that counts as missing: null, NaN, ±Infinity or a missing marker string. */
export function isMissing(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (typeof v === 'number') return !Number.isFinite(v);
  if (typeof v !== 'string') return false;
  if (v.length === 0) return true;
  // Most cells start with a character no marker starts with: no need to trim and lower-case them.
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(v.length - 1);
  if (first > 0x20 && first < 0x7f && last > 0x20 && last < 0x7f) {
    const c = first | 0x20; // lower case
    if (c !== 0x6e && c !== 0x69 && c !== 0x2d && c !== 0x3f) return false; // n, i, -, ?
  }
  return MISSING.has(v.trim().toLowerCase());
}

/** Builds a table from raw string (or mixed) rows, inferring each column's type. */
export function inferTable(columns: string[], raw: unknown[][]): Table {
  const types: ColumnType[] = columns.map((_, c) =>
    raw.every(
      (r) =>
        isMissing(r[c]) ||
        typeof r[c] === 'number' ||
        (typeof r[c] === 'string' && r[c] !== '' && Number.isFinite(Number(r[c]))),
    )
      ? 'number'
      : 'string',
  );
  const rows = raw.map((r, i) => {
    if (r.length !== columns.length) {
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `Row ${i + 1} has ${r.length} fields but the header has ${columns.length}`,
      );
    }
    return columns.map((_, c) => {
      const v = r[c];
      if (isMissing(v)) return null;
      return types[c] === 'number' ? Number(v) : String(v).trim();
    });
  });
  return { columns, types, rows };
}

/** The index of a named column, or a coded error listing the columns. */
export function columnIndex(table: Pick<Table, 'columns'>, name: string): number {
  const i = table.columns.indexOf(name);
  if (i < 0)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `Expected a column named '${name}' but the columns are ${table.columns.map((c) => `'${c}'`).join(', ')}`,
    );
  return i;
}

/** A table without one column, and that column's cells. */
export function splitColumn(table: Table, name: string): { rest: Table; column: Cell[]; type: ColumnType } {
  const i = columnIndex(table, name);
  return {
    rest: {
      columns: table.columns.filter((_, c) => c !== i),
      types: table.types.filter((_, c) => c !== i),
      rows: table.rows.map((r) => r.filter((_, c) => c !== i)),
    },
    column: table.rows.map((r) => r[i]!),
    type: table.types[i]!,
  };
}
