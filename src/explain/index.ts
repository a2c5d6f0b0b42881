/**
 * Explanations of a model's predictions: integrated gradients (through the native input
 * gradient), Kernel SHAP, exact Shapley values and LIME, for fp32 and int8 models. Int8 models are
 * explained as they predict (their int8 forward pass), and their gradients are taken through the
 * dequantized weights (the straight-through estimate of the rounding).
 */
import type { InferenceModel } from '../model/shell.js';
import { integratedGradientsOf, type IntegratedGradientsOptions } from './integrated-gradients.js';
import { exactShapOf, kernelShapOf, type ExactShapOptions, type KernelShapOptions } from './shap.js';
import { limeOf, type LimeOptions } from './lime.js';
import { modelTarget, type ExplainTarget } from './target.js';
import type { Explanation, ExplainMethod } from './explanation.js';

export type { Explanation, ExplainMethod, ColumnAttribution } from './explanation.js';
export { EXPLAIN_METHODS, byColumn } from './explanation.js';
export type { IntegratedGradientsOptions, IntegrationRule } from './integrated-gradients.js';
export type { KernelShapOptions, ExactShapOptions } from './shap.js';
export type { LimeOptions } from './lime.js';

/** Each method's entry over a target; its options (the background among them) are checked by the method. */
const METHODS: Record<ExplainMethod, (target: ExplainTarget, x: unknown, options: never) => Explanation[]> = {
  integratedGradients: integratedGradientsOf,
  kernelShap: kernelShapOf,
  exactShap: exactShapOf,
  lime: limeOf,
};

/** Explains each row of x with the method named at run time (the CLI's and a pool worker's way in). */
export function explainWith(
  target: ExplainTarget,
  method: ExplainMethod,
  x: unknown,
  options: Record<string, unknown>,
): Explanation[] {
  return METHODS[method](target, x, options as never);
}

/** Integrated gradients of each row of x (one row or a batch) for one output of the model. */
export function integratedGradients(
  model: InferenceModel,
  x: unknown,
  options?: IntegratedGradientsOptions,
): Explanation[] {
  return integratedGradientsOf(modelTarget(model), x, options);
}

/** Kernel SHAP values of each row of x against options.background (default: the model's saved one). */
export function kernelShap(model: InferenceModel, x: unknown, options: KernelShapOptions = {}): Explanation[] {
  return kernelShapOf(modelTarget(model), x, options);
}

/** Exact Shapley values (all 2^d coalitions; d ≤ 16) of each row of x against options.background (default: the saved one). */
export function exactShap(model: InferenceModel, x: unknown, options: ExactShapOptions = {}): Explanation[] {
  return exactShapOf(modelTarget(model), x, options);
}

/** LIME explanations of each row of x, perturbations scaled by options.background (default: the saved one). */
export function lime(model: InferenceModel, x: unknown, options: LimeOptions = {}): Explanation[] {
  return limeOf(modelTarget(model), x, options);
}
