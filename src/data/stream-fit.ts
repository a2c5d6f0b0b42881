/**
 * Fitting a preparation pipeline in one pass over rows that arrive one at a time (a file larger
 * than memory): per column the count of present cells, the distinct categories, shifted sums of
 * the encoded values and of their squares, minima and maxima. At the end the same rules as
 * Pipeline.fit (pipeline.ts: which columns are left out, fills, encodings, label) make the plans,
 * and the scaling comes from the sums, so memory holds the categories and not the rows.
 *
 * What cannot be fitted in one bounded pass is refused by name: the median fill needs every value,
 * and a category or number column with more than MAX_DISTINCT values cannot be counted.
 *
 * Where it differs from Pipeline.fit: with `missing: 'drop'`, a row is dropped for a missing cell
 * in any column kept by its kind, before it is known which columns turn out constant.
 */
import { MaasError } from '../core/errors.js';
import type { ColumnKind } from './frame.js';
import type { Cell } from './table.js';
import { warn, type DataWarning } from './warnings.js';
import {
  DAY_MS,
  categoricalPlan,
  categoryFill,
  classesPlan,
  datePart,
  fnv1a,
  isClassification,
  leftOut,
  missingLabelsWarning,
  noRowsLeft,
  noUsableColumns,
  numericFill,
  numericPlan,
  words,
  type ColumnPlan,
  type DatePart,
  type LabelPlan,
  type PipelineJson,
  type PreparationReport,
  type PreparationSettings,
  type ScalePlan,
} from './pipeline.js';

/** The most distinct values one column may have in a streaming fit. */
export const MAX_DISTINCT = 100_000;
/** Distinct values of a text column counted for its warning. */
const TEXT_DISTINCT_SHOWN = 10_000;

/** Sums of values shifted by the first one (so a large offset does not swamp the variance). */
class Moments {
  n = 0;
  private shift = NaN;
  private s1 = 0;
  private s2 = 0;
  min = Infinity;
  max = -Infinity;

  add(v: number, times = 1): void {
    if (times === 0) return;
    if (Number.isNaN(this.shift)) this.shift = v;
    const d = v - this.shift;
    this.n += times;
    this.s1 += d * times;
    this.s2 += d * d * times;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** Mean and population variance over `rows` (rows not added count as zeros). */
  over(rows: number): { mean: number; variance: number; min: number; max: number } {
    const zeros = rows - this.n;
    const shift = Number.isNaN(this.shift) ? 0 : this.shift;
    // Zeros shifted: each adds -shift and shift².
    const s1 = this.s1 - zeros * shift;
    const s2 = this.s2 + zeros * shift * shift;
    const m = s1 / rows;
    return {
      mean: shift + m,
      variance: Math.max(0, s2 / rows - m * m),
      min: zeros > 0 ? Math.min(this.min, 0) : this.min,
      max: zeros > 0 ? Math.max(this.max, 0) : this.max,
    };
  }
}

/** Counts of distinct values, bounded. */
class Counts {
  readonly map = new Map<string, number>();

  constructor(private readonly column: string) {}

  add(key: string): void {
    const n = this.map.get(key);
    if (n !== undefined) this.map.set(key, n + 1);
    else {
      if (this.map.size >= MAX_DISTINCT)
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `Column '${this.column}' has more than ${MAX_DISTINCT} distinct values, too many to count in a streaming fit: give it the kind 'text' (options.types) to hash or drop it`,
        );
      this.map.set(key, 1);
    }
  }

  /** The most frequent key (ties: the first in sorted order, as Pipeline.fit picks). */
  mostFrequent(): string | null {
    let best: string | null = null;
    let bestCount = 0;
    for (const key of [...this.map.keys()].sort()) {
      const n = this.map.get(key)!;
      if (n > bestCount) {
        best = key;
        bestCount = n;
      }
    }
    return best;
  }
}

const DATE_PARTS: DatePart[] = ['year', 'month', 'day', 'weekday', 'hour'];

/** What one feature column gathers. */
interface ColumnState {
  name: string;
  kind: ColumnKind;
  /** Where the column's cell is in a row. */
  at: number;
  /** Distinct present values over the labelled rows (capped at 2 for numbers and dates: enough to see a constant). */
  distinct: Set<string>;
  /** Present cells, over the rows kept. */
  present: number;
  /** number: the cells as float32; date: per part (or epoch days), as float32. */
  moments: Moments[];
  /** category: counts of each value. */
  counts: Counts | null;
  /** text: distinct values, up to TEXT_DISTINCT_SHOWN (only for the warning's message). */
  texts: Set<string> | null;
  /** number with missing: 'mostFrequent': counts of each value. */
  numberCounts: Counts | null;
  /** Sum of present raw values, for the mean fill. */
  sum: number;
  timed: boolean;
  /** text with hashing: per-bucket moments of the word counts. */
  buckets: Moments[] | null;
}

/**
 * Gathers rows (cells in the file's column order, numbers and dates already read as numbers) and
 * makes the pipeline's JSON and report. `kinds` are the file's columns' kinds.
 */
export class StreamingFitter {
  private readonly states: ColumnState[] = [];
  private readonly labelAt: number;
  private readonly labelCounts: Counts | null = null;
  private readonly labelMoments = new Moments();
  private rows = 0;
  private unlabelled = 0;
  private dropped = 0;
  private kept = 0;
  private readonly hashScratch: Float64Array;
  private readonly labelClassification: boolean;

  constructor(
    columns: readonly string[],
    kinds: readonly ColumnKind[],
    private readonly settings: PreparationSettings,
  ) {
    if (settings.missing === 'median')
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        "preparation.missing 'median' needs every value in memory; a streaming fit takes 'mean', 'mostFrequent', 'drop' or { constant: value }",
      );
    const label = settings.labelName;
    this.labelAt = label === null ? -1 : columns.indexOf(label);
    if (label !== null && this.labelAt < 0)
      throw new MaasError(
        'MAAS_ERR_DATA_FORMAT',
        `Expected a column named '${label}' but the columns are ${columns.map((c) => `'${c}'`).join(', ')}`,
      );
    this.labelClassification = label === null ? false : isClassification(label, kinds[this.labelAt]!, settings);
    if (this.labelClassification) this.labelCounts = new Counts(label!);
    columns.forEach((name, at) => {
      if (at === this.labelAt) return;
      const kind = kinds[at]!;
      const numeric = kind === 'number' || kind === 'date';
      this.states.push({
        name,
        kind,
        at,
        distinct: new Set(),
        present: 0,
        moments: Array.from(
          { length: kind === 'number' ? 1 : kind === 'date' ? DATE_PARTS.length + 1 : 0 },
          () => new Moments(),
        ),
        counts: kind === 'category' ? new Counts(name) : null,
        texts: kind === 'text' ? new Set() : null,
        numberCounts: numeric && settings.missing === 'mostFrequent' ? new Counts(name) : null,
        sum: 0,
        timed: false,
        buckets:
          kind === 'text' && settings.text === 'hash'
            ? Array.from({ length: settings.buckets }, () => new Moments())
            : null,
      });
    });
    if (this.states.length === 0)
      throw new MaasError('MAAS_ERR_DATA_FORMAT', 'There are no feature columns to prepare');
    this.hashScratch = new Float64Array(settings.buckets);
  }

  /** Whether a column takes part in 'drop' (text left out by kind does not). */
  private counted(state: ColumnState): boolean {
    return !(state.kind === 'text' && this.settings.text === 'drop');
  }

  /** One row of cells in the file's column order. */
  add(row: readonly Cell[]): void {
    this.rows++;
    if (this.labelAt >= 0 && row[this.labelAt] === null) {
      this.unlabelled++;
      return;
    }
    // Two distinct values over the labelled rows are enough to know a column is not constant.
    for (const state of this.states) {
      const v = row[state.at];
      if (v !== null && v !== undefined && state.distinct.size < 2) state.distinct.add(String(v));
    }
    if (this.settings.missing === 'drop')
      for (const state of this.states)
        if (this.counted(state) && row[state.at] === null) {
          this.dropped++;
          return;
        }
    this.kept++;
    for (const state of this.states) this.addCell(state, row[state.at] ?? null);
    if (this.labelAt >= 0) {
      const v = row[this.labelAt]!;
      if (this.labelCounts) this.labelCounts.add(String(v));
      else this.labelMoments.add(v as number);
    }
  }

  private addCell(state: ColumnState, v: Cell): void {
    if (v === null) return;
    state.present++;
    if (state.kind === 'number') {
      const n = v as number;
      state.sum += n;
      state.moments[0]!.add(Math.fround(n));
      state.numberCounts?.add(String(n));
    } else if (state.kind === 'date') {
      const ms = v as number;
      state.sum += ms;
      if (ms % DAY_MS !== 0) state.timed = true;
      for (let k = 0; k < DATE_PARTS.length; k++) state.moments[k]!.add(Math.fround(datePart(ms, DATE_PARTS[k]!)));
      state.moments[DATE_PARTS.length]!.add(Math.fround(ms / DAY_MS));
      state.numberCounts?.add(String(ms));
    } else {
      const text = v as string;
      if (state.counts) state.counts.add(text);
      else if (state.texts!.size < TEXT_DISTINCT_SHOWN) state.texts!.add(text);
      if (state.buckets) {
        const counts = this.hashScratch;
        counts.fill(0);
        for (const word of words(text)) counts[fnv1a(word) % state.buckets.length]!++;
        for (let b = 0; b < counts.length; b++) if (counts[b] !== 0) state.buckets[b]!.add(counts[b]!);
      }
    }
  }

  /**
   * The pipeline (as JSON) and the report, by Pipeline.fit's rules; `readWarnings` are the
   * reader's (cells it could not read), reported for the columns used.
   */
  finish(readWarnings: readonly DataWarning[] = []): { json: PipelineJson; report: PreparationReport } {
    const settings = this.settings;
    const warnings: DataWarning[] = [];
    const note = (w: DataWarning) => {
      warnings.push(w);
      warn(settings.sink, w);
    };
    const labelled = this.rows - this.unlabelled;
    if (this.unlabelled > 0) note(missingLabelsWarning(settings.labelName!, this.unlabelled, this.rows));
    const ignored: string[] = [];
    const used: ColumnState[] = [];
    for (const state of this.states) {
      // The constant test needs only "at most one"; the text warning shows how many (bounded).
      const distinct = state.texts ? Math.max(state.texts.size, state.distinct.size) : state.distinct.size;
      const left = leftOut(state.name, state.kind, distinct, labelled, settings);
      if (left) {
        ignored.push(state.name);
        note(left);
      } else used.push(state);
    }
    if (used.length === 0) throw noUsableColumns(ignored);
    const rows = this.kept;
    if (rows === 0) throw noRowsLeft();

    const filling = settings.missing !== 'drop';
    const filled: PreparationReport['filled'] = {};
    const plans: ColumnPlan[] = [];
    const mean: number[] = [];
    const variance: number[] = [];
    const min: number[] = [];
    const max: number[] = [];
    const feature = (m: Moments) => {
      const s = m.over(rows);
      mean.push(s.mean);
      variance.push(s.variance);
      min.push(s.min);
      max.push(s.max);
    };
    for (const state of used) {
      const missingCells = rows - state.present;
      if (state.kind === 'number' || state.kind === 'date') {
        const fill = filling ? this.numericFillOf(state) : null;
        const plan = numericPlan(state.name, state.kind, fill, state.timed, settings);
        plans.push(plan);
        if (filling && missingCells > 0)
          filled[state.name] = {
            count: missingCells,
            value: state.kind === 'date' ? new Date(fill!).toISOString() : fill,
          };
        if (plan.kind === 'number') {
          state.moments[0]!.add(Math.fround(fill ?? 0), fill === null ? 0 : missingCells);
          feature(state.moments[0]!);
        } else if (plan.kind === 'date') {
          const parts = plan.parts;
          if (parts === null) {
            const m = state.moments[DATE_PARTS.length]!;
            if (fill !== null) m.add(Math.fround(fill / DAY_MS), missingCells);
            feature(m);
          } else
            for (const part of parts) {
              const m = state.moments[DATE_PARTS.indexOf(part)]!;
              if (fill !== null) m.add(Math.fround(datePart(fill, part)), missingCells);
              feature(m);
            }
        }
        continue;
      }
      const counts = state.counts?.map ?? new Map<string, number>();
      // A text column's fill is only whether there is one: hashing fills with no words.
      const fill = categoryFill(settings.missing, () => (state.counts ? state.counts.mostFrequent() : ''));
      if (filling && missingCells > 0)
        filled[state.name] = { count: missingCells, value: state.kind === 'text' ? '' : fill };
      const plan = categoricalPlan(state.name, state.kind, counts.keys(), fill, settings, note);
      plans.push(plan);
      if (plan.kind === 'hash') {
        for (const m of state.buckets!) feature(m);
      } else if (plan.kind === 'oneHot') {
        for (const category of plan.categories) {
          const n = (counts.get(category) ?? 0) + (fill === category ? missingCells : 0);
          const p = n / rows;
          mean.push(p);
          variance.push(p * (1 - p));
          min.push(n === rows ? 1 : 0);
          max.push(n > 0 ? 1 : 0);
        }
      } else if (plan.kind === 'label') {
        const m = new Moments();
        plan.classes.forEach((c, k) => m.add(k, (counts.get(c) ?? 0) + (fill === c ? missingCells : 0)));
        feature(m);
      }
    }

    let scale: ScalePlan = { kind: 'none' };
    if (settings.scale === 'standard')
      scale = { kind: 'standard', mean, std: variance.map((v) => (v > 0 ? Math.sqrt(v) : 1)) };
    else if (settings.scale === 'minMax') scale = { kind: 'minMax', min, max };

    let label: LabelPlan | undefined;
    if (settings.labelName !== null) {
      if (this.labelCounts) label = classesPlan(settings.labelName, this.labelCounts.map.keys());
      else {
        let mean = 0;
        let std = 1;
        if (settings.scaleLabel) {
          const s = this.labelMoments.over(this.labelMoments.n);
          mean = s.mean;
          std = Math.sqrt(s.variance) || 1;
        }
        label = { name: settings.labelName, kind: 'value', mean, std };
      }
    }
    const usedNames = new Set(used.map((u) => u.name));
    const json: PipelineJson = {
      kind: 'maas.preparation',
      version: 2,
      columns: plans,
      scale,
      ...(label ? { label } : {}),
      ...(ignored.length > 0 ? { ignored } : {}),
    };
    return {
      json,
      report: {
        rows: this.rows,
        droppedRows: this.unlabelled + this.dropped,
        filled,
        ignored,
        warnings: [...readWarnings.filter((w) => w.column === undefined || usedNames.has(w.column)), ...warnings],
      },
    };
  }

  private numericFillOf(state: ColumnState): number {
    const missing = this.settings.missing;
    if (typeof missing === 'object') return numericFill(missing, []);
    if (state.present === 0) return 0;
    if (missing === 'mostFrequent') {
      // Pipeline.fit counts by String(value) and breaks ties by the sorted key.
      return Number(state.numberCounts!.mostFrequent());
    }
    return state.sum / state.present;
  }
}
