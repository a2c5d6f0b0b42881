/**
 * The values inside maas's ONNX evaluator: float64 data tagged with the ONNX element type the
 * graph stores them as (each node's output is rounded to it, as a runtime writes it), and the
 * shape and broadcasting helpers the operators share.
 */
import { MaasError } from '../core/errors.js';
import { ONNX_TYPES, num, onnxTypeName, roundToBfloat16, roundToHalf, type OnnxNode } from './onnx.js';

const { FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, FLOAT16, DOUBLE, BFLOAT16 } = ONNX_TYPES;

/** A value inside the evaluator: float64 data (exact for every stored type) and its ONNX type. */
export interface Value {
  data: Float64Array;
  shape: number[];
  /** The ONNX element type (ONNX_TYPES). */
  elem: number;
}

/** The integer range of each integer type. */
export const INT_RANGE: Record<number, readonly [number, number]> = {
  [UINT8]: [0, 255],
  [INT8]: [-128, 127],
  [UINT16]: [0, 65535],
  [INT16]: [-32768, 32767],
  [INT32]: [-(2 ** 31), 2 ** 31 - 1],
  [INT64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** True for float, float16, bfloat16 and double. */
export const isFloatType = (elem: number): boolean =>
  elem === FLOAT || elem === FLOAT16 || elem === BFLOAT16 || elem === DOUBLE;

/** The element count of a shape. */
export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) out[i] = out[i + 1]! * shape[i + 1]!;
  return out;
}

/** Rounds one number to a stored type (integers saturate, as a cast into the type would not: callers saturate first). */
export function roundTo(elem: number): (v: number) => number {
  if (elem === FLOAT) return Math.fround;
  if (elem === FLOAT16) return roundToHalf;
  if (elem === BFLOAT16) return roundToBfloat16;
  return (v) => v;
}

/** Rounds to the stored type in place, as an ONNX runtime writes each node's output. */
export function stored(data: Float64Array, shape: number[], elem: number): Value {
  if (elem !== DOUBLE && isFloatType(elem)) {
    const r = roundTo(elem);
    for (let i = 0; i < data.length; i++) data[i] = r(data[i]!);
  }
  return { data, shape, elem };
}

/** A node's attribute as a number (f or i), or undefined. */
export function attrOf(node: OnnxNode, name: string): { f?: number; i?: number } | undefined {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? { f: a.f, i: a.i === undefined || a.i === null ? undefined : num(a.i) } : undefined;
}

/** A thrown error naming the node and its op. */
export function nodeError(node: OnnxNode, why: string): MaasError {
  return new MaasError(
    'MAAS_ERR_MODEL_FORMAT',
    `ONNX node '${node.name || node.output[0]}' (${node.op_type}) cannot run: ${why}`,
  );
}

/** Refuses a value whose type is not one of `types`, naming the node and the input. */
export function expectType(node: OnnxNode, v: Value, what: string, types: readonly number[]): void {
  if (!types.includes(v.elem))
    throw nodeError(node, `${what} must be ${types.map(onnxTypeName).join(' or ')}, got ${onnxTypeName(v.elem)}`);
}

/** Numpy (multidirectional) broadcasting of two shapes, or null when they do not broadcast. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1,
      y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** For each flat index of `out`, the flat index into a tensor of `shape` broadcast to it. */
export function broadcastIndex(shape: readonly number[], out: readonly number[]): Int32Array {
  const strides = stridesOf(shape);
  // A broadcast dimension (size 1, or absent on the left) does not move through the source.
  const step = out.map((d, i) => {
    const j = i - (out.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : strides[j];
  });
  const index = new Int32Array(size(out));
  const at = new Array<number>(out.length).fill(0);
  let src = 0;
  for (let k = 0; k < index.length; k++) {
    index[k] = src;
    for (let d = out.length - 1; d >= 0; d--) {
      at[d]!++;
      src += step[d]!;
      if (at[d]! < out[d]!) break;
      src -= step[d]! * at[d]!;
      at[d] = 0;
    }
  }
  return index;
}

/** An elementwise binary op with numpy broadcasting; the result has a's type. */
export function binary(node: OnnxNode, a: Value, b: Value, f: (x: number, y: number) => number): Value {
  const shape = broadcastShape(a.shape, b.shape);
  if (!shape) throw nodeError(node, `shapes [${a.shape}] and [${b.shape}] do not broadcast`);
  const ia = broadcastIndex(a.shape, shape),
    ib = broadcastIndex(b.shape, shape);
  const out = new Float64Array(ia.length);
  for (let k = 0; k < out.length; k++) out[k] = f(a.data[ia[k]!]!, b.data[ib[k]!]!);
  return stored(out, shape, a.elem);
}

/** A negative axis counted from the end, checked against the rank. */
export function axisOf(node: OnnxNode, axis: number, rank: number, allowRank: boolean): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && (a < rank || (allowRank && a === rank))))
    throw nodeError(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** out[m×n] += alpha · op(A)·op(B), with A and B read through their row/column strides. */
export function gemmInto(
  out: Float64Array,
  oOff: number,
  a: Float64Array,
  aOff: number,
  aRow: number,
  aCol: number,
  b: Float64Array,
  bOff: number,
  bRow: number,
  bCol: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += a[aOff + i * aRow + p * aCol]! * b[bOff + p * bRow + j * bCol]!;
      out[oOff + i * n + j]! += alpha * acc;
    }
  }
}

/** numpy.matmul: rank-1 operands gain a 1 (then lose it), leading dims broadcast. */
export function matmul(node: OnnxNode, a: Value, b: Value): Value {
  if (a.shape.length === 0 || b.shape.length === 0) throw nodeError(node, 'MatMul operands must have rank ≥ 1');
  const as = a.shape.length === 1 ? [1, a.shape[0]!] : a.shape;
  const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : b.shape;
  const [m, k] = as.slice(-2) as [number, number];
  const [k2, n] = bs.slice(-2) as [number, number];
  if (k !== k2) throw nodeError(node, `inner dimensions differ: [${a.shape}]·[${b.shape}]`);
  const batch = broadcastShape(as.slice(0, -2), bs.slice(0, -2));
  if (!batch) throw nodeError(node, `batch dimensions of [${a.shape}] and [${b.shape}] do not broadcast`);
  const ia = broadcastIndex(as.slice(0, -2), batch),
    ib = broadcastIndex(bs.slice(0, -2), batch);
  const out = new Float64Array(ia.length * m * n);
  for (let t = 0; t < ia.length; t++)
    gemmInto(out, t * m * n, a.data, ia[t]! * m * k, k, 1, b.data, ib[t]! * k * n, n, 1, m, n, k, 1);
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [m]), ...(b.shape.length === 1 ? [] : [n])];
  return stored(out, shape, a.elem);
}
