/**
 * int8 ONNX export: QuantizedModel.toOnnx() runs in onnxruntime-node and agrees with maas's own
 * int8 predict (dynamic: to the epilogue's float rounding; static: within one quantization step).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import {
  dense,
  initializers,
  quantize,
  sequential,
  setMaxIsa,
  type QuantizedModel,
  type Sequential,
} from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { runConvert } from '../../src/cli/convert.js';

/** 8 → 16 relu → 12 relu → 10 tanh → 5 linear, seeded. */
function model(seed: number): Sequential {
  const init = (s: number) => ({
    kernelInitializer: initializers.glorotUniform({ seed: seed + s }),
    biasInitializer: initializers.randomNormal({ stddev: 0.3, seed: seed + s + 50 }),
  });
  return sequential({
    layers: [
      dense({ units: 16, activation: 'relu', inputShape: [8], ...init(1) }),
      dense({ units: 12, activation: 'relu', ...init(2) }),
      dense({ units: 10, activation: 'tanh', ...init(3) }),
      dense({ units: 5, activation: 'linear', ...init(4) }),
    ],
  });
}

/** Seeded rows in (-2, 2). */
const rows = (n: number, seed: number) =>
  Float32Array.from({ length: n * 8 }, (_, i) => 2 * Math.sin(seed * 3.7 + i * 0.91));

async function ortRun(bytes: Uint8Array, x: Float32Array, batch: number): Promise<Float32Array> {
  const session = await InferenceSession.create(bytes);
  try {
    return (await session.run({ x: new OrtTensor('float32', x, [batch, 8]) })).y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/**
 * The epilogue's float rounding: maas computes fma(acc, scale, bias) (one rounding), the graph
 * Mul then Add (two); each rounding is at most 2^-24 relative, of |acc·scale| ≤ |y| + |bias|.
 */
const epilogueTol = (y: number, bias: number) => 2 ** -22 * (Math.abs(y) + Math.abs(bias)) + 1e-7;

const X = rows(32, 7);
let cap: string | null = null;

beforeAll(() => {
  // The export writes 0..255 parameters; a 7-bit kernel (AVX2 without VNNI) predicts with 0..127.
  const info = native.cpuInfo();
  if (info.int8Kernels.find((k) => k.name === info.int8Kernel)?.aMax !== 255) cap = setMaxIsa('scalar');
});
afterAll(() => {
  if (cap) setMaxIsa(cap as Parameters<typeof setMaxIsa>[0]);
});

describe('QuantizedModel.toOnnx in onnxruntime', () => {
  it('dynamic: DynamicQuantizeLinear + MatMulInteger agrees with our int8 predict to the epilogue rounding', async () => {
    const q = quantize(model(10), { method: 'dynamic' });
    const bytes = q.toOnnx();
    const ops = new Set(
      (await import('../../src/io/onnx.js'))
        .onnxTypes()
        .model.decode(bytes)
        .toJSON()
        .graph.node.map((n: { op_type: string }) => n.op_type),
    );
    expect([...ops]).toEqual(
      expect.arrayContaining(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Add', 'Relu', 'Tanh']),
    );
    expect(ops.has('Gemm')).toBe(false);
    const want = q.predict(X).values;
    const got = await ortRun(bytes, X, 32);
    const bias = q.layers[3]!.bias!;
    expect(got.length).toBe(want.length);
    expect(want.some((v) => v !== 0)).toBe(true);
    got.forEach((v, i) =>
      expect(Math.abs(v - want[i]!), `row ${Math.floor(i / 5)} col ${i % 5}`).toBeLessThanOrEqual(
        epilogueTol(want[i]!, bias[i % 5]!),
      ),
    );
    q.dispose();
  });

  it('static: QuantizeLinear with the calibrated parameters (fp32 layer as Gemm) agrees within one quantization step', async () => {
    const q = quantize(model(20), { calibrationData: rows(64, 3), keepFloat: [2] });
    const bytes = q.toOnnx();
    const nodes = (await import('../../src/io/onnx.js')).onnxTypes().model.decode(bytes).toJSON().graph.node as {
      op_type: string;
    }[];
    expect(nodes.filter((n) => n.op_type === 'QuantizeLinear')).toHaveLength(3);
    expect(nodes.filter((n) => n.op_type === 'Gemm')).toHaveLength(1);
    const want = q.predict(X).values;
    const got = await ortRun(bytes, X, 32);
    // Both sides quantize the same fp32 values with the same scale and zero point, so every u8
    // agrees except where a rounding difference upstream (fma vs Mul+Add, the fp32 layer's
    // summation order, libm vs ORT tanh) puts a value on the other side of a rounding tie: that
    // input of the last layer moves by one level, its output j by inScale·|w[p,j]|, at most one
    // input quantization step carried through the column's largest weight.
    const last = q.layers[3]!;
    const inScale = q.spec.layers[3]!.input!.scale;
    const step = Array.from({ length: 5 }, (_, j) => {
      let m = 0;
      for (let p = 0; p < last.inputDim!; p++) m = Math.max(m, Math.abs(last.kernel![p * 5 + j]!));
      return inScale * m;
    });
    let beyondRounding = 0;
    got.forEach((v, i) => {
      const d = Math.abs(v - want[i]!);
      if (d > epilogueTol(want[i]!, last.bias![i % 5]!)) beyondRounding++;
      expect(d, `row ${Math.floor(i / 5)} col ${i % 5}`).toBeLessThanOrEqual(
        step[i % 5]! + epilogueTol(want[i]!, last.bias![i % 5]!),
      );
    });
    // Tie flips are rare: most outputs must agree to the rounding alone.
    expect(beyondRounding).toBeLessThanOrEqual(got.length / 10);
    q.dispose();
  });

  it('static saveOnnx and `maas convert` of a saved quantized model directory write the same graph', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-q-onnx-'));
    const q: QuantizedModel = quantize(model(30), { calibrationData: rows(16, 5) });
    await q.save(join(dir, 'm'));
    await q.saveOnnx(join(dir, 'a.onnx'));
    const lines: string[] = [];
    await runConvert(join(dir, 'm'), join(dir, 'b.onnx'), { print: (l) => lines.push(l) });
    expect(lines[0]).toMatch(/int8 ONNX/);
    const a = await readFile(join(dir, 'a.onnx')),
      b = await readFile(join(dir, 'b.onnx'));
    expect(Buffer.compare(a, b)).toBe(0);
    const got = await ortRun(new Uint8Array(b), X, 32);
    const want = q.predict(X).values;
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(0.05));
    q.dispose();
  });
});
