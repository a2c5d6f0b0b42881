/**
 * `maas explain --model DIR --input ROW.json [--method …] [--background FILE.json] [--report
 * OUT.html]`: explains each input row (numbers in the model's input order, or raw records through
 * the model's saved preparation pipeline), prints a ranked bar chart per row (colour on a TTY) and
 * writes an HTML report with SVG charts when asked.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { MaasError } from '../core/errors.js';
import { isPlainObject } from '../core/validation.js';
import { loadModel } from '../model/load.js';
import { EXPLAIN_METHODS, type Explanation, type ExplainMethod } from '../explain/explanation.js';
import { exactShap, integratedGradients, kernelShap, lime } from '../explain/index.js';
import { htmlReport, terminalChart } from '../explain/pictures.js';
import type { Sequential } from '../model/sequential.js';

export interface ExplainCommandOptions {
  model: string;
  input: string;
  method?: ExplainMethod;
  background?: string;
  output?: number;
  steps?: number;
  nsamples?: number;
  samples?: number;
  seed?: number;
  top?: number;
  report?: string;
  color?: boolean;
  print: (line: string) => void;
}

/** Largest JSON file read for rows (input or background). */
const MAX_ROWS_FILE_BYTES = 64 * 2 ** 20;

/** A JSON file of one row or many (numbers in input order, or records) as the model's features. */
async function rowsOf(path: string, model: Sequential, what: string): Promise<Float32Array> {
  const text = await readFile(path, 'utf8');
  if (text.length > MAX_ROWS_FILE_BYTES)
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${what} ${path} is larger than ${MAX_ROWS_FILE_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MaasError('MAAS_ERR_DATA_FORMAT', `${what} ${path} is not JSON: ${(error as Error).message}`);
  }
  const rows =
    Array.isArray(value) && (value.length === 0 || Array.isArray(value[0]) || isPlainObject(value[0]))
      ? value
      : [value];
  const width = model.inputShape![1];
  if (rows.length > 0 && rows.every((r) => Array.isArray(r))) {
    const x = new Float32Array(rows.length * width);
    rows.forEach((r: unknown[], i) => {
      if (r.length !== width || !r.every((v) => typeof v === 'number'))
        throw new MaasError(
          'MAAS_ERR_SHAPE_MISMATCH',
          `Expected row ${i} of ${path} to hold ${width} numbers (the model's inputs)`,
        );
      x.set(r, i * width);
    });
    return x;
  }
  if (rows.length > 0 && rows.every(isPlainObject)) {
    if (!model.preparation)
      throw new MaasError(
        'MAAS_ERR_MODEL_EMPTY',
        `${path} holds records but the model was saved without a preparation pipeline`,
      );
    return model.preparation.transform(rows, { onWarning: 'ignore' });
  }
  throw new MaasError(
    'MAAS_ERR_DATA_FORMAT',
    `Expected ${path} to hold a row (numbers or a record) or an array of them`,
  );
}

/** Runs the command; returns the explanations. */
export async function runExplain(o: ExplainCommandOptions): Promise<Explanation[]> {
  const method = o.method ?? (o.background ? 'kernelShap' : 'integratedGradients');
  if (!EXPLAIN_METHODS.includes(method))
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected one of ${EXPLAIN_METHODS.join(', ')} for --method but received ${method}`,
    );
  const model = await loadModel(o.model);
  try {
    const x = await rowsOf(o.input, model, 'the input');
    const background = o.background ? await rowsOf(o.background, model, 'the background') : undefined;
    const output = o.output !== undefined ? { output: o.output } : {};
    const seed = o.seed !== undefined ? { seed: o.seed } : {};
    let explanations: Explanation[];
    if (method === 'integratedGradients')
      explanations = integratedGradients(model, x, { ...output, ...(o.steps ? { steps: o.steps } : {}) });
    else if (method === 'kernelShap')
      explanations = kernelShap(model, x, {
        background,
        ...output,
        ...seed,
        ...(o.nsamples ? { nsamples: o.nsamples } : {}),
      });
    else if (method === 'exactShap') explanations = exactShap(model, x, { background, ...output });
    else
      explanations = lime(model, x, { background, ...output, ...seed, ...(o.samples ? { samples: o.samples } : {}) });
    const classes = model.preparation?.classes ?? null;
    // A one-unit sigmoid head of a two-class pipeline gives the probability of the second class.
    const single = model.outputShape![1] === 1 && classes?.length === 2;
    const labels = explanations.map((e) => (single ? `P(${classes[1]})` : classes?.[e.output]));
    explanations.forEach((e, i) => {
      if (explanations.length > 1) o.print(`row ${i}`);
      for (const line of terminalChart(e, { top: o.top ?? 20, color: o.color === true, label: labels[i] }))
        o.print(line);
    });
    if (o.report) {
      await writeFile(o.report, htmlReport(`Explanations of ${o.model} (${method})`, explanations, labels));
      o.print(`wrote ${o.report}`);
    }
    return explanations;
  } finally {
    model.dispose();
  }
}
