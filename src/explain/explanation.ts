/**
 * An explanation of one row: the attribution of each input feature to one output, what it is
 * measured from, and the method's own check (completeness, additivity or fit). When the model
 * carries a preparation pipeline, the attributions are also summed per raw column (a category's
 * one-hot features, a date's parts), with the column names.
 */
import type { Pipeline } from '../data/pipeline.js';
import type { ExplainTarget } from './target.js';

export type ExplainMethod = 'integratedGradients' | 'kernelShap' | 'exactShap' | 'lime';
export const EXPLAIN_METHODS: readonly ExplainMethod[] = ['integratedGradients', 'kernelShap', 'exactShap', 'lime'];

/** The options a config, a request or a command line may set, per method (the background aside). */
export const EXPLAIN_OPTION_NAMES: Readonly<Record<ExplainMethod, readonly string[]>> = {
  integratedGradients: ['steps', 'rule', 'output'],
  kernelShap: ['nsamples', 'seed', 'output'],
  exactShap: ['output'],
  lime: ['samples', 'kernelWidth', 'ridge', 'seed', 'output'],
};

export interface ColumnAttribution {
  column: string;
  attribution: number;
}

export interface Explanation {
  method: ExplainMethod;
  /** The output explained (a class index, or 0 for a single output). */
  output: number;
  /** The model's value of that output for the row. */
  value: number;
  /**
   * What the attributions are measured from: f(baseline) for integrated gradients, the mean
   * prediction over the background for SHAP (its expected value), the surrogate's value at the
   * background mean for LIME.
   */
  base: number;
  /** One per input feature, in the model's input order. */
  attributions: number[];
  /** The input features' names: the pipeline's (`price`, `category=books`), else x0, x1, …. */
  features: string[];
  /** Attributions summed per raw column, when the model has a preparation pipeline. */
  columns?: ColumnAttribution[];
  /** Integrated gradients: Σ attributions − (value − base); 0 for the exact integral. */
  completenessGap?: number;
  /** SHAP: base + Σ attributions − value (0 up to rounding: the efficiency constraint). */
  additivityGap?: number;
  /** LIME: the surrogate's weighted R² over its samples. */
  r2?: number;
  /** LIME: the surrogate's slopes per standard deviation of each feature. */
  coefficients?: number[];
  /** SHAP: coalitions evaluated, and whether they were all of them (exact Shapley values). */
  coalitions?: number;
  exact?: boolean;
}

/** Sums attributions over each raw column's features (a pipeline's featureSpans). */
export function byColumn(attributions: readonly number[], pipeline: Pipeline): ColumnAttribution[] {
  return pipeline.featureSpans.map((s) => {
    let sum = 0;
    for (let i = s.start; i < s.start + s.width; i++) sum += attributions[i]!;
    return { column: s.column, attribution: sum };
  });
}

/** The explanation with its feature names and, when the target has a pipeline, its column sums. */
export function finish(target: ExplainTarget, e: Omit<Explanation, 'features' | 'columns'>): Explanation {
  return relabel(e, target.inputs, target.pipeline);
}

/**
 * An explanation computed without names (in a pool worker) with the model's feature names (the
 * pipeline's, else x0, x1, …) and, when it has a pipeline, the sums per raw column.
 */
export function relabel(
  e: Omit<Explanation, 'features' | 'columns'>,
  inputs: number,
  pipeline: Pipeline | null,
): Explanation {
  if (pipeline && pipeline.width === inputs)
    return { ...e, features: pipeline.featureNames, columns: byColumn(e.attributions, pipeline) };
  return { ...e, features: Array.from({ length: inputs }, (_, i) => `x${i}`) };
}
