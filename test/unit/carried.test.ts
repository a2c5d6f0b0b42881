/**
 * What a saved model carries besides its weights: the training history (every epoch of every fit)
 * and the explanation background. Both survive save and load, quantization and loadQuantizedModel;
 * the explanation methods take the saved background when given none; a malformed one in a file is
 * refused with a coded error, and a model without them saves a file without them.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  dense,
  initializers,
  kernelShap,
  lime,
  loadModel,
  loadQuantizedModel,
  prepare,
  quantize,
  sequential,
  type Sequential,
} from '../../src/index.js';
import { backgroundFromJSON, backgroundToJSON, historyFromJSON, sampleRows } from '../../src/model/carried.js';
import { TEST_SEED, rng } from '../helpers.js';

const D = 5;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-carried-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function data(rows: number, seed: number) {
  const r = rng(seed);
  const x = Array.from({ length: rows }, () => Array.from({ length: D }, () => r.normal()));
  const y = x.map((row) => [row[0]! - row[2]! > 0 ? 1 : 0]);
  return { x, y };
}

function model(seed: number): Sequential {
  const m = sequential({
    layers: [
      dense({ units: 8, activation: 'relu', inputShape: [D], kernelInitializer: initializers.glorotUniform({ seed }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
  m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  return m;
}

describe('training history', () => {
  it('records every epoch of every fit, and a saved model loads with it', async () => {
    const m = model(TEST_SEED);
    const { x, y } = data(64, TEST_SEED);
    const first = await m.fit(x, y, { epochs: 3, batchSize: 16, seed: 1, verbose: 0, validationSplit: 0.25 });
    await m.fit(x, y, { epochs: 2, batchSize: 16, seed: 2, verbose: 0 });
    expect(m.trainingHistory).toHaveLength(5);
    expect(m.trainingHistory[0]!.loss).toBe(first.history.loss![0]);
    expect(m.trainingHistory[2]!.val_loss).toBe(first.history.val_loss![2]);
    expect(m.trainingHistory[3]!.val_loss).toBeUndefined();
    const dir = await tempDir();
    await m.save(dir);
    const loaded = await loadModel(dir);
    expect(loaded.trainingHistory).toEqual(m.trainingHistory);
  });

  it('saves a diverged (NaN) value as null and reads it back as NaN', () => {
    const json = JSON.parse(JSON.stringify({ kind: 'maas.history', version: 1, epochs: [{ loss: null, acc: 0.5 }] }));
    const [epoch] = historyFromJSON(json, 'test');
    expect(epoch!.loss).toBeNaN();
    expect(epoch!.acc).toBe(0.5);
  });

  it('refuses a malformed history with MAAS_ERR_MODEL_FORMAT', () => {
    for (const bad of [
      null,
      { kind: 'maas.history', version: 2, epochs: [] },
      { kind: 'maas.history', version: 1, epochs: {} },
      { kind: 'maas.history', version: 1, epochs: [[1]] },
      { kind: 'maas.history', version: 1, epochs: [{ loss: '1' }] },
    ])
      expect(() => historyFromJSON(bad, 'test'), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_MODEL_FORMAT' }),
      );
  });

  it('a model that never trained saves no history field', async () => {
    const dir = await tempDir();
    await model(TEST_SEED).save(dir);
    const saved = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    expect(saved.maas.trainingHistory).toBeUndefined();
    expect(saved.maas.explanationBackground).toBeUndefined();
  });
});

describe('explanation background', () => {
  it('samples down to maxRows, seeded, distinct rows in their order', () => {
    const rows = Float32Array.from({ length: 50 * 2 }, (_, i) => Math.floor(i / 2));
    const a = sampleRows(rows, 2, 10, 7);
    expect(a).toEqual(sampleRows(rows, 2, 10, 7));
    const firsts = Array.from({ length: 10 }, (_, k) => a[2 * k]!);
    expect(new Set(firsts).size).toBe(10);
    expect([...firsts].sort((p, q) => p - q)).toEqual(firsts);
    expect(sampleRows(rows, 2, 100, 7)).toEqual(rows);
  });

  it('round-trips exactly through save and load, and the methods take it when given none', async () => {
    const m = model(TEST_SEED);
    const { x } = data(300, TEST_SEED);
    m.setExplanationBackground(x, { maxRows: 40, seed: 3 });
    expect(m.explanationBackground).toHaveLength(40 * D);
    const dir = await tempDir();
    await m.save(dir);
    const loaded = await loadModel(dir);
    expect(loaded.explanationBackground).toEqual(m.explanationBackground);
    const row = x[0]!;
    const given = kernelShap(m, [row], { background: m.explanationBackground!, nsamples: 64, seed: 1 });
    const saved = kernelShap(loaded, [row], { nsamples: 64, seed: 1 });
    expect(saved[0]!.attributions).toEqual(given[0]!.attributions);
    expect(lime(loaded, [row], { samples: 200, seed: 1 })[0]!.attributions).toEqual(
      lime(m, [row], { background: m.explanationBackground!, samples: 200, seed: 1 })[0]!.attributions,
    );
  });

  it('survives quantization and loadQuantizedModel, with the history', async () => {
    const m = model(TEST_SEED);
    const { x, y } = data(64, TEST_SEED);
    await m.fit(x, y, { epochs: 2, batchSize: 16, seed: 1, verbose: 0 });
    m.setExplanationBackground(x.slice(0, 20));
    const q = quantize(m, { calibrationData: x });
    expect(q.explanationBackground).toEqual(m.explanationBackground);
    expect(q.trainingHistory).toEqual(m.trainingHistory);
    const dir = await tempDir();
    await q.save(dir);
    const loaded = await loadQuantizedModel(dir);
    expect(loaded.explanationBackground).toEqual(m.explanationBackground);
    expect(loaded.trainingHistory).toEqual(m.trainingHistory);
    expect(kernelShap(loaded, [x[1]!], { nsamples: 64, seed: 2 })[0]!.attributions).toHaveLength(D);
  });

  it('keeps a wide model to the values a file may hold, so what it saves loads again', async () => {
    const width = 4200;
    const m = sequential({ layers: [dense({ units: 1, inputShape: [width] })] });
    m.setExplanationBackground(new Float32Array(1000 * width).fill(0.5), { maxRows: 1000 });
    // 4 Mi values over 4200 features: 998 rows.
    expect(m.explanationBackground!.length / width).toBe(998);
    const dir = await tempDir();
    await m.save(dir);
    expect((await loadModel(dir)).explanationBackground).toEqual(m.explanationBackground);
  });

  it('takes raw records through the pipeline', () => {
    const records = Array.from({ length: 30 }, (_, i) => ({ size: i, color: ['red', 'blue'][i % 2]! }));
    const { pipeline } = prepare(records, { onWarning: 'ignore' });
    const m = sequential({ layers: [dense({ units: 1, inputShape: [pipeline.width] })] });
    m.setPreparation(pipeline);
    m.setExplanationBackground(records, { maxRows: 30 });
    expect(m.explanationBackground).toEqual(pipeline.transform(records));
    expect(() => model(1).setExplanationBackground(records)).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_MODEL_EMPTY' }),
    );
  });

  it('refuses rows of the wrong width, non-finite values and bad options', () => {
    const m = model(1);
    expect(() => m.setExplanationBackground([[1, 2]])).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_SHAPE_MISMATCH' }),
    );
    expect(() => m.setExplanationBackground([[1, 2, 3, 4, NaN]])).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
    expect(() => m.setExplanationBackground([[1, 2, 3, 4, 5]], { maxRows: 5000 })).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }),
    );
    m.setExplanationBackground([[1, 2, 3, 4, 5]]);
    m.setExplanationBackground(null);
    expect(m.explanationBackground).toBeNull();
    expect(() => kernelShap(m, [[1, 2, 3, 4, 5]])).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_EXPLAIN_BACKGROUND' }),
    );
  });

  it('refuses a malformed saved background with MAAS_ERR_MODEL_FORMAT, from JSON and from a file', async () => {
    const good = backgroundToJSON(Float32Array.from([1, 2, 3, 4, 5, 6]), 3);
    expect(backgroundFromJSON(good, 3, 'test')).toEqual(Float32Array.from([1, 2, 3, 4, 5, 6]));
    const nan = backgroundToJSON(Float32Array.from([1, NaN, 3]), 3);
    for (const [bad, features] of [
      [good, 2],
      [{ ...good, rows: 3 }, 3],
      [{ ...good, rows: 0 }, 3],
      [{ ...good, rows: 1e9 }, 3],
      [{ ...good, float32Base64: 'AAAA' }, 3],
      [{ ...good, float32Base64: 42 }, 3],
      [{ ...good, kind: 'other' }, 3],
      [nan, 3],
    ] as const)
      expect(() => backgroundFromJSON(bad, features, 'test'), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_MODEL_FORMAT' }),
      );
    // In a file: the description digest is recomputed, so only the background is wrong.
    const m = model(1);
    m.setExplanationBackground([[1, 2, 3, 4, 5]]);
    const dir = await tempDir();
    await m.save(dir);
    const path = join(dir, 'model.json');
    const saved = JSON.parse(await readFile(path, 'utf8'));
    delete saved.maas.descriptionSha256;
    saved.maas.explanationBackground.features = 4;
    await writeFile(path, JSON.stringify(saved));
    await expect(loadModel(dir)).rejects.toMatchObject({ code: 'MAAS_ERR_MODEL_FORMAT' });
  });
});
