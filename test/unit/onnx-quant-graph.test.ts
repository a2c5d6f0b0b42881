/**
 * loadOnnxGraph's quantization operators against onnxruntime-node on graphs written here: per-axis
 * and blocked QuantizeLinear/DequantizeLinear (u8, s8, int32 bias form), opset 10/13/19/21
 * semantics, float16 scales and tensors, bfloat16 initializers, MatMulInteger with per-column
 * zero points, QLinearMatMul with per-column weight scales, DynamicQuantizeLinear.
 * Every output must agree exactly: both sides round the same float32 quotients half to even.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { dense, initializers, loadOnnxGraph, quantize, sequential } from '../../src/index.js';
import { T, info, writeModel, halfBits, type WNode, type WTensor } from '../onnx-writer.js';

/** An input: its ONNX type, dims and values. */
interface In {
  type: number;
  dims: number[];
  data: number[];
}

const ORT_TYPE: Record<number, string> = {
  [T.FLOAT]: 'float32',
  [T.UINT8]: 'uint8',
  [T.INT8]: 'int8',
  [T.INT32]: 'int32',
  [T.FLOAT16]: 'float16',
};

function ortInput(x: In): OrtTensor {
  const t = ORT_TYPE[x.type]!;
  const data =
    t === 'float32'
      ? Float32Array.from(x.data)
      : t === 'uint8'
        ? Uint8Array.from(x.data)
        : t === 'int8'
          ? Int8Array.from(x.data)
          : t === 'int32'
            ? Int32Array.from(x.data)
            : Uint16Array.from(x.data, halfBits);
  return new OrtTensor(t as 'float32', data as Float32Array, x.dims);
}

/** ORT's output as numbers (float16 bit patterns decoded). */
function ortValues(t: OrtTensor): number[] {
  if (t.type === 'float16') {
    const bits = t.data as Uint16Array;
    const view = new DataView(new ArrayBuffer(2));
    return Array.from(bits, (b) => {
      view.setUint16(0, b);
      const sign = b & 0x8000 ? -1 : 1,
        exp = (b >> 10) & 0x1f,
        frac = b & 0x3ff;
      return exp === 0 ? sign * frac * 2 ** -24 : sign * (1024 + frac) * 2 ** (exp - 25);
    });
  }
  return Array.from(t.data as ArrayLike<number>);
}

/** Seeded values in (-range, range), with exact ties of `tieScale` mixed in. */
function data(n: number, seed: number, range: number, tieScale?: number): number[] {
  return Array.from({ length: n }, (_, i) =>
    tieScale !== undefined && i % 3 === 0
      ? Math.fround((((i * 7 + seed) % 11) - 5 + 0.5) * tieScale)
      : Math.fround(range * Math.sin(seed * 3.1 + i * 1.7)),
  );
}

interface Case {
  name: string;
  opset: number;
  nodes: WNode[];
  initializers?: WTensor[];
  inputs: Record<string, In>;
  outputs: [string, number][];
}

const s = (v: number[]) => v.map(Math.fround);

const CASES: Case[] = [
  {
    name: 'QuantizeLinear u8 per axis 1 (opset 13), ties included',
    opset: 13,
    nodes: [{ op: 'QuantizeLinear', input: ['x', 's', 'z'], output: 'y', attrs: { axis: 1 } }],
    initializers: [
      { name: 's', type: T.FLOAT, dims: [4], values: s([0.02, 0.05, 0.1, 0.013]) },
      { name: 'z', type: T.UINT8, dims: [4], values: [128, 0, 255, 17] },
    ],
    inputs: { x: { type: T.FLOAT, dims: [5, 4], data: data(20, 1, 3, 0.05) } },
    outputs: [['y', T.UINT8]],
  },
  {
    name: 'QuantizeLinear s8 per axis 0 (opset 13)',
    opset: 13,
    nodes: [{ op: 'QuantizeLinear', input: ['x', 's', 'z'], output: 'y', attrs: { axis: 0 } }],
    initializers: [
      { name: 's', type: T.FLOAT, dims: [3], values: s([0.01, 0.03, 0.007]) },
      { name: 'z', type: T.INT8, dims: [3], values: [0, -20, 5] },
    ],
    inputs: { x: { type: T.FLOAT, dims: [3, 6], data: data(18, 2, 2, 0.01) } },
    outputs: [['y', T.INT8]],
  },
  {
    name: 'QuantizeLinear per tensor, no zero point (u8), opset 10',
    opset: 10,
    nodes: [{ op: 'QuantizeLinear', input: ['x', 's'], output: 'y' }],
    initializers: [{ name: 's', type: T.FLOAT, dims: [], values: s([0.0173]) }],
    inputs: { x: { type: T.FLOAT, dims: [2, 7], data: data(14, 3, 3) } },
    outputs: [['y', T.UINT8]],
  },
  {
    name: 'DequantizeLinear s8 per axis 1 (opset 13)',
    opset: 13,
    nodes: [{ op: 'DequantizeLinear', input: ['q', 's', 'z'], output: 'y', attrs: { axis: 1 } }],
    initializers: [
      { name: 's', type: T.FLOAT, dims: [3], values: s([0.011, 0.3, 1e-3]) },
      { name: 'z', type: T.INT8, dims: [3], values: [0, 3, -7] },
    ],
    inputs: { q: { type: T.INT8, dims: [4, 3], data: [-128, 127, 0, 5, -5, 64, 1, 2, 3, -100, 100, -1] } },
    outputs: [['y', T.FLOAT]],
  },
  {
    name: 'DequantizeLinear of an int32 bias per axis 0 (the QDQ bias form)',
    opset: 13,
    nodes: [{ op: 'DequantizeLinear', input: ['b', 's'], output: 'y', attrs: { axis: 0 } }],
    initializers: [
      { name: 'b', type: T.INT32, dims: [4], values: [123456, -98765, 2 ** 24 + 3, -(2 ** 27) - 5] },
      { name: 's', type: T.FLOAT, dims: [4], values: s([1.3e-5, 2.7e-4, 3.3e-6, 1e-7]) },
    ],
    inputs: {},
    outputs: [['y', T.FLOAT]],
  },
  {
    name: 'float16: QuantizeLinear and DequantizeLinear with float16 x and scales (opset 19)',
    opset: 19,
    nodes: [
      { op: 'QuantizeLinear', input: ['x', 's', 'z'], output: 'q', attrs: { axis: 1 } },
      { op: 'DequantizeLinear', input: ['q', 's', 'z'], output: 'y', attrs: { axis: 1 } },
    ],
    initializers: [
      { name: 's', type: T.FLOAT16, dims: [3], values: [0.0123, 0.05, 0.007] },
      { name: 'z', type: T.UINT8, dims: [3], values: [100, 0, 200] },
    ],
    inputs: { x: { type: T.FLOAT16, dims: [4, 3], data: data(12, 5, 1.5) } },
    outputs: [
      ['q', T.UINT8],
      ['y', T.FLOAT16],
    ],
  },
  {
    name: 'float16 and bfloat16 initializers Cast to float and added',
    opset: 13,
    nodes: [
      { op: 'Cast', input: ['h'], output: 'hf', attrs: { to: T.FLOAT } },
      { op: 'Cast', input: ['b'], output: 'bf', attrs: { to: T.FLOAT } },
      { op: 'Add', input: ['x', 'hf'], output: 't' },
      { op: 'Add', input: ['t', 'bf'], output: 'y' },
    ],
    initializers: [
      { name: 'h', type: T.FLOAT16, dims: [4], values: [0.1, -65504, 6e-8, 3.14159] },
      { name: 'b', type: T.BFLOAT16, dims: [4], values: [1.00390625, -2.5e30, 1e-20, 0.333] },
    ],
    inputs: { x: { type: T.FLOAT, dims: [2, 4], data: data(8, 6, 1) } },
    outputs: [['y', T.FLOAT]],
  },
  {
    name: 'QuantizeLinear without a zero point, output_dtype int8 (opset 21)',
    opset: 21,
    nodes: [{ op: 'QuantizeLinear', input: ['x', 's'], output: 'y', attrs: { output_dtype: T.INT8 } }],
    initializers: [{ name: 's', type: T.FLOAT, dims: [], values: s([0.021]) }],
    inputs: { x: { type: T.FLOAT, dims: [3, 5], data: data(15, 9, 4, 0.021) } },
    outputs: [['y', T.INT8]],
  },
  {
    name: 'blocked DequantizeLinear (opset 21, block_size 2 along axis 1)',
    opset: 21,
    nodes: [{ op: 'DequantizeLinear', input: ['q', 's', 'z'], output: 'y', attrs: { axis: 1, block_size: 2 } }],
    initializers: [
      { name: 's', type: T.FLOAT, dims: [2, 3], values: s([0.1, 0.2, 0.3, 0.01, 0.02, 0.03]) },
      { name: 'z', type: T.UINT8, dims: [2, 3], values: [1, 2, 3, 4, 5, 6] },
    ],
    inputs: { q: { type: T.UINT8, dims: [2, 5], data: [0, 10, 20, 30, 255, 7, 8, 9, 100, 200] } },
    outputs: [['y', T.FLOAT]],
  },
  {
    name: 'DynamicQuantizeLinear → MatMulInteger with per-column s8 zero points',
    opset: 13,
    nodes: [
      { op: 'DynamicQuantizeLinear', input: ['x'], output: ['q', 'qs', 'qz'] },
      { op: 'MatMulInteger', input: ['q', 'w', 'qz', 'wz'], output: 'acc' },
    ],
    initializers: [
      { name: 'w', type: T.INT8, dims: [5, 3], values: [1, -2, 3, 127, -127, 0, 5, 6, -7, 8, 9, 10, -11, 12, 13] },
      { name: 'wz', type: T.INT8, dims: [3], values: [0, 2, -3] },
    ],
    inputs: { x: { type: T.FLOAT, dims: [4, 5], data: data(20, 7, 2) } },
    outputs: [
      ['q', T.UINT8],
      ['qs', T.FLOAT],
      ['qz', T.UINT8],
      ['acc', T.INT32],
    ],
  },
  {
    name: 'MatMulInteger u8 × u8 with scalar zero points (ORT takes no per-row A zero point)',
    opset: 13,
    nodes: [{ op: 'MatMulInteger', input: ['a', 'b', 'az', 'bz'], output: 'y' }],
    initializers: [
      { name: 'az', type: T.UINT8, dims: [], values: [10] },
      { name: 'bz', type: T.UINT8, dims: [], values: [128] },
    ],
    inputs: {
      a: { type: T.UINT8, dims: [3, 4], data: [0, 1, 2, 3, 250, 251, 252, 253, 9, 99, 199, 255] },
      b: { type: T.UINT8, dims: [4, 2], data: [0, 255, 128, 127, 1, 2, 200, 100] },
    },
    outputs: [['y', T.INT32]],
  },
  {
    name: 'QLinearMatMul u8 × s8 with per-column weight scales, u8 output',
    opset: 13,
    nodes: [{ op: 'QLinearMatMul', input: ['a', 'as', 'az', 'w', 'ws', 'wz', 'ys', 'yz'], output: 'y' }],
    initializers: [
      { name: 'as', type: T.FLOAT, dims: [], values: s([0.0157]) },
      { name: 'az', type: T.UINT8, dims: [], values: [113] },
      { name: 'w', type: T.INT8, dims: [4, 3], values: [1, -2, 3, 127, -127, 0, 5, 6, -7, 8, 9, 10] },
      { name: 'ws', type: T.FLOAT, dims: [3], values: s([0.004, 0.0021, 0.0107]) },
      { name: 'wz', type: T.INT8, dims: [3], values: [0, 0, 0] },
      { name: 'ys', type: T.FLOAT, dims: [], values: s([0.0093]) },
      { name: 'yz', type: T.UINT8, dims: [], values: [121] },
    ],
    inputs: { a: { type: T.UINT8, dims: [3, 4], data: [0, 17, 255, 113, 200, 1, 2, 250, 113, 113, 114, 112] } },
    outputs: [['y', T.UINT8]],
  },
];

async function ort(bytes: Uint8Array, inputs: Record<string, In>): Promise<Record<string, OrtTensor>> {
  const session = await InferenceSession.create(bytes);
  try {
    return await session.run(Object.fromEntries(Object.entries(inputs).map(([n, x]) => [n, ortInput(x)])));
  } finally {
    await session.release();
  }
}

describe('loadOnnxGraph quantization operators against onnxruntime', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const bytes = writeModel({
        opset: c.opset,
        nodes: c.nodes,
        initializers: c.initializers ?? [],
        inputs: Object.entries(c.inputs).map(([n, x]) => info(n, x.type, x.dims)),
        outputs: c.outputs.map(([n, t]) => info(n, t)),
      });
      const dir = await mkdtemp(join(tmpdir(), 'maas-qgraph-'));
      await writeFile(join(dir, 'm.onnx'), bytes);
      const graph = await loadOnnxGraph(join(dir, 'm.onnx'));
      const got = graph.run(
        Object.fromEntries(Object.entries(c.inputs).map(([n, x]) => [n, { data: x.data, shape: x.dims }])),
      );
      const want = await ort(bytes, c.inputs);
      for (const [name] of c.outputs) {
        expect(got[name]!.shape, name).toEqual(want[name]!.dims);
        const w = ortValues(want[name]!);
        expect(w.some((v) => v !== 0)).toBe(true);
        expect(Array.from(got[name]!.data), name).toEqual(w);
      }
    });
  }
});

describe('loadOnnxGraph quantization operators by opset', () => {
  async function graph(opset: number, nodes: WNode[], initializers: WTensor[], x: In) {
    const bytes = writeModel({
      opset,
      nodes,
      initializers,
      inputs: [info('x', x.type, x.dims)],
      outputs: [info('y', T.UINT8)],
    });
    const dir = await mkdtemp(join(tmpdir(), 'maas-qopset-'));
    await writeFile(join(dir, 'm.onnx'), bytes);
    return loadOnnxGraph(join(dir, 'm.onnx'));
  }
  const perAxis: WTensor[] = [
    { name: 's', type: T.FLOAT, dims: [2], values: s([0.1, 0.2]) },
    { name: 'z', type: T.UINT8, dims: [2], values: [0, 10] },
  ];
  const x: In = { type: T.FLOAT, dims: [1, 2], data: [1, 2] };

  it('opset 10 takes only a per-tensor scale; opset 13 reads the same graph per axis', async () => {
    const nodes: WNode[] = [{ op: 'QuantizeLinear', input: ['x', 's', 'z'], output: 'y' }];
    const old = await graph(10, nodes, perAxis, x);
    expect(() => old.run({ x: { data: x.data, shape: x.dims } })).toThrow(
      /opset 10 takes a scalar scale; per-axis scales need opset 13/,
    );
    const now = await graph(13, nodes, perAxis, x);
    expect(Array.from(now.run({ x: { data: x.data, shape: x.dims } }).y!.data)).toEqual([10, 20]);
  });

  it('block_size needs opset 21; a float16 scale for DequantizeLinear needs opset 19', async () => {
    const blocked: WNode[] = [
      { op: 'QuantizeLinear', input: ['x', 's', 'z'], output: 'y', attrs: { axis: 1, block_size: 1 } },
    ];
    const g = await graph(
      19,
      blocked,
      [
        { name: 's', type: T.FLOAT, dims: [1, 2], values: s([0.1, 0.2]) },
        { name: 'z', type: T.UINT8, dims: [1, 2], values: [0, 10] },
      ],
      x,
    );
    expect(() => g.run({ x: { data: x.data, shape: x.dims } })).toThrow(/block_size needs opset 21/);
    const dq = await graph(
      13,
      [{ op: 'DequantizeLinear', input: ['x', 'h'], output: 'y' }],
      [{ name: 'h', type: T.FLOAT16, dims: [], values: [0.5] }],
      { type: T.UINT8, dims: [2], data: [1, 2] },
    );
    expect(() => dq.run({ x: { data: [1, 2], shape: [2] } })).toThrow(/x_scale must be float, got float16/);
  });

  it('MatMulInteger takes a per-row A zero point (ONNX allows it; ORT does not, so checked by hand)', async () => {
    const bytes = writeModel({
      opset: 13,
      nodes: [{ op: 'MatMulInteger', input: ['a', 'b', 'az'], output: 'y' }],
      initializers: [
        { name: 'b', type: T.INT8, dims: [2, 2], values: [1, -2, 3, 4] },
        { name: 'az', type: T.UINT8, dims: [2], values: [10, 200] },
      ],
      inputs: [info('a', T.UINT8, [2, 2])],
      outputs: [info('y', T.INT32)],
    });
    const dir = await mkdtemp(join(tmpdir(), 'maas-qrow-'));
    await writeFile(join(dir, 'm.onnx'), bytes);
    const g = await loadOnnxGraph(join(dir, 'm.onnx'));
    // Row 0 shifts by 10: [1, 2]; row 1 by 200: [55, -100].
    const y = g.run({ a: { data: [11, 12, 255, 100], shape: [2, 2] } }).y!;
    expect(y.data).toBeInstanceOf(Int32Array);
    expect(Array.from(y.data)).toEqual([1 * 1 + 2 * 3, 1 * -2 + 2 * 4, 55 * 1 - 100 * 3, 55 * -2 - 100 * 4]);
  });

  it('run() refuses an integer input outside its type, naming the input and index', async () => {
    const g = await graph(
      13,
      [{ op: 'DequantizeLinear', input: ['x', 'h'], output: 'y' }],
      [{ name: 'h', type: T.FLOAT, dims: [], values: [0.5] }],
      { type: T.UINT8, dims: [2], data: [1, 2] },
    );
    expect(() => g.run({ x: { data: [1, 256], shape: [2] } })).toThrow(
      /Expected an integer in \[0, 255\] \(the input is uint8\) for run\(inputs\['x'\]\).data\[1\] but received 256/,
    );
  });
});

describe('loadOnnxGraph runs whole int8 graphs', () => {
  for (const method of ['minmax', 'dynamic'] as const) {
    it(`maas's own ${method} toOnnx graph (QuantizeLinear or DynamicQuantizeLinear, MatMulInteger, Cast, Mul, Add) agrees with onnxruntime`, async () => {
      const model = sequential({
        layers: [
          dense({
            units: 12,
            activation: 'relu',
            inputShape: [6],
            kernelInitializer: initializers.glorotUniform({ seed: 3 }),
          }),
          dense({ units: 4, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
        ],
      });
      const x = data(5 * 6, 13, 2);
      const q = quantize(
        model,
        method === 'dynamic' ? { method } : { calibrationData: Float32Array.from(data(20 * 6, 17, 2)) },
      );
      const bytes = q.toOnnx();
      q.dispose();
      const dir = await mkdtemp(join(tmpdir(), 'maas-qwhole-'));
      await writeFile(join(dir, 'm.onnx'), bytes);
      const got = (await loadOnnxGraph(join(dir, 'm.onnx'))).run({ x: { data: x, shape: [5, 6] } }).y!;
      const want = await ort(bytes, { x: { type: T.FLOAT, dims: [5, 6], data: x } });
      const w = ortValues(want.y!);
      expect(w.some((v) => v !== 0)).toBe(true);
      // Every node rounds to float32 as onnxruntime's does; only tanh (libm against ORT's) may differ by an ulp or two.
      Array.from(got.data).forEach((v, i) => expect(Math.abs(v - w[i]!), `index ${i}`).toBeLessThanOrEqual(2 ** -22));
    });
  }
});
