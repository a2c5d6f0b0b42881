/**
 * loadModel: any file openModelFile reads (a tfjs-layers model, ours or one saved by
 * @tensorflow/tfjs, tfjs-node or a converter; a Keras .h5; an .onnx chain) as a Sequential,
 * restoring maas's training configuration and preparation pipeline when the file carries them.
 */
import { MAX_SAVED_BACKGROUND_ROWS, backgroundFromJSON, historyFromJSON } from './carried.js';
import { MaasError } from '../core/errors.js';
import { checkOptions } from '../core/validation.js';
import { openModelFile, type OpenedModel, type OpenOptions } from '../io/open.js';
import { dense } from '../layers/dense.js';
import { regularizers } from '../layers/regularizers.js';
import { Pipeline } from '../data/pipeline.js';
import { Optimizer, sgd, adam, adamw, rmsprop, type OptimizerName } from '../train/optimizers.js';
import type { LossName } from '../native/index.js';
import type { MetricName } from '../train/metrics.js';
import { Sequential } from './sequential.js';
import type { DensePrecision } from './packed.js';

const KERAS_LOSSES: Record<string, LossName> = {
  mean_squared_error: 'meanSquaredError',
  mse: 'meanSquaredError',
  mean_absolute_error: 'meanAbsoluteError',
  mae: 'meanAbsoluteError',
  binary_crossentropy: 'binaryCrossentropy',
  categorical_crossentropy: 'categoricalCrossentropy',
  sparse_categorical_crossentropy: 'sparseCategoricalCrossentropy',
};

/** Keras's training_config as a compile() call, when every part of it has a maas equivalent. */
function compileFromKeras(model: Sequential, config: unknown): void {
  const c = config as {
    loss?: unknown;
    optimizer_config?: { class_name?: string; config?: Record<string, number | boolean> };
  } | null;
  const loss = typeof c?.loss === 'string' ? KERAS_LOSSES[c.loss] : undefined;
  const opt = c?.optimizer_config;
  if (!loss || !opt?.class_name) return;
  const o = opt.config ?? {};
  const learningRate = Number(o.learning_rate ?? o.lr);
  const lr = Number.isFinite(learningRate) && learningRate > 0 ? { learningRate } : {};
  const optimizer =
    opt.class_name === 'SGD'
      ? sgd({ ...lr, momentum: Number(o.momentum ?? 0), nesterov: Boolean(o.nesterov) })
      : opt.class_name === 'Adam'
        ? adam({ ...lr, beta1: Number(o.beta_1 ?? 0.9), beta2: Number(o.beta_2 ?? 0.999) })
        : opt.class_name === 'AdamW'
          ? adamw({ ...lr, weightDecay: Number(o.weight_decay ?? 0.004) })
          : opt.class_name === 'RMSprop'
            ? rmsprop({ ...lr, rho: Number(o.rho ?? 0.9), momentum: Number(o.momentum ?? 0) })
            : null;
  if (!optimizer) return;
  try {
    model.compile({ optimizer, loss });
  } catch (e) {
    if (!(e instanceof MaasError)) throw e; // a loss that does not fit the folded output: leave it uncompiled
  }
}

/** loadModel()'s options: openModelFile's, and the precision predict runs in (Sequential.setPrecision). */
export interface LoadOptions extends OpenOptions {
  precision?: DensePrecision;
}

/**
 * Loads a model: a tfjs-layers model.json (or a directory holding one), a Keras .h5 file, or an
 * .onnx file (or a directory holding model.onnx). The format is detected from the path; an int8
 * model loads as its fp32 view (loadQuantizedModel gives the int8 one).
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<Sequential> {
  // A misspelt option (requireDigest for strictIntegrity) must not load the file unchecked.
  checkOptions('loadModel options', options ?? undefined, [
    'precision',
    'strictIntegrity',
    'keys',
    'architecture',
    'constants',
  ]);
  const { precision, ...open } = options ?? {};
  const model = sequentialFromOpened(await openModelFile(path, open));
  if (precision !== undefined) model.setPrecision(precision);
  return model;
}

/**
 * The one place an opened file becomes a Sequential: a Dense per layer over the file's weights
 * (no initializer runs), then the training configuration and preparation it carries.
 */
export function sequentialFromOpened(opened: OpenedModel): Sequential {
  const model = new Sequential();
  for (const l of opened.layers) {
    const layer = dense({
      units: l.units,
      activation: l.activation,
      alpha: l.alpha,
      ...(l.maxValue !== null ? { maxValue: l.maxValue } : {}),
      ...(l.threshold !== 0 ? { threshold: l.threshold } : {}),
      useBias: l.useBias,
      name: l.name,
      ...(model.layers.length === 0 ? { inputShape: [l.inputDim] } : {}),
      ...(l.kernelRegularizer ? { kernelRegularizer: regularizers.l1l2(l.kernelRegularizer) } : {}),
    });
    // The file's weights go in before add() builds the layer, so no initializer runs (for a large
    // model that is a full-size array and a random fill saved).
    layer.kernel = l.kernel;
    layer.bias = l.bias;
    model.add(layer);
  }
  const training = opened.training;
  if (training?.source === 'keras') compileFromKeras(model, training.config);
  else if (training) {
    const c = training.config as {
      loss: LossName;
      metrics: MetricName[];
      optimizer: { name: OptimizerName; learningRate: number; config: Record<string, unknown> };
    };
    model.compile({
      optimizer: new Optimizer(c.optimizer.name, c.optimizer.learningRate, c.optimizer.config),
      loss: c.loss,
      metrics: c.metrics,
    });
  }
  if (opened.preparation) model.setPreparation(Pipeline.fromJSON(opened.preparation));
  if (opened.history !== undefined) model.trainingHistory.push(...historyFromJSON(opened.history, opened.path));
  if (opened.background !== undefined)
    model.setExplanationBackground(backgroundFromJSON(opened.background, opened.inputSize, opened.path), {
      maxRows: MAX_SAVED_BACKGROUND_ROWS,
    });
  return model;
}
