/**
 * `maas select --config CANDIDATES.json --data TABLE.csv --label COLUMN [--task T] [--folds K]
 * [--metric M] [--seed S] [--output DIR]`: compares candidate models by k-fold cross-validation, prints a table
 * (mean ± sd of each metric over the folds, predict latency, parameter count) and saves the winner,
 * trained on every row with its preparation pipeline.
 */
import { readRegularFile } from '../io/files.js';
import { MaasError } from '../core/errors.js';
import { isPlainObject } from '../core/validation.js';
import { readCsv } from '../data/csv.js';
import { selectModel, type CandidateResult, type Selection, type SelectionMetric } from '../lifecycle/select.js';

export interface SelectCommandOptions {
  config: string;
  data: string;
  label?: string;
  /** classification or regression, when the label's kind does not say (a 0/1 column is numbers). */
  task?: 'classification' | 'regression';
  folds?: number;
  metric?: SelectionMetric;
  seed?: number;
  output?: string;
  print: (line: string) => void;
}

/** Largest candidates file read. */
const MAX_CONFIG_BYTES = 1 << 20;

/** The config file: an array of candidates, or { candidates, label?, folds?, metric?, seed?, preparation? }. */
async function readConfig(path: string): Promise<Record<string, unknown>> {
  const text = (await readRegularFile(path, MAX_CONFIG_BYTES, 'a candidates file')).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${path} is not JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(value)) return { candidates: value };
  if (isPlainObject(value) && Array.isArray(value.candidates)) return value;
  throw new MaasError(
    'MAAS_ERR_DATA_FORMAT',
    `Expected ${path} to hold an array of candidates or an object with a candidates array`,
  );
}

// Below 0.001 four decimals (an sd of 1e-16 is rounding, shown 0.0000, not in exponent form).
const fixed = (v: number) =>
  Math.abs(v) >= 1000 ? v.toFixed(1) : Math.abs(v) < 0.001 ? Math.abs(v).toFixed(4) : v.toPrecision(4);

/** The comparison as a text table, the winner marked. */
export function selectionTable(selection: Selection): string[] {
  const metrics = Object.keys(selection.results[0]!.metrics) as SelectionMetric[];
  const folds = selection.results[0]!.metrics[metrics[0]!]!.folds.length;
  const header = ['candidate', 'params', ...metrics.map((m) => `${m} (${folds}-fold)`), 'predict 1 row'];
  const cell = (r: CandidateResult) => [
    r.name + (r === selection.winner ? ' *' : ''),
    r.params.toLocaleString('en-US'),
    ...metrics.map((m) => `${fixed(r.metrics[m]!.mean)} ± ${fixed(r.metrics[m]!.sd)}`),
    `${r.latencyUs.toFixed(1)} µs`,
  ];
  const rows = [header, ...selection.results.map(cell)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

export async function runSelect(o: SelectCommandOptions): Promise<Selection> {
  const config = await readConfig(o.config);
  const label = o.label ?? config.label;
  if (typeof label !== 'string')
    throw new MaasError('MAAS_ERR_ARG_RANGE', 'Name the column to predict with --label (or "label" in the config)');
  const table = await readCsv(o.data);
  const selection = await selectModel(config.candidates as never, table, {
    label,
    ...((o.folds ?? config.folds) !== undefined ? { folds: (o.folds ?? config.folds) as number } : {}),
    ...((o.metric ?? config.metric) !== undefined ? { metric: (o.metric ?? config.metric) as SelectionMetric } : {}),
    ...((o.seed ?? config.seed) !== undefined ? { seed: (o.seed ?? config.seed) as number } : {}),
    ...(config.preparation !== undefined || o.task !== undefined
      ? { preparation: { ...(config.preparation as object), ...(o.task ? { task: o.task } : {}) } }
      : {}),
  });
  for (const line of selectionTable(selection)) o.print(line);
  const better = selection.metric === 'accuracy' ? 'highest' : 'lowest';
  o.print(`* the ${better} mean ${selection.metric} (${selection.task}, ${table.length} rows)`);
  const output = o.output ?? 'selected-model';
  await selection.model.save(output);
  o.print(`saved ${selection.winner.name}, trained on every row, with its preparation pipeline, to ${output}`);
  return selection;
}
