/**
 * ONNX models quantized the way ONNX Runtime's tools write them (QDQ and QOperator, static and
 * dynamic; written by test/ort-quant-models.ts) import through loadQuantizedModel into maas's own
 * int8 path, and agree with onnxruntime-node running the same file within the int8 rounding bound;
 * maas's own toOnnx export round-trips exactly; what maas cannot represent is refused by code.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { dense, initializers, loadQuantizedModel, quantize, sequential, setMaxIsa } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { readQuantizedOnnx, rangeFor } from '../../src/io/onnx-quantized.js';
import { activationParams } from '../../src/quant/arith.js';
import type { WNode } from '../onnx-writer.js';
import {
  dynamicModel,
  floatLayers,
  forward,
  qdqModel,
  qoperatorModel,
  rows,
  type FloatLayer,
} from '../ort-quant-models.js';

const SIZES = [8, 24, 6];
const BATCH = 40;
const X = rows(BATCH, 8, 11);
const CALIB = rows(64, 8, 3);

async function ort(bytes: Uint8Array, x: Float32Array, batch: number, width: number): Promise<Float32Array> {
  const session = await InferenceSession.create(bytes);
  try {
    const out = await session.run({ [session.inputNames[0]!]: new OrtTensor('float32', x, [batch, width]) });
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function file(bytes: Uint8Array, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-qimport-'));
  await writeFile(join(dir, name), bytes);
  return join(dir, name);
}

/** The epilogue's float rounding (fma vs Mul then Add; a bias added after a rounding). */
const epilogueTol = (y: number) => 2 ** -20 * (Math.abs(y) + 1);

/**
 * The int8 rounding bound of one output of the last layer: half the step of a final rounding maas
 * does not apply (the output pair, or the last QLinearMatMul's requantized output), plus one input
 * level of the last layer in every input (a float-rounding tie, or a dropped rounding upstream,
 * moves a level by at most one) carried through the column's weights.
 */
function bound(last: Float32Array, inScale: number, outScale: number, cols: number): number[] {
  return Array.from({ length: cols }, (_, j) => {
    let s = 0;
    for (let p = 0; p < last.length / cols; p++) s += Math.abs(last[p * cols + j]!);
    return outScale / 2 + inScale * s;
  });
}

let cap: string | null = null;
beforeAll(() => {
  // ORT's graphs hold 0..255 parameters; a 7-bit kernel (AVX2 without VNNI) predicts with 0..127.
  const info = native.cpuInfo();
  if (info.int8Kernels.find((k) => k.name === info.int8Kernel)?.aMax !== 255) cap = setMaxIsa('scalar');
});
afterAll(() => {
  if (cap) setMaxIsa(cap as Parameters<typeof setMaxIsa>[0]);
});

/** Imports, checks the int8 path is used, and compares with ORT within the bound. */
async function check(
  bytes: Uint8Array,
  layers: FloatLayer[],
  built: { inputScales: number[]; outputScale: number; weights: Float32Array[] },
  mode: 'static' | 'dynamic',
  perChannel: boolean,
  /** Whether the graph rounds a hidden tensor maas does not (then level flips are common, not rare). */
  droppedUpstream = false,
): Promise<void> {
  const path = await file(bytes, 'model_quant.onnx');
  const q = await loadQuantizedModel(path);
  expect(q.spec.mode).toBe(mode);
  expect(q.spec.perChannel).toBe(perChannel);
  expect(q.spec.layers.every((l) => l.int8)).toBe(true);
  expect(q.layers.map((l) => l.activation)).toEqual(layers.map((l) => (l.relu ? 'relu' : 'linear')));
  // The int8 path: the model packs for this thread's int8 kernel.
  const kernel = native.cpuInfo().int8Kernel;
  expect(q.packed().kernel).toBe(kernel);
  const got = q.predict(X).values;
  const want = await ort(bytes, X, BATCH, SIZES[0]!);
  const cols = SIZES[SIZES.length - 1]!;
  // The last layer's input scale: static from the file; dynamic from the batch's own range.
  const inScale =
    mode === 'static'
      ? built.inputScales[built.inputScales.length - 1]!
      : (() => {
          const h = forward(layers, X, BATCH).post[layers.length - 1]!;
          return activationParams(Math.min(0, ...h), Math.max(0, ...h), 255).scale * 1.01;
        })();
  const b = bound(built.weights[built.weights.length - 1]!, inScale, built.outputScale, cols);
  expect(want.some((v) => v !== 0)).toBe(true);
  let rounding = 0;
  got.forEach((v, i) => {
    const d = Math.abs(v - want[i]!);
    expect(d, `row ${Math.floor(i / cols)} col ${i % cols}: maas ${v}, ORT ${want[i]}`).toBeLessThanOrEqual(
      b[i % cols]! + epilogueTol(want[i]!),
    );
    if (d <= built.outputScale / 2 + epilogueTol(want[i]!)) rounding++;
  });
  // Without a dropped hidden rounding, most outputs differ by the final rounding alone (a level
  // flips only at a float-rounding tie).
  if (!droppedUpstream) expect(rounding).toBeGreaterThanOrEqual(got.length * 0.8);
  q.dispose();
}

describe('loadQuantizedModel on ONNX Runtime–quantized models', () => {
  const layers = floatLayers(SIZES, 5);

  it('QDQ, Gemm (transB) with per-channel s8 weights, int32 bias, u8 activations, Relu folded into the pair', async () => {
    const built = qdqModel(layers, CALIB, 64, { op: 'gemm', perChannel: true, signedActivations: false });
    await check(built.bytes, layers, built, 'static', true);
  });

  it('QDQ, MatMul + Add with per-tensor weights and s8 (QInt8) activations', async () => {
    const built = qdqModel(layers, CALIB, 64, { op: 'matmul', perChannel: false, signedActivations: true });
    const imported = await readQuantizedOnnx(await file(built.bytes, 'm.onnx'));
    // The pair on each MatMul's output (before its bias) and the output pair are dropped, by name.
    expect(imported.droppedRoundings.map((d) => d.tensor)).toEqual(
      expect.arrayContaining(['dense_0/MatMul:0', 'dense_1/MatMul:0']),
    );
    // s8 activations are the u8 grid shifted by 128.
    expect(imported.layers[0]!.input!.zeroPoint).toBeGreaterThan(0);
    await check(built.bytes, layers, built, 'static', false, true);
  });

  it('an imported model saves as a maas quantized model and reloads to the same int8 predictions', async () => {
    const built = qdqModel(layers, CALIB, 64, { op: 'gemm', perChannel: true, signedActivations: true });
    const q = await loadQuantizedModel(await file(built.bytes, 'ort.onnx'));
    const dir = await mkdtemp(join(tmpdir(), 'maas-qimport-save-'));
    await q.save(join(dir, 'm'));
    const back = await loadQuantizedModel(join(dir, 'm'));
    expect(back.spec).toEqual(q.spec);
    expect(Array.from(back.predict(X).values)).toEqual(Array.from(q.predict(X).values));
    q.dispose();
    back.dispose();
  });

  it('QOperator: QuantizeLinear → QLinearMatMul (per-channel) → DequantizeLinear → Add → Relu', async () => {
    const built = qoperatorModel(layers, CALIB, 64, true);
    // Each QLinearMatMul rounds its output before the bias Add: a hidden rounding maas drops.
    await check(built.bytes, layers, built, 'static', true, true);
  });

  it('dynamic (quantize_dynamic): DynamicQuantizeLinear → MatMulInteger → Cast → Mul → Add, per tensor and per channel', async () => {
    for (const perChannel of [false, true]) {
      const built = dynamicModel(layers, perChannel);
      await check(built.bytes, layers, built, 'dynamic', perChannel);
    }
  });

  it('refuses u8 weights with a zero point (weight_type=QUInt8), saying why', async () => {
    const built = qdqModel(layers, CALIB, 64, {
      op: 'gemm',
      perChannel: false,
      signedActivations: false,
      uint8Weights: true,
    });
    await expect(loadQuantizedModel(await file(built.bytes, 'u8w.onnx'))).rejects.toMatchObject({
      code: 'MAAS_ERR_QUANT_UNREPRESENTABLE',
      message: expect.stringMatching(/weight is uint8; maas packs int8 weights symmetric around 0/),
    });
  });

  /** x → Q → DQ → MatMul(DQ(w)) [→ a second, dynamic layer]: one knob per refusal. */
  async function oneLayer(o: { wz?: number; w?: number[]; axis?: number; blocked?: boolean; mixed?: boolean }) {
    const { writeModel, info, T } = await import('../onnx-writer.js');
    const w = o.w ?? [1, -2, 3, 4];
    const nodes: WNode[] = [
      { op: 'QuantizeLinear', input: ['x', 'xs', 'xz'], output: 'xq' },
      { op: 'DequantizeLinear', input: ['xq', 'xs', 'xz'], output: 'xd' },
      {
        op: 'DequantizeLinear',
        input: ['wq', 'ws', 'wz'],
        output: 'wd',
        ...(o.axis !== undefined ? { attrs: { axis: o.axis, ...(o.blocked ? { block_size: 1 } : {}) } } : {}),
      },
      { op: 'MatMul', input: ['xd', 'wd'], output: o.mixed ? 'h' : 'y' },
      ...(o.mixed
        ? [
            { op: 'DynamicQuantizeLinear', input: ['h'], output: ['hq', 'hs', 'hz'] },
            { op: 'Mul', input: ['hs', 'ws2'], output: 'sc' },
            { op: 'MatMulInteger', input: ['hq', 'wq', 'hz'], output: 'acc' },
            { op: 'Cast', input: ['acc'], output: 'accf', attrs: { to: T.FLOAT } },
            { op: 'Mul', input: ['accf', 'sc'], output: 'y' },
          ]
        : []),
    ];
    const perAxis = o.axis !== undefined;
    const bytes = writeModel({
      opset: o.blocked ? 21 : 13,
      nodes,
      initializers: [
        { name: 'xs', type: T.FLOAT, dims: [], values: [0.01] },
        { name: 'xz', type: T.UINT8, dims: [], values: [128] },
        { name: 'wq', type: T.INT8, dims: [2, 2], values: w },
        {
          name: 'ws',
          type: T.FLOAT,
          dims: perAxis ? (o.blocked ? [2, 2] : [2]) : [],
          values: perAxis ? (o.blocked ? [0.1, 0.2, 0.3, 0.4] : [0.1, 0.2]) : [0.1],
        },
        {
          name: 'wz',
          type: T.INT8,
          dims: perAxis ? (o.blocked ? [2, 2] : [2]) : [],
          values: perAxis ? (o.blocked ? [0, 0, 0, 0] : [0, 0]) : [o.wz ?? 0],
        },
        { name: 'ws2', type: T.FLOAT, dims: [], values: [0.1] },
      ],
      inputs: [info('x', T.FLOAT, ['N', 2])],
      outputs: [info('y', T.FLOAT, ['N', 2])],
    });
    return file(bytes, 'one.onnx');
  }

  it('refuses what maas cannot hold exactly, naming why, with MAAS_ERR_QUANT_UNREPRESENTABLE', async () => {
    const cases: [Parameters<typeof oneLayer>[0], RegExp][] = [
      [{ wz: 3 }, /non-zero zero point; maas packs symmetric int8 weights/],
      [{ w: [1, -128, 3, 4] }, /holds -128; maas packs int8 weights in \[-127, 127\]/],
      [{ axis: 0 }, /per-channel weight scales must run along the output axis \(1\)/],
      [{ axis: 1, blocked: true }, /blocked weight scales/],
      [{ mixed: true }, /mixes static and dynamic quantization/],
    ];
    for (const [o, why] of cases) {
      await expect(loadQuantizedModel(await oneLayer(o)), JSON.stringify(o)).rejects.toMatchObject({
        code: 'MAAS_ERR_QUANT_UNREPRESENTABLE',
        message: expect.stringMatching(why),
      });
    }
    // The same graph with a zero weight zero point imports.
    const ok = await loadQuantizedModel(await oneLayer({}));
    expect(ok.spec.layers[0]!.input).toMatchObject({ scale: Math.fround(0.01), zeroPoint: 128 });
    ok.dispose();
  });

  it('refuses a graph whose chain loops back on itself instead of walking forever', async () => {
    const { writeModel, info, T } = await import('../onnx-writer.js');
    const bytes = writeModel({
      opset: 13,
      nodes: [
        { op: 'Identity', input: ['x'], output: 'a', name: 'n1' },
        { op: 'Identity', input: ['a'], output: 'b', name: 'n2' },
        { op: 'Identity', input: ['b'], output: 'a', name: 'n3' },
      ],
      inputs: [info('x', T.FLOAT, ['N', 2])],
      outputs: [info('b', T.FLOAT, ['N', 2])],
    });
    await expect(loadQuantizedModel(await file(bytes, 'cycle.onnx'))).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_FORMAT',
      message: expect.stringMatching(/the graph has a cycle/),
    });
  });

  it('refuses a float model, pointing to loadModel', async () => {
    const { writeModel, info, T } = await import('../onnx-writer.js');
    const bytes = writeModel({
      opset: 13,
      nodes: [{ op: 'MatMul', input: ['x', 'w'], output: 'y' }],
      initializers: [{ name: 'w', type: T.FLOAT, dims: [2, 2], values: [1, 2, 3, 4] }],
      inputs: [info('x', T.FLOAT, ['N', 2])],
      outputs: [info('y', T.FLOAT, ['N', 2])],
    });
    await expect(loadQuantizedModel(await file(bytes, 'f.onnx'))).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_FORMAT',
      message: expect.stringMatching(/no quantized layer; load float models with loadModel/),
    });
  });
});

describe('maas int8 export round trip', () => {
  /** 8 → 16 relu → 12 relu → 10 tanh → 5 linear, seeded. */
  const model = (seed: number) =>
    sequential({
      layers: [
        dense({
          units: 16,
          activation: 'relu',
          inputShape: [8],
          kernelInitializer: initializers.glorotUniform({ seed }),
        }),
        dense({ units: 12, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }) }),
        dense({ units: 10, activation: 'tanh', kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }) }),
        dense({ units: 5, kernelInitializer: initializers.glorotUniform({ seed: seed + 3 }) }),
      ],
    });

  for (const method of ['minmax', 'dynamic'] as const) {
    it(`${method}: toOnnx → loadQuantizedModel predicts exactly what the original predicts`, async () => {
      const q = quantize(model(40), method === 'dynamic' ? { method } : { calibrationData: rows(32, 8, 9) });
      const back = await loadQuantizedModel(await file(q.toOnnx(), 'maas.onnx'));
      expect(back.spec.mode).toBe(q.spec.mode);
      expect(back.spec.layers.map((l) => l.input?.scale)).toEqual(q.spec.layers.map((l) => l.input?.scale));
      expect(back.spec.layers.map((l) => l.input?.zeroPoint)).toEqual(q.spec.layers.map((l) => l.input?.zeroPoint));
      expect(Array.from(back.predict(X).values)).toEqual(Array.from(q.predict(X).values));
      q.dispose();
      back.dispose();
    });
  }
});

describe('rangeFor', () => {
  it('finds a float32 range reproducing every u8 zero point for assorted scales', () => {
    for (const scale of [0.00392157, 0.0123, 1 / 255, 0.5, 3.3e-5, 17.25].map(Math.fround)) {
      for (let zero = 0; zero <= 255; zero += 5) {
        const r = rangeFor(scale, zero);
        expect(r, `scale ${scale} zero ${zero}`).not.toBeNull();
        expect(activationParams(r!.min, r!.max, 255)).toEqual({ scale, zeroPoint: zero });
      }
    }
  });
});
