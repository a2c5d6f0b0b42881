/**
 * quantize() end to end: the classic example keeps its held-out accuracy within 0.5 points; the
 * packed stack is bit-exact against the integer reference composed layer by layer on every ISA
 * path; save/load predicts identically; a worker opens the same SharedArrayBuffer; the accuracy
 * warning fires past its bounds; bad calibration data is a coded error and the process carries on.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareQuantized,
  dense,
  initializers,
  loadModel,
  loadQuantizedModel,
  openPackedModel,
  quantize,
  sequential,
  setMaxIsa,
  tensor,
  trainTestSplit,
  type Sequential,
} from '../../src/index.js';
import { classicData } from '../../examples/classic.js';
import { ACTIVATION_CODES, addonPath, native } from '../../src/native/index.js';
import { activationParams, quantizeLinear } from '../../src/quant/arith.js';
import { rng, syncErrorOf } from '../helpers.js';

const bestCap = native.cpuInfo().cap;

/** A seeded 37 → 19 relu → 11 relu → 5 linear model and rows to run it on. */
function smallModel(seed: number): { model: Sequential; x: Float32Array } {
  const model = sequential({
    layers: [
      dense({
        units: 19,
        activation: 'relu',
        inputShape: [37],
        kernelInitializer: initializers.glorotUniform({ seed }),
        biasInitializer: initializers.randomNormal({ seed: seed + 1 }),
      }),
      dense({
        units: 11,
        activation: 'relu',
        kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }),
        biasInitializer: initializers.randomNormal({ seed: seed + 3 }),
      }),
      dense({ units: 5, activation: 'linear', kernelInitializer: initializers.glorotUniform({ seed: seed + 4 }) }),
    ],
  });
  const r = rng(seed);
  return { model, x: Float32Array.from({ length: 41 * 37 }, () => r.normal()) };
}

describe('quantize: the classic example', () => {
  let fp32: Sequential;
  let xTest: Float32Array, yTest: Float32Array, xCal: Float32Array;

  beforeAll(async () => {
    const { x, y } = classicData(5000, 42);
    const split = trainTestSplit(tensor(x, [5000, 100]), tensor(y, [5000, 1]), {
      testSize: 0.2,
      seed: 42,
      stratify: true,
    });
    fp32 = sequential({
      layers: [
        dense({
          units: 64,
          activation: 'relu',
          inputShape: [100],
          kernelInitializer: initializers.glorotUniform({ seed: 42 }),
        }),
        dense({ units: 32, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: 43 }) }),
        dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 44 }) }),
      ],
    });
    fp32.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    await fp32.fit(split.xTrain, split.yTrain, { epochs: 10, batchSize: 32, seed: 42, verbose: 0 });
    xTest = split.xTest.values;
    yTest = split.yTest.values;
    xCal = split.xTrain.values.subarray(0, 500 * 100);
  }, 60_000);

  for (const method of ['minmax', 'percentile', 'entropy', 'dynamic'] as const) {
    it(`${method}: held-out accuracy within 0.5 points of fp32, every layer in int8`, () => {
      const int8 = quantize(fp32, { calibrationData: method === 'dynamic' ? undefined : xCal, method });
      const report = compareQuantized(fp32, int8, xTest, yTest, { warn: false });
      expect(report.agreementKind).toBe('threshold');
      expect(report.metrics.accuracy!.fp32).toBeGreaterThan(0.9);
      expect(Math.abs(report.metrics.accuracy!.change)).toBeLessThanOrEqual(0.005);
      expect(report.agreement!).toBeGreaterThan(0.98);
      expect(report.maxAbsError).toBeGreaterThan(0); // it really ran in int8
      int8.dispose();
    });
  }

  it('keeps the first and last layers in fp32 when asked, per-tensor weights too', () => {
    const int8 = quantize(fp32, { calibrationData: xCal, keepFloat: ['first', 'last'], perChannel: false });
    expect(int8.spec.layers.map((l) => l.int8)).toEqual([false, true, false]);
    expect(new Set(int8.spec.layers[1]!.weightScales).size).toBe(1);
    const report = compareQuantized(fp32, int8, xTest, yTest, { warn: false });
    expect(Math.abs(report.metrics.accuracy!.change)).toBeLessThanOrEqual(0.005);
    int8.dispose();
  });

  it('saves and loads: identical predictions; loadModel reads the same directory as fp32', async () => {
    const int8 = quantize(fp32, { calibrationData: xCal });
    const dir = await mkdtemp(join(tmpdir(), 'maas-int8-'));
    await int8.save(dir);
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
      maas: { quantization: { layers: { input: { zeroPoint: number } }[] } };
    };
    expect(json.maas.quantization.layers[0]!.input.zeroPoint).toBe(int8.spec.layers[0]!.input!.zeroPoint);
    const loaded = await loadQuantizedModel(dir);
    const before = int8.predict(xTest).values,
      after = loaded.predict(xTest).values;
    expect(after.every((v, i) => Object.is(v, before[i]))).toBe(true);
    const asFloat = await loadModel(dir);
    expect(asFloat.predict(xTest).values.length).toBe(before.length);
    const report = compareQuantized(fp32, loaded, xTest, yTest, { warn: false });
    expect(Math.abs(report.metrics.accuracy!.change)).toBeLessThanOrEqual(0.005);
    expect(await loadQuantizedModel(join(dir, 'missing')).catch((e: { code: string }) => e.code)).toBe(
      'MAAS_ERR_MODEL_NOT_FOUND',
    );
  });

  it('warns with a code past the bounds, and not within them', async () => {
    const int8 = quantize(fp32, { calibrationData: xCal });
    const warnings: { code?: string }[] = [];
    const listener = (w: Error & { code?: string }): void => void warnings.push(w);
    process.on('warning', listener);
    try {
      compareQuantized(fp32, int8, xTest, yTest);
      compareQuantized(fp32, int8, xTest, yTest, { minAgreement: 1, maxMetricDrop: -0 });
      // A calibration range of one constant row clips almost everything: far outside any bound.
      const crushed = quantize(fp32, { calibrationData: new Float32Array(100).fill(0.001) });
      const r = compareQuantized(fp32, crushed, xTest, yTest, { minAgreement: 0.999 });
      expect(r.violations.length).toBeGreaterThan(0);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', listener);
    }
    expect(warnings.filter((w) => w.code === 'MAAS_WARN_QUANT_ACCURACY').length).toBeGreaterThanOrEqual(1);
  });

  it('rejects bad calibration data with coded errors and keeps working', () => {
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: new Float32Array(99 * 3) }))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: Expected a Float32Array whose length is a positive multiple of 100/,
    );
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: tensor(new Float32Array(30 * 7), [30, 7]) }))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: Expected quantize.calibrationData of shape \[batch, 100\]/,
    );
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: new Float32Array(0) }))).toMatch(
      /^MAAS_ERR_CALIBRATION_EMPTY: Expected at least one row/,
    );
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: [] }))).toMatch(/^MAAS_ERR_CALIBRATION_EMPTY/);
    const nan = xCal.slice(0, 300);
    nan[123] = Number.NaN;
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: nan }))).toMatch(
      /^MAAS_ERR_CALIBRATION_NOT_FINITE: Expected finite values for quantize.calibrationData but row 1, column 23 is NaN/,
    );
    expect(syncErrorOf(() => quantize(fp32, {}))).toMatch(/^MAAS_ERR_CALIBRATION_MISSING/);
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: xCal, method: 'kmeans' as never }))).toMatch(
      /^MAAS_ERR_ARG_RANGE/,
    );
    expect(syncErrorOf(() => quantize(fp32, { calibrationData: xCal, keepFloat: [7] }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected 'first', 'last', an index in \[0, 2\]/,
    );
    const int8 = quantize(fp32, { calibrationData: xCal });
    expect(syncErrorOf(() => int8.predict(new Float32Array(7)))).toMatch(/^MAAS_ERR_SHAPE_MISMATCH/);
    expect(int8.predict(xTest.subarray(0, 100)).shape).toEqual([1, 1]);
  });
});

describe('the packed int8 stack', () => {
  afterAll(() => {
    setMaxIsa(bestCap);
  });

  // A model packs with the kernel its ISA cap selects for this CPU's class: one per ISA. The
  // others (another class's tuning of the same ISA) are covered by the kernel sweeps by name.
  const { int8Kernels, cpuClass } = native.cpuInfo();
  const selectable = new Set(
    [...new Set(int8Kernels.map((k) => k.isa))].map(
      (isa) => int8Kernels.find((k) => k.isa === isa && k.cpuClasses.includes(cpuClass))!.name,
    ),
  );
  for (const kernel of int8Kernels) {
    const skip = !kernel.supported
      ? ` (skipped: this CPU lacks ${kernel.isa})`
      : !selectable.has(kernel.name)
        ? ` (skipped: not the ${cpuClass} class's kernel for ${kernel.isa})`
        : '';
    it.skipIf(skip !== '')(`${kernel.name}: bit-exact against the integer reference, layer by layer${skip}`, () => {
      setMaxIsa(kernel.isa);
      const { model, x } = smallModel(11);
      const int8 = quantize(model, { calibrationData: x });
      expect(int8.packed().kernel).toBe(kernel.name);
      const got = int8.predict(x).values;
      // The same arithmetic composed here: quantize x, then each layer through _referenceQGemm,
      // requantizing into the next layer's u8 input (the stack fuses that for relu layers).
      const rows = x.length / 37;
      const layers = model.layers;
      let p = activationParams(int8.spec.layers[0]!.input!.min, int8.spec.layers[0]!.input!.max, kernel.aMax);
      let a = Uint8Array.from(quantizeLinear(x, p.scale, p.zeroPoint, 0, kernel.aMax));
      let y = new Float32Array(0);
      layers.forEach((l, i) => {
        const info = int8.spec.layers[i]!;
        const q = Int8Array.from(l.kernel!, (w, j) => Math.round(w / info.weightScales![j % l.units]!));
        const scale = Float32Array.from(info.weightScales!, (s) => Math.fround(p.scale * s));
        const next = int8.spec.layers[i + 1];
        const act = l.activation === 'relu' ? ACTIVATION_CODES.relu : ACTIVATION_CODES.linear;
        // Every layer but the last requantizes to u8 for the next; the last writes fp32.
        const np = next ? activationParams(next.input!.min, next.input!.max, kernel.aMax) : null;
        const out = np ? new Uint8Array(rows * l.units) : (y = new Float32Array(rows * l.units));
        native._referenceQGemm(
          a,
          l.inputDim!,
          p.zeroPoint,
          q,
          scale,
          l.bias,
          rows,
          l.units,
          l.inputDim!,
          act,
          out,
          l.units,
          np ? np.scale : 1,
          np ? np.zeroPoint : 0,
          kernel.aMax,
        );
        if (np) {
          a = out as Uint8Array<ArrayBuffer>;
          p = np;
        }
      });
      expect(got.length).toBe(y.length);
      const bad = got.findIndex((v, i) => !Object.is(v, y[i]));
      expect(bad, `first mismatch at ${bad}: ${got[bad]} vs ${y[bad]}`).toBe(-1);
      int8.dispose();
    });
  }

  it('dynamic mode and keepFloat layers run; batch 1 equals the same row in a batch (static)', () => {
    const { model, x } = smallModel(21);
    const stat = quantize(model, { calibrationData: x, keepFloat: 'last' });
    const all = stat.predict(x).values;
    const one = stat.predict(x.subarray(37 * 5, 37 * 6)).values;
    expect(Array.from(one)).toEqual(Array.from(all.subarray(25, 30)));
    const dyn = quantize(model, { method: 'dynamic' });
    expect(dyn.spec.mode).toBe('dynamic');
    const ref = model.predict(x).values,
      got = dyn.predict(x).values;
    const maxAbs = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    got.forEach((v, i) => expect(Math.abs(v - ref[i]!)).toBeLessThan(0.05 * maxAbs));
  });

  it('a worker thread opens the same SharedArrayBuffer and predicts identically', async () => {
    const { model, x } = smallModel(31);
    const int8 = quantize(model, { calibrationData: x });
    const packed = int8.packed();
    expect(packed.format).toBe('int8');
    expect(packed.buffer).toBeInstanceOf(SharedArrayBuffer);
    const local = openPackedModel(packed);
    const want = new Float32Array(41 * 5);
    local.predict(x, 41, want);
    expect(Array.from(want)).toEqual(Array.from(int8.predict(x).values));
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      const handle = new addon.QuantizedStackHandle(new Uint8Array(workerData.buffer));
      const y = new Float32Array(workerData.rows * handle.outputSize);
      handle.predict(workerData.x, workerData.rows, y);
      parentPort.postMessage(y);`;
    const worker = new Worker(source, {
      eval: true,
      workerData: { path: addonPath(), buffer: packed.buffer, x, rows: 41 },
    });
    const got = await new Promise<Float32Array>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(syncErrorOf(() => openPackedModel({ buffer: new SharedArrayBuffer(64), format: 'int8' }))).toMatch(
      /^MAAS_ERR_PACKED_CORRUPT/,
    );
    expect(syncErrorOf(() => openPackedModel({ buffer: packed.buffer, format: 'fp32' }))).toMatch(
      /^MAAS_ERR_PACKED_CORRUPT/,
    );
    local.dispose();
  });

  it('a corrupted header or layer record is refused, never read', () => {
    const { model, x } = smallModel(41);
    const packed = quantize(model, { calibrationData: x }).packed();
    const bytes = new Uint8Array(packed.buffer);
    // The header sits at the first 64-byte aligned address of the buffer's memory, which JS cannot
    // see: find it by its magic.
    const start = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf('MAASQ801');
    expect(start).toBeGreaterThanOrEqual(0);
    for (const [offset, value] of [
      [start + 0, 0x00],
      [start + 8, 9],
      [start + 12, 0],
      [start + 160 + 8 + 56, 0xff],
      [start + 160 + 8 + 57, 0x7f],
    ] as const) {
      const copy = new SharedArrayBuffer(bytes.length);
      new Uint8Array(copy).set(bytes);
      new Uint8Array(copy)[offset] = value;
      expect(syncErrorOf(() => openPackedModel({ buffer: copy, format: 'int8' }))).toMatch(/^MAAS_ERR_PACKED_CORRUPT/);
    }
    expect(syncErrorOf(() => openPackedModel({ buffer: packed.buffer.slice(0, 200), format: 'int8' }))).toMatch(
      /^MAAS_ERR_PACKED_CORRUPT/,
    );
  });
});
