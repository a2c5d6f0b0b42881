/**
 * A small ONNX writer for tests: graphs of any nodes (several outputs, int/float/ints attributes),
 * initializers of every type maas decodes (float16 and bfloat16 as bit patterns), typed inputs and
 * outputs, over the library's own proto types.
 */
import { ONNX_TYPES, onnxTypes } from '../src/io/onnx.js';

export const T = ONNX_TYPES;

/** A node to write; its name defaults to its first output. */
export interface WNode {
  op: string;
  input: string[];
  output: string[] | string;
  name?: string;
  domain?: string;
  attrs?: Record<string, number | number[]>;
}

/** An initializer: values in the given ONNX type (float16/bfloat16 given as numbers, rounded when written). */
export interface WTensor {
  name: string;
  type: number;
  dims: number[];
  values: ArrayLike<number>;
}

/** The float16 bit pattern of a number, rounded to nearest even. */
export function halfBits(x: number): number {
  const f = new DataView(new ArrayBuffer(4));
  f.setFloat32(0, x);
  const bits = f.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff,
    man = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000,
      shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1),
      half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** The bfloat16 bit pattern of a number (ties to even). */
export function bfloat16Bits(x: number): number {
  const f = new DataView(new ArrayBuffer(4));
  f.setFloat32(0, x);
  const bits = f.getUint32(0);
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian raw_data of values in an ONNX type. */
export function rawBytes(type: number, values: ArrayLike<number>): Uint8Array {
  const width: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 10: 2, 11: 8, 16: 2 };
  const w = width[type]!;
  const out = new Uint8Array(values.length * w);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (type === T.FLOAT) view.setFloat32(i * 4, v, true);
    else if (type === T.DOUBLE) view.setFloat64(i * 8, v, true);
    else if (type === T.INT64) view.setBigInt64(i * 8, BigInt(v), true);
    else if (type === T.INT32) view.setInt32(i * 4, v, true);
    else if (type === T.INT16) view.setInt16(i * 2, v, true);
    else if (type === T.UINT16) view.setUint16(i * 2, v, true);
    else if (type === T.FLOAT16) view.setUint16(i * 2, halfBits(v), true);
    else if (type === T.BFLOAT16) view.setUint16(i * 2, bfloat16Bits(v), true);
    else if (type === T.INT8) view.setInt8(i, v);
    else view.setUint8(i, v);
  }
  return out;
}

/** A value info: element type and dims (a string dim is symbolic). */
export const info = (name: string, elem: number, dims?: (number | string)[]) => ({
  name,
  type: {
    tensor_type: {
      elem_type: elem,
      ...(dims
        ? { shape: { dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) } }
        : {}),
    },
  },
});

/** Encodes a model: opset (default domain) and any further domains, nodes, initializers, inputs, outputs. */
export function writeModel(spec: {
  opset: number;
  domains?: Record<string, number>;
  nodes: WNode[];
  initializers?: WTensor[];
  inputs: ReturnType<typeof info>[];
  outputs: ReturnType<typeof info>[];
}): Uint8Array {
  const attribute = (a: Record<string, number | number[]> = {}) =>
    Object.entries(a).map(([name, v]) =>
      Array.isArray(v)
        ? { name, type: 7, ints: v }
        : Number.isInteger(v)
          ? { name, type: 2, i: v }
          : { name, type: 1, f: v },
    );
  const type = onnxTypes().model;
  return type
    .encode(
      type.fromObject({
        ir_version: spec.opset >= 21 ? 10 : spec.opset >= 19 ? 9 : 7,
        producer_name: 'maas-test',
        opset_import: [
          { domain: '', version: spec.opset },
          ...Object.entries(spec.domains ?? {}).map(([domain, version]) => ({ domain, version })),
        ],
        graph: {
          name: 'g',
          node: spec.nodes.map((n) => {
            const output = Array.isArray(n.output) ? n.output : [n.output];
            return {
              op_type: n.op,
              name: n.name ?? output[0],
              input: n.input,
              output,
              ...(n.domain ? { domain: n.domain } : {}),
              attribute: attribute(n.attrs),
            };
          }),
          initializer: (spec.initializers ?? []).map((t) => ({
            name: t.name,
            data_type: t.type,
            dims: t.dims,
            raw_data: rawBytes(t.type, t.values),
          })),
          input: spec.inputs,
          output: spec.outputs,
        },
      }),
    )
    .finish();
}
