/**
 * The update library: its parameters and policy checked as they come off the wire, the judge's
 * arithmetic both ways, held-out files read strictly, and runUpdate() itself — the candidate
 * staged only when it wins, reproducible with a seed, never touching the serving version's file.
 */
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  judge,
  parseUpdatePolicy,
  parseUpdateTraining,
  readHoldoutFile,
  runUpdate,
  type UpdateJob,
} from '../../src/lifecycle/update.js';
import { commitVersion, stageVersion, stagingPath } from '../../src/lifecycle/publish.js';
import { updateSettingsOf } from '../../src/serving/repository/config.js';
import { completeConfig } from '../../src/serving/repository/config.js';
import { dense, initializers, sequential } from '../../src/index.js';
import { rng } from '../helpers.js';

describe('update parameters and policy', () => {
  it('takes the wire names, numbers as strings, and the config defaults', () => {
    expect(parseUpdateTraining({})).toEqual({ epochs: 10, batchSize: 32 });
    expect(parseUpdateTraining({}, { epochs: 3, batchSize: 8 })).toEqual({ epochs: 3, batchSize: 8 });
    expect(
      parseUpdateTraining({
        epochs: '4',
        batch_size: 16,
        learning_rate: '0.01',
        optimizer: 'sgd',
        loss: 'meanSquaredError',
        seed: 7,
        architecture: '{"layers": [{"units": 8, "activation": "tanh"}]}',
      }),
    ).toEqual({
      epochs: 4,
      batchSize: 16,
      learningRate: 0.01,
      optimizer: 'sgd',
      loss: 'meanSquaredError',
      seed: 7,
      architecture: { layers: [{ units: 8, activation: 'tanh' }] },
    });
  });

  it('refuses unknown, misspelt and out-of-range parameters with coded errors', () => {
    const bad: Record<string, unknown>[] = [
      { epoch: 3 },
      { epochs: 0 },
      { epochs: 1.5 },
      { batch_size: 'many' },
      { learning_rate: 0 },
      { learning_rate: 11 },
      { optimizer: 'adagrad' },
      { loss: 'hinge' },
      { architecture: '{not json' },
      { architecture: { layers: [] } },
      { architecture: 'x'.repeat(70_000) },
    ];
    for (const p of bad)
      expect(() => parseUpdateTraining(p), JSON.stringify(p).slice(0, 40)).toThrow(
        /update parameter|architecture|candidate/i,
      );
  });

  it('reads the policy from the config, and refuses a metric or margin it cannot use', () => {
    expect(parseUpdatePolicy(undefined, undefined)).toEqual({ metric: 'loss', margin: 0 });
    expect(parseUpdatePolicy('accuracy', '0.02')).toEqual({ metric: 'accuracy', margin: 0.02 });
    expect(() => parseUpdatePolicy('r2', undefined)).toThrow(/update_metric/);
    expect(() => parseUpdatePolicy('loss', '-1')).toThrow(/update_margin/);
    const config = completeConfig('m', {
      parameters: {
        update_metric: { string_value: 'auc' },
        update_margin: { string_value: '0.01' },
        update_epochs: { string_value: '5' },
        update_holdout: { string_value: 'held.json' },
        update_worker_share: { string_value: '0.25' },
        update_max_bytes: { string_value: '1000' },
      },
    });
    expect(updateSettingsOf(config)).toEqual({
      policy: { metric: 'auc', margin: 0.01 },
      epochs: 5,
      holdoutFile: 'held.json',
      workerShare: 0.25,
      maxBytes: 1000,
    });
    for (const [name, value] of [
      ['update_worker_share', '2'],
      ['update_holdout', '../outside.json'],
      ['update_epochs', '0'],
      ['update_metric', 'r2'],
    ])
      expect(() => updateSettingsOf(completeConfig('m', { parameters: { [name!]: { string_value: value } } }))).toThrow(
        expect.objectContaining({ code: 'MAAS_ERR_MODEL_CONFIG' }),
      );
  });

  it('judges lower-is-better and higher-is-better metrics, with the margin as a floor', () => {
    expect(judge('loss', 0, 0.4, 0.5)).toEqual({ promoted: true, improvement: expect.closeTo(0.1, 9) });
    expect(judge('loss', 0.2, 0.4, 0.5).promoted).toBe(false);
    expect(judge('mae', 0, 0.5, 0.5)).toEqual({ promoted: false, improvement: 0 }); // equal is not better
    expect(judge('accuracy', 0.05, 0.9, 0.8).promoted).toBe(true);
    expect(judge('accuracy', 0, 0.7, 0.8)).toEqual({ promoted: false, improvement: expect.closeTo(-0.1, 9) });
    expect(judge('loss', 0, Number.NaN, 0.5).promoted).toBe(false);
  });
});

describe('held-out files', () => {
  it('reads rows of x and y (or class indices), and refuses what does not fit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-holdout-'));
    const file = join(dir, 'h.json');
    await writeFile(
      file,
      JSON.stringify({
        x: [
          [1, 2],
          [3, 4],
        ],
        y: [1, 0],
      }),
    );
    const rows = await readHoldoutFile(file, 2);
    expect([Array.from(rows.x), Array.from(rows.y), rows.rows]).toEqual([[1, 2, 3, 4], [1, 0], 2]);
    for (const body of [
      '{"x": [[1, 2]], "y": [1, 0]}',
      '{"x": [[1, 2, 3]], "y": [1]}',
      '{"x": [[1, null]], "y": [1]}',
      '{"x": [], "y": []}',
      '[1, 2]',
      '{"x": [[1, 2]]',
    ]) {
      await writeFile(file, body);
      await expect(readHoldoutFile(file, 2), body).rejects.toMatchObject({ code: 'MAAS_ERR_DATA_FORMAT' });
    }
  });
});

describe('runUpdate', () => {
  const D = 5;
  async function setup() {
    const modelDir = await mkdtemp(join(tmpdir(), 'maas-update-'));
    const model = sequential({
      layers: [
        dense({
          units: 8,
          activation: 'relu',
          inputShape: [D],
          kernelInitializer: initializers.glorotUniform({ seed: 1 }),
        }),
        dense({ units: 1, kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
    await model.save(join(modelDir, '1'));
    const random = rng(77);
    const rows = (n: number) => {
      const x = Float32Array.from({ length: n * D }, () => random.uniform(-1, 1));
      const y = Float32Array.from({ length: n }, (_, r) => x[r * D]! - 0.5 * x[r * D + 2]!);
      return { x, y, rows: n };
    };
    const job = (over: Partial<UpdateJob> = {}): UpdateJob => ({
      modelDir,
      staging: stagingPath(modelDir),
      baseFile: join(modelDir, '1', 'model.json'),
      baseVersion: 1,
      fileName: 'model.json',
      training: { epochs: 5, batchSize: 32, seed: 11, learningRate: 0.01 },
      policy: { metric: 'loss', margin: 0 },
      train: rows(600),
      holdout: rows(200),
      dataSha256: 'd'.repeat(64),
      ...over,
    });
    return { modelDir, job };
  }

  it('stages a better candidate with its record, reproducibly, and leaves the serving file alone', async () => {
    const { modelDir, job } = await setup();
    const before = await readFile(join(modelDir, '1', 'model.json'));
    const first = job();
    const epochs: number[] = [];
    const verdict = await runUpdate(first, (e) => epochs.push(e.epoch));
    expect(epochs).toEqual([1, 2, 3, 4, 5]);
    expect(verdict.promoted).toBe(true);
    expect(verdict.candidate.loss!).toBeLessThan(verdict.serving.loss!);
    expect(await readFile(join(modelDir, '1', 'model.json'))).toEqual(before);
    expect(await commitVersion(modelDir, first.staging)).toBe(2);
    const record = JSON.parse(await readFile(join(modelDir, '2', 'version.json'), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ source: 'update', parent: 1, dataSha256: 'd'.repeat(64) });
    // The same job (same rows, same seed) scores the same.
    const again = await runUpdate({ ...job(), train: first.train, holdout: first.holdout }, () => {});
    expect(again.candidate.loss).toBe(verdict.candidate.loss);
  });

  it('stages nothing when the candidate does not win, and writes the serving format', async () => {
    const { modelDir, job } = await setup();
    const kept = job({ policy: { metric: 'loss', margin: 1e9 } });
    expect((await runUpdate(kept, () => {})).promoted).toBe(false);
    expect((await readdir(modelDir)).sort()).toEqual(['1']);
    const h5 = job({ fileName: 'model.h5' });
    expect((await runUpdate(h5, () => {})).promoted).toBe(true);
    expect(await readdir(h5.staging)).toEqual(expect.arrayContaining(['model.h5', 'version.json']));
    const onnx = job({ fileName: 'model.onnx' });
    expect((await runUpdate(onnx, () => {})).promoted).toBe(true);
    expect(await readdir(onnx.staging)).toEqual(expect.arrayContaining(['model.onnx', 'version.json']));
  });

  it('trains an architecture from scratch with the serving output layer, and refuses a base without a loss', async () => {
    const { modelDir, job } = await setup();
    const scratch = job({ training: { epochs: 3, batchSize: 32, seed: 5, architecture: { layers: [{ units: 12 }] } } });
    expect((await runUpdate(scratch, () => {})).holdoutRows).toBe(200);
    const uncompiled = sequential({ layers: [dense({ units: 1, inputShape: [D] })] });
    await uncompiled.save(join(modelDir, '9'));
    await expect(
      runUpdate(job({ baseFile: join(modelDir, '9', 'model.json'), baseVersion: 9 }), () => {}),
    ).rejects.toMatchObject({ code: 'MAAS_ERR_UPDATE_REFUSED' });
  });

  it('stageVersion refuses a model directory that does not exist', async () => {
    const model = sequential({ layers: [dense({ units: 1, inputShape: [2] })] });
    await expect(stageVersion('/nonexistent/dir', model, { source: 'x' })).rejects.toMatchObject({
      code: 'MAAS_ERR_MODEL_NOT_FOUND',
    });
  });
});
