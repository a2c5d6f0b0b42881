/**
 * What the explanation methods need of a model: its widths, a batched forward pass and (for
 * integrated gradients) the native input gradient. A library model and a pool worker's handles
 * both become an ExplainTarget, so every method runs the same code in either place.
 */
import type { NativeInputGradientHandle, NativeModelHandle } from '../native/index.js';
import type { InferenceModel } from '../model/shell.js';
import { Sequential } from '../model/sequential.js';
import type { Pipeline } from '../data/pipeline.js';
import { MaasError, invalidParameter } from '../core/errors.js';
import { featureRows } from '../data/feature-rows.js';

export interface ExplainTarget {
  readonly inputs: number;
  readonly outputs: number;
  /** The model's outputs for `rows` rows of x (rows × outputs floats). */
  predict(x: Float32Array, rows: number): Float32Array;
  /** dx = (∂y/∂x)ᵀ·dy per row. */
  gradient(x: Float32Array, rows: number, dy: Float32Array): Float32Array;
  /** The model's preparation pipeline, when it has one (it names the features and their raw columns). */
  readonly pipeline: Pipeline | null;
  /** The background saved with the model (rows × inputs), which SHAP and LIME take when given none. */
  readonly background: Float32Array | null;
  /**
   * Kernel SHAP's v(S) natively (masks: count rows of `inputs` bytes, nonzero where the row's value
   * is taken), when the target's forward pass is the round trip's fp32 one; absent otherwise.
   */
  readonly coalitionValues?: (
    row: Float32Array,
    bg: Background,
    masks: Uint8Array,
    count: number,
    output: number,
  ) => Float64Array;
  /**
   * LIME's samples natively: output `output` at row + e_s ⊙ scale for each row of e, and
   * Σ_s w_s y_s e_s; present where coalitionValues is.
   */
  readonly perturbedValues?: (
    row: Float32Array,
    scale: Float32Array,
    e: Float32Array,
    samples: number,
    weights: Float64Array,
    output: number,
  ) => { y: Float64Array; wye: Float64Array };
}

/**
 * A target over native handles (a pool worker's): the model's handle and the round-trip gradient
 * handle (null when the version was loaded without one: integrated gradients are then refused).
 * `fp32Forward`: the model runs in fp32, so the round trip's forward is the model's own and
 * Kernel SHAP's coalitions may run on it.
 */
export function handleTarget(
  model: NativeModelHandle,
  gradients: NativeInputGradientHandle | null,
  pipeline: Pipeline | null,
  fp32Forward = false,
): ExplainTarget {
  const t = target(model.inputSize, model.outputSize, pipeline, null, model, () => {
    if (!gradients)
      throw new MaasError('MAAS_ERR_EXPLAIN_OFF', 'This model version was loaded without its gradient weights');
    return gradients;
  });
  return gradients && fp32Forward ? { ...t, ...nativeSampling(() => gradients) } : t;
}

/** Kernel SHAP's coalitions and LIME's samples through the round-trip handle's native entries. */
function nativeSampling(
  gradients: () => NativeInputGradientHandle,
): Pick<ExplainTarget, 'coalitionValues' | 'perturbedValues'> {
  return {
    coalitionValues: (row, bg, masks, count, output) => {
      const values = new Float64Array(count);
      gradients().coalitionValues(row, bg.data, bg.rows, masks, count, output, values);
      return values;
    },
    perturbedValues: (row, scale, e, samples, weights, output) => {
      const y = new Float64Array(samples);
      const wye = new Float64Array(row.length);
      gradients().perturbedValues(row, scale, e, samples, weights, output, y, wye);
      return { y, wye };
    },
  };
}

/** A library model as a target: predict through its handle, gradients through its round-trip stack. */
export function modelTarget(model: InferenceModel): ExplainTarget {
  const shape = model.inputShape;
  const out = model.outputShape;
  if (!shape || !out)
    throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${model.name} is not built: it has no input shape`);
  const forward = {
    predict(x: Float32Array, rows: number, y: Float32Array) {
      const t = model.predict(x.length === rows * shape[1] ? x : x.subarray(0, rows * shape[1]));
      y.set(t.values);
      t.dispose();
    },
  };
  const gradients = () => model.inputGradients();
  const t = target(shape[1], out[1], model.pipeline, model.explanationBackground, forward, gradients);
  // An fp32 model's forward pass is its round trip's: SHAP's coalitions and LIME's samples run natively there.
  const fp32 = model instanceof Sequential && model.precision === 'fp32';
  return fp32 ? { ...t, ...nativeSampling(gradients) } : t;
}

/** The target both kinds share: outputs and gradients into fresh arrays through the given handles. */
function target(
  inputs: number,
  outputs: number,
  pipeline: Pipeline | null,
  background: Float32Array | null,
  forward: Pick<NativeModelHandle, 'predict'>,
  gradients: () => NativeInputGradientHandle,
): ExplainTarget {
  return {
    inputs,
    outputs,
    pipeline,
    background,
    predict(x, rows) {
      const y = new Float32Array(rows * outputs);
      forward.predict(x, rows, y);
      return y;
    },
    gradient(x, rows, dy) {
      const dx = new Float32Array(rows * inputs);
      gradients().gradient(x, rows, dy, dx);
      return dx;
    },
  };
}

/** Rows of the model's input width from any tensor-like value (a single row may be a flat array). */
export function inputRows(x: unknown, inputs: number, what: string): { data: Float32Array; rows: number } {
  const flat = Array.isArray(x) && x.length === inputs && x.every((v) => typeof v === 'number') ? [x] : x;
  const data = featureRows(flat, inputs, null, what);
  return { data, rows: data.length / inputs };
}

/** The most background rows an explanation takes (each is a forward pass per coalition or sample). */
export const MAX_BACKGROUND_ROWS = 10_000;

/** Background rows, as the methods take them. */
export interface Background {
  data: Float32Array;
  rows: number;
}

/** options.background, else the background saved with the model; refused when there is neither. */
export function backgroundOf(value: unknown, target: ExplainTarget, what: string): Background {
  const d = target.inputs;
  if (value === undefined || value === null) {
    if (target.background) return { data: target.background, rows: target.background.length / d };
    throw new MaasError(
      'MAAS_ERR_EXPLAIN_BACKGROUND',
      `${what} needs background rows: options.background, or a background saved with the model (setExplanationBackground)`,
    );
  }
  const b = inputRows(value, d, `${what} options.background`);
  if (b.rows > MAX_BACKGROUND_ROWS)
    throw invalidParameter(
      `${what} options.background`,
      `at most ${MAX_BACKGROUND_ROWS} rows`,
      `${b.rows} rows`,
      'MAAS_ERR_ARG_RANGE',
    );
  return b;
}

/** The output an explanation is for: `requested`, else the largest output of the row (the predicted class). */
export function chooseOutput(requested: number | undefined, outputs: number, row: Float32Array): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 0 || requested >= outputs)
      throw invalidParameter('output', `an output index in [0, ${outputs - 1}]`, requested, 'MAAS_ERR_ARG_RANGE');
    return requested;
  }
  let best = 0;
  for (let j = 1; j < outputs; j++) if (row[j]! > row[best]!) best = j;
  return best;
}
