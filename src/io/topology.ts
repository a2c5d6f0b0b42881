/**
 * Keras/tfjs model topology <-> maas layers. Writes a Sequential topology tfjs's loadLayersModel
 * accepts (snake_case configs, activations tfjs lacks as their own layers); reads Sequential
 * topologies from tfjs (both the layers-object and the old list form) and Keras chains, folding
 * activation layers into the Dense before them. Anything else is refused by layer and class.
 */
import { MaasError, describeValue } from '../core/errors.js';
import { KERAS_ACTIVATION_ALIASES, TFJS_ACTIVATION_NAMES, type ActivationName } from '../layers/activations.js';
import type { Dense } from '../layers/dense.js';

/** A Dense layer as read from a file, ready for dense(). */
export interface ParsedDense {
  name: string;
  units: number;
  activation: ActivationName;
  alpha?: number;
  /** kerasRelu's max_value and threshold (a folded Keras ReLU or ThresholdedReLU layer). */
  maxValue?: number;
  threshold?: number;
  useBias: boolean;
  inputDim: number | null;
  kernelRegularizer: { l1: number; l2: number } | null;
  /** A BatchNormalization layer that followed this Dense before any activation: folded at load. */
  batchNorm?: BatchNormSpec;
}

/** A BatchNormalization layer to fold into the Dense before it. */
export interface BatchNormSpec {
  name: string;
  epsilon: number;
  center: boolean;
  scale: boolean;
}

/** The folded kernel and bias: y = γ·(x·W + b − μ)/√(σ² + ε) + β, per output column. */
export function foldBatchNorm(
  kernel: Float32Array,
  bias: Float32Array | null,
  units: number,
  bn: BatchNormSpec,
  params: { gamma?: Float32Array; beta?: Float32Array; mean: Float32Array; variance: Float32Array },
): { kernel: Float32Array; bias: Float32Array } {
  const s = Float64Array.from(
    { length: units },
    (_, j) => (params.gamma ? params.gamma[j]! : 1) / Math.sqrt(params.variance[j]! + bn.epsilon),
  );
  const k = kernel.map((v, i) => v * s[i % units]!);
  const b = Float32Array.from(
    { length: units },
    (_, j) => ((bias ? bias[j]! : 0) - params.mean[j]!) * s[j]! + (params.beta ? params.beta[j]! : 0),
  );
  return { kernel: k, bias: b };
}

type KerasLayer = { class_name: string; config: Record<string, unknown> };

/** Activation strings of a Dense or Activation layer, as tfjs and Keras write them. */
const KERAS_ACTIVATIONS: Record<string, ActivationName> = {
  linear: 'linear',
  relu: 'relu',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
  softmax: 'softmax',
  elu: 'elu',
  relu6: 'relu6',
  hardSigmoid: 'hardSigmoid',
  swish: 'swish',
  gelu: 'gelu',
  softplus: 'softplus',
  softsign: 'softsign',
  selu: 'selu',
  exponential: 'exponential',
  ...KERAS_ACTIVATION_ALIASES,
};

/** The layer (class and snake_case config) that carries a Keras ReLU's parameters in a file. */
function reluLayer(layer: Dense): KerasLayer {
  const name = `${layer.name}_relu`;
  // tfjs's ReLU reads only max_value and its ThresholdedReLU only theta: use those where they say
  // everything, so tfjs computes the same function; Keras's ReLU reads all three.
  if (layer.threshold === 0 && layer.alpha === 0) {
    return { class_name: 'ReLU', config: { max_value: layer.maxValue, name, trainable: true } };
  }
  if (layer.maxValue === null && layer.alpha === 0) {
    return { class_name: 'ThresholdedReLU', config: { theta: layer.threshold, name, trainable: true } };
  }
  return {
    class_name: 'ReLU',
    config: {
      max_value: layer.maxValue,
      negative_slope: layer.alpha,
      threshold: layer.threshold,
      name,
      trainable: true,
    },
  };
}

function initializerJson(layer: Dense, which: 'kernel' | 'bias'): unknown {
  const cfg = layer.getConfig()[`${which}Initializer`] as { className: string; config: Record<string, unknown> };
  const { className, config } = cfg;
  if (['GlorotUniform', 'GlorotNormal', 'HeUniform', 'HeNormal', 'LeCunUniform', 'LeCunNormal'].includes(className)) {
    return { class_name: className, config: { seed: config.seed ?? null } };
  }
  return { class_name: className, config: className === 'Zeros' || className === 'Ones' ? {} : config };
}

/** Keras layers (snake_case configs) for a stack of Dense layers. */
export function toTopology(name: string, layers: readonly Dense[]): unknown {
  const out: KerasLayer[] = [];
  layers.forEach((layer, i) => {
    // tfjs has no leakyRelu activation and implements elu only with alpha 1, and an activation
    // string cannot carry Keras ReLU's parameters: those become layers.
    const separate =
      layer.activation === 'leakyRelu' ||
      (layer.activation === 'elu' && layer.alpha !== 1) ||
      layer.activation === 'kerasRelu';
    out.push({
      class_name: 'Dense',
      config: {
        units: layer.units,
        activation: separate ? 'linear' : (TFJS_ACTIVATION_NAMES[layer.activation] ?? layer.activation),
        use_bias: layer.useBias,
        kernel_initializer: initializerJson(layer, 'kernel'),
        bias_initializer: initializerJson(layer, 'bias'),
        kernel_regularizer: layer.kernelRegularizer
          ? { class_name: 'L1L2', config: { l1: layer.kernelRegularizer.l1, l2: layer.kernelRegularizer.l2 } }
          : null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
        name: layer.name,
        trainable: true,
        ...(i === 0 ? { batch_input_shape: [null, layer.inputDim], dtype: 'float32' } : {}),
      },
    });
    if (layer.activation === 'kerasRelu') {
      out.push(reluLayer(layer));
    } else if (separate) {
      out.push({
        class_name: layer.activation === 'leakyRelu' ? 'LeakyReLU' : 'ELU',
        config: { alpha: layer.alpha, name: `${layer.name}_${layer.activation}`, trainable: true },
      });
    }
  });
  return {
    class_name: 'Sequential',
    config: { name, layers: out },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  };
}

function refuse(layer: KerasLayer, why: string): never {
  const name = (layer.config?.name as string) ?? '(unnamed)';
  throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Layer '${name}' of class ${layer.class_name} is not supported: ${why}`);
}

/** The layer list of a topology: tfjs {config: {layers}}, the old list form, or Keras's model_config. */
function layerList(topology: unknown): KerasLayer[] {
  let t = topology as Record<string, unknown>;
  if (t && typeof t === 'object' && 'model_config' in t) t = t.model_config as Record<string, unknown>;
  const cfg = t?.config;
  const layers = Array.isArray(cfg) ? cfg : (cfg as Record<string, unknown> | undefined)?.layers;
  if (!Array.isArray(layers))
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'Expected a Sequential model topology with a list of layers');
  if (t.class_name !== 'Sequential' && t.class_name !== 'Model' && t.class_name !== 'Functional') {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a Sequential model but the topology's class is ${typeof t.class_name === 'string' ? t.class_name : describeValue(t.class_name)}`,
    );
  }
  return layers as KerasLayer[];
}

function inputDimOf(config: Record<string, unknown>): number | null {
  const shape: unknown = config.batch_input_shape ?? config.batchInputShape;
  if (!shape) return null;
  if (!Array.isArray(shape) || shape.length !== 2 || typeof shape[1] !== 'number') {
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `Expected a rank-2 input shape [null, features] but the file has ${Array.isArray(shape) ? `[${shape.map((d) => (typeof d === 'number' || d === null ? String(d) : typeof d)).join(',')}]` : describeValue(shape)}`,
    );
  }
  return shape[1];
}

/**
 * Reads a topology into Dense layers, folding Activation/ReLU/LeakyReLU/ELU/Softmax into the Dense
 * before them. `kerasVersion` is the file's Keras version where it states one (an .h5's root
 * attribute): Keras 3 redefined hard_sigmoid, so its files are refused there.
 */
export function fromTopology(topology: unknown, options: { kerasVersion?: string | null } = {}): ParsedDense[] {
  if (topology && typeof topology === 'object' && 'modelTopology' in topology) topology = topology.modelTopology;
  const out: ParsedDense[] = [];
  let pendingInput: number | null = null;
  const foldInto = (
    layer: KerasLayer,
    act: ActivationName,
    alpha?: number,
    relu?: { maxValue?: number; threshold?: number },
  ): void => {
    const prev = out[out.length - 1];
    if (!prev || prev.activation !== 'linear')
      refuse(layer, 'an activation layer must follow a Dense layer without an activation');
    prev.activation = act;
    if (alpha !== undefined) prev.alpha = alpha;
    if (relu?.maxValue !== undefined) prev.maxValue = relu.maxValue;
    if (relu?.threshold !== undefined) prev.threshold = relu.threshold;
  };
  /** A ReLU parameter from a Keras (snake_case) or tfjs (camelCase) config: a finite number >= 0. */
  const reluParam = (layer: KerasLayer, value: unknown, what: string): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      refuse(layer, `${what} must be a number >= 0 (as Keras requires) but is ${JSON.stringify(value)}`);
    return value;
  };
  const keras3 = /^[3-9]\./.test(options.kerasVersion ?? '');
  /** An activation string of a layer; Keras 3's hard_sigmoid (x/6 + 0.5) is not tf.keras 2's. */
  const activationOf = (layer: KerasLayer, name: unknown): ActivationName => {
    // An own key only: 'constructor' or 'toString' must not find Object.prototype's members.
    const act =
      typeof name === 'string' && Object.hasOwn(KERAS_ACTIVATIONS, name) ? KERAS_ACTIVATIONS[name] : undefined;
    if (!act)
      refuse(
        layer,
        `activation ${typeof name === 'string' ? `'${name.slice(0, 64)}'` : describeValue(name)} is not one maas implements`,
      );
    if (keras3 && String(name) === 'hard_sigmoid')
      refuse(layer, "Keras 3's hard_sigmoid is x/6 + 0.5; maas implements tf.keras 2's and tfjs's 0.2·x + 0.5");
    return act;
  };
  for (const layer of layerList(topology)) {
    const c = layer.config ?? {};
    // A functional model must still be a chain: every layer takes exactly one input.
    const inbound = (layer as { inbound_nodes?: unknown[][] }).inbound_nodes;
    if (Array.isArray(inbound) && (inbound.length > 1 || (inbound[0] && inbound[0].length > 1))) {
      refuse(layer, 'maas runs chains; this layer has more than one input');
    }
    switch (layer.class_name) {
      case 'InputLayer':
        pendingInput = inputDimOf(c);
        break;
      case 'Dense': {
        const act = activationOf(layer, c.activation ?? 'linear');
        const reg = c.kernel_regularizer as { config?: { l1?: number; l2?: number } } | null | undefined;
        // Keras 1.x spells units output_dim and use_bias bias, and may give input_dim instead of a shape.
        out.push({
          name: typeof c.name === 'string' ? c.name : `dense_${out.length + 1}`,
          units: Number(c.units ?? c.output_dim),
          activation: act,
          useBias: (c.use_bias ?? c.bias) !== false,
          inputDim:
            out.length === 0
              ? (inputDimOf(c) ?? (typeof c.input_dim === 'number' ? c.input_dim : null) ?? pendingInput)
              : null,
          kernelRegularizer: reg?.config ? { l1: reg.config.l1 ?? 0, l2: reg.config.l2 ?? 0 } : null,
        });
        break;
      }
      case 'Activation': {
        foldInto(layer, activationOf(layer, c.activation));
        break;
      }
      case 'ReLU': {
        // Keras ReLU(max_value, negative_slope, threshold); dense() turns the special cases into
        // relu, relu6 and leakyRelu.
        const maxValue = reluParam(layer, c.max_value ?? c.maxValue, 'max_value');
        const slope = reluParam(layer, c.negative_slope ?? c.negativeSlope, 'negative_slope') ?? 0;
        const threshold = reluParam(layer, c.threshold, 'threshold') ?? 0;
        foldInto(layer, 'kerasRelu', slope, { ...(maxValue !== undefined ? { maxValue } : {}), threshold });
        break;
      }
      case 'ThresholdedReLU': {
        const theta = reluParam(layer, c.theta, 'theta') ?? 1; // Keras and tfjs default theta 1
        foldInto(layer, 'kerasRelu', 0, { threshold: theta });
        break;
      }
      case 'LeakyReLU':
        foldInto(layer, 'leakyRelu', Number(c.alpha ?? c.negative_slope ?? 0.3));
        break;
      case 'ELU':
        foldInto(layer, 'elu', Number(c.alpha ?? 1));
        break;
      case 'Softmax':
        if (c.axis !== undefined && c.axis !== -1 && c.axis !== 1)
          refuse(layer, `softmax over axis ${JSON.stringify(c.axis)}`);
        foldInto(layer, 'softmax');
        break;
      case 'Dropout':
        break; // identity at inference
      case 'Flatten':
        break; // the input is already [batch, features]: a rank-2 batch_input_shape is checked above
      case 'BatchNormalization': {
        const prev = out[out.length - 1];
        const axis = Array.isArray(c.axis) ? (c.axis as number[])[0] : c.axis;
        if (axis !== undefined && axis !== -1 && axis !== 1)
          refuse(layer, `normalization over axis ${JSON.stringify(axis)}`);
        if (!prev || prev.activation !== 'linear' || prev.batchNorm)
          refuse(layer, 'it can be folded only into a Dense layer without an activation');
        prev.batchNorm = {
          name: String(c.name),
          epsilon: Number(c.epsilon ?? 1e-3),
          center: c.center !== false,
          scale: c.scale !== false,
        };
        break;
      }
      default:
        refuse(layer, 'maas runs stacks of Dense layers with fused activations');
    }
  }
  if (out.length === 0) throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'The model has no Dense layer');
  if (out[0]!.inputDim === null)
    throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'The first layer has no input shape (batch_input_shape)');
  return out;
}
