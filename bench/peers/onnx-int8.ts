/**
 * The onnxruntime-node int8 peer: a dense stack as ORT's dynamic quantization writes it, per
 * layer DynamicQuantizeLinear(x) → MatMulInteger(x_u8, W_s8, x_zero) → Cast → Mul(x_scale ·
 * w_scale per channel) → Add(bias) → activation, with the same s8 weights maas uses.
 */
import type protobuf from 'protobufjs';
import { onnxTypes } from '../../src/io/onnx.js';
import { quantizeWeights } from '../../src/quant/arith.js';
import type { DenseSpec } from './onnx.js';

const FLOAT = 1;
const INT8 = 3;
const ATTR_INT = 2;

type Node = { op_type: string; name: string; input: string[]; output: string[]; attribute: { name: string; type: number; i?: number }[] };

const node = (op: string, input: string[], output: string[], attribute: Node['attribute'] = []): Node =>
  ({ op_type: op, name: `${op}_${output[0]}`, input, output, attribute });

const bytes = (a: Float32Array | Int8Array): Uint8Array => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** Builds the dynamic-quantization graph (opset 13) of the stack: input "x" [N, in], output "y". */
export function buildDynamicQuantOnnx(layers: DenseSpec[]): Uint8Array {
  const nodes: Node[] = [];
  const initializer: { name: string; data_type: number; dims: number[]; raw_data: Uint8Array }[] = [];
  let current = 'x';
  layers.forEach((l, i) => {
    const { q, scales } = quantizeWeights(l.weights, l.in, l.out, true);
    initializer.push({ name: `W${i}`, data_type: INT8, dims: [l.in, l.out], raw_data: bytes(q) });
    initializer.push({ name: `S${i}`, data_type: FLOAT, dims: [l.out], raw_data: bytes(scales) });
    if (l.bias) initializer.push({ name: `B${i}`, data_type: FLOAT, dims: [l.out], raw_data: bytes(l.bias) });
    const last = i === layers.length - 1;
    nodes.push(node('DynamicQuantizeLinear', [current], [`xq${i}`, `xs${i}`, `xz${i}`]));
    nodes.push(node('MatMulInteger', [`xq${i}`, `W${i}`, `xz${i}`], [`acc${i}`]));
    nodes.push(node('Cast', [`acc${i}`], [`accf${i}`], [{ name: 'to', type: ATTR_INT, i: FLOAT }]));
    nodes.push(node('Mul', [`xs${i}`, `S${i}`], [`sc${i}`]));
    const linear = last && l.activation === 'linear' && !l.bias ? 'y' : `z${i}`;
    nodes.push(node('Mul', [`accf${i}`, `sc${i}`], [l.bias ? `m${i}` : linear]));
    const affine = last && l.activation === 'linear' ? 'y' : `a${i}`;
    if (l.bias) nodes.push(node('Add', [`m${i}`, `B${i}`], [affine]));
    else if (linear !== affine) nodes.push(node('Identity', [linear], [affine]));
    if (l.activation === 'relu') nodes.push(node('Relu', [affine], [last ? 'y' : `h${i}`]));
    else if (l.activation === 'sigmoid') nodes.push(node('Sigmoid', [affine], [last ? 'y' : `h${i}`]));
    else if (l.activation !== 'linear') throw new Error(`buildDynamicQuantOnnx: activation ${l.activation} is not needed by the benchmark`);
    current = l.activation === 'linear' ? affine : last ? 'y' : `h${i}`;
  });
  const info = (name: string, width: number) => ({ name, type: { tensor_type: { elem_type: FLOAT, shape: { dim: [{ dim_param: 'N' }, { dim_value: width }] } } } });
  const type: protobuf.Type = onnxTypes().model;
  const model = type.fromObject({
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    producer_name: 'maas-bench',
    graph: { name: 'maas_dense_int8', node: nodes, initializer, input: [info('x', layers[0]!.in)], output: [info('y', layers[layers.length - 1]!.out)] },
  });
  return type.encode(model).finish();
}
