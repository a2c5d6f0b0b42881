/**
 * trainTestSplit: a seeded shuffle into train and test rows, optionally stratified so each class
 * keeps its share in both parts: of a DataFrame (before anything is fitted), or of x and y.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { Tensor, tensor, type NestedArray } from '../core/tensor.js';
import { checkBoolean, checkOptions } from '../core/validation.js';
import { seededSplit, splitSettings } from './seeded-split.js';
import { DataFrame, type SplitFrameOptions } from './frame.js';

/** trainTestSplit()'s options. */
export interface SplitOptions {
  /** Fraction of rows for the test part (default 0.25, as sklearn). */
  testSize?: number;
  /** Seed of the shuffle; random when omitted. */
  seed?: number;
  /** Keep each class's share of y in both parts (y: class indices or one-hot rows). */
  stratify?: boolean;
}

function asTensor(v: Tensor | NestedArray | Float32Array, name: string): Tensor {
  if (v instanceof Tensor) return v.rank === 1 ? new Tensor(v.values, [v.shape[0]!, 1]) : v;
  if (v instanceof Float32Array) return new Tensor(v, [v.length, 1]);
  if (Array.isArray(v)) {
    const t = tensor(v);
    return t.rank === 1 ? new Tensor(t.values, [t.shape[0]!, 1]) : t;
  }
  throw invalidParameter(name, 'a Tensor, nested arrays or a Float32Array of one value per row', v);
}

function take(t: Tensor, rows: number[]): Tensor {
  const width = t.shape[1]!;
  const out = new Float32Array(rows.length * width);
  rows.forEach((r, i) => out.set(t.values.subarray(r * width, (r + 1) * width), i * width));
  return new Tensor(out, [rows.length, width]);
}

function classOf(y: Tensor, row: number): number {
  const w = y.shape[1]!;
  if (w === 1) return y.values[row]!;
  let best = 0;
  for (let j = 1; j < w; j++) if (y.values[row * w + j]! > y.values[row * w + best]!) best = j;
  return best;
}

/** Splits a DataFrame's rows into train and test frames (seeded; `stratify` names a column). */
export function trainTestSplit(frame: DataFrame, options?: SplitFrameOptions): { train: DataFrame; test: DataFrame };
/** Splits x and y into train and test rows. */
export function trainTestSplit(
  x: Tensor | NestedArray | Float32Array,
  y: Tensor | NestedArray | Float32Array,
  options?: SplitOptions,
): { xTrain: Tensor; xTest: Tensor; yTrain: Tensor; yTest: Tensor };
export function trainTestSplit(
  x: DataFrame | Tensor | NestedArray | Float32Array,
  y?: Tensor | NestedArray | Float32Array | SplitFrameOptions,
  options: SplitOptions = {},
): { train: DataFrame; test: DataFrame } | { xTrain: Tensor; xTest: Tensor; yTrain: Tensor; yTest: Tensor } {
  if (x instanceof DataFrame) return x.split(y as SplitFrameOptions | undefined);
  return splitTensors(x, y as Tensor | NestedArray | Float32Array, options);
}

function splitTensors(
  x: Tensor | NestedArray | Float32Array,
  y: Tensor | NestedArray | Float32Array,
  options: SplitOptions,
) {
  const o = checkOptions('trainTestSplit', options, ['testSize', 'seed', 'stratify']);
  const settings = splitSettings('trainTestSplit', o.testSize, o.seed);
  const stratify = o.stratify === undefined ? false : checkBoolean('trainTestSplit.stratify', o.stratify);
  const xt = asTensor(x, 'x'),
    yt = asTensor(y, 'y');
  const rows = xt.shape[0]!;
  if (yt.shape[0] !== rows)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected y to have as many rows as x (${rows}) but received ${yt.shape[0]}`,
    );
  const { train, test } = seededSplit(rows, (r) => (stratify ? classOf(yt, r) : 0), settings);
  return { xTrain: take(xt, train), xTest: take(xt, test), yTrain: take(yt, train), yTest: take(yt, test) };
}
