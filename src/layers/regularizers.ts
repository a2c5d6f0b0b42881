/**
 * Kernel regularizers with tfjs's names: l1, l2 and l1l2 add λ·Σ|w| and λ·Σw² to the loss; the
 * native step adds their gradients in the same pass as the data gradients.
 */
import { invalidParameter } from '../core/errors.js';
import { checkFinite, checkOptions } from '../core/validation.js';

/** Penalty weights for one kernel. */
export interface Regularizer {
  /** The Keras/tfjs class name. */
  readonly className: 'L1L2';
  /** Weight of the sum of absolute values. */
  readonly l1: number;
  /** Weight of the sum of squares. */
  readonly l2: number;
}

function weight(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const n = checkFinite(name, v);
  if (n < 0) throw invalidParameter(name, 'a number >= 0', v, 'MAAS_ERR_ARG_RANGE');
  return n;
}

/** The regularizer factories (tfjs: tf.regularizers.*), default weight 0.01. */
export const regularizers = {
  /** λ·Σ|w|. */
  l1: (args: { l1?: number } = {}): Regularizer => ({
    className: 'L1L2',
    l1: weight('l1.l1', checkOptions('l1', args, ['l1']).l1, 0.01),
    l2: 0,
  }),
  /** λ·Σw². */
  l2: (args: { l2?: number } = {}): Regularizer => ({
    className: 'L1L2',
    l1: 0,
    l2: weight('l2.l2', checkOptions('l2', args, ['l2']).l2, 0.01),
  }),
  /** λ1·Σ|w| + λ2·Σw². */
  l1l2: (args: { l1?: number; l2?: number } = {}): Regularizer => {
    const o = checkOptions('l1l2', args, ['l1', 'l2']);
    return { className: 'L1L2', l1: weight('l1l2.l1', o.l1, 0.01), l2: weight('l1l2.l2', o.l2, 0.01) };
  },
} as const;

/** Resolves a layer's kernelRegularizer option ('l1' | 'l2' | 'l1l2' or an object). */
export function getRegularizer(name: string, value: unknown): Regularizer | null {
  if (value === undefined || value === null) return null;
  if (value === 'l1' || value === 'l2' || value === 'l1l2') return regularizers[value]();
  if (typeof value === 'object' && (value as Regularizer).className === 'L1L2') return value as Regularizer;
  throw invalidParameter(name, "'l1', 'l2', 'l1l2' or an object from regularizers.*", value, 'MAAS_ERR_ARG_RANGE');
}
