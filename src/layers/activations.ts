/**
 * The activations a dense layer fuses into its native epilogue, by tfjs name, with their native
 * codes and default parameters.
 */
import { ACTIVATION_CODES, type ActivationName } from '../native/index.js';
import { invalidParameter } from '../core/errors.js';

export type { ActivationName };

/** Every activation maas implements, in native code order. */
export const ACTIVATIONS = Object.keys(ACTIVATION_CODES) as ActivationName[];

/** Default alpha per activation (tfjs: LeakyReLU 0.3, ELU 1; Keras ReLU's negative_slope 0). */
export const DEFAULT_ALPHA: Record<ActivationName, number> = {
  linear: 0,
  relu: 0,
  leakyRelu: 0.3,
  elu: 1,
  sigmoid: 0,
  tanh: 0,
  softmax: 0,
  relu6: 0,
  hardSigmoid: 0,
  swish: 0,
  gelu: 0,
  softplus: 0,
  softsign: 0,
  selu: 0,
  exponential: 0,
  kerasRelu: 0,
  geluTanh: 0,
};

/** The activations whose alpha is a parameter (saved, exported and compared). */
export const HAS_ALPHA: readonly ActivationName[] = ['leakyRelu', 'elu', 'kerasRelu'];

/**
 * Keras's spellings of activation names that tfjs spells differently (Keras 'hard_sigmoid' and
 * 'silu', tfjs 'hardSigmoid' and 'swish'); read when importing.
 */
export const KERAS_ACTIVATION_ALIASES: Readonly<Record<string, ActivationName>> = {
  hard_sigmoid: 'hardSigmoid',
  silu: 'swish',
  gelu_new: 'geluTanh',
};

/** Names tfjs gives activations that maas names otherwise, used when writing model.json. */
export const TFJS_ACTIVATION_NAMES: Readonly<Partial<Record<ActivationName, string>>> = {
  geluTanh: 'gelu_new',
};

/** Resolves an activation name (undefined → linear); unknown names are coded errors. */
export function getActivation(name: string, value: unknown): ActivationName {
  if (value === undefined || value === null) return 'linear';
  if (typeof value !== 'string' || !(ACTIVATIONS as string[]).includes(value)) {
    throw invalidParameter(
      name,
      `one of ${ACTIVATIONS.map((a) => `'${a}'`).join(', ')}`,
      value,
      'MAAS_ERR_ACTIVATION_UNKNOWN',
    );
  }
  return value as ActivationName;
}
