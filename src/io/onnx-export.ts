/**
 * ONNX export: a dense stack as an ONNX graph (opset 13): one Gemm per layer, or MatMul + Add,
 * then the activation node; weights as little-endian raw_data initializers. What maas writes for
 * onnxruntime or Triton, and what the benchmark feeds onnxruntime.
 */
import type protobuf from 'protobufjs';
import { onnxTypes } from './onnx.js';
import { withOnnxDigest } from './onnx-digest.js';
import { MaasError } from '../core/errors.js';
import type { ActivationName } from '../native/index.js';

/** Activation names of an exported layer (tfjs spelling). */
export type DenseActivation = ActivationName;

/** One dense layer to export: weights are in×out row-major (Keras kernel layout). */
export type DenseSpec = {
  weights: Float32Array;
  bias: Float32Array | null;
  in: number;
  out: number;
  activation: DenseActivation;
  alpha: number;
  /** kerasRelu's max_value (absent: none). */
  maxValue?: number;
  /** kerasRelu's threshold (absent: 0). */
  threshold?: number;
};

/** Which ONNX operators a dense layer is lowered to. */
export type DenseOnnxOp = 'gemm' | 'matmul';

// Opset 13 is the first where Softmax means "along the last axis" instead of
// "flatten from axis", which is what Keras softmax does; IR 7 is what ORT
// expects alongside it.
const OPSET_VERSION = 13;
const IR_VERSION = 7;
/** ONNX TensorProto element type of float32. */
export const FLOAT = 1;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;

/** An AttributeProto as protobufjs takes it. */
export type AttributeObject = { name: string; type: number; f?: number; i?: number };
/** A NodeProto as protobufjs takes it. */
export type NodeObject = {
  op_type: string;
  name: string;
  input: string[];
  output: string[];
  attribute: AttributeObject[];
};
/** A TensorProto (raw_data) as protobufjs takes it. */
export type TensorObject = { name: string; data_type: number; dims: number[]; raw_data: Uint8Array };
/** A ValueInfoProto as protobufjs takes it. */
export type ValueInfoObject = ReturnType<typeof floatValueInfo>;

/** The ONNX ModelProto type, from the library's own proto loader. */
function onnxModelType(): protobuf.Type {
  return onnxTypes().model;
}

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** ONNX raw_data is little-endian by definition, so only a big-endian host needs the slow per-element path. */
export function float32LeBytes(values: Float32Array): Uint8Array {
  if (hostIsLittleEndian)
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** A float32 initializer. */
export function floatInitializer(name: string, dims: number[], values: Float32Array): TensorObject {
  return { name, data_type: FLOAT, dims, raw_data: float32LeBytes(values) };
}

/** A float tensor value whose leading dimension is the symbolic batch "N". */
export function floatValueInfo(name: string, width: number) {
  const dim = [{ dim_param: 'N' }, { dim_value: width }];
  return { name, type: { tensor_type: { elem_type: FLOAT, shape: { dim } } } };
}

/** A node named after its output. */
export function node(op_type: string, input: string[], output: string, attribute: AttributeObject[] = []): NodeObject {
  return { op_type, name: `${op_type}_${output}`, input, output: [output], attribute };
}

/** A float32 scalar initializer (Clip's bounds, the constants of a decomposed activation). */
function scalar(init: TensorObject[], name: string, value: number): string {
  init.push(floatInitializer(name, [], Float32Array.of(value)));
  return name;
}

/**
 * The nodes computing one layer's activation from `input` into `output` (none when the layer is
 * linear), pushing the scalars they need onto `init`. Opset 13 has a single op for most; swish,
 * gelu (Gelu is opset 20) and Keras ReLU are written out from the ops it has.
 */
export function activationNodes(layer: DenseSpec, input: string, output: string, init: TensorObject[]): NodeObject[] {
  const f = (name: string, v: number): AttributeObject => ({ name, type: ATTR_FLOAT, f: v });
  const c = (suffix: string, v: number) => scalar(init, `${output}_${suffix}`, v);
  switch (layer.activation) {
    case 'linear':
      return [];
    case 'relu':
      return [node('Relu', [input], output)];
    case 'leakyRelu':
      return [node('LeakyRelu', [input], output, [f('alpha', layer.alpha)])];
    case 'elu':
      return [node('Elu', [input], output, [f('alpha', layer.alpha)])];
    case 'sigmoid':
      return [node('Sigmoid', [input], output)];
    case 'tanh':
      return [node('Tanh', [input], output)];
    case 'softmax':
      return [node('Softmax', [input], output, [{ name: 'axis', type: ATTR_INT, i: -1 }])];
    case 'relu6':
      return [node('Clip', [input, c('min', 0), c('max', 6)], output)];
    case 'hardSigmoid':
      return [node('HardSigmoid', [input], output, [f('alpha', 0.2), f('beta', 0.5)])];
    case 'swish':
      return [node('Sigmoid', [input], `${output}_sig`), node('Mul', [input, `${output}_sig`], output)];
    case 'gelu':
      // 0.5·x·(1 + erf(x/√2))
      return [
        node('Mul', [input, c('rsqrt2', Math.SQRT1_2)], `${output}_s`),
        node('Erf', [`${output}_s`], `${output}_erf`),
        node('Add', [`${output}_erf`, c('one', 1)], `${output}_p1`),
        node('Mul', [input, `${output}_p1`], `${output}_xp`),
        node('Mul', [`${output}_xp`, c('half', 0.5)], output),
      ];
    case 'geluTanh': {
      // x·sigmoid(x·(k + k·c·x²)), k = 2·√(2/π), c = 0.044715: the tanh form without its cancellation
      const k = 2 * Math.sqrt(2 / Math.PI);
      return [
        node('Mul', [input, input], `${output}_x2`),
        node('Mul', [`${output}_x2`, c('kc', k * 0.044715)], `${output}_kcx2`),
        node('Add', [`${output}_kcx2`, c('k', k)], `${output}_poly`),
        node('Mul', [input, `${output}_poly`], `${output}_v`),
        node('Sigmoid', [`${output}_v`], `${output}_sig`),
        node('Mul', [input, `${output}_sig`], output),
      ];
    }
    case 'softplus':
      return [node('Softplus', [input], output)];
    case 'softsign':
      return [node('Softsign', [input], output)];
    case 'selu':
      // ONNX's own defaults are these constants rounded to float; state them.
      return [node('Selu', [input], output, [f('alpha', 1.6732632423543772), f('gamma', 1.0507009873554805)])];
    case 'exponential':
      return [node('Exp', [input], output)];
    case 'kerasRelu': {
      // x > t ? min(x, max) : slope·(x − t)
      const t = c('threshold', layer.threshold ?? 0);
      const above = layer.maxValue === undefined ? input : `${output}_min`;
      return [
        ...(layer.maxValue === undefined ? [] : [node('Min', [input, c('max', layer.maxValue)], above)]),
        node('Sub', [input, t], `${output}_d`),
        node('Mul', [`${output}_d`, c('slope', layer.alpha)], `${output}_neg`),
        node('Greater', [input, t], `${output}_gt`),
        node('Where', [`${output}_gt`, above, `${output}_neg`], output),
      ];
    }
  }
}

/** Nodes computing input·W (+ B) into output, as one Gemm or as MatMul followed by Add. */
export function affineNodes(op: DenseOnnxOp, input: string, w: string, b: string | null, output: string): NodeObject[] {
  if (op === 'gemm') return [node('Gemm', b === null ? [input, w] : [input, w, b], output)];
  if (b === null) return [node('MatMul', [input, w], output)];
  return [node('MatMul', [input, w], `${output}_mm`), node('Add', [`${output}_mm`, b], output)];
}

/** Checks a layer's weight and bias lengths against in × out. */
export function checkLayer(layer: DenseSpec, index: number): void {
  if (layer.weights.length !== layer.in * layer.out) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `layer ${index}: weights has ${layer.weights.length} values, expected ${layer.in}×${layer.out}`,
    );
  }
  if (layer.bias !== null && layer.bias.length !== layer.out) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `layer ${index}: bias has ${layer.bias.length} values, expected ${layer.out}`,
    );
  }
}

/** Serialises a graph with input "x" and output "y" into ModelProto bytes that record their digest (onnx-digest.ts). */
export function encodeModel(
  nodes: NodeObject[],
  initializer: TensorObject[],
  input: ValueInfoObject,
  output: ValueInfoObject,
  graphName = 'maas_dense',
): Uint8Array {
  const type = onnxModelType();
  const model = type.fromObject({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET_VERSION }],
    producer_name: 'maas',
    graph: { name: graphName, node: nodes, initializer, input: [input], output: [output] },
  });
  return withOnnxDigest(type.encode(model).finish(), type);
}

/** Builds an ONNX model (opset 13) of the dense stack: input "x" [N, in], output "y" [N, out]. */
export function buildDenseOnnx(layers: DenseSpec[], opts: { op?: DenseOnnxOp } = {}): Uint8Array {
  if (layers.length === 0)
    throw new MaasError('MAAS_ERR_MODEL_EMPTY', 'buildDenseOnnx: at least one layer is required');
  const op = opts.op ?? 'gemm';
  const nodes: NodeObject[] = [];
  const initializer: TensorObject[] = [];
  let current = 'x';
  layers.forEach((layer, i) => {
    checkLayer(layer, i);
    const last = i === layers.length - 1;
    const w = `W${i}`;
    const b = layer.bias === null ? null : `B${i}`;
    initializer.push(floatInitializer(w, [layer.in, layer.out], layer.weights));
    if (layer.bias !== null) initializer.push(floatInitializer(`B${i}`, [layer.out], layer.bias));
    // The graph output must carry the name "y", so whichever node ends the last layer writes it.
    const linearOut = last && layer.activation === 'linear' ? 'y' : `z${i}`;
    nodes.push(...affineNodes(op, current, w, b, linearOut));
    const act = activationNodes(layer, linearOut, last ? 'y' : `h${i}`, initializer);
    nodes.push(...act);
    current = act.length === 0 ? linearOut : act[act.length - 1]!.output[0]!;
  });
  const width = layers[layers.length - 1]!.out;
  return encodeModel(nodes, initializer, floatValueInfo('x', layers[0]!.in), floatValueInfo('y', width));
}

/** Builds a single-MatMul graph y[M,n] = x[M,k]·W[k,n] for the raw GEMM benchmark. */
export function buildGemmOnnx(k: number, n: number, weights: Float32Array): Uint8Array {
  if (weights.length !== k * n)
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `buildGemmOnnx: weights has ${weights.length} values, expected ${k}×${n}`,
    );
  const nodes = [node('MatMul', ['x', 'W'], 'y')];
  return encodeModel(nodes, [floatInitializer('W', [k, n], weights)], floatValueInfo('x', k), floatValueInfo('y', n));
}
