/**
 * Raw data in, labels out: DataFrame (records, columns, CSV streams; kinds inferred and set;
 * select, drop, rename; seeded stratified splits), preparation fitted on the training rows with
 * the label column (class names saved), warnings instead of silence, strict records at
 * prediction, and labels back from a saved model.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  DataFrame,
  dense,
  loadModel,
  Pipeline,
  prepare,
  readCsv,
  sequential,
  trainTestSplit,
  type DataWarning,
} from '../../src/index.js';
import { syncErrorOf } from '../helpers.js';

/** Collects warnings instead of printing them. */
function collector() {
  const warnings: DataWarning[] = [];
  return { warnings, onWarning: (w: DataWarning) => void warnings.push(w) };
}

/** A small regression table like the public car-mileage one: numbers, a category, a date, an ID-like name. */
function carTable(rows = 120) {
  const origins = ['europe', 'japan', 'usa'];
  return Array.from({ length: rows }, (_, i) => {
    const weight = 1800 + ((i * 37) % 2500);
    const cylinders = 4 + 2 * (i % 3);
    const origin = origins[i % 3]!;
    const year = 1970 + (i % 12);
    return {
      name: `car model ${i} ${['deluxe', 'sport', 'wagon'][i % 3]}`,
      weight,
      cylinders,
      origin,
      built: `${year}-0${1 + (i % 9)}-15`,
      mpg: 46 - weight / 150 - cylinders + (origin === 'japan' ? 3 : 0) + (year - 1970) * 0.5,
    };
  });
}

describe('DataFrame', () => {
  it('is built from records or columns, infers each kind, and selects, drops, renames and retypes', () => {
    const { onWarning } = collector();
    const frame = DataFrame.fromRecords(carTable(60), { onWarning });
    expect(frame.shape).toEqual([60, 6]);
    expect(frame.dtypes).toEqual({
      name: 'text',
      weight: 'number',
      cylinders: 'number',
      origin: 'category',
      built: 'date',
      mpg: 'number',
    });
    expect(frame.column('built')[0]).toBe(Date.UTC(1970, 0, 15));
    const small = frame.select(['origin', 'weight']).rename({ weight: 'kg' }).head(2);
    expect(small.toRecords()).toEqual([
      { origin: 'europe', kg: 1800 },
      { origin: 'japan', kg: 1837 },
    ]);
    expect(frame.drop(['name', 'built']).columns).toEqual(['weight', 'cylinders', 'origin', 'mpg']);
    const typed = frame.asType('cylinders', 'category');
    expect(typed.kind('cylinders')).toBe('category');
    expect(typed.column('cylinders')[0]).toBe('4');
    expect(frame.kind('cylinders')).toBe('number'); // frames do not change
    const columns = DataFrame.fromColumns({ a: [1, 2, 3], b: ['x', 'y', null] });
    expect(columns.dtypes).toEqual({ a: 'number', b: 'category' });
    expect(columns.column('b')).toEqual(['x', 'y', null]);
  });

  it('names what is wrong, with coded errors', () => {
    const frame = DataFrame.fromColumns({ a: [1, 2] });
    expect(syncErrorOf(() => frame.select(['b']))).toBe(
      "MAAS_ERR_DATA_FORMAT: Expected a column named 'b' but the columns are 'a'",
    );
    expect(syncErrorOf(() => DataFrame.fromColumns({ a: [1, 2], b: [1] }))).toBe(
      "MAAS_ERR_DATA_FORMAT: Expected every column to have 2 values but 'b' has 1",
    );
    expect(syncErrorOf(() => DataFrame.fromRows(['a', 'a'], [[1, 2]]))).toBe(
      "MAAS_ERR_DATA_FORMAT: The header names column 'a' twice",
    );
    expect(syncErrorOf(() => frame.asType('a', 'words' as never))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected one of 'number', 'category', 'date', 'text' for asType\('a'\)/,
    );
    expect(syncErrorOf(() => DataFrame.fromRecords([{ a: 1 }, 2 as never]))).toMatch(
      /^MAAS_ERR_ARG_TYPE: Expected an object of column values for records\[1\]/,
    );
  });

  it('keeps a numeric column numeric when a few cells are not numbers, and says which', () => {
    const { warnings, onWarning } = collector();
    const width = Array.from({ length: 40 }, (_, i) => String(10 + i / 10));
    width[7] = '39.5mm';
    const frame = DataFrame.fromColumns({ width }, { onWarning });
    expect(frame.kind('width')).toBe('number');
    expect(frame.column('width')[7]).toBeNull();
    expect(warnings).toEqual([
      {
        code: 'MAAS_WARN_UNPARSED_CELLS',
        column: 'width',
        message: "Column 'width' is numeric but 1 cell is not ('39.5mm' in row 8): treated as missing",
      },
    ]);
    expect(frame.warnings).toEqual(warnings);
    // Many non-numbers make a category, as before.
    expect(DataFrame.fromColumns({ size: ['1', '2', 'large', 'small', 'x', '3'] }).kind('size')).toBe('category');
  });

  it('reads CSV from a file path or a stream as it parses, and reports unreadable files', async () => {
    const text = 'a,b,when\n1,red,2024-01-02\n2,blue,2024-03-04T10:30:00\n3,,NA\n';
    const frame = await readCsv(Readable.from([text.slice(0, 9), text.slice(9)]));
    expect(frame.dtypes).toEqual({ a: 'number', b: 'category', when: 'date' });
    expect(frame.column('when')).toEqual([Date.UTC(2024, 0, 2), Date.UTC(2024, 2, 4, 10, 30), null]);
    const typed = await readCsv(Readable.from([text]), { types: { a: 'category' } });
    expect(typed.column('a')).toEqual(['1', '2', '3']);
    await expect(readCsv('/nonexistent/data.csv')).rejects.toMatchObject({
      code: 'MAAS_ERR_DATA_FORMAT',
      message: expect.stringMatching(/^Cannot read \/nonexistent\/data.csv: ENOENT/) as unknown,
    });
  });

  it('splits rows seeded and stratified, before anything is fitted', () => {
    const labels = Array.from({ length: 100 }, (_, i) => (i < 80 ? 'common' : 'rare'));
    const frame = DataFrame.fromColumns({ i: labels.map((_, i) => i), label: labels });
    const a = trainTestSplit(frame, { testSize: 0.25, seed: 7, stratify: 'label' });
    const b = frame.split({ testSize: 0.25, seed: 7, stratify: 'label' });
    expect(a.test.column('i')).toEqual(b.test.column('i'));
    expect(a.test.length).toBe(25);
    expect(a.test.column('label').filter((v) => v === 'rare').length).toBe(5);
    const all = [...a.train.column('i'), ...a.test.column('i')].sort((x, y) => (x as number) - (y as number));
    expect(all).toEqual(labels.map((_, i) => i));
    expect(frame.split({ seed: 8 }).test.column('i')).not.toEqual(a.test.column('i'));
  });
});

describe('prepare with a label', () => {
  it('fits on the training rows only, applies to the test rows, and saves the class names', () => {
    const { onWarning } = collector();
    const records = carTable(90).map((r) => ({ ...r, size: r.weight > 3000 ? 'heavy' : 'light' }));
    const frame = DataFrame.fromRecords(records, { onWarning }).drop(['mpg']);
    const { train, test } = frame.split({ seed: 1, stratify: 'size' });
    const { pipeline, x, y, report } = prepare(train, { label: 'size', onWarning });
    expect(pipeline.task).toBe('classification');
    expect(pipeline.classes).toEqual(['heavy', 'light']);
    expect(report.ignored).toEqual(['name']);
    expect(pipeline.inputColumns).toEqual(['weight', 'cylinders', 'origin', 'built']);
    // weight, cylinders, 3 origins, 4 date parts.
    expect(pipeline.width).toBe(1 + 1 + 3 + 4);
    const rows = train.length;
    const weightMean = Array.from({ length: rows }, (_, i) => x[i * pipeline.width]!).reduce((s, v) => s + v, 0) / rows;
    expect(weightMean).toBeCloseTo(0, 5); // standardized with the training rows' statistics
    expect(Array.from(y!)).toEqual(train.column('size').map((s) => (s === 'heavy' ? 0 : 1)));
    const applied = pipeline.apply(test);
    expect(applied.y).toEqual(Float32Array.from(test.column('size'), (s) => (s === 'heavy' ? 0 : 1)));
    expect(applied.x.length).toBe(test.length * pipeline.width);
    // The test rows are scaled with the training rows' statistics, not their own.
    const trainWeights = train.column('weight') as number[];
    const mean = trainWeights.reduce((a, b) => a + b, 0) / trainWeights.length;
    const std = Math.sqrt(trainWeights.reduce((a, b) => a + (b - mean) ** 2, 0) / trainWeights.length);
    const testWeights = test.column('weight') as number[];
    testWeights.forEach((w, i) => expect(applied.x[i * pipeline.width]).toBeCloseTo((w - mean) / std, 4));
    const testRow0 = pipeline.transform(test.head(1));
    expect(Array.from(testRow0)).toEqual(Array.from(applied.x.subarray(0, pipeline.width)));
  });

  it('regression labels scaled on request and decoded back to their units', () => {
    const { onWarning } = collector();
    const frame = DataFrame.fromRecords(carTable(50), { onWarning }).drop('name');
    const { pipeline, y } = prepare(frame, { label: 'mpg', scaleLabel: true, onWarning });
    expect(pipeline.task).toBe('regression');
    const mean = Array.from(y!).reduce((s, v) => s + v, 0) / y!.length;
    expect(mean).toBeCloseTo(0, 5);
    const mpg = frame.column('mpg') as number[];
    const decoded = pipeline.decode(y!, y!.length) as number[];
    decoded.forEach((v, i) => expect(v).toBeCloseTo(mpg[i]!, 3));
  });

  it('says what it decided: text and constant columns left out, many categories, unparsed cells', () => {
    const { warnings, onWarning } = collector();
    const records = carTable(80).map((r, i) => ({ ...r, plant: 'one', code: `c${i % 60}` }));
    const frame = DataFrame.fromRecords(records, { onWarning, types: { code: 'category' } });
    const { report } = prepare(frame, { label: 'mpg', onWarning });
    expect(report.ignored).toEqual(['name', 'plant']);
    expect(warnings.map((w) => [w.code, w.column])).toEqual([
      ['MAAS_WARN_TEXT_COLUMN', 'name'],
      ['MAAS_WARN_CONSTANT_COLUMN', 'plant'],
      ['MAAS_WARN_MANY_CATEGORIES', 'code'],
    ]);
    expect(warnings[0]!.message).toMatch(
      /^Column 'name' looks like free text or an ID \(80 distinct values in 80 rows\): it is left out/,
    );
    expect(report.warnings).toEqual(warnings);
  });

  it('refuses unknown option values and inputs with coded errors naming them', () => {
    const frame = DataFrame.fromColumns({ a: [1, 2, 3], b: ['x', 'y', 'x'] });
    expect(syncErrorOf(() => prepare(frame, { missing: 'zero' as never }))).toBe(
      "MAAS_ERR_ARG_RANGE: Expected 'drop', 'mean', 'median', 'mostFrequent' or { constant: value } for preparation.missing but received 'zero' of type string",
    );
    expect(syncErrorOf(() => prepare(frame, { categorical: 'onehot' as never }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected one of 'oneHot', 'label' for preparation.categorical but received 'onehot'/,
    );
    expect(syncErrorOf(() => prepare(frame, { text: 'embed' as never }))).toMatch(/preparation.text/);
    expect(syncErrorOf(() => prepare(42 as never))).toMatch(/^MAAS_ERR_ARG_TYPE: Expected a DataFrame/);
    expect(syncErrorOf(() => prepare([{ a: 1 }], { onWarning: 'ignore' }))).toBe(
      'MAAS_ERR_DATA_FORMAT: No usable feature columns: a were left out',
    );
    // Records are a table too.
    expect(prepare([{ a: 1 }, { a: 2 }], { scale: 'none' }).x).toEqual(Float32Array.of(1, 2));
    expect(syncErrorOf(() => prepare(frame, { label: 'c' }))).toMatch(
      /^MAAS_ERR_DATA_FORMAT: Expected a column named 'c'/,
    );
  });

  it('dates as parts or days since 1970, and text as hashed word counts', () => {
    const frame = DataFrame.fromColumns({
      when: ['2024-02-29', '2023-12-31T06:30:00Z'],
      note: ['red red car', 'blue car'],
    }).asType('note', 'text');
    const parts = prepare(frame, { scale: 'none', text: 'hash', hashBuckets: 8 });
    expect(Array.from(parts.x.subarray(0, 5))).toEqual([2024, 2, 29, 4, 0]);
    expect(Array.from(parts.x.subarray(13, 18))).toEqual([2023, 12, 31, 0, 6.5]);
    const counts = Array.from(parts.x.subarray(5, 13));
    expect(counts.reduce((s, v) => s + v, 0)).toBe(3);
    expect(Math.max(...counts)).toBeGreaterThanOrEqual(2);
    const epoch = prepare(frame.select(['when']), { scale: 'none', dates: 'epoch' });
    expect(epoch.x[0]).toBe(Math.fround(Date.UTC(2024, 1, 29) / 86_400_000));
  });
});

describe('strict records and labels from a saved model', () => {
  async function trainedClassifier() {
    const { onWarning } = collector();
    const frame = DataFrame.fromRecords(
      carTable(120).map((r) => ({ ...r, size: r.weight > 3000 ? 'heavy' : 'light' })),
      { onWarning },
    ).drop('mpg');
    const { pipeline, x, y } = prepare(frame, { label: 'size', onWarning });
    const model = sequential({
      layers: [
        dense({ units: 8, activation: 'relu', inputShape: [pipeline.width], kernelInitializer: 'glorotUniform' }),
        dense({ units: 2, activation: 'softmax' }),
      ],
    });
    model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
    await model.fit(x, y!, { epochs: 60, batchSize: 16, verbose: 0, shuffle: false });
    model.setPreparation(pipeline);
    return { model, frame };
  }

  it('answers records with class names, before and after save/load, and refuses missing or unknown columns', async () => {
    const { model, frame } = await trainedClassifier();
    const records = frame.head(4).toRecords();
    const labels = model.predictLabels(records);
    expect(labels).toEqual(records.map((r) => r.size));
    const dir = await mkdtemp(join(tmpdir(), 'maas-labels-'));
    await model.save(dir);
    const loaded = await loadModel(dir);
    expect(loaded.preparation!.classes).toEqual(['heavy', 'light']);
    expect(loaded.predictLabels(records)).toEqual(labels);
    const { weight: _w, ...noWeight } = records[0]!;
    expect(syncErrorOf(() => loaded.predictRaw([noWeight]))).toMatch(
      /^MAAS_ERR_DATA_COLUMNS: Missing column 'weight' \(record 0\): the model takes 'weight', 'cylinders', 'origin', 'built'/,
    );
    expect(syncErrorOf(() => loaded.predictRaw([{ ...noWeight, wieght: 2000 }]))).toMatch(
      /^MAAS_ERR_DATA_COLUMNS: Unknown column 'wieght' \(record 0\)/,
    );
    const { warnings, onWarning } = collector();
    const filled = loaded.predictRaw([noWeight], { allowMissing: true, onWarning });
    expect(filled.shape).toEqual([1, 2]);
    expect(warnings.map((w) => w.code)).toEqual(['MAAS_WARN_FILLED_COLUMNS']);
    expect(warnings[0]!.message).toBe("Absent column 'weight' filled with the saved policy (allowMissing)");
  });

  it('a pipeline file is checked field by field; version 1 still loads', () => {
    const { pipeline } = prepare(DataFrame.fromColumns({ a: [1, 2, 3], b: ['x', 'y', 'x'] }));
    const json = JSON.parse(JSON.stringify(pipeline.toJSON())) as Record<string, unknown>;
    expect(Pipeline.fromJSON(json).width).toBe(3);
    for (const bad of [
      { ...json, columns: [{ name: 'a', kind: 'number', fill: 'x' }] },
      { ...json, scale: { kind: 'standard', mean: [0], std: [1] } },
      { ...json, label: { name: 'y', kind: 'classes', classes: ['only'] } },
      { ...json, columns: [{ name: 'h', kind: 'hash', buckets: 1e9, fill: '' }] },
      { ...json, version: 3 },
    ])
      expect(syncErrorOf(() => Pipeline.fromJSON(bad))).toMatch(
        /^MAAS_ERR_MODEL_FORMAT: The preparation pipeline in the model file is malformed/,
      );
    const v1 = {
      kind: 'maas.preparation',
      version: 1,
      columns: [{ name: 'a', kind: 'number', fill: 0 }],
      scale: { kind: 'none' },
    };
    expect(Array.from(Pipeline.fromJSON(v1).transform([{ a: 5 }]))).toEqual([5]);
  });

  it('a text column left in changes nothing by default: the same features as with it dropped', () => {
    const { warnings, onWarning } = collector();
    const frame = DataFrame.fromRecords(carTable(100), { onWarning });
    const withText = prepare(frame, { label: 'mpg', onWarning });
    const dropped = prepare(frame.drop('name'), { label: 'mpg', onWarning: 'ignore' });
    expect(warnings.map((w) => w.column)).toEqual(['name']);
    expect(withText.x).toEqual(dropped.x);
    expect(withText.y).toEqual(dropped.y);
  });

  it('label-encodes a constant fill that is no category as a class of its own', () => {
    const frame = DataFrame.fromRecords([
      { colour: 'red', y: 1 },
      { colour: null, y: 0 },
      { colour: 'blue', y: 1 },
      { colour: 'red', y: 0 },
    ]);
    const { pipeline, x } = prepare(frame, {
      label: 'y',
      categorical: 'label',
      missing: { constant: 'unknown' },
      scale: 'none',
      onWarning: 'ignore',
    });
    expect(Array.from(x)).toEqual([1, 2, 0, 1]);
    expect(pipeline.transform([{ colour: null }])[0]).toBe(2);
  });
});
