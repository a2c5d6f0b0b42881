/**
 * A preparation pipeline: per column, missing values filled, categories encoded, dates taken
 * apart, free text hashed or left out; then the features scaled; and the label column turned
 * into class indices (classification, class names kept) or values (regression, optionally
 * scaled). Fitted on the training rows only and applied unchanged to any later ones. It travels
 * in the model file, so predictRaw, predictLabels and the service use exactly the training
 * transform, and strict by default: a record lacking a column, or naming one the model does not
 * know, is an error rather than a confident answer.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import {
  checkBoolean,
  checkInteger,
  checkOneOf,
  checkOptions,
  checkString,
  isPlainObject,
} from '../core/validation.js';
import { DataFrame, dateOf, type ColumnKind } from './frame.js';
import { MinMaxScaler, StandardScaler } from './transforms.js';
import { isMissing, type Cell, type Table } from './table.js';
import { warn, type DataWarning, type WarningSink } from './warnings.js';

/** How missing, NaN and infinite cells are handled. */
export type MissingStrategy = 'drop' | 'mean' | 'median' | 'mostFrequent' | { constant: number | string };

/** preparation()'s options. */
export interface PreparationOptions {
  /** The column to predict: split off as y and saved with the pipeline (class names for classification). */
  label?: string;
  /** What the label is: a category column is 'classification', a numeric one 'regression' unless told. */
  task?: 'classification' | 'regression';
  /** Missing, NaN and ±Infinity cells: drop the row at fit, or fill (default 'mean'; 'mostFrequent' for categories). */
  missing?: MissingStrategy;
  /** Categorical columns: one-hot (default) or label indices. */
  categorical?: 'oneHot' | 'label';
  /** Scaling of the resulting features: 'standard' (default), 'minMax' or 'none'. */
  scale?: 'standard' | 'minMax' | 'none';
  /** Date columns: year, month, day, weekday (and hour when times are present) (default 'parts'), or days since 1970. */
  dates?: 'parts' | 'epoch';
  /** Free-text and ID-like columns: left out with a warning (default 'drop'), or hashed word counts. */
  text?: 'drop' | 'hash';
  /** Buckets of the hashed word counts of each text column (default 32). */
  hashBuckets?: number;
  /** Regression: standardize y (predictions are scaled back). Default false. */
  scaleLabel?: boolean;
  /** Where warnings go (default: process warnings). */
  onWarning?: WarningSink;
}

/** What fitting did to the data. */
export interface PreparationReport {
  /** Rows in the table. */
  rows: number;
  /** Rows dropped for a missing cell (missing: 'drop') or a missing label. */
  droppedRows: number;
  /** Cells filled per column, with the value used. */
  filled: Record<string, { count: number; value: Cell }>;
  /** Columns left out of the features (text, constant), with why in `warnings`. */
  ignored: string[];
  /** Everything noticed: the frame's own warnings on the columns used, and fitting's. */
  warnings: DataWarning[];
}

/** The parts a date column becomes. */
export type DatePart = 'year' | 'month' | 'day' | 'weekday' | 'hour';

export type ColumnPlan =
  | { name: string; kind: 'number'; fill: number | null }
  | { name: string; kind: 'oneHot'; categories: string[]; fill: string | null }
  | { name: string; kind: 'label'; classes: string[]; fill: string | null }
  | { name: string; kind: 'date'; parts: DatePart[] | null; fill: number | null }
  | { name: string; kind: 'hash'; buckets: number; fill: string | null };

export type LabelPlan =
  { name: string; kind: 'classes'; classes: string[] } | { name: string; kind: 'value'; mean: number; std: number };

export type ScalePlan =
  | { kind: 'standard'; mean: number[]; std: number[] }
  | { kind: 'minMax'; min: number[]; max: number[] }
  | { kind: 'none' };

export interface PipelineJson {
  kind: 'maas.preparation';
  version: 2;
  columns: ColumnPlan[];
  scale: ScalePlan;
  label?: LabelPlan;
  ignored?: string[];
}

/** An input column as a form shows it (Pipeline.columnForms). */
export interface ColumnForm {
  name: string;
  kind: ColumnKind;
  /** The categories fit saw (categorical columns). */
  categories?: string[];
  /** A value to start from: the missing-value fill, the fitted mean, or the first category; null when unknown. */
  typical: number | string | null;
}

/** Raw rows a pipeline can transform: a DataFrame, a Table, records by column name, or arrays in column order. */
export type RawRows = DataFrame | Table | Record<string, unknown>[] | unknown[][];

/** How raw rows are read at prediction. */
export interface TransformOptions {
  /** Fill columns the records lack with the saved policy, with a warning (default false: an error). */
  allowMissing?: boolean;
  /** Where that warning goes (default: process warnings). */
  onWarning?: WarningSink;
}

/** A prediction as labels: class names (classification) or values in the label's units (regression). */
export type PredictedLabel = string | number;

/** One of a row's top classes. */
export interface RankedClass {
  score: number;
  index: number;
  label: string;
}

const MISSING_CHOICES = "'drop', 'mean', 'median', 'mostFrequent' or { constant: value }";
export const DAY_MS = 86_400_000;
/** Categories beyond which one-hot encoding is worth a warning. */
const MANY_CATEGORIES = 50;

function checkMissing(value: unknown): MissingStrategy {
  if (value === undefined) return 'mean';
  if (typeof value === 'string' && ['drop', 'mean', 'median', 'mostFrequent'].includes(value))
    return value as MissingStrategy;
  if (isPlainObject(value) && Object.keys(value).length === 1 && 'constant' in value) {
    const c = value.constant;
    if ((typeof c === 'number' && Number.isFinite(c)) || typeof c === 'string') return { constant: c };
  }
  throw invalidParameter('preparation.missing', MISSING_CHOICES, value, 'MAAS_ERR_ARG_RANGE');
}

export function mostFrequent(present: readonly Cell[]): Cell {
  const counts = new Map<string, { value: Cell; n: number }>();
  for (const v of present) {
    const key = String(v);
    const entry = counts.get(key) ?? counts.set(key, { value: v, n: 0 }).get(key)!;
    entry.n++;
  }
  let best: { value: Cell; n: number } | null = null;
  for (const key of [...counts.keys()].sort()) if (!best || counts.get(key)!.n > best.n) best = counts.get(key)!;
  return best?.value ?? null;
}

export function numericFill(strategy: MissingStrategy, present: number[]): number {
  if (typeof strategy === 'object') {
    const n = Number(strategy.constant);
    if (!Number.isFinite(n))
      throw invalidParameter('preparation.missing.constant', 'a number for a numeric column', strategy.constant);
    return n;
  }
  if (present.length === 0) return 0;
  if (strategy === 'mostFrequent') return mostFrequent(present) as number;
  const sorted = present.slice().sort((a, b) => a - b);
  if (strategy === 'median') {
    const m = sorted.length >> 1;
    return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
  }
  return sorted.reduce((a, b) => a + b, 0) / sorted.length;
}

/** Sorted class or category names: numerically when every one is a number, else by code point. */
export function sortedNames(values: Iterable<string>): string[] {
  const names = [...new Set(values)];
  return names.every((v) => v !== '' && Number.isFinite(Number(v)))
    ? names.sort((a, b) => Number(a) - Number(b))
    : names.sort();
}

/** 32-bit FNV-1a of a word, for hashed text features. */
export function fnv1a(word: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < word.length; i++) {
    h ^= word.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 0);
}

/** Whole milliseconds as Date reads a time (toward zero), or NaN outside ±8.64e15. */
function timeValue(time: number): number {
  return Math.abs(time) <= 8.64e15 ? Math.trunc(time) + 0 : NaN;
}

/** The proleptic Gregorian [year, month, day] of a day count (H. Hinnant's civil_from_days). */
function civil(days: number): [number, number, number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, doy - Math.floor((153 * mp + 2) / 5) + 1];
}

/** One part of a time (epoch ms, UTC), as Date's getUTC… methods give it. */
export function datePart(time: number, part: DatePart): number {
  const ms = timeValue(time);
  if (Number.isNaN(ms)) return NaN;
  const days = Math.floor(ms / DAY_MS);
  if (part === 'weekday') return (((days + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
  if (part === 'hour') {
    const inDay = ms - days * DAY_MS;
    return Math.floor(inDay / 3_600_000) + Math.floor((inDay % 3_600_000) / 60_000) / 60;
  }
  return civil(days)[part === 'year' ? 0 : part === 'month' ? 1 : 2];
}

/** Several parts of one time written at out[offset…] (the calendar date worked out once); returns the offset after them. */
function dateParts(time: number, parts: readonly DatePart[], out: Float32Array, offset: number): number {
  const ms = timeValue(time);
  const date = Number.isNaN(ms) ? [NaN, NaN, NaN] : civil(Math.floor(ms / DAY_MS));
  for (const part of parts)
    out[offset++] =
      part === 'year' ? date[0]! : part === 'month' ? date[1]! : part === 'day' ? date[2]! : datePart(time, part);
  return offset;
}

/** The features a column becomes. */
export function planWidth(plan: ColumnPlan): number {
  if (plan.kind === 'oneHot') return plan.categories.length;
  if (plan.kind === 'date') return plan.parts ? plan.parts.length : 1;
  if (plan.kind === 'hash') return plan.buckets;
  return 1;
}

/** The names of the features a column becomes. */
function featureNamesOf(plan: ColumnPlan): string[] {
  if (plan.kind === 'oneHot') return plan.categories.map((c) => `${plan.name}=${c}`);
  if (plan.kind === 'date') return plan.parts ? plan.parts.map((p) => `${plan.name}.${p}`) : [plan.name];
  if (plan.kind === 'hash') return Array.from({ length: plan.buckets }, (_, i) => `${plan.name}#${i}`);
  return [plan.name];
}

/** Any of the accepted inputs, as a frame (records and tables are read as fit reads them). */
export function frameOf(data: unknown, onWarning: WarningSink | undefined, what: string): DataFrame {
  if (data instanceof DataFrame) return data;
  if (Array.isArray(data)) {
    if (data.length > 0 && !data.every(isPlainObject))
      throw invalidParameter(what, 'a DataFrame, a table or an array of records', data);
    return DataFrame.fromRecords(data as Record<string, unknown>[], { onWarning });
  }
  if (isPlainObject(data) && Array.isArray(data.columns) && Array.isArray(data.rows) && Array.isArray(data.types))
    return DataFrame.fromTable(data as unknown as Table, { onWarning });
  throw invalidParameter(what, 'a DataFrame, a table ({columns, types, rows}) or an array of records', data);
}

/** preparation()'s options, checked: what Pipeline.fit and the streaming fitter both decide by. */
export interface PreparationSettings {
  missing: MissingStrategy;
  categorical: 'oneHot' | 'label';
  scale: 'standard' | 'minMax' | 'none';
  dates: 'parts' | 'epoch';
  text: 'drop' | 'hash';
  buckets: number;
  scaleLabel: boolean;
  task: 'classification' | 'regression' | undefined;
  sink: WarningSink | undefined;
  labelName: string | null;
}

/** The names preparation() takes, for checkOptions. */
export const PREPARATION_OPTIONS = [
  'label',
  'task',
  'missing',
  'categorical',
  'scale',
  'dates',
  'text',
  'hashBuckets',
  'scaleLabel',
  'onWarning',
] as const;

/** Checks preparation options (coded errors naming the option and the allowed values). */
export function preparationSettings(options: unknown, extra: readonly string[] = []): PreparationSettings {
  const o = checkOptions('preparation', options, [...PREPARATION_OPTIONS, ...extra]);
  return {
    missing: checkMissing(o.missing),
    categorical: checkOneOf('preparation.categorical', o.categorical ?? 'oneHot', ['oneHot', 'label']),
    scale: checkOneOf('preparation.scale', o.scale ?? 'standard', ['standard', 'minMax', 'none']),
    dates: checkOneOf('preparation.dates', o.dates ?? 'parts', ['parts', 'epoch']),
    text: checkOneOf('preparation.text', o.text ?? 'drop', ['drop', 'hash']),
    buckets: o.hashBuckets === undefined ? 32 : checkInteger('preparation.hashBuckets', o.hashBuckets, 2, 4096),
    scaleLabel: o.scaleLabel === undefined ? false : checkBoolean('preparation.scaleLabel', o.scaleLabel),
    task:
      o.task === undefined
        ? undefined
        : checkOneOf<'classification' | 'regression'>('preparation.task', o.task, ['classification', 'regression']),
    sink: o.onWarning as WarningSink | undefined,
    labelName: o.label === undefined ? null : checkString('preparation.label', o.label),
  };
}

/** The warning for rows without a label. */
export function missingLabelsWarning(label: string, missing: number, rows: number): DataWarning {
  return {
    code: 'MAAS_WARN_MISSING_LABELS',
    column: label,
    message: `${missing} of ${rows} rows have no '${label}': they are left out`,
  };
}

/** Why a feature column is left out (free text, or one value), as its warning; null when it is used. */
export function leftOut(
  name: string,
  kind: ColumnKind,
  distinct: number,
  rows: number,
  settings: Pick<PreparationSettings, 'text'>,
): DataWarning | null {
  if (kind === 'text' && settings.text === 'drop')
    return {
      code: 'MAAS_WARN_TEXT_COLUMN',
      column: name,
      message: `Column '${name}' looks like free text or an ID (${distinct} distinct values in ${rows} rows): it is left out of the features; prepare it with { text: 'hash' }, or make it a category with asType('${name}', 'category')`,
    };
  if (distinct <= 1)
    return {
      code: 'MAAS_WARN_CONSTANT_COLUMN',
      column: name,
      message: `Column '${name}' has ${distinct === 0 ? 'no values' : 'the same value in every row'}: it is left out of the features`,
    };
  return null;
}

export const noUsableColumns = (ignored: readonly string[]) =>
  new MaasError('MAAS_ERR_DATA_FORMAT', `No usable feature columns: ${ignored.join(', ')} were left out`);

export const noRowsLeft = () =>
  new MaasError(
    'MAAS_ERR_DATA_FORMAT',
    'No rows are left to fit on (every row has a missing value, or the table is empty)',
  );

/** A number or date column's plan; `timed`: some date carries a time of day. */
export function numericPlan(
  name: string,
  kind: 'number' | 'date',
  fill: number | null,
  timed: boolean,
  settings: Pick<PreparationSettings, 'dates'>,
): ColumnPlan {
  if (kind === 'number') return { name, kind: 'number', fill };
  const parts: DatePart[] | null =
    settings.dates === 'epoch' ? null : ['year', 'month', 'day', 'weekday', ...(timed ? (['hour'] as const) : [])];
  return { name, kind: 'date', parts, fill };
}

/** The fill of a category or text column: the constant, the most frequent value, or null (drop). */
export function categoryFill(missing: MissingStrategy, mostFrequentName: () => string | null): string | null {
  if (missing === 'drop') return null;
  return typeof missing === 'object' ? String(missing.constant) : mostFrequentName();
}

/** A category or text column's plan from its distinct values (warns when one-hot makes many columns). */
export function categoricalPlan(
  name: string,
  kind: 'category' | 'text',
  names: Iterable<string>,
  fill: string | null,
  settings: Pick<PreparationSettings, 'categorical' | 'buckets'>,
  note: (w: DataWarning) => void,
): ColumnPlan {
  if (kind === 'text') return { name, kind: 'hash', buckets: settings.buckets, fill: fill === null ? null : '' };
  const categories = sortedNames(names);
  if (settings.categorical === 'label') {
    // Label encoding has no "none of them": a constant fill that is no category becomes one.
    const classes = fill !== null && !categories.includes(fill) ? sortedNames([...categories, fill]) : categories;
    return { name, kind: 'label', classes, fill };
  }
  if (categories.length > MANY_CATEGORIES)
    note({
      code: 'MAAS_WARN_MANY_CATEGORIES',
      column: name,
      message: `Column '${name}' has ${categories.length} categories: one-hot encoding makes as many features; consider { categorical: 'label' }, { text: 'hash' } with asType('${name}', 'text'), or dropping it`,
    });
  return { name, kind: 'oneHot', categories, fill };
}

/** Whether the label is classes (a category, or told so) or a value; refuses dates and non-numeric values. */
export function isClassification(
  label: string,
  kind: ColumnKind,
  settings: Pick<PreparationSettings, 'task'>,
): boolean {
  if (kind === 'date')
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `Label column '${label}' holds dates, which maas does not predict`);
  const classification = settings.task === 'classification' || (settings.task === undefined && kind !== 'number');
  if (!classification && kind !== 'number')
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `Label column '${label}' holds ${kind} values; regression needs numbers`,
    );
  return classification;
}

/** The classes of a classification label (at least two). */
export function classesPlan(label: string, names: Iterable<string>): LabelPlan & { kind: 'classes' } {
  const classes = sortedNames(names);
  if (classes.length < 2)
    throw new MaasError(
      'MAAS_ERR_DATA_FORMAT',
      `Label column '${label}' has ${classes.length} class in the training rows; classification needs at least 2`,
    );
  return { name: label, kind: 'classes', classes };
}

/** A cell read as a finite number (a number, or a string that reads as one), or a coded error naming `where`. */
function requiredNumber(v: Cell, where: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n))
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${where}: expected a number but received '${String(v)}'`);
  return n;
}

/** A fitted pipeline: transform() maps raw rows to model inputs; decode() maps outputs back to labels. */
export class Pipeline {
  /** The input columns' names, in order. */
  private readonly names: readonly string[];
  /** Every column a record may name: inputs, ignored ones and the label. */
  private readonly known: ReadonlySet<string>;
  /** Each categorical column's category → index (null for the others), made once, not per request. */
  private readonly indexes: readonly (ReadonlyMap<string, number> | null)[];
  /** The class names' indices (classification), made once. */
  private readonly labelIndex: ReadonlyMap<string, number> | null;
  /** Width of the transformed rows. */
  readonly width: number;

  private constructor(
    private readonly columns: ColumnPlan[],
    private readonly scale: ScalePlan,
    private readonly labelPlan: LabelPlan | null,
    private readonly ignored: string[],
  ) {
    this.names = columns.map((c) => c.name);
    this.known = new Set([...this.names, ...ignored, ...(labelPlan ? [labelPlan.name] : [])]);
    this.indexes = columns.map((plan) =>
      plan.kind === 'oneHot' || plan.kind === 'label'
        ? new Map((plan.kind === 'label' ? plan.classes : plan.categories).map((v, k) => [v, k]))
        : null,
    );
    this.width = columns.reduce((n, c) => n + planWidth(c), 0);
    this.labelIndex = labelPlan?.kind === 'classes' ? new Map(labelPlan.classes.map((c, k) => [c, k])) : null;
  }

  /**
   * Where each raw input column lands in the transformed row: its first feature and how many it
   * makes, with each feature's name ('age', 'color=red', 'when.month', 'notes#3').
   */
  get featureSpans(): { column: string; start: number; width: number; names: string[] }[] {
    let start = 0;
    return this.columns.map((plan) => {
      const width = planWidth(plan);
      const span = { column: plan.name, start, width, names: featureNamesOf(plan) };
      start += width;
      return span;
    });
  }

  /** The transformed row's feature names, in order (featureSpans' names end to end). */
  get featureNames(): string[] {
    return this.columns.flatMap(featureNamesOf);
  }

  /** Raw input column names, in order (the columns a record must have). */
  get inputColumns(): string[] {
    return [...this.names];
  }

  /** Whether a record may name this column: an input, an ignored column or the label. */
  knowsColumn(name: string): boolean {
    return this.known.has(name);
  }

  /** Each input column's kind, as the service lists its raw inputs. */
  get inputKinds(): Record<string, ColumnKind> {
    return Object.fromEntries(
      this.columns.map((c) => [
        c.name,
        c.kind === 'number' ? 'number' : c.kind === 'date' ? 'date' : c.kind === 'hash' ? 'text' : 'category',
      ]),
    );
  }

  /**
   * Each input column as a form shows it: its kind, its categories, and a typical value to start
   * from (the missing-value fill, else the fitted mean, else the first category).
   */
  get columnForms(): ColumnForm[] {
    const kinds = this.inputKinds;
    return this.featureSpans.map(({ column, start }, c) => {
      const plan = this.columns[c]!;
      const kind = kinds[column]!;
      if (plan.kind === 'oneHot' || plan.kind === 'label') {
        const categories = plan.kind === 'label' ? plan.classes : plan.categories;
        return { name: column, kind, categories: [...categories], typical: plan.fill ?? categories[0] ?? null };
      }
      if (plan.kind === 'hash') return { name: column, kind, typical: plan.fill ?? '' };
      const fitted = this.scale.kind === 'standard' ? this.scale.mean[start] : undefined;
      if (plan.kind === 'date') {
        const ms = plan.fill ?? (plan.parts === null && fitted !== undefined ? fitted * DAY_MS : null);
        // A date a JS Date can hold (±8.64e15 ms); a file's fill may be any finite number.
        const valid = ms !== null && Number.isFinite(ms) && Math.abs(ms) <= 8.64e15;
        return { name: column, kind, typical: valid ? new Date(ms).toISOString().slice(0, 10) : null };
      }
      return { name: column, kind, typical: plan.fill ?? fitted ?? null };
    });
  }

  /** Columns fit left out (text, constant): accepted in records and not used. */
  get ignoredColumns(): string[] {
    return [...this.ignored];
  }

  /** The label column's name, or null when the pipeline was fitted without one. */
  get label(): string | null {
    return this.labelPlan?.name ?? null;
  }

  /** 'classification', 'regression', or null without a label. */
  get task(): 'classification' | 'regression' | null {
    return this.labelPlan ? (this.labelPlan.kind === 'classes' ? 'classification' : 'regression') : null;
  }

  /** The class names, in index order (classification), else null. */
  get classes(): string[] | null {
    return this.labelPlan?.kind === 'classes' ? [...this.labelPlan.classes] : null;
  }

  /**
   * Fits on the training rows (a DataFrame, a table or records); returns the pipeline, the
   * transformed features x, the label y when `label` is named, the row indices kept, and a report.
   */
  static fit(
    data: RawRows,
    options: PreparationOptions = {},
  ): { pipeline: Pipeline; x: Float32Array; y: Float32Array | null; kept: number[]; report: PreparationReport } {
    const settings = preparationSettings(options);
    const { missing, sink, labelName } = settings;
    const frame = frameOf(data, sink, 'prepare(data)');
    const warnings: DataWarning[] = [];
    const note = (w: DataWarning) => {
      warnings.push(w);
      warn(sink, w);
    };

    // The label: which rows have one, and what it is.
    const labelCells = labelName === null ? null : frame.column(labelName);
    let rows = Array.from({ length: frame.length }, (_, i) => i);
    let droppedRows = 0;
    if (labelCells) {
      const labelled = rows.filter((i) => labelCells[i] !== null);
      if (labelled.length < rows.length)
        note(missingLabelsWarning(labelName!, rows.length - labelled.length, rows.length));
      droppedRows += rows.length - labelled.length;
      rows = labelled;
    }
    const featureNames = frame.columns.filter((n) => n !== labelName);
    if (featureNames.length === 0)
      throw new MaasError('MAAS_ERR_DATA_FORMAT', 'There are no feature columns to prepare');

    // Which columns become features, and how.
    const ignored: string[] = [];
    const used: { name: string; kind: ColumnKind }[] = [];
    for (const name of featureNames) {
      const kind = frame.kind(name);
      const cells = frame.column(name);
      const distinct = new Set<string>();
      for (const i of rows) if (cells[i] !== null) distinct.add(String(cells[i]));
      const left = leftOut(name, kind, distinct.size, rows.length, settings);
      if (left) {
        ignored.push(name);
        note(left);
      } else used.push({ name, kind });
    }
    if (used.length === 0) throw noUsableColumns(ignored);

    if (missing === 'drop') {
      const before = rows.length;
      rows = rows.filter((i) => used.every(({ name }) => frame.column(name)[i] !== null));
      droppedRows += before - rows.length;
    }
    if (rows.length === 0) throw noRowsLeft();

    const filled: PreparationReport['filled'] = {};
    const plans = used.map(({ name, kind }): ColumnPlan => {
      const cells = frame.column(name);
      const present = rows.map((i) => cells[i]!).filter((v) => v !== null);
      const count = rows.length - present.length;
      const filling = missing !== 'drop';
      if (kind === 'number' || kind === 'date') {
        const fill = filling ? numericFill(missing, present as number[]) : null;
        const plan = numericPlan(
          name,
          kind,
          fill,
          present.some((v) => (v as number) % DAY_MS !== 0),
          settings,
        );
        if (filling && count > 0)
          filled[name] = { count, value: kind === 'date' ? new Date(fill!).toISOString() : fill };
        return plan;
      }
      const names = present.map(String);
      const fill = categoryFill(missing, () => mostFrequent(names) as string | null);
      if (filling && count > 0) filled[name] = { count, value: kind === 'text' ? '' : fill };
      return categoricalPlan(name, kind, new Set(names), fill, settings, note);
    });

    // The label's plan and values.
    let labelPlan: LabelPlan | null = null;
    let y: Float32Array | null = null;
    if (labelName !== null) {
      const cells = labelCells!;
      const classification = isClassification(labelName, frame.kind(labelName), settings);
      if (classification) {
        const classes = classesPlan(labelName, new Set(rows.map((i) => String(cells[i]))));
        labelPlan = classes;
        const index = new Map(classes.classes.map((c, k) => [c, k]));
        y = Float32Array.from(rows, (i) => index.get(String(cells[i]))!);
      } else {
        const values = rows.map((i) => cells[i] as number);
        let mean = 0;
        let std = 1;
        if (settings.scaleLabel) {
          mean = values.reduce((a, b) => a + b, 0) / values.length;
          std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) || 1;
        }
        labelPlan = { name: labelName, kind: 'value', mean, std };
        y = Float32Array.from(values, (v) => (v - mean) / std);
      }
    }

    const unscaled = new Pipeline(plans, { kind: 'none' }, labelPlan, ignored);
    const x = unscaled.encode(unscaled.cellsOf(frame, rows));
    let scale: ScalePlan = { kind: 'none' };
    if (settings.scale === 'standard') {
      const s = new StandardScaler().fit(x, unscaled.width);
      scale = { kind: 'standard', mean: s.mean, std: s.std };
    } else if (settings.scale === 'minMax') {
      const s = new MinMaxScaler().fit(x, unscaled.width);
      scale = { kind: 'minMax', min: s.min, max: s.max };
    }
    const pipeline = new Pipeline(plans, scale, labelPlan, ignored);
    pipeline.applyScale(x);
    const usedNames = new Set(used.map((u) => u.name));
    const frameWarnings = frame.warnings.filter((w) => w.column === undefined || usedNames.has(w.column));
    return {
      pipeline,
      x,
      y,
      kept: rows,
      report: {
        rows: frame.length,
        droppedRows,
        filled,
        ignored,
        warnings: [...frameWarnings, ...warnings],
      },
    };
  }

  /** Maps raw rows to model inputs with the fitted fills, encodings and scaling (strict about columns). */
  transform(rows: RawRows, options: TransformOptions = {}): Float32Array {
    const o = checkOptions('transform options', options, ['allowMissing', 'onWarning']);
    const allowMissing = o.allowMissing === undefined ? false : checkBoolean('allowMissing', o.allowMissing);
    return this.applyScale(this.encode(this.rawCells(rows, allowMissing, o.onWarning as WarningSink | undefined)));
  }

  /**
   * Features and, when the rows carry the label column, labels: a test set through the training
   * transform. Rows whose label is missing are left out (kept says which were used).
   */
  apply(data: RawRows, options: TransformOptions = {}): { x: Float32Array; y: Float32Array | null; kept: number[] } {
    const frame = frameOf(data, options.onWarning, 'apply(data)');
    const label = this.labelPlan;
    if (!label || !frame.has(label.name))
      return { x: this.transform(frame, options), y: null, kept: Array.from({ length: frame.length }, (_, i) => i) };
    const cells = frame.column(label.name);
    const kept = Array.from({ length: frame.length }, (_, i) => i).filter((i) => cells[i] !== null);
    const rows = kept.length === frame.length ? frame : frame.take(kept);
    const y = Float32Array.from(kept, (i, row) => this.labelValue(cells[i]!, row));
    return { x: this.transform(rows, options), y, kept };
  }

  /**
   * Model outputs back to labels, one per row: the class name of the highest score
   * (classification; one sigmoid output reads as class 1 above 0.5), or the value in the label's
   * units (regression).
   */
  decode(outputs: ArrayLike<number>, rows: number): PredictedLabel[] {
    const label = this.requireLabel('decode');
    const width = outputs.length / rows;
    if (!Number.isInteger(width) || width < 1)
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected outputs of ${rows} whole rows but received ${outputs.length} values`,
      );
    if (label.kind === 'value')
      return Array.from({ length: rows }, (_, r) => outputs[r * width]! * label.std + label.mean);
    return this.rank(outputs, rows, 1).map((top) => top[0]!.label);
  }

  /** Each row's k highest-scoring classes, best first (Triton's classification extension). */
  rank(outputs: ArrayLike<number>, rows: number, k: number): RankedClass[][] {
    const label = this.requireLabel('rank');
    if (label.kind !== 'classes')
      throw new MaasError('MAAS_ERR_DATA_FORMAT', `The label '${label.name}' is a value, not classes: nothing to rank`);
    const width = outputs.length / rows;
    const binary = width === 1 && label.classes.length === 2;
    if (!binary && width !== label.classes.length)
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected ${label.classes.length} scores per row (one per class) but the model gives ${width}`,
      );
    return Array.from({ length: rows }, (_, r) => {
      const scores = binary
        ? [1 - outputs[r]!, outputs[r]!]
        : Array.from({ length: width }, (_, j) => outputs[r * width + j]!);
      return scores
        .map((score, index) => ({ score, index, label: label.classes[index]! }))
        .sort((a, b) => b.score - a.score || a.index - b.index)
        .slice(0, Math.max(1, k));
    });
  }

  private requireLabel(what: string): LabelPlan {
    if (!this.labelPlan)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `${what}() needs a pipeline fitted with a label column (prepare(data, { label: 'column' }))`,
      );
    return this.labelPlan;
  }

  /** Cells of the given rows of a frame, in input-column order. */
  private cellsOf(frame: DataFrame, rows: readonly number[]): Cell[][] {
    const columns = this.columns.map((c) => frame.column(c.name));
    return rows.map((i) => columns.map((cells) => cells[i]!));
  }

  /** Raw rows as cells in input-column order, the columns checked strictly. */
  private rawCells(rows: RawRows, allowMissing: boolean, sink: WarningSink | undefined): Cell[][] {
    const names = this.names;
    if (Array.isArray(rows) && rows.every((r) => Array.isArray(r))) {
      return rows.map((r, row) => {
        if (r.length !== names.length)
          throw new MaasError(
            'MAAS_ERR_SHAPE_MISMATCH',
            `Expected ${names.length} raw values (${names.join(', ')}) in row ${row} but received ${r.length}`,
          );
        return r.map((v) => (isMissing(v) && !(v instanceof Date) ? null : (v as Cell)));
      });
    }
    if (Array.isArray(rows)) {
      const absent = new Set<string>();
      const cells = rows.map((r, row) => {
        if (!isPlainObject(r)) throw invalidParameter(`rows[${row}]`, 'an object of column values or an array', r);
        const values: Cell[] = [];
        const lacking: string[] = [];
        for (const n of names) {
          // Own keys only: a column named 'constructor' must not read the prototype's.
          if (!Object.hasOwn(r, n)) {
            lacking.push(n);
            values.push(null);
            continue;
          }
          const v = r[n];
          values.push(isMissing(v) && !(v instanceof Date) ? null : (v as Cell));
        }
        this.checkColumns(Object.keys(r), lacking, allowMissing, row);
        for (const n of lacking) absent.add(n);
        return values;
      });
      if (absent.size > 0) this.warnFilled([...absent], sink);
      return cells;
    }
    const frame = rows instanceof DataFrame ? rows : frameOf(rows, sink, 'transform(rows)');
    const absent = names.filter((n) => !frame.has(n));
    this.checkColumns(frame.columns, absent, allowMissing, null);
    if (absent.length > 0) this.warnFilled(absent, sink);
    const columns = names.map((n) => (frame.has(n) ? frame.column(n) : null));
    return Array.from({ length: frame.length }, (_, i) => columns.map((cells) => (cells ? cells[i]! : null)));
  }

  /** Unknown columns are always an error; absent ones (the inputs `present` lacks) unless allowMissing. */
  private checkColumns(
    present: readonly string[],
    absent: readonly string[],
    allowMissing: boolean,
    row: number | null,
  ): void {
    const where = row === null ? '' : ` (record ${row})`;
    const unknown = present.filter((n) => !this.known.has(n));
    if (unknown.length > 0)
      throw new MaasError(
        'MAAS_ERR_DATA_COLUMNS',
        `Unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}${where}: the model takes ${this.names.map((n) => `'${n}'`).join(', ')}`,
      );
    if (!allowMissing && absent.length > 0)
      throw new MaasError(
        'MAAS_ERR_DATA_COLUMNS',
        `Missing column${absent.length > 1 ? 's' : ''} ${absent.map((n) => `'${n}'`).join(', ')}${where}: the model takes ${this.names.map((n) => `'${n}'`).join(', ')} (allowMissing, or the service's allow_missing parameter, fills absent columns with the saved policy)`,
      );
  }

  private warnFilled(absent: string[], sink: WarningSink | undefined): void {
    warn(sink, {
      code: 'MAAS_WARN_FILLED_COLUMNS',
      message: `Absent column${absent.length > 1 ? 's' : ''} ${absent.map((n) => `'${n}'`).join(', ')} filled with the saved policy (allowMissing)`,
    });
  }

  private encode(rows: Cell[][]): Float32Array {
    const out = new Float32Array(rows.length * this.width);
    rows.forEach((row, i) => this.encodeRow(row, out, i * this.width, i));
    return out;
  }

  /**
   * One row of cells (in input-column order) encoded at out[offset…offset+width), unscaled:
   * fills, categories, date parts, hashed words. `out` must be zero there (one-hot and hashed
   * columns only set their ones). Streaming readers encode row by row, then scaleRows.
   */
  encodeRow(row: readonly Cell[], out: Float32Array, offset: number, rowIndex: number): void {
    const index = this.indexes;
    const columns = this.columns;
    for (let c = 0; c < columns.length; c++) {
      const plan = columns[c]!;
      let v = row[c] ?? null;
      if (v === null) {
        if (plan.fill === null)
          throw new MaasError(
            'MAAS_ERR_DATA_MISSING',
            `Row ${rowIndex}, column '${plan.name}' is missing and this pipeline was fitted to drop such rows`,
          );
        v = plan.fill;
      }
      if (plan.kind === 'number') {
        out[offset++] = requiredNumber(v, `Row ${rowIndex}, column '${plan.name}'`);
      } else if (plan.kind === 'date') {
        const ms = dateOf(v);
        if (ms === undefined)
          throw new MaasError(
            'MAAS_ERR_DATA_FORMAT',
            `Row ${rowIndex}, column '${plan.name}': expected an ISO 8601 date but received '${String(v)}'`,
          );
        if (!plan.parts) out[offset++] = ms / DAY_MS;
        else offset = dateParts(ms, plan.parts, out, offset);
      } else if (plan.kind === 'hash') {
        for (const word of words(String(v))) out[offset + (fnv1a(word) % plan.buckets)]!++;
        offset += plan.buckets;
      } else if (plan.kind === 'label') {
        const k = index[c]!.get(String(v));
        if (k === undefined)
          throw new MaasError(
            'MAAS_ERR_DATA_UNKNOWN_CATEGORY',
            `Row ${rowIndex}, column '${plan.name}': '${String(v)}' was not seen in fit`,
          );
        out[offset++] = k;
      } else {
        // out is zero there: set the one hot column; an unseen category stays all zeros
        const k = index[c]!.get(String(v));
        if (k !== undefined) out[offset + k] = 1;
        offset += plan.categories.length;
      }
    }
  }

  /** Rows encoded by encodeRow, scaled in place with the fitted scaling (and returned). */
  scaleRows(x: Float32Array): Float32Array {
    return this.applyScale(x);
  }

  /** A label cell as the model's target: its class index, or its value scaled as in fit. */
  labelValue(cell: Cell, rowIndex: number): number {
    const label = this.requireLabel('labelValue');
    if (label.kind === 'value')
      return (requiredNumber(cell, `Row ${rowIndex}, label '${label.name}'`) - label.mean) / label.std;
    const k = this.labelIndex!.get(String(cell));
    if (k === undefined)
      throw new MaasError(
        'MAAS_ERR_DATA_UNKNOWN_CATEGORY',
        `Row ${rowIndex}, label '${label.name}': '${String(cell)}' is not one of the classes seen in fit (${label.classes.slice(0, 5).join(', ')}${label.classes.length > 5 ? ', …' : ''})`,
      );
    return k;
  }

  /** How a streaming reader should read each input column's cells: numbers, dates or text. */
  get inputReads(): ('number' | 'date' | 'text')[] {
    return this.columns.map((c) => (c.kind === 'number' ? 'number' : c.kind === 'date' ? 'date' : 'text'));
  }

  private applyScale(x: Float32Array): Float32Array {
    if (this.scale.kind === 'standard') return new StandardScaler(this.scale.mean, this.scale.std).transform(x);
    if (this.scale.kind === 'minMax') return new MinMaxScaler(this.scale.min, this.scale.max).transform(x);
    return x;
  }

  /** Plain JSON for model.json's extension field. */
  toJSON(): PipelineJson {
    return {
      kind: 'maas.preparation',
      version: 2,
      columns: this.columns,
      scale: this.scale,
      ...(this.labelPlan ? { label: this.labelPlan } : {}),
      ...(this.ignored.length > 0 ? { ignored: this.ignored } : {}),
    };
  }

  /** Rebuilds a pipeline saved by toJSON (version 1 or 2), checking every field: it comes from a file. */
  static fromJSON(json: unknown): Pipeline {
    const { columns, scale, label, ignored } = checkedPipelineJson(json);
    return new Pipeline(columns, scale, label, ignored);
  }
}

const malformed = (what: string) =>
  new MaasError('MAAS_ERR_MODEL_FORMAT', `The preparation pipeline in the model file is malformed: ${what}`);

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isNumbers = (v: unknown, n: number): v is number[] =>
  Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isFill = (v: unknown, type: 'number' | 'string') =>
  v === null || (type === 'number' ? typeof v === 'number' && Number.isFinite(v) : typeof v === 'string');

function checkedPlan(p: unknown, i: number): ColumnPlan {
  if (!isPlainObject(p) || typeof p.name !== 'string') throw malformed(`column ${i} has no name`);
  const ok =
    (p.kind === 'number' && isFill(p.fill, 'number')) ||
    (p.kind === 'oneHot' && isStrings(p.categories) && isFill(p.fill, 'string')) ||
    (p.kind === 'label' && isStrings(p.classes) && isFill(p.fill, 'string')) ||
    (p.kind === 'date' &&
      (p.parts === null ||
        (isStrings(p.parts) && p.parts.every((x) => ['year', 'month', 'day', 'weekday', 'hour'].includes(x)))) &&
      isFill(p.fill, 'number')) ||
    (p.kind === 'hash' &&
      Number.isInteger(p.buckets) &&
      (p.buckets as number) >= 2 &&
      (p.buckets as number) <= 4096 &&
      isFill(p.fill, 'string'));
  if (!ok) throw malformed(`column '${p.name}' (${String(p.kind)})`);
  return p as unknown as ColumnPlan;
}

function checkedPipelineJson(json: unknown): {
  columns: ColumnPlan[];
  scale: ScalePlan;
  label: LabelPlan | null;
  ignored: string[];
} {
  if (!isPlainObject(json) || json.kind !== 'maas.preparation' || (json.version !== 1 && json.version !== 2))
    throw malformed('not a maas.preparation of version 1 or 2');
  if (!Array.isArray(json.columns) || json.columns.length === 0) throw malformed('no columns');
  const columns = json.columns.map(checkedPlan);
  const width = columns.reduce((n, c) => n + planWidth(c), 0);
  const s = json.scale;
  const scaleOk =
    isPlainObject(s) &&
    (s.kind === 'none' ||
      (s.kind === 'standard' && isNumbers(s.mean, width) && isNumbers(s.std, width) && s.std.every((v) => v > 0)) ||
      (s.kind === 'minMax' && isNumbers(s.min, width) && isNumbers(s.max, width)));
  if (!scaleOk) throw malformed(`scale (the features are ${width} wide)`);
  const l = json.label;
  let label: LabelPlan | null = null;
  if (l !== undefined) {
    const ok =
      isPlainObject(l) &&
      typeof l.name === 'string' &&
      ((l.kind === 'classes' && isStrings(l.classes) && l.classes.length >= 2) ||
        (l.kind === 'value' && isNumbers([l.mean, l.std], 2) && (l.std as number) > 0));
    if (!ok) throw malformed('label');
    label = l as unknown as LabelPlan;
  }
  const ignored = json.ignored ?? [];
  if (!isStrings(ignored)) throw malformed('ignored columns');
  return { columns, scale: s as ScalePlan, label, ignored };
}

/** Fits a preparation pipeline on the training rows (see Pipeline.fit). */
export function prepare(data: RawRows, options?: PreparationOptions) {
  return Pipeline.fit(data, options);
}
