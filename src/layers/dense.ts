/**
 * Dense: y = activation(x·kernel + bias), the one layer kind the native stack runs. Holds its
 * config and weights in JS (the source of truth); models pack them for the kernels.
 */
import { MaasError, invalidParameter } from '../core/errors.js';
import { checkBoolean, checkFinite, checkInteger, checkOptions, isPlainObject } from '../core/validation.js';
import { DEFAULT_ALPHA, getActivation, type ActivationName } from './activations.js';
import { getInitializer, type Initializer, type InitializerIdentifier } from './initializers.js';
import { getRegularizer, type Regularizer } from './regularizers.js';

/** Dense layer options, named as in tfjs's tf.layers.dense. */
export interface DenseLayerArgs {
  /** Output width. */
  units: number;
  /** Fused activation; 'linear' when omitted. */
  activation?: ActivationName;
  /** Slope for leakyRelu (default 0.3), scale for elu (default 1), negative slope for kerasRelu. */
  alpha?: number;
  /**
   * Keras ReLU's max_value (tfjs: tf.layers.reLU({maxValue})): with activation 'relu' (or
   * 'kerasRelu'), outputs are clipped to it. Together with `threshold` and `negativeSlope` this
   * is Keras's ReLU layer, f(x) = x > threshold ? min(x, maxValue) : negativeSlope·(x − threshold),
   * fused into this layer. Each must be >= 0, as Keras requires.
   */
  maxValue?: number;
  /** Keras ReLU's threshold (default 0); see maxValue. */
  threshold?: number;
  /** Keras ReLU's negative_slope (default 0); see maxValue. */
  negativeSlope?: number;
  /** Whether the layer adds a bias (default true). */
  useBias?: boolean;
  /** Input shape without the batch dimension, e.g. [100]; only the first layer needs it. */
  inputShape?: number[];
  /** Same as inputShape: [inputDim]. */
  inputDim?: number;
  /** Kernel initializer, by name or object (default glorotUniform). */
  kernelInitializer?: InitializerIdentifier;
  /** Bias initializer (default zeros). */
  biasInitializer?: InitializerIdentifier;
  /** Kernel penalty added to the training loss (l1, l2, l1l2). */
  kernelRegularizer?: Regularizer | 'l1' | 'l2' | 'l1l2';
  /** Layer name; unique names are generated when omitted. */
  name?: string;
}

const KNOWN = [
  'units',
  'activation',
  'alpha',
  'maxValue',
  'threshold',
  'negativeSlope',
  'useBias',
  'inputShape',
  'inputDim',
  'kernelInitializer',
  'biasInitializer',
  'kernelRegularizer',
  'name',
];

let layerCounter = 0;

/** A fully connected layer. */
export class Dense {
  /** The Keras/tfjs class name. */
  readonly className = 'Dense';
  /** The layer's name: the one given, else dense_DenseN, N counting layers made in the process. */
  readonly name: string;
  /** Output width. */
  readonly units: number;
  /** The fused activation. */
  readonly activation: ActivationName;
  /** The slope or scale of leakyRelu and elu. */
  readonly alpha: number;
  /** kerasRelu's max_value, or null for none. */
  readonly maxValue: number | null;
  /** kerasRelu's threshold (0 for every other activation). */
  readonly threshold: number;
  /** Whether the layer adds a bias. */
  readonly useBias: boolean;
  /** The kernel's penalty in training, or null. */
  readonly kernelRegularizer: Regularizer | null;
  /** The input width from inputShape/inputDim, or null until the layer is built. */
  inputDim: number | null;
  private readonly kernelInitializer: Initializer;
  private readonly biasInitializer: Initializer;
  /** The kernel [inputDim, units], row-major; null until built. */
  kernel: Float32Array | null = null;
  /** The bias [units], or null when useBias is false or before build. */
  bias: Float32Array | null = null;

  constructor(args: DenseLayerArgs) {
    if (!isPlainObject(args)) throw invalidParameter('dense(args)', 'an options object with units', args);
    checkOptions('dense', args, KNOWN);
    this.units = checkInteger('dense.units', args.units, 1, 1 << 24);
    const named = getActivation('dense.activation', args.activation);
    const relu = resolveReluOptions(named, args);
    this.activation = relu ? relu.activation : named;
    this.maxValue = relu?.activation === 'kerasRelu' ? relu.maxValue : null;
    this.threshold = relu?.activation === 'kerasRelu' ? relu.threshold : 0;
    this.alpha = relu
      ? relu.negativeSlope
      : args.alpha === undefined
        ? DEFAULT_ALPHA[this.activation]
        : checkFinite('dense.alpha', args.alpha);
    this.useBias = args.useBias === undefined ? true : checkBoolean('dense.useBias', args.useBias);
    this.inputDim = resolveInputDim(args);
    this.kernelInitializer = getInitializer('dense.kernelInitializer', args.kernelInitializer, 'glorotUniform');
    this.biasInitializer = getInitializer('dense.biasInitializer', args.biasInitializer, 'zeros');
    this.kernelRegularizer = getRegularizer('dense.kernelRegularizer', args.kernelRegularizer);
    if (args.name !== undefined && (typeof args.name !== 'string' || args.name.length === 0)) {
      throw invalidParameter('dense.name', 'a non-empty string', args.name);
    }
    this.name = args.name ?? `dense_Dense${++layerCounter}`;
  }

  /** True once the weights exist. */
  get built(): boolean {
    return this.kernel !== null;
  }

  /** Creates the weights for an input width (a no-op when already built for it). */
  build(inputDim: number): void {
    if (this.inputDim !== null && this.inputDim !== inputDim) {
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Layer ${this.name} expects inputs of width ${this.inputDim} but the previous layer outputs ${inputDim}`,
      );
    }
    this.inputDim = inputDim;
    if (this.kernel) return;
    this.kernel = this.kernelInitializer.init(inputDim * this.units, inputDim, this.units);
    this.bias = this.useBias ? this.biasInitializer.init(this.units, this.units, this.units) : null;
  }

  /**
   * The activation and its parameters as dense() takes them, so a copy of this layer can be made
   * with `dense({units, ...layer.activationArgs()})`.
   */
  activationArgs(): Pick<DenseLayerArgs, 'activation' | 'alpha' | 'maxValue' | 'threshold'> {
    return {
      activation: this.activation,
      alpha: this.alpha,
      ...(this.maxValue !== null ? { maxValue: this.maxValue } : {}),
      ...(this.activation === 'kerasRelu' ? { threshold: this.threshold } : {}),
    };
  }

  /** The activation parameters as the addon takes them in a layer spec. */
  nativeActivationParams(): { alpha: number; maxValue?: number; threshold?: number } {
    return {
      alpha: this.alpha,
      ...(this.maxValue !== null ? { maxValue: this.maxValue } : {}),
      ...(this.threshold !== 0 ? { threshold: this.threshold } : {}),
    };
  }

  /** Number of weights: inputDim·units (+ units with a bias). */
  countParams(): number {
    if (this.inputDim === null) return 0;
    return this.inputDim * this.units + (this.useBias ? this.units : 0);
  }

  /** The layer's config in tfjs's shape (for summaries and, later, model.json). */
  getConfig(): Record<string, unknown> {
    return {
      name: this.name,
      units: this.units,
      activation: this.activation,
      ...(this.activation === 'leakyRelu' || this.activation === 'elu' ? { alpha: this.alpha } : {}),
      ...(this.activation === 'kerasRelu'
        ? { maxValue: this.maxValue, threshold: this.threshold, negativeSlope: this.alpha }
        : {}),
      useBias: this.useBias,
      kernelInitializer: { className: this.kernelInitializer.className, config: this.kernelInitializer.config },
      biasInitializer: { className: this.biasInitializer.className, config: this.biasInitializer.config },
      ...(this.kernelRegularizer
        ? {
            kernelRegularizer: {
              className: 'L1L2',
              config: { l1: this.kernelRegularizer.l1, l2: this.kernelRegularizer.l2 },
            },
          }
        : {}),
      ...(this.inputDim !== null ? { batchInputShape: [null, this.inputDim] } : {}),
    };
  }
}

/**
 * Keras ReLU's parameters when the layer asks for them: activation 'kerasRelu', or 'relu' with any
 * of maxValue/threshold/negativeSlope. Null for a plain activation; refused with any other one.
 * The special cases become their own activations, as Keras's backend does (max 6 is relu6, whose
 * int8 epilogue is fused; a slope alone is leakyRelu; nothing at all is relu).
 */
function resolveReluOptions(
  activation: ActivationName,
  args: DenseLayerArgs,
): { activation: ActivationName; maxValue: number | null; threshold: number; negativeSlope: number } | null {
  const given = args.maxValue !== undefined || args.threshold !== undefined || args.negativeSlope !== undefined;
  if (!given && activation !== 'kerasRelu') return null;
  if (activation !== 'relu' && activation !== 'kerasRelu') {
    throw invalidParameter(
      'dense.activation',
      "'relu' or 'kerasRelu' when maxValue, threshold or negativeSlope is given",
      activation,
      'MAAS_ERR_LAYER_CONFIG',
    );
  }
  if (args.negativeSlope !== undefined && args.alpha !== undefined && args.negativeSlope !== args.alpha) {
    throw invalidParameter(
      'dense.negativeSlope',
      `the same value as alpha (${args.alpha})`,
      args.negativeSlope,
      'MAAS_ERR_LAYER_CONFIG',
    );
  }
  const nonNegative = (name: string, v: unknown): number => {
    const x = checkFinite(name, v);
    if (x < 0) throw invalidParameter(name, 'a number >= 0 (as Keras requires)', v, 'MAAS_ERR_LAYER_CONFIG');
    return x;
  };
  const maxValue =
    args.maxValue === undefined || args.maxValue === null ? null : nonNegative('dense.maxValue', args.maxValue);
  const threshold = args.threshold === undefined ? 0 : nonNegative('dense.threshold', args.threshold);
  const negativeSlope = nonNegative('dense.negativeSlope', args.negativeSlope ?? args.alpha ?? 0);
  let canonical: ActivationName = 'kerasRelu';
  if (threshold === 0 && negativeSlope === 0 && maxValue === null) canonical = 'relu';
  else if (threshold === 0 && negativeSlope === 0 && maxValue === 6) canonical = 'relu6';
  else if (threshold === 0 && maxValue === null) canonical = 'leakyRelu';
  return { activation: canonical, maxValue, threshold, negativeSlope };
}

function resolveInputDim(args: DenseLayerArgs): number | null {
  if (args.inputShape !== undefined) {
    if (!Array.isArray(args.inputShape) || args.inputShape.length !== 1) {
      throw invalidParameter(
        'dense.inputShape',
        'a one-element array [features] (flatten wider inputs first)',
        args.inputShape,
        'MAAS_ERR_LAYER_CONFIG',
      );
    }
    const dim = checkInteger('dense.inputShape[0]', args.inputShape[0], 1, 1 << 24);
    if (args.inputDim !== undefined && args.inputDim !== dim) {
      throw invalidParameter(
        'dense.inputDim',
        `${dim} (to agree with inputShape)`,
        args.inputDim,
        'MAAS_ERR_LAYER_CONFIG',
      );
    }
    return dim;
  }
  if (args.inputDim !== undefined) return checkInteger('dense.inputDim', args.inputDim, 1, 1 << 24);
  return null;
}

/** Creates a Dense layer (tfjs: tf.layers.dense). */
export function dense(args: DenseLayerArgs): Dense {
  return new Dense(args);
}
