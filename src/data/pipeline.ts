/**
 * A preparation pipeline: missing-value handling per column, categorical encoding, then scaling,
 * fitted on training data and applied identically to any later rows. It serializes into the
 * model file, so predict() on raw records and the service use exactly the training transform.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { checkOptions } from '../core/validation.js';
import { LabelEncoder, MinMaxScaler, OneHotEncoder, StandardScaler } from './transforms.js';
import { isMissing, type Cell, type ColumnType, type Table } from './table.js';

/** How missing, NaN and infinite cells are handled. */
export type MissingStrategy = 'drop' | 'mean' | 'median' | 'mostFrequent' | { constant: number | string };

/** preparation()'s options. */
export interface PreparationOptions {
  /** Missing, NaN and ±Infinity cells: drop the row at fit, or fill (default 'mean'; 'mostFrequent' for categories). */
  missing?: MissingStrategy;
  /** Categorical columns: one-hot (default) or label indices. */
  categorical?: 'oneHot' | 'label';
  /** Scaling of the resulting features: 'standard' (default), 'minMax' or 'none'. */
  scale?: 'standard' | 'minMax' | 'none';
}

/** What fitting did to the data. */
export interface PreparationReport {
  /** Rows in the table. */
  rows: number;
  /** Rows dropped for a missing cell (missing: 'drop'). */
  droppedRows: number;
  /** Cells filled per column, with the value used. */
  filled: Record<string, { count: number; value: Cell }>;
}

type ColumnPlan =
  | { name: string; kind: 'number'; fill: number | null }
  | { name: string; kind: 'oneHot'; categories: string[]; fill: string | null }
  | { name: string; kind: 'label'; classes: string[]; fill: string | null };

interface PipelineJson {
  kind: 'maas.preparation';
  version: 1;
  columns: ColumnPlan[];
  scale:
    | { kind: 'standard'; mean: number[]; std: number[] }
    | { kind: 'minMax'; min: number[]; max: number[] }
    | { kind: 'none' };
}

/** Raw rows a pipeline can transform: a Table, records by column name, or arrays in column order. */
export type RawRows = Table | Record<string, unknown>[] | unknown[][];

function fillValue(strategy: MissingStrategy, type: ColumnType, present: Cell[]): Cell {
  if (typeof strategy === 'object') return strategy.constant;
  if (type === 'string' || strategy === 'mostFrequent') {
    const counts = new Map<Cell, number>();
    for (const v of present) counts.set(v, (counts.get(v) ?? 0) + 1);
    let best: Cell = null;
    let n = -1;
    for (const [v, c] of [...counts].sort((a, b) => String(a[0]).localeCompare(String(b[0]))))
      if (c > n) {
        best = v;
        n = c;
      }
    return best;
  }
  const nums = (present as number[]).slice().sort((a, b) => a - b);
  if (nums.length === 0) return 0;
  if (strategy === 'median')
    return nums.length % 2 ? nums[(nums.length - 1) / 2]! : (nums[nums.length / 2 - 1]! + nums[nums.length / 2]!) / 2;
  return nums.reduce((a, b) => a + b, 0) / nums.length;
}

/** A fitted pipeline: transform() maps raw rows to model inputs. */
export class Pipeline {
  private constructor(
    private readonly columns: ColumnPlan[],
    private readonly scale: PipelineJson['scale'],
  ) {}

  /** Raw input column names, in order. */
  get inputColumns(): string[] {
    return this.columns.map((c) => c.name);
  }

  /** Width of the transformed rows (the model's input size). */
  get width(): number {
    return this.columns.reduce((n, c) => n + (c.kind === 'oneHot' ? c.categories.length : 1), 0);
  }

  /** Fits on a table; returns the pipeline, the transformed rows, the kept row indices and a report. */
  static fit(
    table: Table,
    options: PreparationOptions = {},
  ): { pipeline: Pipeline; x: Float32Array; kept: number[]; report: PreparationReport } {
    const o = checkOptions('preparation', options, ['missing', 'categorical', 'scale']);
    const missing = (o.missing ?? 'mean') as MissingStrategy;
    const drop = missing === 'drop';
    const kept = drop
      ? table.rows.map((_, i) => i).filter((i) => table.rows[i]!.every((v) => !isMissing(v)))
      : table.rows.map((_, i) => i);
    if (kept.length === 0)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        'No rows are left to fit on (every row has a missing value, or the table is empty)',
      );
    const report: PreparationReport = {
      rows: table.rows.length,
      droppedRows: table.rows.length - kept.length,
      filled: {},
    };
    const plans: ColumnPlan[] = table.columns.map((name, c) => {
      const present = kept.map((i) => table.rows[i]![c]!).filter((v) => !isMissing(v));
      const fill = drop ? null : fillValue(missing, table.types[c]!, present);
      if (!drop) {
        const count = kept.filter((i) => isMissing(table.rows[i]![c])).length;
        if (count > 0) report.filled[name] = { count, value: fill };
      }
      if (table.types[c] === 'number') return { name, kind: 'number', fill: fill === null ? null : Number(fill) };
      const values = present.map(String);
      return o.categorical === 'label'
        ? {
            name,
            kind: 'label',
            classes: new LabelEncoder().fit(values).classes,
            fill: fill === null ? null : String(fill),
          }
        : {
            name,
            kind: 'oneHot',
            categories: new OneHotEncoder().fit(values).categories,
            fill: fill === null ? null : String(fill),
          };
    });
    const unscaled = new Pipeline(plans, { kind: 'none' });
    const x = unscaled.encode(kept.map((i) => table.rows[i]!));
    const scaleKind = o.scale ?? 'standard';
    let scale: PipelineJson['scale'] = { kind: 'none' };
    if (scaleKind === 'standard') {
      const s = new StandardScaler().fit(x, unscaled.width);
      scale = { kind: 'standard', mean: s.mean, std: s.std };
    } else if (scaleKind === 'minMax') {
      const s = new MinMaxScaler().fit(x, unscaled.width);
      scale = { kind: 'minMax', min: s.min, max: s.max };
    } else if (scaleKind !== 'none') {
      throw invalidParameter('preparation.scale', "'standard', 'minMax' or 'none'", scaleKind, 'MAAS_ERR_ARG_RANGE');
    }
    const pipeline = new Pipeline(plans, scale);
    pipeline.applyScale(x);
    return { pipeline, x, kept, report };
  }

  /** Maps raw rows to model inputs with the fitted fills, encodings and scaling. */
  transform(rows: RawRows): Float32Array {
    const cells = this.toCells(rows);
    return this.applyScale(this.encode(cells));
  }

  private toCells(rows: RawRows): Cell[][] {
    const names = this.inputColumns;
    if (!Array.isArray(rows)) {
      const table = rows;
      const idx = names.map((n) => {
        const i = table.columns.indexOf(n);
        if (i < 0)
          throw new MaasError('MAAS_ERR_DATA_FORMAT', `Expected a column named '${n}' in the rows to transform`);
        return i;
      });
      return table.rows.map((r) => idx.map((i) => r[i]!));
    }
    return rows.map((r, row) => {
      if (Array.isArray(r)) {
        if (r.length !== names.length)
          throw new MaasError(
            'MAAS_ERR_SHAPE_MISMATCH',
            `Expected ${names.length} raw values (${names.join(', ')}) in row ${row} but received ${r.length}`,
          );
        return r.map((v) => (isMissing(v) ? null : (v as Cell)));
      }
      if (typeof r !== 'object' || r === null)
        throw invalidParameter(`rows[${row}]`, 'an object of column values or an array', r);
      return names.map((n) => {
        const v = r[n];
        return isMissing(v) ? null : (v as Cell);
      });
    });
  }

  private encode(rows: Cell[][]): Float32Array {
    const width = this.width;
    const out = new Float32Array(rows.length * width);
    // Category -> index, built once per call rather than searched per cell.
    const index = this.columns.map((plan) =>
      plan.kind === 'number'
        ? null
        : new Map((plan.kind === 'label' ? plan.classes : plan.categories).map((v, k) => [v, k])),
    );
    rows.forEach((row, i) => {
      let offset = i * width;
      this.columns.forEach((plan, c) => {
        let v = row[c] ?? null;
        if (isMissing(v)) {
          if (plan.fill === null)
            throw new MaasError(
              'MAAS_ERR_DATA_MISSING',
              `Row ${i}, column '${plan.name}' is missing and this pipeline was fitted to drop such rows`,
            );
          v = plan.fill;
        }
        if (plan.kind === 'number') {
          const n = Number(v);
          if (!Number.isFinite(n))
            throw new MaasError(
              'MAAS_ERR_DATA_FORMAT',
              `Row ${i}, column '${plan.name}': expected a number but received '${String(v)}'`,
            );
          out[offset++] = n;
        } else if (plan.kind === 'label') {
          const k = index[c]!.get(String(v));
          if (k === undefined)
            throw new MaasError(
              'MAAS_ERR_DATA_UNKNOWN_CATEGORY',
              `Row ${i}, column '${plan.name}': '${String(v)}' was not seen in fit`,
            );
          out[offset++] = k;
        } else {
          // out is zero-filled: set the one hot column; an unseen category stays all zeros
          const k = index[c]!.get(String(v));
          if (k !== undefined) out[offset + k] = 1;
          offset += plan.categories.length;
        }
      });
    });
    return out;
  }

  private applyScale(x: Float32Array): Float32Array {
    if (this.scale.kind === 'standard') return new StandardScaler(this.scale.mean, this.scale.std).transform(x);
    if (this.scale.kind === 'minMax') return new MinMaxScaler(this.scale.min, this.scale.max).transform(x);
    return x;
  }

  /** Plain JSON for model.json's extension field. */
  toJSON(): PipelineJson {
    return { kind: 'maas.preparation', version: 1, columns: this.columns, scale: this.scale };
  }

  /** Rebuilds a pipeline saved by toJSON. */
  static fromJSON(json: unknown): Pipeline {
    const j = json as PipelineJson;
    if (!j || j.kind !== 'maas.preparation' || j.version !== 1 || !Array.isArray(j.columns)) {
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'The preparation pipeline in model.json is malformed');
    }
    return new Pipeline(j.columns, j.scale);
  }
}

/** Fits a preparation pipeline on a table (missing values, encodings, scaling). */
export function prepare(table: Table, options?: PreparationOptions) {
  return Pipeline.fit(table, options);
}
