/**
 * A minimal dense float32 tensor: a Float32Array with a shape, shaped like tfjs's Tensor where a
 * tfjs user would reach for it (shape, dataSync, arraySync, data, array).
 */
import { MaasError, invalidParameter } from './errors.js';

/** A nested array of numbers of any depth. */
export type NestedArray = number | NestedArray[];

/** What the API accepts as tensor input. */
export type TensorLike =
  Tensor | Float32Array | number[] | number[][] | { shape: readonly number[]; dataSync(): ArrayLike<number> };

/** An immutable-shape float32 tensor backed by one Float32Array (row-major). */
export class Tensor {
  /** Dimensions, the batch first. */
  readonly shape: readonly number[];
  /** The backing values, row-major. */
  readonly values: Float32Array;
  /** Always float32, as tfjs names it. */
  readonly dtype = 'float32' as const;
  #disposed = false;

  constructor(data: Float32Array, shape: readonly number[]) {
    let size = 1;
    for (let i = 0; i < shape.length; i++) size *= shape[i]!;
    if (data.length !== size) {
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected ${size} values for shape [${shape.join(',')}] but received ${data.length}`,
      );
    }
    this.values = data;
    this.shape = shape.slice();
  }

  /** Number of elements. */
  get size(): number {
    return this.values.length;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether dispose() ran: the values can no longer be read. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** The values (the backing array, not a copy, as tfjs's dataSync on CPU). */
  dataSync(): Float32Array {
    this.assertLive();
    return this.values;
  }

  /** The values, as a promise (tfjs compatibility). */
  data(): Promise<Float32Array> {
    return new Promise((resolve) => resolve(this.dataSync())); // a throw rejects
  }

  /** The values as nested arrays following the shape. */
  arraySync(): NestedArray {
    this.assertLive();
    return nest(this.values, this.shape, 0, 0);
  }

  /** The nested arrays, as a promise (tfjs compatibility). */
  array(): Promise<NestedArray> {
    return new Promise((resolve) => resolve(this.arraySync())); // a throw rejects
  }

  /** Formats the tensor for logs, eliding long data. */
  toString(): string {
    const values = Array.from(this.values.subarray(0, 8), (v) => v.toPrecision(6)).join(', ');
    return `Tensor [${this.shape.join(',')}] float32 [${values}${this.size > 8 ? ', …' : ''}]`;
  }

  /**
   * Done with the values, as in tfjs. Tensors are garbage collected either way; what dispose adds is
   * for predict's large outputs (1 MiB and up): their memory goes back to the addon's pool now, for
   * the next call, rather than at some later collection. The values are unreadable afterwards (a
   * pooled output's array, and every view of its buffer, becomes empty).
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.release();
  }

  /** What dispose frees beyond the flag (pooled outputs return their memory). */
  protected release(): void {}

  private assertLive(): void {
    if (this.#disposed) {
      throw new MaasError(
        'MAAS_ERR_TENSOR_DISPOSED',
        `Tensor [${this.shape.join(',')}] was disposed: its values are gone`,
      );
    }
  }
}

function nest(data: Float32Array, shape: readonly number[], dim: number, offset: number): NestedArray {
  if (dim === shape.length) return data[offset]!;
  const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const out: NestedArray[] = [];
  for (let i = 0; i < shape[dim]!; i++) out.push(nest(data, shape, dim + 1, offset + i * stride));
  return out;
}

function inferShape(values: unknown): number[] {
  const shape: number[] = [];
  let cur = values;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

function flattenInto(
  values: unknown,
  shape: number[],
  dim: number,
  out: Float32Array,
  offset: number,
  name: string,
): number {
  if (dim === shape.length) {
    if (typeof values !== 'number') throw invalidParameter(name, 'a nested array of numbers', values);
    out[offset] = values;
    return offset + 1;
  }
  if (!Array.isArray(values) || values.length !== shape[dim]) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected a rectangular nested array for ${name}: every row at depth ${dim} of length ${shape[dim]}, but received ${Array.isArray(values) ? `length ${values.length}` : typeof values}`,
    );
  }
  for (const v of values) offset = flattenInto(v, shape, dim + 1, out, offset, name);
  return offset;
}

/** Creates a tensor from a Float32Array, a typed array, or nested arrays, with an optional shape. */
export function tensor(values: Float32Array | ArrayLike<number> | NestedArray, shape?: readonly number[]): Tensor {
  const name = 'values';
  if (ArrayBuffer.isView(values)) {
    const data = values instanceof Float32Array ? values : Float32Array.from(values as unknown as ArrayLike<number>);
    return new Tensor(data, shape ?? [data.length]);
  }
  if (typeof values === 'number') return new Tensor(Float32Array.of(values), shape ?? []);
  if (!Array.isArray(values)) throw invalidParameter(name, 'a Float32Array or nested arrays of numbers', values);
  const inferred = inferShape(values);
  const data = new Float32Array(inferred.reduce((a, b) => a * b, 1));
  flattenInto(values, inferred, 0, data, 0, name);
  return new Tensor(data, shape ?? inferred);
}

/** A rank-2 tensor [rows, cols]. */
export function tensor2d(values: Float32Array | NestedArray, shape?: readonly [number, number]): Tensor {
  const t = tensor(values, shape);
  if (t.rank !== 2)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected a rank-2 tensor but received shape [${t.shape.join(',')}]`,
    );
  return t;
}

/** A row-major matrix view of tensor-like input: what a dense stack consumes. */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/**
 * Reads `x` as rows of `cols` features. Accepts our Tensor, a tfjs tensor (duck-typed), nested
 * arrays, or a flat Float32Array (whose length must be a multiple of cols). Copies only when the
 * input is not already a Float32Array.
 */
export function toMatrix(x: unknown, cols: number, name = 'x'): Matrix {
  let data: Float32Array;
  let shape: readonly number[];
  if (x instanceof Tensor) {
    data = x.values;
    shape = x.shape;
  } else if (x instanceof Float32Array) {
    if (x.length === 0 || x.length % cols !== 0) {
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected a Float32Array whose length is a positive multiple of ${cols} (the input size) for ${name} but received length ${x.length}`,
      );
    }
    return { data: x, rows: x.length / cols, cols };
  } else if (Array.isArray(x)) {
    const t = tensor(x as NestedArray);
    data = t.values;
    shape = t.shape;
  } else if (
    typeof x === 'object' &&
    x !== null &&
    'shape' in x &&
    typeof (x as { dataSync?: unknown }).dataSync === 'function'
  ) {
    const foreign = x as { shape: readonly number[]; dataSync(): ArrayLike<number> };
    const values = foreign.dataSync();
    data = values instanceof Float32Array ? values : Float32Array.from(values);
    shape = foreign.shape;
  } else {
    throw invalidParameter(name, 'a Tensor, a Float32Array or nested arrays of numbers', x);
  }
  if (shape.length === 1 && shape[0] === cols) return { data, rows: 1, cols };
  if (shape.length !== 2 || shape[1] !== cols || shape[0] === 0) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected ${name} of shape [batch, ${cols}] (or [${cols}]) but received shape [${shape.join(',')}]`,
    );
  }
  return { data, rows: shape[0]!, cols };
}
