/**
 * A small ONNX graph evaluator for graphs that are not a dense chain (Gemm, broadcasting MatMul,
 * Add, Sub and Mul, Relu, Sigmoid, Tanh, Softmax, Identity, Flatten, Reshape, Cast) and for the
 * quantization operators (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
 * QLinearMatMul): float64 inside, each node's output rounded to its ONNX type (float32, float16,
 * bfloat16, or an integer type held exactly).
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { asLoader } from './files.js';
import type { IntegrityOptions } from './integrity.js';
import type { DecryptionOptions } from './sealed.js';
import {
  ONNX_TYPES,
  decodeOnnxFile,
  defaultOpset,
  onnxTypeName,
  tensorData,
  type OnnxModelProto,
  type OnnxNode,
  type OnnxValueInfo,
} from './onnx.js';
import {
  castOp,
  dequantizeLinearOp,
  dynamicQuantizeLinearOp,
  matMulIntegerOp,
  qlinearMatMulOp,
  quantizeLinearOp,
} from './onnx-quant-ops.js';
import {
  INT_RANGE,
  attrOf,
  axisOf,
  binary,
  gemmInto,
  isFloatType,
  matmul,
  nodeError,
  size,
  stored,
  broadcastIndex,
  broadcastShape,
  type Value,
} from './onnx-values.js';

export { broadcastShape } from './onnx-values.js';

const { FLOAT, UINT8, INT8, UINT16, INT16, INT32, FLOAT16, DOUBLE, BFLOAT16 } = ONNX_TYPES;

/** A tensor going into or out of an OnnxGraph: row-major values (typed as the graph stores them) and their shape. */
export interface GraphTensor {
  data: Float32Array | Float64Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Int32Array;
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
  'Sub',
  'Mul',
  'Relu',
  'Sigmoid',
  'Tanh',
  'Softmax',
  'Identity',
  'Flatten',
  'Reshape',
  'Cast',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulInteger',
  'QLinearMatMul',
] as const;

/** The element types a graph input may declare. */
const INPUT_TYPES = [FLOAT, DOUBLE, FLOAT16, BFLOAT16, UINT8, INT8, UINT16, INT16, INT32] as const;

/** A Value as the typed array its ONNX type calls for (int64 and double as float64). */
function typedArray(v: Value): GraphTensor['data'] {
  switch (v.elem) {
    case FLOAT:
    case FLOAT16:
    case BFLOAT16:
      return Float32Array.from(v.data);
    case UINT8:
      return Uint8Array.from(v.data);
    case INT8:
      return Int8Array.from(v.data);
    case UINT16:
      return Uint16Array.from(v.data);
    case INT16:
      return Int16Array.from(v.data);
    case INT32:
      return Int32Array.from(v.data);
    default:
      return Float64Array.from(v.data);
  }
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
  return stored(out, [m, n], a.elem);
}

function unary(node: OnnxNode, x: Value, f: (v: number) => number): Value {
  if (!isFloatType(x.elem)) throw nodeError(node, `its input must be a float tensor, got ${onnxTypeName(x.elem)}`);
  return stored(Float64Array.from(x.data, f), x.shape.slice(), x.elem);
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
  return stored(data, x.shape.slice(), x.elem);
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
    /** The default-domain opset (Softmax's and the quantization operators' meaning depend on it). */
    readonly opset: number,
  ) {
    this.inputNames = inputs.map((i) => i.name).filter((n) => !constants.has(n));
    this.outputNames = outputs.map((o) => o.name);
    this.inputTypes = new Map(inputs.map((i) => [i.name, i.type?.tensor_type?.elem_type ?? FLOAT]));
  }

  /**
   * Evaluates the graph: every name in inputNames must be given; returns every graph output,
   * typed as the graph stores it (float32, float64, or the integer type of a quantized tensor).
   */
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
      const out = this.evaluate(node, args);
      const results = Array.isArray(out) ? out : [out];
      node.output.forEach((name, i) => {
        if (name !== '' && results[i]) values.set(name, results[i]);
      });
    }
    return Object.fromEntries(
      this.outputNames.map((name) => {
        const v = values.get(name);
        if (!v) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `The graph output '${name}' is computed by no node`);
        return [name, { data: typedArray(v), shape: v.shape.slice() }];
      }),
    );
  }

  private inputValue(name: string, input: GraphInput | undefined): Value {
    const what = `run(inputs['${name}'])`;
    if (!input || typeof input !== 'object') throw invalidParameter(what, 'an object { data, shape }', input);
    const { data } = input;
    const shape: unknown = input.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0))
      throw invalidParameter(`${what}.shape`, 'an array of non-negative integers', shape);
    const dims = shape as number[];
    if (!data || typeof data.length !== 'number' || data.length !== size(dims)) {
      throw invalidParameter(
        `${what}.data`,
        `${size(dims)} values for shape [${dims}]`,
        data,
        'MAAS_ERR_SHAPE_MISMATCH',
      );
    }
    const elem = this.inputTypes.get(name) ?? FLOAT;
    const values = Float64Array.from(data);
    const range = INT_RANGE[elem];
    if (range) {
      const bad = values.findIndex((v) => !Number.isInteger(v) || v < range[0] || v > range[1]);
      if (bad >= 0)
        throw invalidParameter(
          `${what}.data[${bad}]`,
          `an integer in [${range[0]}, ${range[1]}] (the input is ${onnxTypeName(elem)})`,
          values[bad],
          'MAAS_ERR_ARG_RANGE',
        );
      return { data: values, shape: dims.slice(), elem };
    }
    return stored(values, dims.slice(), elem);
  }

  private evaluate(node: OnnxNode, args: (Value | undefined)[]): Value | Value[] {
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
        return binary(node, need(0), need(1), (x, y) => x + y);
      case 'Sub':
        return binary(node, need(0), need(1), (x, y) => x - y);
      case 'Mul':
        return binary(node, need(0), need(1), (x, y) => x * y);
      case 'Relu':
        return unary(node, need(0), (v) => (v > 0 ? v : 0));
      case 'Sigmoid':
        return unary(node, need(0), (v) => 1 / (1 + Math.exp(-v)));
      case 'Tanh':
        return unary(node, need(0), Math.tanh);
      case 'Softmax':
        return softmax(node, need(0), this.opset);
      case 'Identity':
        return need(0);
      case 'Flatten':
        return flatten(node, need(0));
      case 'Reshape':
        return reshape(node, need(0), need(1));
      case 'Cast':
        return castOp(node, need(0));
      case 'QuantizeLinear':
        return quantizeLinearOp(node, need(0), need(1), args[2], this.opset);
      case 'DequantizeLinear':
        return dequantizeLinearOp(node, need(0), need(1), args[2], this.opset);
      case 'DynamicQuantizeLinear':
        return dynamicQuantizeLinearOp(node, need(0));
      case 'MatMulInteger':
        return matMulIntegerOp(node, need(0), need(1), args[2], args[3]);
      case 'QLinearMatMul':
        return qlinearMatMulOp(node, [0, 1, 2, 3, 4, 5, 6, 7].map(need));
      default:
        throw nodeError(node, `maas evaluates only ${ONNX_GRAPH_OPS.join(', ')}`);
    }
  }
}

/** The initializers of a decoded model as evaluator values, exact in their stored type. */
export function initializerValues(model: OnnxModelProto): Map<string, Value> {
  const known = new Map<string, Value>();
  for (const t of model.graph?.initializer ?? []) {
    const { dims, type, values } = tensorData(t);
    known.set(t.name ?? '', { data: values, shape: dims, elem: type });
  }
  return known;
}

/** The graph's nodes, each checked to be an operator the evaluator runs (named, with its op, when not). */
export function checkGraphOps(model: OnnxModelProto, path: string): OnnxNode[] {
  const graph = model.graph;
  if (!graph?.node?.length) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no graph nodes`);
  for (const node of graph.node) {
    const domain = (node as { domain?: string }).domain ?? '';
    if (!(ONNX_GRAPH_OPS as readonly string[]).includes(node.op_type) || (domain !== '' && domain !== 'ai.onnx')) {
      throw new MaasError(
        'MAAS_ERR_MODEL_FORMAT',
        `ONNX node '${node.name || node.output[0]}' (${domain ? domain + '.' : ''}${node.op_type}) is not supported: maas evaluates only ${ONNX_GRAPH_OPS.join(', ')}`,
      );
    }
  }
  return graph.node;
}

/**
 * Loads an .onnx file as a graph to evaluate, for graphs that are not a chain of dense layers
 * (loadModel reads those into a Sequential). `constants` binds graph inputs to fixed tensors.
 * Nodes outside ONNX_GRAPH_OPS, or outside the default domain, are refused naming the node and op.
 * A digest the file records is verified (and, with options.strictIntegrity, required). An
 * encrypted file (.onnx.enc) is decrypted in memory with options.keys.
 */
export async function loadOnnxGraph(
  path: string,
  constants: Record<string, GraphInput> = {},
  options: IntegrityOptions & DecryptionOptions = {},
): Promise<OnnxGraph> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('loadOnnxGraph(path)', 'a path to an .onnx file', path);
  return asLoader(path, () => openGraph(path, constants, options));
}

async function openGraph(
  path: string,
  constants: Record<string, GraphInput>,
  options: IntegrityOptions & DecryptionOptions,
): Promise<OnnxGraph> {
  const model = await decodeOnnxFile(path, options);
  const nodes = checkGraphOps(model, path);
  const known = initializerValues(model);
  for (const [name, c] of Object.entries(constants)) {
    if (!c || !Array.isArray(c.shape) || !c.data || c.data.length !== size(c.shape))
      throw invalidParameter(`loadOnnxGraph(constants['${name}'])`, 'an object { data, shape } with matching sizes', c);
    const declared = model.graph?.input?.find((i) => i.name === name)?.type?.tensor_type?.elem_type ?? FLOAT;
    known.set(name, {
      data: Float64Array.from(c.data),
      shape: (c.shape as readonly number[]).slice(),
      elem: (INPUT_TYPES as readonly number[]).includes(declared) ? declared : FLOAT,
    });
  }
  return new OnnxGraph(nodes, known, model.graph?.input ?? [], model.graph?.output ?? [], defaultOpset(model));
}
