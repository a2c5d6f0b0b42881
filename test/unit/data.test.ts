/**
 * Data preparation: CSV parsing with types and a target, missing/NaN/infinite handling with a
 * report, encoders and scalers fitted on train and applied to anything, seeded and stratified
 * splits, and a pipeline saved with the model so predictRaw applies the training transform.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dense,
  LabelEncoder,
  loadCsv,
  loadModel,
  MinMaxScaler,
  parseCsv,
  Pipeline,
  prepare,
  sequential,
  StandardScaler,
  tensor,
  trainTestSplit,
} from '../../src/index.js';
import { syncErrorOf } from '../helpers.js';

const CSV = `age,color,income,label
34,red,52000,yes
,blue,61000,no
45,"green",NaN,yes
29,red,48000,no
51,blue,Infinity,yes
38,,58000,no
`;

describe('CSV', () => {
  it('parses a header, infers column types, treats NaN/Infinity/empty as missing, splits the target', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-csv-'));
    await writeFile(join(dir, 'd.csv'), CSV);
    const { features, target } = await loadCsv(join(dir, 'd.csv'), { target: 'label' });
    expect(features.columns).toEqual(['age', 'color', 'income']);
    expect(features.types).toEqual(['number', 'string', 'number']);
    expect(features.rows[1]).toEqual([null, 'blue', 61000]);
    expect(features.rows[2]![2]).toBeNull();
    expect(features.rows[4]![2]).toBeNull();
    expect(target).toEqual({ name: 'label', type: 'string', values: ['yes', 'no', 'yes', 'no', 'yes', 'no'] });
  });

  it('names what is wrong with a malformed file', () => {
    expect(syncErrorOf(() => parseCsv('a,b\n1,2,3\n'))).toBe(
      'MAAS_ERR_DATA_FORMAT: Row 1 has 3 fields but the header has 2',
    );
    expect(syncErrorOf(() => parseCsv('a,b\n1,2\n', { target: 'c' }))).toBe(
      "MAAS_ERR_DATA_FORMAT: Expected a column named 'c' but the columns are 'a', 'b'",
    );
  });
});

describe('cleaning and the pipeline', () => {
  const { features } = parseCsv(CSV, { target: 'label' });

  it('imputes with the mean (numbers) and the most frequent value (categories), and reports it', () => {
    const { x, report, pipeline } = prepare(features, { missing: 'mean', scale: 'none' });
    expect(report).toEqual({
      rows: 6,
      droppedRows: 0,
      filled: {
        age: { count: 1, value: (34 + 45 + 29 + 51 + 38) / 5 },
        color: { count: 1, value: 'blue' },
        income: { count: 2, value: (52000 + 61000 + 48000 + 58000) / 4 },
      },
      ignored: [],
      warnings: [],
    });
    expect(pipeline.width).toBe(1 + 3 + 1);
    // row 1: age filled, color blue one-hot over [blue, green, red]
    expect(Array.from(x.subarray(5, 10))).toEqual([Math.fround(39.4), 1, 0, 0, 61000]);
  });

  it('median, constant and drop strategies', () => {
    expect(prepare(features, { missing: 'median', scale: 'none' }).report.filled.age!.value).toBe(38);
    expect(prepare(features, { missing: { constant: 0 }, scale: 'none' }).report.filled.income!.value).toBe(0);
    const dropped = prepare(features, { missing: 'drop', scale: 'none' });
    expect(dropped.report.droppedRows).toBe(4);
    expect(dropped.kept).toEqual([0, 3]);
    expect(syncErrorOf(() => dropped.pipeline.transform([[null, 'red', 1]]))).toBe(
      "MAAS_ERR_DATA_MISSING: Row 0, column 'age' is missing and this pipeline was fitted to drop such rows",
    );
  });

  it('scales with statistics from the fit rows only, and applies them to new rows', () => {
    const { pipeline, x } = prepare(features, { scale: 'standard', categorical: 'label' });
    const col0 = [0, 1, 2, 3, 4, 5].map((i) => x[i * 3]!);
    expect(col0.reduce((a, b) => a + b, 0) / 6).toBeCloseTo(0, 5);
    const again = pipeline.transform([{ age: 34, color: 'red', income: 52000 }]);
    expect(Array.from(again)).toEqual(Array.from(x.subarray(0, 3)));
    expect(syncErrorOf(() => pipeline.transform([{ age: 34, color: 'purple', income: 1 }]))).toMatch(
      /^MAAS_ERR_DATA_UNKNOWN_CATEGORY: Row 0, column 'color': 'purple' was not seen in fit/,
    );
  });

  it('standalone scalers and the label encoder', () => {
    const train = Float32Array.from([0, 10, 2, 30, 4, 20]);
    const s = new StandardScaler().fit(train, 2);
    expect(s.mean).toEqual([2, 20]);
    expect(Array.from(s.transform(Float32Array.from([2, 20])))).toEqual([0, 0]);
    const mm = new MinMaxScaler().fit(train, 2);
    expect(Array.from(mm.transform(Float32Array.from([4, 10, 6, 40])))).toEqual([1, 0, 1.5, 1.5]);
    const le = new LabelEncoder().fit(['b', 'a', 'c', 'a']);
    expect(Array.from(le.transform(['c', 'a']))).toEqual([2, 0]);
    expect(le.inverseTransform([1])).toEqual(['b']);
    expect(syncErrorOf(() => le.transform(['z']))).toMatch(
      /^MAAS_ERR_DATA_UNKNOWN_CATEGORY: Row 0: 'z' is not one of the 3 classes/,
    );
  });
});

describe('trainTestSplit', () => {
  const x = tensor(Array.from({ length: 100 }, (_, i) => [i, i * 2]));
  const y = tensor(Array.from({ length: 100 }, (_, i) => (i < 80 ? 0 : 1)));

  it('is seeded, disjoint and complete', () => {
    const a = trainTestSplit(x, y, { testSize: 0.2, seed: 3 });
    const b = trainTestSplit(x, y, { testSize: 0.2, seed: 3 });
    expect(a.xTest.values).toEqual(b.xTest.values);
    expect(a.xTrain.shape).toEqual([80, 2]);
    const ids = [
      ...a.xTrain.values.filter((_, i) => i % 2 === 0),
      ...a.xTest.values.filter((_, i) => i % 2 === 0),
    ].sort((p, q) => p - q);
    expect(ids).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(trainTestSplit(x, y, { testSize: 0.2, seed: 4 }).xTest.values).not.toEqual(a.xTest.values);
  });

  it('stratified: each class keeps its share in the test part', () => {
    const s = trainTestSplit(x, y, { testSize: 0.25, seed: 1, stratify: true });
    expect(s.yTest.values.filter((v) => v === 1).length).toBe(5);
    expect(s.yTest.values.length).toBe(25);
  });
});

describe('a preparation pipeline travels with the model', () => {
  it('predictRaw applies the training transform before and after save/load', async () => {
    const { features } = parseCsv(CSV, { target: 'label' });
    const { pipeline, x } = prepare(features, { missing: 'median' });
    const model = sequential({
      layers: [
        dense({ units: 4, activation: 'tanh', inputShape: [pipeline.width] }),
        dense({ units: 1, activation: 'sigmoid' }),
      ],
    });
    model.setPreparation(pipeline);
    const raw = [
      { age: 40, color: 'green', income: 50000 },
      { age: null, color: 'red', income: 'NaN' },
    ];
    const viaRaw = model.predictRaw(raw).values;
    expect(viaRaw).toEqual(model.predict(pipeline.transform(raw)).values);
    expect(model.predict(x.subarray(0, pipeline.width)).values[0]).toBeCloseTo(
      model.predictRaw([features.rows[0]!]).values[0]!,
      6,
    );
    const dir = await mkdtemp(join(tmpdir(), 'maas-prep-'));
    await model.save(dir);
    const loaded = await loadModel(dir);
    expect(loaded.preparation).toBeInstanceOf(Pipeline);
    expect(loaded.predictRaw(raw).values).toEqual(viaRaw);
    expect(syncErrorOf(() => model.setPreparation(prepare(features, { categorical: 'label' }).pipeline))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: Expected a pipeline producing 5 features but it produces 3/,
    );
  });
});
