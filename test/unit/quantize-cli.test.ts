/** `maas quantize`: a saved model and a calibration CSV in, the report out, a loadable int8 model saved. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dense, initializers, loadQuantizedModel, sequential } from '../../src/index.js';
import { runQuantize } from '../../src/cli/quantize.js';
import { errorOf, rng } from '../helpers.js';

async function fixture(): Promise<{ dir: string; model: string; csv: string; narrowCsv: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-quantize-cli-'));
  const model = sequential({
    layers: [
      dense({
        units: 8,
        activation: 'relu',
        inputShape: [6],
        kernelInitializer: initializers.glorotUniform({ seed: 1 }),
      }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  await model.save(join(dir, 'fp32'));
  const r = rng(77);
  const rows = Array.from({ length: 64 }, () => Array.from({ length: 6 }, () => r.normal().toFixed(4)));
  const header = ['a', 'b', 'c', 'd', 'e', 'f'];
  await writeFile(
    join(dir, 'cal.csv'),
    [[...header, 'label'].join(','), ...rows.map((row, i) => [...row, i % 2].join(','))].join('\n'),
  );
  await writeFile(
    join(dir, 'narrow.csv'),
    [header.slice(0, 5).join(','), ...rows.map((row) => row.slice(0, 5).join(','))].join('\n'),
  );
  return { dir, model: join(dir, 'fp32'), csv: join(dir, 'cal.csv'), narrowCsv: join(dir, 'narrow.csv') };
}

describe('maas quantize', () => {
  it('prints the accuracy report, keeps chosen layers in fp32 and saves a loadable int8 model', async () => {
    const f = await fixture();
    const lines: string[] = [];
    const report = await runQuantize({
      model: f.model,
      calibration: f.csv,
      out: join(f.dir, 'int8'),
      target: 'label',
      keepFloat: 'last',
      method: 'percentile',
      print: (l) => lines.push(l),
    });
    expect(lines[0]).toMatch(
      /^quantized .* \(percentile, per-channel weights; layers: int8, fp32\) with kernel qu[78]s8_gemm_/,
    );
    expect(lines.join('\n')).toMatch(/decision agreement \(threshold\): \d+\.\d\d%/);
    expect(lines.join('\n')).toMatch(/accuracy: fp32 \d\.\d{4}, int8 \d\.\d{4}/);
    expect(report.rows).toBe(64);
    const loaded = await loadQuantizedModel(join(f.dir, 'int8'));
    expect(loaded.spec.layers.map((l) => l.int8)).toEqual([true, false]);
    expect(loaded.predict(new Float32Array(12)).shape).toEqual([2, 1]);
  });

  it('refuses a CSV whose width does not match the model, with a coded error', async () => {
    const f = await fixture();
    expect(
      await errorOf(() =>
        runQuantize({ model: f.model, calibration: f.narrowCsv, out: join(f.dir, 'bad'), print: () => {} }),
      ),
    ).toMatch(/^MAAS_ERR_SHAPE_MISMATCH: Expected 6 feature columns/);
  });
});
