/**
 * `maas explain --model DIR --input ROW.json [--method …] [--background FILE.json] [--report
 * OUT.html]`: explains each input row (numbers in the model's input order, or raw records through
 * the model's saved preparation pipeline), prints a ranked bar chart per row (colour on a TTY) and
 * writes an HTML report with SVG charts when asked.
 */
import { writeFile } from 'node:fs/promises';
import { MaasError } from '../core/errors.js';
import { loadModel } from '../model/load.js';
import { EXPLAIN_METHODS, EXPLAIN_OPTION_NAMES, type Explanation, type ExplainMethod } from '../explain/explanation.js';
import { explainWith } from '../explain/index.js';
import { modelTarget } from '../explain/target.js';
import { htmlReport, terminalChart } from '../explain/pictures.js';
import { readJsonRows } from '../explain/json-rows.js';
import { MAX_BACKGROUND_ROWS } from '../explain/target.js';

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

/** Largest JSON file read for rows (input or background), and most rows taken. */
const ROWS_LIMITS = { maxBytes: 64 * 2 ** 20, maxRows: MAX_BACKGROUND_ROWS };

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
    const width = model.inputShape![1];
    const x = await readJsonRows(o.input, width, model.preparation, 'the input', { ...ROWS_LIMITS, oneRow: true });
    const background = o.background
      ? await readJsonRows(o.background, width, model.preparation, 'the background', ROWS_LIMITS)
      : undefined;
    // The flags the method takes become its options; without --background SHAP and LIME take the
    // one saved with the model, and refuse when it has none.
    const flags: Record<string, unknown> = { output: o.output, steps: o.steps, nsamples: o.nsamples };
    Object.assign(flags, { samples: o.samples, seed: o.seed });
    const options: Record<string, unknown> = Object.fromEntries(
      EXPLAIN_OPTION_NAMES[method].filter((name) => flags[name] !== undefined).map((name) => [name, flags[name]]),
    );
    if (method !== 'integratedGradients') options.background = background;
    const explanations = explainWith(modelTarget(model), method, x, options);
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
