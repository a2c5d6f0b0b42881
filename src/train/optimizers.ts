/**
 * Optimizers with tfjs's names and defaults. Each is a small settings object; the update itself
 * runs natively as one fused in-place pass. learningRate may be changed between steps (a schedule).
 */
import { invalidParameter } from '../core/errors.js';
import { checkBoolean, checkFinite, checkOptions } from '../core/validation.js';
import { OPTIMIZER_CODES, type NativeOptimizerConfig, type OptimizerName } from '../native/index.js';

export type { OptimizerName };

/** An optimizer's settings; the native trainer reads them before every step. */
export class Optimizer {
  readonly name: OptimizerName;
  /** Mutable: set it between steps (or from a callback) to schedule the learning rate. */
  learningRate: number;
  readonly config: Readonly<Omit<NativeOptimizerConfig, 'kind' | 'learningRate'>>;

  constructor(name: OptimizerName, learningRate: number, config: Omit<NativeOptimizerConfig, 'kind' | 'learningRate'>) {
    this.name = name;
    this.learningRate = learningRate;
    this.config = Object.freeze({ ...config });
  }

  /** The settings in the addon's shape. */
  toNative(): NativeOptimizerConfig {
    const lr = this.learningRate;
    if (!(Number.isFinite(lr) && lr > 0))
      throw invalidParameter(`${this.name}.learningRate`, 'a positive finite number', lr, 'MAAS_ERR_ARG_RANGE');
    return { kind: OPTIMIZER_CODES[this.name], learningRate: lr, ...this.config };
  }
}

const positive = (name: string, v: unknown, fallback: number): number => {
  if (v === undefined) return fallback;
  const n = checkFinite(name, v);
  if (n <= 0) throw invalidParameter(name, 'a positive number', v, 'MAAS_ERR_ARG_RANGE');
  return n;
};
const unit = (name: string, v: unknown, fallback: number): number => {
  if (v === undefined) return fallback;
  const n = checkFinite(name, v);
  if (n < 0 || n >= 1) throw invalidParameter(name, 'a number in [0, 1)', v, 'MAAS_ERR_ARG_RANGE');
  return n;
};
const clip = (name: string, v: unknown): number => (v === undefined ? 0 : positive(name, v, 0));

/** Options every optimizer accepts. */
export interface CommonOptimizerArgs {
  /** The step size; may be changed between steps through the optimizer's learningRate. */
  learningRate?: number;
  /** Clip gradients to this global L2 norm before the update. */
  clipNorm?: number;
}

/** Stochastic gradient descent, with optional momentum and Nesterov momentum (tfjs defaults: lr 0.01). */
export function sgd(args: CommonOptimizerArgs & { momentum?: number; nesterov?: boolean } = {}): Optimizer {
  const o = checkOptions('sgd', args, ['learningRate', 'momentum', 'nesterov', 'clipNorm']);
  return new Optimizer('sgd', positive('sgd.learningRate', o.learningRate, 0.01), {
    momentum: unit('sgd.momentum', o.momentum, 0),
    nesterov: o.nesterov === undefined ? false : checkBoolean('sgd.nesterov', o.nesterov),
    clipNorm: clip('sgd.clipNorm', o.clipNorm),
  });
}

/** Adam's settings: the common ones plus its moment decay rates and epsilon. */
export type AdamArgs = CommonOptimizerArgs & { beta1?: number; beta2?: number; epsilon?: number };

function adamConfig(name: 'adam' | 'adamw', o: Record<string, unknown>) {
  return {
    beta1: unit(`${name}.beta1`, o.beta1, 0.9),
    beta2: unit(`${name}.beta2`, o.beta2, 0.999),
    epsilon: positive(`${name}.epsilon`, o.epsilon, 1e-7),
    clipNorm: clip(`${name}.clipNorm`, o.clipNorm),
  };
}

/** Adam (tfjs defaults: lr 0.001, beta1 0.9, beta2 0.999, epsilon 1e-7). */
export function adam(args: AdamArgs = {}): Optimizer {
  const o = checkOptions('adam', args, ['learningRate', 'beta1', 'beta2', 'epsilon', 'clipNorm']);
  return new Optimizer('adam', positive('adam.learningRate', o.learningRate, 0.001), adamConfig('adam', o));
}

/** AdamW: Adam with decoupled weight decay (Keras defaults: lr 0.001, weightDecay 0.004). */
export function adamw(args: AdamArgs & { weightDecay?: number } = {}): Optimizer {
  const o = checkOptions('adamw', args, ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'clipNorm']);
  const wd = o.weightDecay === undefined ? 0.004 : checkFinite('adamw.weightDecay', o.weightDecay);
  if (wd < 0) throw invalidParameter('adamw.weightDecay', 'a number >= 0', o.weightDecay, 'MAAS_ERR_ARG_RANGE');
  return new Optimizer('adamw', positive('adamw.learningRate', o.learningRate, 0.001), {
    ...adamConfig('adamw', o),
    weightDecay: wd,
  });
}

/** RMSprop, non-centered (tfjs defaults: lr 0.001, rho 0.9, momentum 0, epsilon 1e-7). */
export function rmsprop(
  args: CommonOptimizerArgs & { rho?: number; momentum?: number; epsilon?: number } = {},
): Optimizer {
  const o = checkOptions('rmsprop', args, ['learningRate', 'rho', 'momentum', 'epsilon', 'clipNorm']);
  return new Optimizer('rmsprop', positive('rmsprop.learningRate', o.learningRate, 0.001), {
    rho: unit('rmsprop.rho', o.rho, 0.9),
    momentum: unit('rmsprop.momentum', o.momentum, 0),
    epsilon: positive('rmsprop.epsilon', o.epsilon, 1e-7),
    clipNorm: clip('rmsprop.clipNorm', o.clipNorm),
  });
}

const FACTORIES: Record<OptimizerName, () => Optimizer> = { sgd, adam, adamw, rmsprop };

/** Resolves a name or an Optimizer; unknown names are coded errors. */
export function getOptimizer(value: unknown): Optimizer {
  if (value instanceof Optimizer) return value;
  if (typeof value === 'string' && Object.hasOwn(FACTORIES, value)) return FACTORIES[value as OptimizerName]();
  throw invalidParameter(
    'compile.optimizer',
    `one of ${Object.keys(FACTORIES)
      .map((n) => `'${n}'`)
      .join(', ')} or an optimizer from sgd()/adam()/adamw()/rmsprop()`,
    value,
    'MAAS_ERR_ARG_RANGE',
  );
}
