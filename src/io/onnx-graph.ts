/**
 * A small ONNX graph evaluator for graphs that are not a dense chain (Gemm, broadcasting MatMul
 * and Add, Relu, Sigmoid, Tanh, Softmax, Identity, Flatten, Reshape), float64 inside.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import {
  decodeOnnxFile,
  defaultOpset,
  num,
  tensorValues,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './onnx.js';

const FLOAT = 1;
const DOUBLE = 11;

/** A tensor going into or out of an OnnxGraph: row-major values and their shape. */
export interface GraphTensor {
  data: Float32Array | Float64Array;
  shape: number[];
}

/** An input to OnnxGraph.run: any numeric array with its shape. */
export interface GraphInput {
  data: ArrayLike<number>;
  shape: readonly number[];
}

/** The operators the evaluator runs (anything else is refused at load). */
export const ONNX_GRAPH_OPS = [
  'Gemm',
  'MatMul',
  'Add',
  'Relu',
  'Sigmoid',
  'Tanh',
  'Softmax',
  'Identity',
  'Flatten',
  'Reshape',
] as const;

/** A value inside the evaluator: float64 data, and whether the graph stores it as float32. */
interface Value {
  data: Float64Array;
  shape: number[];
  f32: boolean;
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of `shape`. */
function stridesOf(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) out[i] = out[i + 1]! * shape[i + 1]!;
  return out;
}

/** Rounds to the stored type, as an ONNX runtime writes each node's output. */
function stored(data: Float64Array, shape: number[], f32: boolean): Value {
  if (f32) for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i]!);
  return { data, shape, f32 };
}

function attrOf(node: OnnxNode, name: string): { f?: number; i?: number } | undefined {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? { f: a.f, i: a.i === undefined ? undefined : num(a.i) } : undefined;
}

/** A thrown error naming the node and its op. */
function nodeError(node: OnnxNode, why: string): MaasError {
  return new MaasError(
    'MAAS_ERR_MODEL_FORMAT',
    `ONNX node '${node.name || node.output[0]}' (${node.op_type}) cannot run: ${why}`,
  );
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
function broadcastIndex(shape: readonly number[], out: readonly number[]): Int32Array {
  const strides = stridesOf(shape);
  // A broadcast dimension (size 1, or absent on the left) does not move through the source.
  const step = out.map((d, i) => {
    const j = i - (out.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : strides[j]!;
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

function add(node: OnnxNode, a: Value, b: Value): Value {
  const shape = broadcastShape(a.shape, b.shape);
  if (!shape) throw nodeError(node, `shapes [${a.shape}] and [${b.shape}] do not broadcast`);
  const ia = broadcastIndex(a.shape, shape),
    ib = broadcastIndex(b.shape, shape);
  const out = new Float64Array(ia.length);
  for (let k = 0; k < out.length; k++) out[k] = a.data[ia[k]!]! + b.data[ib[k]!]!;
  return stored(out, shape, a.f32);
}

/** out[m×n] += alpha · op(A)·op(B), with A and B read through their row/column strides. */
function gemmInto(
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
function matmul(node: OnnxNode, a: Value, b: Value): Value {
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
  return stored(out, shape, a.f32);
}

/** Gemm: alpha · op(A)·op(B) + beta · C, C broadcast to [M, N]. */
function gemm(node: OnnxNode, a: Value, b: Value, c: Value | undefined): Value {
  if (a.shape.length !== 2 || b.shape.length !== 2)
    throw nodeError(node, `A and B must be matrices, got [${a.shape}] and [${b.shape}]`);
  const transA = (attrOf(node, 'transA')?.i ?? 0) !== 0,
    transB = (attrOf(node, 'transB')?.i ?? 0) !== 0;
  const alpha = attrOf(node, 'alpha')?.f ?? 1,
    beta = attrOf(node, 'beta')?.f ?? 1;
  const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [k2, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (k !== k2) throw nodeError(node, `inner dimensions differ: op(A) is [${m},${k}], op(B) is [${k2},${n}]`);
  const out = new Float64Array(m * n);
  if (c) {
    if (broadcastShape(c.shape, [m, n])?.join() !== `${m},${n}`)
      throw nodeError(node, `C [${c.shape}] does not broadcast to [${m},${n}]`);
    const ic = broadcastIndex(c.shape, [m, n]);
    for (let q = 0; q < out.length; q++) out[q] = beta * c.data[ic[q]!]!;
  }
  gemmInto(
    out,
    0,
    a.data,
    0,
    transA ? 1 : a.shape[1]!,
    transA ? a.shape[1]! : 1,
    b.data,
    0,
    transB ? 1 : b.shape[1]!,
    transB ? b.shape[1]! : 1,
    m,
    n,
    k,
    alpha,
  );
  return stored(out, [m, n], a.f32);
}

function unary(x: Value, f: (v: number) => number): Value {
  return stored(Float64Array.from(x.data, f), x.shape.slice(), x.f32);
}

/** A negative axis counted from the end, checked against the rank. */
function axisOf(node: OnnxNode, axis: number, rank: number, allowRank: boolean): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && (a < rank || (allowRank && a === rank))))
    throw nodeError(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/**
 * Softmax over groups of `inner`-strided runs of length `len`: the max is subtracted first so
 * large inputs do not overflow.
 */
function softmaxRuns(x: Float64Array, outer: number, len: number, inner: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let max = -Infinity;
      for (let j = 0; j < len; j++) max = Math.max(max, x[base + j * inner]!);
      let sum = 0;
      for (let j = 0; j < len; j++) sum += out[base + j * inner] = Math.exp(x[base + j * inner]! - max);
      for (let j = 0; j < len; j++) out[base + j * inner]! /= sum;
    }
  }
  return out;
}

/** Softmax: opset < 13 flattens to 2-D at axis (default 1); opset ≥ 13 normalises along axis (default −1). */
function softmax(node: OnnxNode, x: Value, opset: number): Value {
  const rank = x.shape.length;
  const axis = axisOf(node, attrOf(node, 'axis')?.i ?? (opset >= 13 ? -1 : 1), rank, false);
  const lead = size(x.shape.slice(0, axis));
  const data =
    opset >= 13
      ? softmaxRuns(x.data, lead, x.shape[axis]!, size(x.shape.slice(axis + 1)))
      : softmaxRuns(x.data, lead, size(x.shape.slice(axis)), 1);
  return stored(data, x.shape.slice(), x.f32);
}

function flatten(node: OnnxNode, x: Value): Value {
  const axis = axisOf(node, attrOf(node, 'axis')?.i ?? 1, x.shape.length, true);
  return { ...x, shape: [size(x.shape.slice(0, axis)), size(x.shape.slice(axis))] };
}

/** Reshape: 0 copies the input's dim (unless allowzero), one −1 is inferred. */
function reshape(node: OnnxNode, x: Value, target: Value): Value {
  const allowZero = (attrOf(node, 'allowzero')?.i ?? 0) !== 0;
  const shape = Array.from(target.data, (d, i) => (d === 0 && !allowZero ? x.shape[i]! : d));
  const known = size(shape.filter((d) => d !== -1));
  const unknown = shape.filter((d) => d === -1).length;
  if (unknown > 1 || shape.some((d) => d < -1 || !Number.isInteger(d)))
    throw nodeError(node, `invalid target shape [${shape}]`);
  if (unknown === 1) shape[shape.indexOf(-1)] = known === 0 ? 0 : x.data.length / known;
  if (size(shape) !== x.data.length)
    throw nodeError(node, `cannot reshape [${x.shape}] (${x.data.length} values) to [${shape}]`);
  return { ...x, shape };
}

/** A loaded ONNX graph; run() evaluates it on named inputs. */
export class OnnxGraph {
  /** The graph inputs that are not initializers, in graph order. */
  readonly inputNames: string[];
  /** The graph outputs, in graph order. */
  readonly outputNames: string[];
  private readonly inputTypes: Map<string, number>;

  constructor(
    private readonly nodes: OnnxNode[],
    private readonly constants: Map<string, Value>,
    inputs: OnnxValueInfo[],
    outputs: OnnxValueInfo[],
    /** The default-domain opset (Softmax's meaning depends on it). */
    readonly opset: number,
  ) {
    this.inputNames = inputs.map((i) => i.name).filter((n) => !constants.has(n));
    this.outputNames = outputs.map((o) => o.name);
    this.inputTypes = new Map(inputs.map((i) => [i.name, i.type?.tensor_type?.elem_type ?? FLOAT]));
  }

  /** Evaluates the graph: every name in inputNames must be given; returns every graph output. */
  run(inputs: Record<string, GraphInput>): Record<string, GraphTensor> {
    const values = new Map(this.constants);
    for (const name of this.inputNames) values.set(name, this.inputValue(name, inputs?.[name]));
    for (const node of this.nodes) {
      const args = node.input.map((name) => {
        if (name === '') return undefined;
        const v = values.get(name);
        if (!v) throw nodeError(node, `its input '${name}' is not computed before it`);
        return v;
      });
      values.set(node.output[0]!, this.evaluate(node, args));
    }
    return Object.fromEntries(
      this.outputNames.map((name) => {
        const v = values.get(name);
        if (!v) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `The graph output '${name}' is computed by no node`);
        return [name, { data: v.f32 ? Float32Array.from(v.data) : Float64Array.from(v.data), shape: v.shape.slice() }];
      }),
    );
  }

  private inputValue(name: string, input: GraphInput | undefined): Value {
    const what = `run(inputs['${name}'])`;
    if (!input || typeof input !== 'object') throw invalidParameter(what, 'an object { data, shape }', input);
    const { data, shape } = input;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw invalidParameter(`${what}.shape`, 'an array of non-negative integers', shape);
    if (!data || typeof data.length !== 'number' || data.length !== size(shape)) {
      throw invalidParameter(
        `${what}.data`,
        `${size(shape)} values for shape [${shape}]`,
        data,
        'MAAS_ERR_SHAPE_MISMATCH',
      );
    }
    return { data: Float64Array.from(data), shape: shape.slice(), f32: this.inputTypes.get(name) !== DOUBLE };
  }

  private evaluate(node: OnnxNode, args: (Value | undefined)[]): Value {
    const need = (i: number): Value => {
      const v = args[i];
      if (!v) throw nodeError(node, `input ${i} is missing`);
      return v;
    };
    switch (node.op_type) {
      case 'Gemm':
        return gemm(node, need(0), need(1), args[2]);
      case 'MatMul':
        return matmul(node, need(0), need(1));
      case 'Add':
        return add(node, need(0), need(1));
      case 'Relu':
        return unary(need(0), (v) => (v > 0 ? v : 0));
      case 'Sigmoid':
        return unary(need(0), (v) => 1 / (1 + Math.exp(-v)));
      case 'Tanh':
        return unary(need(0), Math.tanh);
      case 'Softmax':
        return softmax(node, need(0), this.opset);
      case 'Identity':
        return need(0);
      case 'Flatten':
        return flatten(node, need(0));
      case 'Reshape':
        return reshape(node, need(0), need(1));
      default:
        throw nodeError(node, `maas evaluates only ${ONNX_GRAPH_OPS.join(', ')}`);
    }
  }
}

/** A double tensor's values at full precision (tensorValues narrows every type to float32). */
function doubleValues(t: OnnxTensor): Float64Array {
  const raw = t.raw_data;
  if (!raw || raw.length === 0) return Float64Array.from(t.double_data ?? []);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Float64Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getFloat64(i * 8, true));
}

/**
 * Loads an .onnx file as a graph to evaluate, for graphs that are not a chain of dense layers
 * (loadModel reads those into a Sequential). `constants` binds graph inputs to fixed tensors.
 * Nodes outside ONNX_GRAPH_OPS, or outside the default domain, are refused naming the node and op.
 */
export async function loadOnnxGraph(path: string, constants: Record<string, GraphInput> = {}): Promise<OnnxGraph> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadOnnxGraph(path)', 'a path to an .onnx file', path);
  const model = await decodeOnnxFile(path);
  const graph = model.graph;
  if (!graph?.node?.length) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no graph nodes`);
  for (const node of graph.node) {
    if (
      !(ONNX_GRAPH_OPS as readonly string[]).includes(node.op_type) ||
      ((node as { domain?: string }).domain ?? '') !== ''
    ) {
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `ONNX node '${node.name || node.output[0]}' (${node.op_type}) is not supported: maas evaluates only ${ONNX_GRAPH_OPS.join(', ')}`,
      );
    }
  }
  const known = new Map<string, Value>();
  for (const t of graph.initializer ?? []) {
    const { dims, values } = tensorValues(t);
    known.set(t.name!, {
      data: t.data_type === DOUBLE ? doubleValues(t) : Float64Array.from(values),
      shape: dims,
      f32: t.data_type !== DOUBLE,
    });
  }
  for (const [name, c] of Object.entries(constants)) {
    known.set(name, { data: Float64Array.from(c.data), shape: c.shape.slice(), f32: true });
  }
  return new OnnxGraph(graph.node, known, graph.input ?? [], graph.output ?? [], defaultOpset(model));
}
