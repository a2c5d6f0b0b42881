/**
 * ONNX import: reads a ModelProto (protobufjs over proto/onnx.proto, written from the published
 * field numbers) whose graph is a chain of dense layers: Gemm (alpha, beta, transB), MatMul
 * (+ Add of a bias; a Transpose of a constant weight folds), Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softmax over the last axis, and the
 * pass-through Identity, Dropout, Flatten and Reshape of a vector. Anything else is refused
 * with the node's name and op.
 */
import type { IntegrityOptions } from './integrity.js';
import { readModelBytes, type DecryptionOptions } from './sealed.js';
import { verifyOnnxDigest, type OnnxMetadataEntry } from './onnx-digest.js';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { MaasError } from '../core/errors.js';
import { packageRoot } from '../core/package-root.js';
import type { ActivationName } from '../layers/activations.js';

/** ONNX TensorProto.DataType values maas reads. */
export const ONNX_TYPES = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  FLOAT16: 10,
  DOUBLE: 11,
  BFLOAT16: 16,
} as const;
const { FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, FLOAT16, DOUBLE, BFLOAT16 } = ONNX_TYPES;

/** Bytes per element of each type maas decodes. */
const ELEMENT_BYTES: Record<number, number> = {
  [FLOAT]: 4,
  [UINT8]: 1,
  [INT8]: 1,
  [UINT16]: 2,
  [INT16]: 2,
  [INT32]: 4,
  [INT64]: 8,
  [FLOAT16]: 2,
  [DOUBLE]: 8,
  [BFLOAT16]: 2,
};

/** The name of an ONNX data type, for messages. */
export function onnxTypeName(type: number): string {
  const entry = Object.entries(ONNX_TYPES).find(([, v]) => v === type);
  return entry ? entry[0].toLowerCase() : `type ${type}`;
}

/** The most elements one tensor may hold (2^28: 1 GiB of float32), checked before allocating. */
export const MAX_TENSOR_ELEMENTS = 2 ** 28;

interface OnnxTypes {
  model: protobuf.Type;
  tensor: protobuf.Type;
}

let types: OnnxTypes | null = null;

/** The ModelProto and TensorProto types, parsed once from proto/onnx.proto. */
export function onnxTypes(): OnnxTypes {
  if (!types) {
    const root = new protobuf.Root().loadSync(join(packageRoot(), 'proto', 'onnx.proto'), { keepCase: true });
    types = { model: root.lookupType('onnx.ModelProto'), tensor: root.lookupType('onnx.TensorProto') };
  }
  return types;
}

/** A decoded TensorProto (the fields maas reads). */
export interface OnnxTensor {
  name?: string;
  dims?: (number | { toNumber(): number })[];
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  double_data?: number[];
  int32_data?: number[];
  int64_data?: (number | { toNumber(): number })[];
  data_location?: number;
}

/** An int64 field as a number. */
export const num = (v: number | { toNumber(): number }): number => (typeof v === 'number' ? v : v.toNumber());

/** An IEEE half (binary16) bit pattern as a number (exact). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f,
    frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** A bfloat16 bit pattern (the top half of a float32) as a number (exact). */
export function bfloat16ToNumber(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, (bits & 0xffff) << 16);
  return view.getFloat32(0);
}

/** Rounds a number to the nearest float16 value, ties to even (what storing it as float16 does). */
export function roundToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity; // beyond the largest half (65504) plus half its ulp
  // The spacing of halfs near a: 2^(e − 10) for normals, 2^−24 for subnormals.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  let ulp = 2 ** (e - 10);
  if (a / ulp >= 2048) ulp *= 2; // log2 rounded down across a power of two
  const q = a / ulp,
    r = Math.floor(q),
    f = q - r;
  const n = f > 0.5 || (f === 0.5 && r % 2 === 1) ? r + 1 : r;
  return Math.sign(x) * n * ulp;
}

/** Rounds a number to the nearest bfloat16 value, ties to even. */
export function roundToBfloat16(x: number): number {
  if (!Number.isFinite(x)) return x;
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  const bits = view.getUint32(0);
  const rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >>> 16;
  return bfloat16ToNumber(rounded);
}

/** A MODEL_FORMAT error naming the tensor. */
function tensorError(t: OnnxTensor, why: string): MaasError {
  return new MaasError('MAAS_ERR_MODEL_FORMAT', `ONNX tensor '${t.name ?? ''}' is malformed: ${why}`);
}

/**
 * A tensor's dims, data type and values, exact in float64 (int64 beyond 2^53 rounds). Every count
 * is checked before anything is allocated: dims are non-negative integers of at most
 * MAX_TENSOR_ELEMENTS elements, and raw_data or the typed field holds exactly that many values.
 * raw_data is little-endian by definition; float16/bfloat16 (and int8/16) typed data sits in
 * int32_data as bit patterns.
 */
export function tensorData(t: OnnxTensor): { dims: number[]; type: number; values: Float64Array } {
  const type = t.data_type ?? 0;
  const bytes = ELEMENT_BYTES[type];
  if (bytes === undefined) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected an ONNX tensor of type ${Object.keys(ONNX_TYPES).join(', ').toLowerCase()} for '${t.name ?? ''}' but received ${onnxTypeName(type)}`,
    );
  }
  if (t.data_location === 1) throw tensorError(t, 'its data is stored in an external file, which maas does not read');
  const dims = (t.dims ?? []).map(num);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw tensorError(t, `dims [${dims}] must be non-negative integers`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count > MAX_TENSOR_ELEMENTS) throw tensorError(t, `${count} elements exceed the limit of ${MAX_TENSOR_ELEMENTS}`);
  const raw = t.raw_data && t.raw_data.length > 0 ? t.raw_data : null;
  if (raw) {
    if (raw.byteLength !== count * bytes)
      throw tensorError(
        t,
        `raw_data holds ${raw.byteLength} bytes but [${dims}] ${onnxTypeName(type)} needs ${count * bytes}`,
      );
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const read: (i: number) => number =
      type === FLOAT
        ? (i) => view.getFloat32(i * 4, true)
        : type === DOUBLE
          ? (i) => view.getFloat64(i * 8, true)
          : type === INT64
            ? (i) => Number(view.getBigInt64(i * 8, true))
            : type === INT32
              ? (i) => view.getInt32(i * 4, true)
              : type === INT16
                ? (i) => view.getInt16(i * 2, true)
                : type === UINT16
                  ? (i) => view.getUint16(i * 2, true)
                  : type === FLOAT16
                    ? (i) => halfToNumber(view.getUint16(i * 2, true))
                    : type === BFLOAT16
                      ? (i) => bfloat16ToNumber(view.getUint16(i * 2, true))
                      : type === INT8
                        ? (i) => view.getInt8(i)
                        : (i) => view.getUint8(i);
    return { dims, type, values: Float64Array.from({ length: count }, (_, i) => read(i)) };
  }
  const field: ArrayLike<number | { toNumber(): number }> =
    type === FLOAT
      ? (t.float_data ?? [])
      : type === DOUBLE
        ? (t.double_data ?? [])
        : type === INT64
          ? (t.int64_data ?? [])
          : (t.int32_data ?? []);
  if (field.length !== count) throw tensorError(t, `it holds ${field.length} values but [${dims}] needs ${count}`);
  const decode: (v: number) => number =
    type === FLOAT16
      ? (v) => halfToNumber(v & 0xffff)
      : type === BFLOAT16
        ? (v) => bfloat16ToNumber(v)
        : type === FLOAT
          ? Math.fround
          : (v) => v;
  return { dims, type, values: Float64Array.from({ length: count }, (_, i) => decode(num(field[i]!))) };
}

/** A tensor's dims and values narrowed to float32 (ints up to 2^24, every int8/uint8, stay exact). */
export function tensorValues(t: OnnxTensor): { dims: number[]; values: Float32Array } {
  const { dims, values } = tensorData(t);
  return { dims, values: Float32Array.from(values) };
}

/** Decodes a serialized TensorProto (e.g. a backend-test input_0.pb), with maas errors for bad bytes. */
export function decodeTensorProto(bytes: Uint8Array): OnnxTensor {
  try {
    return onnxTypes().tensor.decode(bytes) as unknown as OnnxTensor;
  } catch (e) {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a serialized ONNX TensorProto but decoding failed: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/** Decodes a serialized TensorProto (e.g. a backend-test input_0.pb) to float32 values. */
export function decodeTensor(bytes: Uint8Array): { dims: number[]; values: Float32Array } {
  return tensorValues(decodeTensorProto(bytes));
}

/** One dense layer read from a graph. */
export interface OnnxDense {
  name: string;
  in: number;
  out: number;
  kernel: Float32Array;
  bias: Float32Array | null;
  activation: ActivationName;
  alpha?: number;
  /** kerasRelu's upper bound (a Clip to [0, max]). */
  maxValue?: number;
}

/** A graph node (the fields maas reads). */
export interface OnnxNode {
  name?: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute?: {
    name: string;
    f?: number;
    i?: number | { toNumber(): number };
    ints?: (number | { toNumber(): number })[];
    s?: Uint8Array | string;
  }[];
}

/** A string attribute (protobufjs gives bytes). */
function stringAttr(node: OnnxNode, name: string): string | undefined {
  const v = node.attribute?.find((x) => x.name === name)?.s;
  return v === undefined ? undefined : typeof v === 'string' ? v : new TextDecoder().decode(v);
}

/** Whether a float attribute is `want` up to float32 rounding (ONNX stores float constants). */
const nearly = (got: number, want: number): boolean => Math.abs(got - want) <= 1e-6 * Math.max(1, Math.abs(want));

function attr(node: OnnxNode, name: string): { f?: number; i?: number } | undefined {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? { f: a.f, i: a.i === undefined ? undefined : num(a.i) } : undefined;
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** A constant bound to a graph input (dims and float values). */
export interface OnnxConstant {
  dims: number[];
  values: Float32Array;
}

type Int = number | { toNumber(): number };

/** A graph value's declared type: element type and dims (dim_param for symbolic ones). */
export interface OnnxValueInfo {
  name: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: Int; dim_param?: string }[] } } };
}

/** The parts of a decoded ModelProto that maas reads. */
export interface OnnxModelProto {
  graph?: { node?: OnnxNode[]; initializer?: OnnxTensor[]; input?: OnnxValueInfo[]; output?: OnnxValueInfo[] };
  opset_import?: { domain?: string; version?: Int }[];
  metadata_props?: OnnxMetadataEntry[];
}

/** The largest .onnx file maas reads (protobuf's own limit is 2 GiB). */
export const MAX_ONNX_BYTES = 2 ** 31 - 1;
/** The most nodes, initializers, inputs or outputs one graph may list. */
export const MAX_GRAPH_ENTRIES = 1_000_000;

/**
 * Checks what a decoded ModelProto must hold before any reader walks it: protobuf decodes many
 * byte strings that are not ONNX (a truncated file can end on a field boundary), so a graph with
 * nameless nodes, nodes without an op or an output, or unnamed values is refused here.
 */
function checkModelProto(model: OnnxModelProto, path: string): OnnxModelProto {
  const bad = (why: string): MaasError =>
    new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} is not a valid ONNX model (truncated or corrupt?): ${why}`);
  const graph = model.graph;
  if (!graph) throw bad('it has no graph');
  for (const [what, list] of [
    ['nodes', graph.node],
    ['initializers', graph.initializer],
    ['inputs', graph.input],
    ['outputs', graph.output],
  ] as const) {
    if ((list?.length ?? 0) > MAX_GRAPH_ENTRIES)
      throw bad(`${list!.length} ${what} exceed the limit of ${MAX_GRAPH_ENTRIES}`);
  }
  if (!graph.node?.length) throw bad('its graph has no nodes');
  if (!graph.output?.length) throw bad('its graph has no outputs');
  graph.node.forEach((n, i) => {
    if (typeof n.op_type !== 'string' || n.op_type === '') throw bad(`node ${i} has no op_type`);
    if (!Array.isArray(n.output) || n.output.length === 0 || n.output.every((o) => o === ''))
      throw bad(`node ${i} (${n.op_type}) has no output`);
    if (!Array.isArray(n.input)) throw bad(`node ${i} (${n.op_type}) has no input list`);
  });
  for (const v of [...(graph.input ?? []), ...(graph.output ?? [])])
    if (typeof v.name !== 'string' || v.name === '') throw bad('a graph input or output has no name');
  for (const t of graph.initializer ?? [])
    if (typeof t.name !== 'string' || t.name === '') throw bad('an initializer has no name');
  return model;
}

/**
 * Reads and decodes a .onnx file (or an encrypted one, .onnx.enc, decrypted in memory), with maas
 * errors for a missing, oversized or malformed file, and verifies the digest it records
 * (onnx-digest.ts).
 */
export async function decodeOnnxFile(
  path: string,
  options: IntegrityOptions & DecryptionOptions = {},
): Promise<OnnxModelProto> {
  let bytes: Uint8Array;
  try {
    ({ bytes } = await readModelBytes(path, 'onnx', MAX_ONNX_BYTES, 'an .onnx file', options));
  } catch (e) {
    if (e instanceof MaasError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT')
      throw new MaasError('MAAS_ERR_MODEL_NOT_FOUND', `Expected an .onnx file at ${path} but nothing is there`, {
        cause: e,
      });
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return decodeOnnxBytes(bytes, path, options);
}

/** Decodes the bytes of an .onnx file read into memory (see decodeOnnxFile); `path` names it in messages. */
export function decodeOnnxBytes(read: Uint8Array, path: string, options: IntegrityOptions = {}): OnnxModelProto {
  if (read.length === 0)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Expected an ONNX model at ${path} but received an empty file`);
  // A plain Uint8Array, not a Buffer: protobufjs then decodes bytes fields as Uint8Array views.
  const bytes = new Uint8Array(read.buffer, read.byteOffset, read.byteLength);
  let model: OnnxModelProto;
  try {
    model = onnxTypes().model.decode(bytes) as unknown as OnnxModelProto;
  } catch (e) {
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} is not an ONNX model: ${(e as Error).message}`, { cause: e });
  }
  checkModelProto(model, path);
  verifyOnnxDigest(bytes, model.metadata_props, path, options);
  return model;
}

/** Operators that mark a quantized graph (loadQuantizedModel reads those). */
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulInteger',
  'QLinearMatMul',
]);

/** The default-domain opset a model imports (13 when it names none). */
export function defaultOpset(model: OnnxModelProto): number {
  return num(model.opset_import?.find((o) => !o.domain)?.version ?? 13);
}

/**
 * Reads a .onnx file into dense layers. `constants` binds graph inputs to fixed tensors, for
 * graphs that take their weights as inputs (as the ONNX backend tests do).
 */
export async function readOnnx(
  path: string,
  constants: Record<string, OnnxConstant> = {},
  options: IntegrityOptions & DecryptionOptions = {},
): Promise<OnnxDense[]> {
  return onnxDenseLayers(await decodeOnnxFile(path, options), path, constants);
}

/** A decoded ONNX model's dense layers (see readOnnx); `path` names it in messages. */
export function onnxDenseLayers(
  model: OnnxModelProto,
  path: string,
  constants: Record<string, OnnxConstant> = {},
): OnnxDense[] {
  const graph = model.graph;
  if (!graph?.node?.length) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no graph nodes`);
  const opset = defaultOpset(model);
  const init = new Map((graph.initializer ?? []).map((t) => [t.name!, tensorValues(t)]));
  for (const [name, c] of Object.entries(constants)) init.set(name, { dims: c.dims, values: c.values });
  const input = graph.input?.find((i) => !init.has(i.name));
  if (!input) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no graph input besides its initializers`);
  const inputDims = input.type?.tensor_type?.shape?.dim ?? [];
  let width = inputDims.length === 2 && inputDims[1]?.dim_value !== undefined ? num(inputDims[1].dim_value) : -1;
  let current = input.name;
  const layers: OnnxDense[] = [];
  const quantized = graph.node.some((n) => QUANTIZED_OPS.has(n.op_type));
  const hint = quantized
    ? "; it is a quantized graph: load it into maas's int8 path with loadQuantizedModel(path)"
    : '; loadModel reads chains of dense layers, loadOnnxGraph(path) evaluates other graphs';
  /** The input of the last Sigmoid: Sigmoid(z) then Mul(z, ·) is swish (PyTorch's SiLU, maas's export). */
  let sigmoidInput: string | null = null;
  const refuse = (n: OnnxNode, why: string): never => {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `ONNX node '${n.name || n.output[0]}' (${n.op_type}) is not supported: ${why}${hint}`,
    );
  };
  const weight = (n: OnnxNode, name: string | undefined) => {
    const w = name === undefined ? undefined : init.get(name);
    if (!w) refuse(n, `its input '${name}' must be an initializer (a constant weight)`);
    return w!;
  };
  const activate = (n: OnnxNode, act: ActivationName, alpha?: number, maxValue?: number) => {
    const last = layers[layers.length - 1];
    if (!last || last.activation !== 'linear') refuse(n, 'an activation must follow a Gemm or MatMul without one');
    last!.activation = act;
    if (alpha !== undefined) last!.alpha = alpha;
    if (maxValue !== undefined) last!.maxValue = maxValue;
  };
  /** A Clip bound: an initializer input (opset 11+) or an attribute (before); undefined when absent. */
  const clipBound = (n: OnnxNode, index: number, name: 'min' | 'max'): number | undefined => {
    if (opset < 11) return attr(n, name)?.f;
    const input = n.input[index];
    if (!input) return undefined;
    const v = weight(n, input);
    if (v.values.length !== 1) refuse(n, `its ${name} must be a scalar`);
    return v.values[0]!;
  };
  for (const n of graph.node) {
    // A Transpose of a constant (PyTorch exports Linear as Transpose(weight) > MatMul) folds
    // into a new constant rather than joining the chain.
    if (n.op_type === 'Transpose' && !n.input.includes(current) && init.has(n.input[0]!)) {
      const w = init.get(n.input[0]!)!;
      const perm = n.attribute?.find((a) => a.name === 'perm')?.ints?.map(num);
      if (w.dims.length !== 2 || (perm && (perm[0] !== 1 || perm[1] !== 0)))
        refuse(n, 'only the transpose of a constant matrix folds');
      init.set(n.output[0]!, { dims: [w.dims[1]!, w.dims[0]!], values: transpose(w.values, w.dims[0]!, w.dims[1]!) });
      continue;
    }
    if (!n.input.includes(current))
      refuse(n, `the graph must be a chain from its input; this node does not consume '${current}'`);
    const other = n.input.find((i) => i !== current && i !== '');
    switch (n.op_type) {
      case 'Gemm': {
        if ((attr(n, 'transA')?.i ?? 0) !== 0 || n.input[0] !== current)
          refuse(n, 'transA must be 0 with the data as input A');
        const w = weight(n, n.input[1]);
        if (w.dims.length !== 2) refuse(n, 'B must be a matrix');
        const transB = (attr(n, 'transB')?.i ?? 0) !== 0;
        const [k, out] = transB ? [w.dims[1]!, w.dims[0]!] : [w.dims[0]!, w.dims[1]!];
        let kernel = transB ? transpose(w.values, w.dims[0]!, w.dims[1]!) : w.values.slice();
        const alpha = attr(n, 'alpha')?.f ?? 1;
        if (alpha !== 1) kernel = kernel.map((v) => v * alpha);
        let bias: Float32Array | null = null;
        if (n.input[2]) {
          const c = weight(n, n.input[2]);
          if (c.values.length !== out && c.values.length !== 1) refuse(n, `C must broadcast as a row of ${out}`);
          const beta = attr(n, 'beta')?.f ?? 1;
          bias =
            c.values.length === 1 ? new Float32Array(out).fill(c.values[0]! * beta) : c.values.map((v) => v * beta);
        }
        layers.push({ name: n.name || n.output[0]!, in: k, out, kernel, bias, activation: 'linear' });
        width = out;
        break;
      }
      case 'MatMul': {
        if (n.input[0] !== current) refuse(n, 'the data must be the first operand');
        const w = weight(n, other);
        if (w.dims.length !== 2) refuse(n, 'the weight must be a matrix');
        layers.push({
          name: n.name || n.output[0]!,
          in: w.dims[0]!,
          out: w.dims[1]!,
          kernel: w.values.slice(),
          bias: null,
          activation: 'linear',
        });
        width = w.dims[1]!;
        break;
      }
      case 'Add': {
        const last = layers[layers.length - 1];
        const b = weight(n, other);
        if (!last || last.bias || last.activation !== 'linear' || b.values.length !== last.out)
          refuse(n, 'only a bias row added right after MatMul is supported');
        last!.bias = b.values.slice();
        break;
      }
      case 'Relu':
        activate(n, 'relu');
        break;
      case 'Sigmoid':
        activate(n, 'sigmoid');
        sigmoidInput = current;
        break;
      case 'Mul': {
        const last = layers[layers.length - 1];
        if (!last || last.activation !== 'sigmoid' || sigmoidInput === null || other !== sigmoidInput)
          refuse(n, 'only Mul(z, Sigmoid(z)) (swish) is supported');
        last!.activation = 'swish';
        sigmoidInput = null;
        break;
      }
      case 'Tanh':
        activate(n, 'tanh');
        break;
      case 'LeakyRelu':
        activate(n, 'leakyRelu', attr(n, 'alpha')?.f ?? 0.01);
        break;
      case 'Elu':
        activate(n, 'elu', attr(n, 'alpha')?.f ?? 1);
        break;
      case 'Softplus':
        activate(n, 'softplus');
        break;
      case 'Softsign':
        activate(n, 'softsign');
        break;
      case 'Exp':
        activate(n, 'exponential');
        break;
      case 'Selu': {
        // ONNX's defaults are Keras's constants rounded to float.
        const alpha = attr(n, 'alpha')?.f ?? 1.6732632423543772;
        const gamma = attr(n, 'gamma')?.f ?? 1.0507009873554805;
        if (!nearly(alpha, 1.6732632423543772) || !nearly(gamma, 1.0507009873554805))
          refuse(n, `Selu with alpha ${alpha} and gamma ${gamma} (maas implements Keras's constants)`);
        activate(n, 'selu');
        break;
      }
      case 'HardSigmoid': {
        const alpha = attr(n, 'alpha')?.f ?? 0.2;
        const beta = attr(n, 'beta')?.f ?? 0.5;
        if (!nearly(alpha, 0.2) || !nearly(beta, 0.5))
          refuse(n, `HardSigmoid with alpha ${alpha} and beta ${beta} (maas implements tfjs's 0.2·x + 0.5)`);
        activate(n, 'hardSigmoid');
        break;
      }
      case 'Gelu': {
        const approximate = stringAttr(n, 'approximate') ?? 'none';
        if (approximate !== 'none' && approximate !== 'tanh') refuse(n, `Gelu with approximate '${approximate}'`);
        activate(n, approximate === 'tanh' ? 'geluTanh' : 'gelu');
        break;
      }
      case 'Clip': {
        const lo = clipBound(n, 1, 'min');
        const hi = clipBound(n, 2, 'max');
        if (lo !== 0 || hi === undefined || !(hi >= 0) || !Number.isFinite(hi))
          refuse(n, `Clip to [${lo ?? '-inf'}, ${hi ?? 'inf'}] (maas fuses Clip to [0, max], max >= 0)`);
        if (hi === 6) activate(n, 'relu6');
        else activate(n, 'kerasRelu', 0, hi);
        break;
      }
      case 'Softmax': {
        const axis = attr(n, 'axis')?.i ?? (opset >= 13 ? -1 : 1);
        if (axis !== -1 && axis !== 1) refuse(n, `softmax over axis ${axis} of a [batch, features] tensor`);
        activate(n, 'softmax');
        break;
      }
      case 'Identity':
      case 'Dropout':
        break;
      case 'Flatten':
        if ((attr(n, 'axis')?.i ?? 1) !== 1) refuse(n, 'only Flatten with axis 1 of a [batch, features] tensor');
        break;
      case 'Reshape': {
        const shape = weight(n, n.input[1]);
        const target = Array.from(shape.values);
        if (target.length !== 2 || (target[1] !== width && target[1] !== -1))
          refuse(n, `only a reshape to [batch, ${width}]`);
        break;
      }
      default:
        refuse(n, 'maas imports chains of Gemm/MatMul/Add and activations');
    }
    current = n.output[0]!;
  }
  if (layers.length === 0) throw new MaasError('MAAS_ERR_MODEL_FORMAT', `${path} has no Gemm or MatMul${hint}`);
  if (graph.output?.[0]?.name !== current)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The chain ends at '${current}' but the graph output is '${graph.output?.[0]?.name}'${hint}`,
    );
  return layers;
}
