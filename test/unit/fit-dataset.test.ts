/**
 * Data larger than memory: csvDataset fits the preparation in one streaming pass (the same
 * plans as prepare() on the whole table, scaling equal to rounding), reads the file in a thread
 * each epoch (every kept row exactly once, shuffled reproducibly through a bounded buffer), and
 * model.fitDataset trains on it (unshuffled, the same weights as fit); bad sources and batches
 * are refused with coded errors.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  csvDataset,
  dense,
  initializers,
  prepare,
  readCsv,
  sequential,
  tensor2d,
  type DataWarning,
  type Sequential,
} from '../../src/index.js';
import { errorOf, rng } from '../helpers.js';

const execFileAsync = promisify(execFile);

let dir = '';
let path = '';
const ROWS = 3000;

/** A table with every kind: numbers with missing and stray cells, categories, a date with times, text, a constant, a label. */
function table(): string {
  const r = rng(91);
  const lines = ['num,cat,when,note,same,score,label'];
  for (let i = 0; i < ROWS; i++) {
    const num = i === 17 ? '12kg' : r.next() < 0.05 ? '' : (r.normal() * 3 + 10).toFixed(3);
    const cat = r.next() < 0.03 ? 'NA' : ['red', 'green', 'blue', 'teal'][Math.floor(r.next() * 4)]!;
    const when = new Date(Date.UTC(2021, 0, 1) + Math.floor(r.next() * 400) * 86_400_000 + (i % 7) * 3_600_000)
      .toISOString()
      .replace('.000Z', 'Z');
    const note = `"order ${i}, ${['rush', 'normal'][i % 2]}"`;
    const label = i % 50 === 3 ? '' : ['cat', 'dog', 'bird'][(Math.floor(r.next() * 3) + (cat === 'red' ? 1 : 0)) % 3]!;
    lines.push(`${num},${cat},${when},${note},1,${(r.next() * 5).toFixed(2)},${label}`);
  }
  return `${lines.join('\n')}\n`;
}

function collector() {
  const warnings: DataWarning[] = [];
  return { warnings, onWarning: (w: DataWarning) => void warnings.push(w) };
}

function model(width: number): Sequential {
  const m = sequential({
    layers: [
      dense({
        units: 8,
        activation: 'relu',
        inputShape: [width],
        kernelInitializer: initializers.glorotUniform({ seed: 3 }),
      }),
      dense({ units: 3, activation: 'softmax', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  m.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  return m;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maas-fit-dataset-'));
  path = join(dir, 'table.csv');
  await writeFile(path, table());
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('csvDataset: the streaming preparation', () => {
  it('makes the plans prepare() makes on the whole table, scaling equal up to rounding, and the same warnings', async () => {
    const streamed = collector();
    const ds = await csvDataset(path, { label: 'label', text: 'hash', hashBuckets: 8, onWarning: streamed.onWarning });
    const inMemory = collector();
    const frame = await readCsv(path, { onWarning: inMemory.onWarning });
    const fitted = prepare(frame, { label: 'label', text: 'hash', hashBuckets: 8, onWarning: inMemory.onWarning });
    const a = ds.pipeline.toJSON();
    const b = fitted.pipeline.toJSON();
    expect(a.label).toEqual(b.label);
    expect(a.ignored).toEqual(b.ignored);
    expect(a.columns.map((c) => ({ ...c, fill: null }))).toEqual(b.columns.map((c) => ({ ...c, fill: null })));
    a.columns.forEach((c, i) => {
      const f = b.columns[i]!.fill;
      if (typeof f === 'number') expect(c.fill as number).toBeCloseTo(f, 9);
      else expect(c.fill).toBe(f);
    });
    expect(a.scale.kind).toBe('standard');
    const [sa, sb] = [a.scale, b.scale];
    if (sa.kind !== 'standard' || sb.kind !== 'standard') return expect.unreachable('standard scaling');
    sa.mean.forEach((m, i) => expect(m).toBeCloseTo(sb.mean[i]!, 9));
    sa.std.forEach((s, i) => expect(s / sb.std[i]!).toBeCloseTo(1, 9));
    expect(ds.report!.rows).toBe(fitted.report.rows);
    expect(ds.report!.droppedRows).toBe(fitted.report.droppedRows);
    expect(ds.rows).toBe(fitted.kept.length);
    const codes = (ws: DataWarning[]) => ws.map((w) => `${w.code} ${w.column ?? ''}`).sort();
    expect(codes(streamed.warnings)).toEqual(codes(inMemory.warnings));
    expect(codes(streamed.warnings)).toContain('MAAS_WARN_CONSTANT_COLUMN same');
    expect(codes(streamed.warnings)).toContain('MAAS_WARN_UNPARSED_CELLS num');
    expect(streamed.warnings.find((w) => w.code === 'MAAS_WARN_UNPARSED_CELLS')!.message).toMatch(/'12kg' on line 19/);
  });

  it('agrees with prepare() on min-max scaling, label encoding, epoch dates and a constant fill', async () => {
    const options = {
      label: 'label',
      scale: 'minMax',
      categorical: 'label',
      dates: 'epoch',
      missing: { constant: 0 },
      onWarning: 'ignore',
    } as const;
    const ds = await csvDataset(path, options);
    const fitted = prepare(await readCsv(path, { onWarning: 'ignore' }), options);
    const a = ds.pipeline.toJSON();
    const b = fitted.pipeline.toJSON();
    expect(a.columns).toEqual(b.columns);
    const [sa, sb] = [a.scale, b.scale];
    if (sa.kind !== 'minMax' || sb.kind !== 'minMax') return expect.unreachable('min-max scaling');
    sa.min.forEach((m, i) => expect(m).toBeCloseTo(sb.min[i]!, 6));
    sa.max.forEach((m, i) => expect(m).toBeCloseTo(sb.max[i]!, 6));
  });

  it('prepares every row as the fitted pipeline does, each kept row once per pass, shuffled reproducibly', async () => {
    const ds = await csvDataset(path, { label: 'label', batchSize: 64, shuffle: 500, seed: 5, onWarning: 'ignore' });
    const applied = ds.pipeline.apply(await readCsv(path, { onWarning: 'ignore' }));
    const key = (x: ArrayLike<number>, at: number) =>
      Array.from({ length: ds.width }, (_, k) => x[at + k]!.toFixed(4)).join();
    const expected = new Map<string, number>();
    for (let i = 0; i < applied.kept.length; i++) {
      const k = `${key(applied.x, i * ds.width)}|${applied.y![i]}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const passes: string[][] = [];
    for (let pass = 0; pass < 2; pass++) {
      const seen: string[] = [];
      for await (const { xs, ys } of ds) {
        expect(xs.shape[1]).toBe(ds.width);
        expect(xs.shape[0]).toBeLessThanOrEqual(64);
        const x = xs.dataSync();
        const y = ys.dataSync();
        for (let i = 0; i < xs.shape[0]!; i++) seen.push(`${key(x, i * ds.width)}|${y[i]}`);
      }
      const counts = new Map<string, number>();
      for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
      expect(counts).toEqual(expected);
      passes.push(seen);
    }
    // Each pass shuffles differently, and a fresh dataset with the same seed repeats them.
    expect(passes[0]).not.toEqual(passes[1]);
    const again = await csvDataset(path, { label: 'label', batchSize: 64, shuffle: 500, seed: 5, onWarning: 'ignore' });
    const first: string[] = [];
    for await (const { xs, ys } of again)
      for (let i = 0; i < xs.shape[0]!; i++) first.push(`${key(xs.dataSync(), i * ds.width)}|${ys.dataSync()[i]}`);
    expect(first).toEqual(passes[0]);
  });

  it('reads a stream source in-process, and refuses what a streaming fit cannot do', async () => {
    const ds = await csvDataset(() => createReadStream(path), { label: 'label', shuffle: false, onWarning: 'ignore' });
    const fromFile = await csvDataset(path, { label: 'label', shuffle: false, onWarning: 'ignore' });
    expect(ds.pipeline.toJSON()).toEqual(fromFile.pipeline.toJSON());
    expect(await errorOf(() => csvDataset(path, { label: 'label', missing: 'median' }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: .*'median' needs every value/,
    );
    expect(await errorOf(() => csvDataset(path, { label: 'nope' }))).toMatch(
      /^MAAS_ERR_DATA_FORMAT: Expected a column named 'nope'/,
    );
    expect(await errorOf(() => csvDataset(join(dir, 'absent.csv'), { label: 'label' }))).toMatch(
      /^MAAS_ERR_DATA_FORMAT: Cannot read .*absent\.csv/,
    );
    expect(await errorOf(() => csvDataset(path, { label: 'label', batchSize: 0 }))).toMatch(/^MAAS_ERR_ARG_RANGE/);
    expect(await errorOf(() => csvDataset(path, { label: 'label', shufle: 3 } as never))).toMatch(
      /^MAAS_ERR_ARG_\w+: .*shufle/,
    );
    expect(await errorOf(() => csvDataset(path, { pipeline: ds.pipeline, label: 'label' }))).toMatch(
      /either a fitted pipeline or preparation options/,
    );
    expect(await errorOf(() => csvDataset(path, {}))).toMatch(/needs a label column/);
  });

  it('applies a fitted pipeline to another file strictly, and reports a bad row with its line', async () => {
    const ds = await csvDataset(path, { label: 'label', onWarning: 'ignore' });
    const extra = join(dir, 'extra.csv');
    await writeFile(extra, 'num,cat,when,note,same,score,label,surprise\n1,red,2021-01-01,x,1,2,cat,9\n');
    const reading = await csvDataset(extra, { pipeline: ds.pipeline });
    expect(
      await errorOf(async () => {
        for await (const _ of reading) void _;
      }),
    ).toMatch(/^MAAS_ERR_DATA_COLUMNS: Unknown column 'surprise'/);
    const unknownClass = join(dir, 'class.csv');
    await writeFile(
      unknownClass,
      'num,cat,when,note,same,score,label\n1,red,2021-01-01,x,1,2,cat\n1,red,2021-01-01,x,1,2,cow\n',
    );
    const other = await csvDataset(unknownClass, { pipeline: ds.pipeline });
    expect(
      await errorOf(async () => {
        for await (const _ of other) void _;
      }),
    ).toMatch(/^MAAS_ERR_DATA_UNKNOWN_CATEGORY: Row 3, label 'label': 'cow'/);
  });
  it('leaves out the rows whose label is missing or unreadable, in both passes, for a regression label', async () => {
    const file = join(dir, 'regression.csv');
    await writeFile(file, 'a,b,y\n1,x,2.5\n2,y,\n3,x,oops\n4,y,7\n5,x,1e1\n');
    const warnings = collector();
    const ds = await csvDataset(file, { label: 'y', shuffle: false, onWarning: warnings.onWarning });
    expect(ds.pipeline.task).toBe('regression');
    expect(ds.rows).toBe(3);
    // As prepare() on the whole table: the unreadable label counts as missing, and the warning says so.
    expect(warnings.warnings.map((w) => w.message)).toEqual(["2 of 5 rows have no 'y': they are left out"]);
    const fitted = prepare(await readCsv(file, { onWarning: 'ignore' }), { label: 'y', onWarning: 'ignore' });
    expect(Array.from(fitted.y!)).toEqual([2.5, 7, 10]);
    const ys: number[] = [];
    for await (const batch of ds) ys.push(...batch.ys.dataSync());
    expect(ys).toEqual([2.5, 7, 10]);
  });
  it('lets Node exit when an iterator is dropped mid-pass (its reading thread does not hold the process)', async () => {
    const script = join(dir, 'drop.mts');
    const index = pathToFileURL(join(process.cwd(), 'src', 'index.ts')).href;
    await writeFile(
      script,
      `import { csvDataset } from ${JSON.stringify(index)};
const ds = await csvDataset(${JSON.stringify(path)}, { label: 'label', batchSize: 8, onWarning: 'ignore' });
const it = ds[Symbol.asyncIterator]();
const first = await it.next();
console.log('took', first.value.xs.shape[0], 'rows');
`,
    );
    const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', script], { timeout: 60_000 });
    expect(stdout.trim()).toBe('took 8 rows');
  });
});

describe('model.fitDataset', () => {
  it('trains as fit does: unshuffled batches give the same weights and logs', async () => {
    const ds = await csvDataset(path, { label: 'label', batchSize: 32, shuffle: false, onWarning: 'ignore' });
    const applied = ds.pipeline.apply(await readCsv(path, { onWarning: 'ignore' }));
    const streamed = model(ds.width);
    const inMemory = model(ds.width);
    const h1 = await streamed.fitDataset(ds, { epochs: 2, verbose: 0 });
    const h2 = await inMemory.fit(applied.x, applied.y!, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0 });
    const w1 = streamed.getWeights().map((w) => Array.from(w.dataSync()));
    const w2 = inMemory.getWeights().map((w) => Array.from(w.dataSync()));
    w1.forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(w2[i]![j]!, 4)));
    expect(h1.history.loss![1]).toBeCloseTo(h2.history.loss![1]!, 4);
    expect(h1.history.acc).toEqual(h2.history.acc);
  });

  it('takes arrays, generators, functions and tfjs-style datasets; validates each epoch; refuses what it cannot read', async () => {
    const r = rng(92);
    const batch = () => {
      const x = Array.from({ length: 16 }, () => [r.normal(), r.normal()]);
      return { xs: tensor2d(x), ys: x.map((row) => (row[0]! > 0 ? 1 : 0)) };
    };
    const batches = Array.from({ length: 8 }, batch);
    const m = sequential({ layers: [dense({ units: 2, activation: 'softmax', inputShape: [2] })] });
    m.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy' });
    const h = await m.fitDataset(batches, { epochs: 3, verbose: 0, validationData: batches.slice(0, 2) });
    expect(h.history.loss).toHaveLength(3);
    expect(h.history.val_loss).toHaveLength(3);
    const tfjsLike = { iterator: () => Promise.resolve(batches[Symbol.iterator]()) };
    const fromTfjs = tfjsLike as unknown as {
      iterator(): Promise<{ next(): Promise<IteratorResult<(typeof batches)[0]>> }>;
    };
    expect((await m.fitDataset(fromTfjs, { epochs: 2, verbose: 0 })).history.loss).toHaveLength(2);
    expect(
      (
        await m.fitDataset(
          function* () {
            yield* batches;
          },
          { epochs: 2, verbose: 0 },
        )
      ).history.loss,
    ).toHaveLength(2);
    // batchesPerEpoch: the iterator runs on across epochs.
    const perEpoch = await m.fitDataset(batches, { epochs: 4, batchesPerEpoch: 3, verbose: 0 });
    expect(perEpoch.history.loss).toHaveLength(4);

    const once = (function* () {
      yield* batches;
    })();
    expect(await errorOf(() => m.fitDataset(once, { epochs: 2, verbose: 0 }))).toMatch(
      /^MAAS_ERR_ARG_TYPE: .*a generator can be read once/,
    );
    expect(await errorOf(() => m.fitDataset([{ xs: [[1, 2]] }] as never, { verbose: 0 }))).toMatch(
      /^MAAS_ERR_ARG_TYPE: .*batch 0/,
    );
    expect(await errorOf(() => m.fitDataset([{ xs: [[1, 2, 3]], ys: [0] }], { verbose: 0 }))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH/,
    );
    expect(await errorOf(() => m.fitDataset([{ xs: [[1, 2]], ys: [5] }], { verbose: 0 }))).toMatch(
      /^MAAS_ERR_TARGETS_INVALID/,
    );
    expect(await errorOf(() => m.fitDataset([], { verbose: 0 }))).toMatch(/had no rows/);
    expect(await errorOf(() => m.fitDataset(42 as never))).toMatch(/^MAAS_ERR_ARG_TYPE/);
    expect(await errorOf(() => m.fitDataset(batches, { epoch: 2 } as never))).toMatch(/epoch/);
  });

  it('stops reading the file when training stops early, leaving nothing running', async () => {
    const ds = await csvDataset(path, { label: 'label', batchSize: 16, onWarning: 'ignore' });
    const m = model(ds.width);
    let batchesSeen = 0;
    await m.fitDataset(ds, {
      epochs: 3,
      verbose: 0,
      callbacks: {
        onBatchEnd: () => {
          if (++batchesSeen === 5) m.stopTraining = true;
        },
      },
    });
    expect(batchesSeen).toBeGreaterThanOrEqual(5);
    let taken = 0;
    for await (const _ of ds) {
      void _;
      if (++taken === 2) break;
    }
    expect(taken).toBe(2);
  });
});
