/**
 * Metrics accumulated over an epoch from the predictions each native step returns, with tfjs's
 * names: accuracy, binaryAccuracy, categoricalAccuracy, mse, mae, precision, recall, auc.
 */
import { invalidParameter } from '../core/errors.js';
import type { LossName } from '../native/index.js';

/** The metric names compile() accepts. */
export const METRIC_NAMES = [
  'accuracy',
  'binaryAccuracy',
  'categoricalAccuracy',
  'mse',
  'mae',
  'precision',
  'recall',
  'auc',
] as const;
/** A metric name as compile() accepts it. */
export type MetricName = (typeof METRIC_NAMES)[number];

/** Streams batches of (predictions, targets) and reports one number per epoch. */
export interface MetricAccumulator {
  readonly name: string;
  add(pred: Float32Array, target: Float32Array, rows: number, cols: number, sparse: boolean): void;
  result(): number;
}

function argmax(v: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (v[offset + j]! > v[offset + best]!) best = j;
  return best;
}

function ratio(
  name: string,
  count: (p: Float32Array, t: Float32Array, rows: number, cols: number, sparse: boolean) => [number, number],
): MetricAccumulator {
  let hit = 0;
  let total = 0;
  return {
    name,
    add(p, t, rows, cols, sparse) {
      const [h, n] = count(p, t, rows, cols, sparse);
      hit += h;
      total += n;
    },
    result: () => (total === 0 ? 0 : hit / total),
  };
}

const binaryAccuracy = (name: string): MetricAccumulator =>
  ratio(name, (p, t) => {
    let h = 0;
    for (let i = 0; i < p.length; i++) h += (p[i]! > 0.5 ? 1 : 0) === (t[i]! > 0.5 ? 1 : 0) ? 1 : 0;
    return [h, p.length];
  });

const categoricalAccuracy = (name: string): MetricAccumulator =>
  ratio(name, (p, t, rows, cols, sparse) => {
    let h = 0;
    for (let i = 0; i < rows; i++)
      h += argmax(p, i * cols, cols) === (sparse ? t[i]! : argmax(t, i * cols, cols)) ? 1 : 0;
    return [h, rows];
  });

const meanError = (name: string, f: (d: number) => number): MetricAccumulator =>
  ratio(name, (p, t) => {
    let s = 0;
    for (let i = 0; i < p.length; i++) s += f(p[i]! - t[i]!);
    return [s, p.length];
  });

const confusion = (name: string, pick: (tp: number, fp: number, fn: number) => [number, number]): MetricAccumulator => {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  return {
    name,
    add(p, t) {
      for (let i = 0; i < p.length; i++) {
        const yp = p[i]! > 0.5;
        const yt = t[i]! > 0.5;
        if (yp && yt) tp++;
        else if (yp) fp++;
        else if (yt) fn++;
      }
    },
    result() {
      const [num, den] = pick(tp, fp, fn);
      return den === 0 ? 0 : num / den;
    },
  };
};

/** ROC AUC from every (score, label) pair of the epoch: the rank statistic, ties averaged. */
const auc = (): MetricAccumulator => {
  const scores: number[] = [];
  const labels: number[] = [];
  return {
    name: 'auc',
    add(p, t) {
      for (let i = 0; i < p.length; i++) {
        scores.push(p[i]!);
        labels.push(t[i]! > 0.5 ? 1 : 0);
      }
    },
    result() {
      const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
      let pos = 0;
      let rankSum = 0;
      for (let i = 0; i < order.length;) {
        let j = i;
        while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
        const rank = (i + j) / 2 + 1;
        for (let k = i; k <= j; k++)
          if (labels[order[k]!]) {
            pos++;
            rankSum += rank;
          }
        i = j + 1;
      }
      const neg = order.length - pos;
      return pos === 0 || neg === 0 ? 0 : (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
    },
  };
};

/** A fresh accumulator per metric name; 'accuracy' follows the loss and output width, as in tfjs. */
export function createMetric(name: unknown, loss: LossName, outputs: number): MetricAccumulator {
  switch (name) {
    case 'accuracy':
    case 'acc':
      return loss === 'binaryCrossentropy' || (outputs === 1 && loss !== 'sparseCategoricalCrossentropy')
        ? binaryAccuracy('acc')
        : categoricalAccuracy('acc');
    case 'binaryAccuracy':
      return binaryAccuracy('binaryAccuracy');
    case 'categoricalAccuracy':
      return categoricalAccuracy('categoricalAccuracy');
    case 'mse':
      return meanError('mse', (d) => d * d);
    case 'mae':
      return meanError('mae', Math.abs);
    case 'precision':
      return confusion('precision', (tp, fp) => [tp, tp + fp]);
    case 'recall':
      return confusion('recall', (tp, _fp, fn) => [tp, tp + fn]);
    case 'auc':
      return auc();
    default:
      throw invalidParameter(
        'compile.metrics[]',
        `one of ${METRIC_NAMES.map((m) => `'${m}'`).join(', ')}`,
        name,
        'MAAS_ERR_ARG_RANGE',
      );
  }
}
