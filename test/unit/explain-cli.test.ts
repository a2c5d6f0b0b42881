/**
 * `maas explain` and the pictures: the ranked terminal chart (bars ordered and scaled by
 * |attribution|, colour only when asked), the HTML report's SVG bars carrying the attributions
 * with names escaped, rows given as numbers or as records, and coded refusals.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dense, initializers, integratedGradients, prepare, sequential } from '../../src/index.js';
import { runExplain } from '../../src/cli/explain.js';
import { terminalChart } from '../../src/explain/pictures.js';
import { errorOf, rng } from '../helpers.js';

const COLORS = ['red', 'green', 'blue'];

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'maas-explain-cli-'));
  const r = rng(5);
  // A column whose name needs escaping in HTML.
  const records = Array.from({ length: 40 }, (_, i) => ({
    'size<b>&"': r.uniform(0, 10),
    color: COLORS[i % 3]!,
    weight: r.uniform(50, 90),
  }));
  const { pipeline } = prepare(records, { onWarning: 'ignore' });
  const model = sequential({
    layers: [
      dense({
        units: 8,
        activation: 'tanh',
        inputShape: [pipeline.width],
        kernelInitializer: initializers.glorotUniform({ seed: 3 }),
      }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  model.setPreparation(pipeline);
  await model.save(join(dir, 'model'));
  await writeFile(join(dir, 'row.json'), JSON.stringify(records[0]));
  await writeFile(join(dir, 'background.json'), JSON.stringify(records.slice(0, 20)));
  const plain = sequential({ layers: [dense({ units: 2, inputShape: [3], activation: 'softmax' })] });
  await plain.save(join(dir, 'plain'));
  await writeFile(
    join(dir, 'numbers.json'),
    JSON.stringify([
      [0.5, -1, 2],
      [1, 1, 1],
    ]),
  );
  return { dir, model, records };
}

describe('maas explain', () => {
  it('prints ranked bars per raw column and writes an HTML report whose bars carry the attributions', async () => {
    const { dir, model, records } = await fixture();
    const lines: string[] = [];
    const report = join(dir, 'report.html');
    const [e] = await runExplain({
      model: join(dir, 'model'),
      input: join(dir, 'row.json'),
      report,
      print: (line) => lines.push(line),
    });
    const want = integratedGradients(model, model.preparation!.transform([records[0]!]))[0]!;
    expect(e!.method).toBe('integratedGradients');
    expect(lines[0]).toMatch(/^integratedGradients: output 0 = /);
    const shown = lines.slice(1, 4).map((l) => l.trim().split(/\s+/));
    const ranked = [...want.columns!].sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution));
    expect(shown.map((s) => s[0])).toEqual(ranked.map((c) => c.column.slice(0, 32)));
    // The longest bar is the largest |attribution|, full width; no colour codes when not asked.
    expect(lines[1]).toContain('█'.repeat(40));
    expect(lines.join('\n')).not.toContain('\x1b[');
    const html = await readFile(report, 'utf8');
    const bars = [...html.matchAll(/<rect class="bar" data-name="([^"]*)" data-value="([^"]*)"/g)];
    expect(bars.map((b) => Number(b[2]))).toEqual(ranked.map((c) => c.attribution));
    expect(html).toContain('size&#60;b&#62;&#38;&#34;');
    expect(html).not.toContain('size<b>');
  });

  it('takes numeric rows, a background and a method; colours on request', async () => {
    const { dir } = await fixture();
    const lines: string[] = [];
    const explanations = await runExplain({
      model: join(dir, 'plain'),
      input: join(dir, 'numbers.json'),
      background: join(dir, 'numbers.json'),
      method: 'exactShap',
      print: (line) => lines.push(line),
    });
    expect(explanations).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('row '))).toEqual(['row 0', 'row 1']);
    expect(lines.filter((l) => l.startsWith('exactShap:'))).toHaveLength(2);
    const colored = terminalChart(explanations[0]!, { color: true });
    expect(colored.slice(1).every((l) => l.includes('\x1b[32m') || l.includes('\x1b[31m'))).toBe(true);
  });

  it('refuses records without a pipeline, wrong widths, unknown methods and a missing background, with codes', async () => {
    const { dir } = await fixture();
    const run = (model: string, input: string, method?: 'lime') =>
      errorOf(() =>
        runExplain({
          model: join(dir, model),
          input: join(dir, input),
          ...(method ? { method } : {}),
          print: () => {},
        }),
      );
    expect(await run('plain', 'row.json')).toMatch(/^MAAS_ERR_MODEL_EMPTY/);
    expect(await run('model', 'numbers.json')).toMatch(/^MAAS_ERR_SHAPE_MISMATCH/);
    expect(await run('plain', 'numbers.json', 'magic' as never)).toMatch(/^MAAS_ERR_ARG_RANGE/);
    expect(await run('plain', 'numbers.json', 'lime')).toMatch(/^MAAS_ERR_EXPLAIN_BACKGROUND/);
  });
});
