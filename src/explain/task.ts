/**
 * One explanation task as a pool worker runs it: the method over the worker's native handles
 * (the model's, and the round trip's for gradients), answered without feature names, which the
 * serving thread adds from the model's pipeline.
 */
import type { NativeInputGradientHandle, NativeModelHandle } from '../native/index.js';
import { explainWith } from './index.js';
import { handleTarget } from './target.js';
import type { Explanation, ExplainMethod } from './explanation.js';

/** One explanation request as a worker runs it: rows of features, the method and its options. */
export interface ExplainTask {
  method: ExplainMethod;
  x: Float32Array;
  rows: number;
  /** The method's options, without the background. */
  options: Record<string, unknown>;
  /** Background feature rows (SHAP, LIME), flattened. */
  background?: Float32Array;
}

/** An explanation as a worker returns it: the serving thread adds feature names and raw columns. */
export type WorkerExplanation = Omit<Explanation, 'features' | 'columns'>;

/** Runs one task over a worker's handles; the serving thread names the features afterwards. */
export function runExplainTask(
  model: NativeModelHandle,
  gradients: NativeInputGradientHandle | null,
  task: ExplainTask,
  fp32Forward = false,
): WorkerExplanation[] {
  const target = handleTarget(model, gradients, null, fp32Forward);
  const options = task.background ? { ...task.options, background: task.background } : task.options;
  const x = task.x.subarray(0, task.rows * target.inputs);
  return explainWith(target, task.method, x, options).map(({ features: _f, columns: _c, ...rest }) => rest);
}
