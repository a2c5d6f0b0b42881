/**
 * Model selection by k-fold cross-validation: folds that partition the rows and keep each class's
 * share, scores per fold in the label's units, the winner by the metric's mean trained again on
 * every row with its pipeline, the same table for the same seed, the command line end to end, and
 * coded refusals.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, selectModel, type CandidateSpec } from '../../src/index.js';
import { seededFolds } from '../../src/data/seeded-split.js';
import { runSelect } from '../../src/cli/select.js';
import { rng } from '../helpers.js';

const COLORS = ['red', 'green', 'blue'];

/** A class that depends on a number and a colour: a model with a hidden layer can learn it. */
function classified(rows: number, seed: number) {
  const r = rng(seed);
  return Array.from({ length: rows }, () => {
    const size = r.uniform(-2, 2);
    const color = COLORS[Math.floor(r.next() * 3)]!;
    const score = size + (color === 'red' ? 1.5 : color === 'blue' ? -1.5 : 0) + r.normal() * 0.3;
    return { size, color, noise: r.normal(), kind: score > 0 ? 'big' : 'small' };
  });
}

const tiny: CandidateSpec = {
  name: 'tiny',
  layers: [{ units: 1, activation: 'linear' }],
  epochs: 2,
  learningRate: 0.001,
};
const wide: CandidateSpec = { layers: [{ units: 16 }], epochs: 15, learningRate: 0.02 };

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('seeded folds', () => {
  it('partition the rows, keep each class in every fold, and repeat for a seed', () => {
    const labels = Array.from({ length: 103 }, (_, i) => (i % 10 < 3 ? 'a' : 'b'));
    const folds = seededFolds(labels.length, (r) => labels[r]!, { folds: 5, seed: 9 });
    const all = folds.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 103 }, (_, i) => i));
    for (const fold of folds) {
      expect(fold.length).toBeGreaterThanOrEqual(20);
      const a = fold.filter((r) => labels[r] === 'a').length;
      expect(a).toBeGreaterThanOrEqual(5);
      expect(a).toBeLessThanOrEqual(7);
    }
    expect(seededFolds(labels.length, (r) => labels[r]!, { folds: 5, seed: 9 })).toEqual(folds);
    expect(seededFolds(labels.length, (r) => labels[r]!, { folds: 5, seed: 10 })).not.toEqual(folds);
    expect(() => seededFolds(3, () => '', { folds: 5, seed: 1 })).toThrow(
      expect.objectContaining({ code: 'MAAS_ERR_DATA_FORMAT' }),
    );
  });
});

describe('selectModel', () => {
  it('scores every candidate on every fold, picks the best mean, and trains it on every row', async () => {
    const table = classified(240, 1);
    const selection = await selectModel([tiny, wide], table, { label: 'kind', folds: 3, seed: 5 });
    expect(selection.task).toBe('classification');
    expect(selection.metric).toBe('accuracy');
    expect(selection.results.map((r) => r.name)).toEqual(['tiny', '16relu']);
    for (const r of selection.results) {
      expect(r.metrics.accuracy!.folds).toHaveLength(3);
      expect(r.metrics.loss!.folds).toHaveLength(3);
      const mean = r.metrics.accuracy!.folds.reduce((a, b) => a + b, 0) / 3;
      expect(r.metrics.accuracy!.mean).toBeCloseTo(mean, 12);
      expect(r.latencyUs).toBeGreaterThan(0);
    }
    // The pipeline makes size, color (3) and noise: 5 features.
    expect(selection.results[0]!.params).toBe(5 * 1 + 1 + 1 * 1 + 1);
    expect(selection.results[1]!.params).toBe(5 * 16 + 16 + 16 + 1);
    const [a, b] = selection.results.map((r) => r.metrics.accuracy!.mean);
    expect(selection.winner).toBe(selection.results[a! > b! ? 0 : 1]);
    expect(selection.winner.name).toBe('16relu');
    expect(b).toBeGreaterThan(0.85);
    // The winner predicts labels from raw records, through the pipeline fitted on every row.
    const labels = selection.model.predictLabels(table.slice(0, 40));
    const right = labels.filter((l, i) => l === table[i]!.kind).length;
    expect(right).toBeGreaterThan(32);
  });

  it('gives the same table for the same seed', async () => {
    const table = classified(90, 2);
    const run = () => selectModel([tiny, { ...wide, epochs: 3 }], table, { label: 'kind', folds: 3, seed: 11 });
    const [first, second] = [await run(), await run()];
    expect(second.results.map((r) => r.metrics)).toEqual(first.results.map((r) => r.metrics));
    expect(second.model.getWeights().map((t) => t.values)).toEqual(first.model.getWeights().map((t) => t.values));
  });

  it("scores a regression in the label's units", async () => {
    const r = rng(3);
    const table = Array.from({ length: 150 }, () => {
      const a = r.uniform(0, 10);
      return { a, b: r.normal(), price: 1000 + 40 * a + r.normal() * 5 };
    });
    const selection = await selectModel([{ layers: [{ units: 8 }], epochs: 40, learningRate: 0.02 }], table, {
      label: 'price',
      folds: 3,
      seed: 1,
    });
    expect(selection.task).toBe('regression');
    expect(selection.metric).toBe('mae');
    const { mae, rmse } = selection.winner.metrics;
    // The price spreads over about 400 around 1200: a fit is tens off, not hundreds.
    expect(mae!.mean).toBeGreaterThan(1);
    expect(mae!.mean).toBeLessThan(60);
    expect(rmse!.mean).toBeGreaterThanOrEqual(mae!.mean);
  });

  it('refuses bad candidates, a metric of the other task, a missing label and too many folds', async () => {
    const table = classified(30, 4);
    const code = (p: Promise<unknown>, c: string) => expect(p).rejects.toMatchObject({ code: c });
    await code(selectModel([], table, { label: 'kind' }), 'MAAS_ERR_ARG_TYPE');
    await code(selectModel([{ layers: [] }], table, { label: 'kind' }), 'MAAS_ERR_ARG_TYPE');
    await code(selectModel([{ layers: [{ units: 0 }] }], table, { label: 'kind' }), 'MAAS_ERR_ARG_RANGE');
    await code(
      selectModel([{ layers: [{ units: 2, activation: 'nope' as never }] }], table, { label: 'kind' }),
      'MAAS_ERR_ARG_TYPE',
    );
    await code(selectModel([tiny], table, { label: 'kind', metric: 'mae' }), 'MAAS_ERR_ARG_RANGE');
    await code(selectModel([tiny], table, { label: 'missing' }), 'MAAS_ERR_DATA_COLUMNS');
    await code(selectModel([tiny], table.slice(0, 4), { label: 'kind', folds: 5 }), 'MAAS_ERR_DATA_FORMAT');
    // A class with fewer rows than folds would be missing from some fold's training rows.
    const rare = [
      ...table,
      { size: 0, color: 'red', noise: 0, kind: 'odd' },
      { size: 1, color: 'red', noise: 0, kind: 'odd' },
    ];
    await expect(selectModel([tiny], rare, { label: 'kind', folds: 3 })).rejects.toMatchObject({
      code: 'MAAS_ERR_DATA_FORMAT',
      message: expect.stringContaining("'odd' has 2"),
    });
  });
});

describe('maas select', () => {
  it('reads the candidates and a CSV table, prints the comparison and saves the winner', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-select-'));
    dirs.push(dir);
    const table = classified(150, 6);
    const csv = ['size,color,noise,kind', ...table.map((t) => `${t.size},${t.color},${t.noise},${t.kind}`)].join('\n');
    await writeFile(join(dir, 'train.csv'), csv);
    await writeFile(
      join(dir, 'candidates.json'),
      JSON.stringify({ label: 'kind', folds: 3, candidates: [tiny, wide] }),
    );
    const lines: string[] = [];
    const output = join(dir, 'winner');
    const selection = await runSelect({
      config: join(dir, 'candidates.json'),
      data: join(dir, 'train.csv'),
      seed: 2,
      output,
      print: (l) => lines.push(l),
    });
    expect(lines[0]).toMatch(/^candidate\s+params\s+accuracy \(3-fold\)\s+loss \(3-fold\)\s+predict 1 row$/);
    expect(lines[1]).toMatch(/^tiny\s+8\s+[\d.]+ ± [\d.]+\s+[\d.]+ ± [\d.]+\s+[\d.]+ µs$/);
    expect(lines.join('\n')).toContain(`${selection.winner.name} *`);
    expect(lines.at(-1)).toContain(output);
    const saved = await loadModel(output);
    expect(saved.predictLabels(table.slice(0, 5))).toEqual(selection.model.predictLabels(table.slice(0, 5)));
    await expect(
      runSelect({ config: join(dir, 'train.csv'), data: join(dir, 'train.csv'), print: () => {} }),
    ).rejects.toMatchObject({ code: 'MAAS_ERR_DATA_FORMAT' });
  });
});
