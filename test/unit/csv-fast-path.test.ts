/**
 * The streaming reader's native fast path (csv_encoder.h) only skips work: on files full of what
 * it must leave to the JavaScript reader (quotes, comments, blanks, CRLF and lone CR, missing and
 * stray cells, unseen categories, impossible dates, long or huge numbers, non-ASCII text), the
 * batches, the counts and the errors are the same with it as without it.
 */
import { describe, expect, it } from 'vitest';
import { batchPass, type BatchPassOptions, type BatchPassResult, type RowBatch } from '../../src/data/csv-passes.js';
import type { PipelineJson } from '../../src/data/pipeline.js';
import { csvDataset } from '../../src/index.js';
import { errorOf, rng } from '../helpers.js';

const ROWS = 2500;

/** A classification table whose odd records each take one of the JavaScript reader's paths. */
function trickyCsv(seed: number, eol: string): string {
  const r = rng(seed);
  const lines = ['x,y,colour,day,size,label'];
  const odd = [
    (l: string[]) => (l[2] = '"red"'),
    (l: string[]) => (l[0] = ''),
    (l: string[]) => (l[0] = 'NA'),
    (l: string[]) => (l[1] = '39.5mm'),
    (l: string[]) => (l[2] = 'mauve'),
    (l: string[]) => (l[2] = 'None'),
    (l: string[]) => (l[3] = '2021-02-30'),
    (l: string[]) => (l[3] = '2021-03-04T10:00:00Z'),
    (l: string[]) => (l[0] = '1234567890.1234567'),
    (l: string[]) => (l[0] = '1.5e2'),
    (l: string[]) => (l[1] = '2e25'),
    (l: string[]) => (l[0] = '+.5'),
    (l: string[]) => (l[1] = ' 2.5 '),
    (l: string[]) => (l[2] = 'grün'),
    (l: string[]) => (l[5] = ''),
    (l: string[]) => (l[5] = `${l[5]} # a comment`),
    (l: string[]) => (l[1] = '-0'),
    (l: string[]) => (l[0] = '7e-3'),
  ];
  for (let i = 0; i < ROWS; i++) {
    const cells = [
      (r.normal() * 4).toFixed(3),
      (r.next() * 100).toFixed(1),
      ['red', 'green', 'blue'][Math.floor(r.next() * 3)]!,
      new Date(Date.UTC(2020, 0, 1) + Math.floor(r.next() * 900) * 86_400_000).toISOString().slice(0, 10),
      ['S', 'M', 'L'][Math.floor(r.next() * 3)]!,
      ['low', 'mid', 'high'][Math.floor(r.next() * 3)]!,
    ];
    if (i > 20 && r.next() < 0.15) odd[Math.floor(r.next() * odd.length)]!(cells);
    lines.push(cells.join(','));
    if (i % 97 === 5) lines.push('');
    if (i % 131 === 7) lines.push('# a comment line');
  }
  // A lone CR ends a record too; the last record has no line break.
  return `${lines.slice(0, 100).join(eol)}\r${lines.slice(100).join(eol)}`;
}

async function fitted(csv: string, options: Record<string, unknown>): Promise<PipelineJson> {
  const ds = await csvDataset(() => [csv], { onWarning: 'ignore', ...options });
  return ds.pipeline.toJSON();
}

async function read(csv: string, options: BatchPassOptions): Promise<{ batches: RowBatch[]; result: BatchPassResult }> {
  const batches: RowBatch[] = [];
  // Chunks of odd sizes, so records are cut everywhere, in the fast path's reach or not.
  const bytes = Buffer.from(csv);
  async function* chunks() {
    for (let at = 0; at < bytes.length; at += 4093) yield bytes.subarray(at, at + 4093);
  }
  const pass = batchPass(chunks(), options);
  for (;;) {
    const next = await pass.next();
    if (next.done) return { batches, result: next.value };
    batches.push(next.value);
  }
}

function options(pipeline: PipelineJson, shuffle: number, fastPath: boolean): BatchPassOptions {
  return {
    delimiter: ',',
    pipeline,
    batchSize: 64,
    shuffle,
    seed: 5,
    allowMissing: false,
    labelKind: 'category',
    fastPath,
  };
}

describe('the streaming reader with and without its native fast path', () => {
  for (const eol of ['\n', '\r\n']) {
    it(`gives the same batches on a file of odd records (${JSON.stringify(eol)} line breaks)`, async () => {
      const csv = trickyCsv(eol === '\n' ? 3 : 4, eol);
      for (const settings of [
        { label: 'label', types: { day: 'date' } },
        { label: 'label', categorical: 'label', scale: 'minMax', missing: 'drop' },
        { label: 'x', task: 'regression', dates: 'epoch', scaleLabel: true },
      ]) {
        const pipeline = await fitted(csv, settings);
        for (const shuffle of [0, 300]) {
          const fast = await read(csv, options(pipeline, shuffle, true));
          const plain = await read(csv, options(pipeline, shuffle, false));
          expect({ ...fast.result, nativeRows: 0 }).toEqual(plain.result);
          expect(fast.result.rows).toBeGreaterThan(ROWS * 0.8);
          // The native reader did read most records: the comparison is of two readers, not one.
          expect(fast.result.nativeRows).toBeGreaterThan(fast.result.rows / 2);
          expect(fast.batches.length).toBe(plain.batches.length);
          fast.batches.forEach((b, i) => {
            expect(b.rows).toBe(plain.batches[i]!.rows);
            expect(b.x).toEqual(plain.batches[i]!.x);
            expect(b.y).toEqual(plain.batches[i]!.y);
          });
        }
      }
    });
  }

  it('reports a bad record with the same line and message either way', async () => {
    const good = trickyCsv(8, '\n');
    const pipeline = await fitted(good, { label: 'label', categorical: 'label' });
    const lines = good.split(/\n/);
    // Far past the first chunk, after records the fast path reads: an unseen class, then an unseen category.
    for (const [at, bad] of [
      [1800, '1.5,2,red,2020-05-05,S,huge'],
      [2100, '1.5,2,crimson,2020-05-05,S,low'],
    ] as const) {
      const csv = [...lines.slice(0, at), bad, ...lines.slice(at)].join('\n');
      const fast = await errorOf(() => read(csv, options(pipeline, 0, true)));
      const plain = await errorOf(() => read(csv, options(pipeline, 0, false)));
      expect(fast).toMatch(/^MAAS_ERR_DATA_UNKNOWN_CATEGORY: /);
      expect(fast).toBe(plain);
      // Line at + 1 of the split, one further on: the lone CR joined two lines in one element.
      expect(fast).toContain(`Row ${at + 2},`);
    }
  });
});
