/**
 * Fitted transforms for preparing data: scalers over numeric matrices (fit on training rows,
 * apply to any rows) and encoders for categorical columns. Each serializes to plain JSON so a
 * pipeline can travel inside model.json.
 */
import { MaasError } from '../core/errors.js';
import type { Cell } from './table.js';

/** Per-column (x − mean) / std; constant columns keep std 1. */
export class StandardScaler {
  constructor(
    public mean: number[] = [],
    public std: number[] = [],
  ) {}

  /** Learns each column's mean and population standard deviation. */
  fit(x: Float32Array, cols: number): this {
    const rows = x.length / cols;
    this.mean = new Array<number>(cols).fill(0);
    this.std = new Array<number>(cols).fill(0);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) this.mean[j]! += x[i * cols + j]! / rows;
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) this.std[j]! += (x[i * cols + j]! - this.mean[j]!) ** 2 / rows;
    this.std = this.std.map((v) => (v > 0 ? Math.sqrt(v) : 1));
    return this;
  }

  /** Scales rows in place (and returns them). */
  transform(x: Float32Array): Float32Array {
    const cols = this.mean.length;
    if (cols === 0) return x;
    // Row by row rather than i % cols per element: the modulo was most of the pass.
    for (let at = 0; at < x.length; at += cols)
      for (let j = 0; j < cols; j++) x[at + j] = (x[at + j]! - this.mean[j]!) / this.std[j]!;
    return x;
  }
}

/** Per-column (x − min) / (max − min) into [0, 1] on the training range; constant columns map to 0. */
export class MinMaxScaler {
  constructor(
    public min: number[] = [],
    public max: number[] = [],
  ) {}

  /** Learns each column's range. */
  fit(x: Float32Array, cols: number): this {
    this.min = new Array<number>(cols).fill(Infinity);
    this.max = new Array<number>(cols).fill(-Infinity);
    for (let i = 0; i < x.length; i++) {
      const j = i % cols;
      this.min[j] = Math.min(this.min[j]!, x[i]!);
      this.max[j] = Math.max(this.max[j]!, x[i]!);
    }
    return this;
  }

  /** Scales rows in place (and returns them). */
  transform(x: Float32Array): Float32Array {
    const cols = this.min.length;
    if (cols === 0) return x;
    for (let at = 0; at < x.length; at += cols)
      for (let j = 0; j < cols; j++) {
        const range = this.max[j]! - this.min[j]!;
        x[at + j] = range > 0 ? (x[at + j]! - this.min[j]!) / range : 0;
      }
    return x;
  }
}

/** Maps categories to 0..k−1 in sorted order (sklearn's LabelEncoder); unknown values are errors. */
export class LabelEncoder {
  constructor(public classes: string[] = []) {}

  /** Learns the sorted distinct values. */
  fit(values: readonly Cell[]): this {
    this.classes = [...new Set(values.filter((v) => v !== null).map(String))].sort();
    return this;
  }

  /** Class indices as floats. */
  transform(values: readonly Cell[]): Float32Array {
    const index = new Map(this.classes.map((c, i) => [c, i]));
    return Float32Array.from(values, (v, row) => {
      const i = v === null ? undefined : index.get(String(v));
      if (i === undefined) {
        throw new MaasError(
          'MAAS_ERR_DATA_UNKNOWN_CATEGORY',
          `Row ${row}: '${String(v)}' is not one of the ${this.classes.length} classes seen in fit (${this.classes.slice(0, 5).join(', ')}${this.classes.length > 5 ? ', …' : ''})`,
        );
      }
      return i;
    });
  }

  /** Class names back from indices. */
  inverseTransform(indices: ArrayLike<number>): string[] {
    return Array.from(indices, (i) => this.classes[i] ?? '');
  }
}

/** One 0/1 column per category seen in fit; a category not seen in fit encodes as all zeros. */
export class OneHotEncoder {
  constructor(public categories: string[] = []) {}

  /** Learns the sorted distinct values. */
  fit(values: readonly Cell[]): this {
    this.categories = [...new Set(values.filter((v) => v !== null).map(String))].sort();
    return this;
  }

  /** Writes the one-hot row for `value` into out at offset. */
  encodeInto(value: Cell, out: Float32Array, offset: number): void {
    const i = value === null ? -1 : this.categories.indexOf(String(value));
    for (let j = 0; j < this.categories.length; j++) out[offset + j] = j === i ? 1 : 0;
  }
}
