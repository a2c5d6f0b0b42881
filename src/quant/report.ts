/**
 * compareQuantized(): how much a quantized model departs from its fp32 source on the same rows:
 * output errors, agreement of the decision (argmax for softmax or multi-output, the 0.5 threshold
 * for sigmoid), and each compiled metric when targets are given. Past the stated bounds it emits
 * a process warning with code MAAS_WARN_QUANT_ACCURACY, so a CLI or a service log shows it.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { toMatrix, type TensorLike } from '../core/tensor.js';
import { checkOptions } from '../core/validation.js';
import type { Sequential } from '../model/sequential.js';
import type { LossName } from '../native/index.js';
import { createMetric } from '../train/metrics.js';
import type { QuantizedModel } from './model.js';

/** The warning code compareQuantized emits when quantization loses more than the bounds allow. */
export const QUANT_ACCURACY_WARNING = 'MAAS_WARN_QUANT_ACCURACY';

/** Bounds of compareQuantized (defaults: 99% agreement, 1 point = 0.01 of a 0..1 metric). */
export interface CompareOptions {
  minAgreement?: number;
  maxMetricDrop?: number;
  /** Emit the process warning when a bound is broken (default true). */
  warn?: boolean;
}

/** One compiled metric on both models. */
export interface MetricChange {
  fp32: number;
  int8: number;
  /** int8 − fp32. */
  change: number;
}

/** What compareQuantized measured. */
export interface QuantizationReport {
  rows: number;
  maxAbsError: number;
  meanAbsError: number;
  /** How decisions are compared: argmax, a 0.5 threshold per output, or none (a linear output). */
  agreementKind: 'argmax' | 'threshold' | 'none';
  /** Fraction of rows (argmax) or outputs (threshold) whose decision is the same; null for 'none'. */
  agreement: number | null;
  metrics: Record<string, MetricChange>;
  bounds: { minAgreement: number; maxMetricDrop: number };
  /** Why the result is outside the bounds; empty when within. */
  violations: string[];
}

/** Metrics where lower is better; the drop bound applies to the others (accuracy-like, 0..1). */
const LOWER_IS_BETTER = new Set(['mse', 'mae']);

function argmaxAt(v: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (v[offset + j]! > v[offset + best]!) best = j;
  return best;
}

function metricValue(
  name: string,
  loss: LossName,
  pred: Float32Array,
  y: Float32Array,
  rows: number,
  cols: number,
): number {
  const m = createMetric(name, loss, cols);
  m.add(pred, y, rows, cols, loss === 'sparseCategoricalCrossentropy');
  return m.result();
}

/**
 * Compares a quantized model with its fp32 source on rows x (and targets y for the compiled
 * metrics). Emits process warning MAAS_WARN_QUANT_ACCURACY when agreement < minAgreement or a
 * metric drops by more than maxMetricDrop.
 */
export function compareQuantized(
  fp32: Sequential,
  int8: QuantizedModel,
  x: TensorLike,
  y?: TensorLike,
  options: CompareOptions = {},
): QuantizationReport {
  const o = checkOptions('compareQuantized options', options, ['minAgreement', 'maxMetricDrop', 'warn']);
  const bounds = { minAgreement: Number(o.minAgreement ?? 0.99), maxMetricDrop: Number(o.maxMetricDrop ?? 0.01) };
  if (!(bounds.minAgreement >= 0 && bounds.minAgreement <= 1))
    throw invalidParameter('compareQuantized.minAgreement', 'a number in [0, 1]', o.minAgreement, 'MAAS_ERR_ARG_RANGE');
  if (!(bounds.maxMetricDrop >= 0))
    throw invalidParameter(
      'compareQuantized.maxMetricDrop',
      'a non-negative number',
      o.maxMetricDrop,
      'MAAS_ERR_ARG_RANGE',
    );
  const inputDim = fp32.inputShape?.[1];
  const cols = fp32.outputShape?.[1];
  if (!inputDim || !cols || int8.inputShape?.[1] !== inputDim || int8.outputShape?.[1] !== cols) {
    throw new MaasError(
      'MAAS_ERR_SHAPE_MISMATCH',
      `Expected two models of the same input and output widths for compareQuantized but received [${fp32.inputShape}] → [${fp32.outputShape}] and [${int8.inputShape}] → [${int8.outputShape}]`,
    );
  }
  const input = toMatrix(x, inputDim, 'x');
  const a = fp32.predict(input.data).values;
  const b = int8.predict(input.data).values;
  let maxAbs = 0,
    sumAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxAbs = Math.max(maxAbs, d);
    sumAbs += d;
  }
  const last = fp32.layers[fp32.layers.length - 1]!;
  const agreementKind =
    last.activation === 'softmax' || (cols > 1 && last.activation !== 'sigmoid')
      ? 'argmax'
      : last.activation === 'sigmoid'
        ? 'threshold'
        : 'none';
  let agreement: number | null = null;
  if (agreementKind === 'argmax') {
    let same = 0;
    for (let r = 0; r < input.rows; r++) if (argmaxAt(a, r * cols, cols) === argmaxAt(b, r * cols, cols)) same++;
    agreement = same / input.rows;
  } else if (agreementKind === 'threshold') {
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i]! > 0.5 === b[i]! > 0.5) same++;
    agreement = same / a.length;
  }
  const metrics: Record<string, MetricChange> = {};
  const violations: string[] = [];
  if (agreement !== null && agreement < bounds.minAgreement) {
    violations.push(
      `decision agreement ${(100 * agreement).toFixed(2)}% is below ${(100 * bounds.minAgreement).toFixed(2)}%`,
    );
  }
  const compiled = fp32.compileInfo;
  if (y !== undefined && compiled) {
    const sparse = compiled.loss === 'sparseCategoricalCrossentropy';
    const targets = toMatrix(y, sparse ? 1 : cols, 'y');
    if (targets.rows !== input.rows)
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected ${input.rows} rows of y for compareQuantized but received ${targets.rows}`,
      );
    for (const name of compiled.metrics) {
      const before = metricValue(name, compiled.loss as LossName, a, targets.data, input.rows, cols);
      const after = metricValue(name, compiled.loss as LossName, b, targets.data, input.rows, cols);
      metrics[name] = { fp32: before, int8: after, change: after - before };
      const drop = LOWER_IS_BETTER.has(name) ? 0 : before - after;
      if (drop > bounds.maxMetricDrop)
        violations.push(
          `${name} drops by ${(100 * drop).toFixed(2)} points (bound ${(100 * bounds.maxMetricDrop).toFixed(2)})`,
        );
    }
  }
  const report: QuantizationReport = {
    rows: input.rows,
    maxAbsError: maxAbs,
    meanAbsError: a.length ? sumAbs / a.length : 0,
    agreementKind,
    agreement,
    metrics,
    bounds,
    violations,
  };
  if (violations.length && o.warn !== false) {
    process.emitWarning(`Quantized model ${int8.name} is outside its accuracy bounds: ${violations.join('; ')}`, {
      code: QUANT_ACCURACY_WARNING,
      type: 'MaasQuantizationWarning',
    });
  }
  return report;
}

/** The report as lines for a terminal. */
export function formatReport(r: QuantizationReport): string[] {
  const lines = [
    `rows compared: ${r.rows}`,
    `max |fp32 − int8|: ${r.maxAbsError.toPrecision(4)}, mean: ${r.meanAbsError.toPrecision(4)}`,
    r.agreement === null
      ? 'decision agreement: n/a (linear output)'
      : `decision agreement (${r.agreementKind}): ${(100 * r.agreement).toFixed(2)}%`,
  ];
  for (const [name, m] of Object.entries(r.metrics))
    lines.push(
      `${name}: fp32 ${m.fp32.toFixed(4)}, int8 ${m.int8.toFixed(4)} (${m.change >= 0 ? '+' : ''}${m.change.toFixed(4)})`,
    );
  lines.push(
    r.violations.length
      ? `OUTSIDE BOUNDS: ${r.violations.join('; ')}`
      : `within bounds (agreement >= ${(100 * r.bounds.minAgreement).toFixed(1)}%, metric drop <= ${(100 * r.bounds.maxMetricDrop).toFixed(1)} points)`,
  );
  return lines;
}
