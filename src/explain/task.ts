/**
 * One explanation task as a pool worker runs it: the method over the worker's native handles
 * (the model's, and the round trip's for gradients), answered without feature names, which the
 * serving thread adds from the model's pipeline.
 */
import { MaasError } from '../core/errors.js';
import type { NativeInputGradientHandle, NativeModelHandle } from '../native/index.js';
import { integratedGradientsOf } from './integrated-gradients.js';
import { exactShapOf, kernelShapOf } from './shap.js';
import { limeOf } from './lime.js';
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

export function runExplainTask(
  model: NativeModelHandle,
  gradients: NativeInputGradientHandle | null,
  task: ExplainTask,
): WorkerExplanation[] {
  const target = handleTarget(model, gradients, null);
  const x = task.x.subarray(0, task.rows * target.inputs);
  const background = task.background ? { background: task.background } : {};
  let explanations: Explanation[];
  switch (task.method) {
    case 'integratedGradients':
      if (!gradients)
        throw new MaasError('MAAS_ERR_EXPLAIN_OFF', 'This model version was loaded without its gradient weights');
      explanations = integratedGradientsOf(target, x, task.options);
      break;
    case 'kernelShap':
      explanations = kernelShapOf(target, x, { ...task.options, ...background } as never);
      break;
    case 'exactShap':
      explanations = exactShapOf(target, x, { ...task.options, ...background } as never);
      break;
    case 'lime':
      explanations = limeOf(target, x, { ...task.options, ...background } as never);
      break;
  }
  return explanations.map(({ features: _features, columns: _columns, ...rest }) => rest);
}
