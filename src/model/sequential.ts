/**
 * Sequential: a stack of Dense layers with tfjs's API (add, predict, summary, getWeights,
 * setWeights). Prediction packs the weights once into a SharedArrayBuffer and runs the whole
 * stack in one native call.
 */
import { MaasError, fromNative, invalidParameter } from '../core/errors.js';
import { Tensor, toMatrix, type TensorLike } from '../core/tensor.js';
import { checkInteger, checkOptions, isPlainObject } from '../core/validation.js';
import { Dense } from '../layers/dense.js';
import {
  ACTIVATION_CODES,
  LOSS_CODES,
  native,
  type NativeCompiledModel,
  type NativeLayerSpec,
  type NativeTrainer,
} from '../native/index.js';
import { openPackedModel } from './packed.js';
import type { History } from '../train/callbacks.js';
import { writeArtifacts, type ModelArtifacts, type WeightSpec, type WriteHooks } from '../io/artifacts.js';
import { toTopology } from './topology.js';
import { buildDenseOnnx } from '../io/onnx-export.js';
import { writeFile } from 'node:fs/promises';
import type { Pipeline, RawRows } from '../data/pipeline.js';
import {
  evaluateDataset,
  fitDataset,
  parseCompileArgs,
  toDataset,
  toScalars,
  trainBatch,
  type CompileArgs,
  type CompiledConfig,
  type FitArgs,
  type TrainingTarget,
} from '../train/engine.js';

/** Options of sequential(), as in tfjs. */
export interface SequentialArgs {
  layers?: Dense[];
  name?: string;
}

/** A model's weights packed for one kernel: shareable with workers as is. */
export interface PackedModel {
  /** The packed bytes (header, layer records, weight panels). */
  readonly buffer: SharedArrayBuffer;
  /** The kernel the panels are laid out for. */
  readonly kernel: string;
  /** 'fp32' (a CompiledModel buffer, also when absent) or 'int8' (a QuantizedModel buffer). */
  readonly format?: 'fp32' | 'int8';
}

let modelCounter = 0;

/** A linear stack of dense layers. */
export class Sequential {
  readonly name: string;
  private readonly stack: Dense[] = [];
  private handle: NativeCompiledModel | null = null;
  private packedModel: PackedModel | null = null;
  private nativeTrainer: NativeTrainer | null = null;
  private compileConfig: CompiledConfig | null = null;
  private disposed = false;
  /** Set by a callback (earlyStopping) to end fit after the current epoch. */
  stopTraining = false;
  /** The fitted preparation pipeline for raw inputs, saved with the model; null when none. */
  preparation: Pipeline | null = null;

  constructor(args: SequentialArgs = {}) {
    checkOptions('sequential', args, ['layers', 'name']);
    this.name = args.name ?? `sequential_${++modelCounter}`;
    if (args.layers !== undefined) {
      if (!Array.isArray(args.layers)) throw invalidParameter('sequential.layers', 'an array of layers', args.layers);
      for (const layer of args.layers) this.add(layer);
    }
  }

  /** The layers, first to last. */
  get layers(): readonly Dense[] {
    return this.stack;
  }

  /** [null, inputDim] once the first layer knows its input width. */
  get inputShape(): [null, number] | null {
    const dim = this.stack[0]?.inputDim;
    return dim == null ? null : [null, dim];
  }

  /** [null, units of the last layer]. */
  get outputShape(): [null, number] | null {
    const last = this.stack[this.stack.length - 1];
    return last ? [null, last.units] : null;
  }

  /** Appends a layer; builds it at once when the input width is known. */
  add(layer: Dense): void {
    this.checkLive();
    if (!(layer instanceof Dense)) throw invalidParameter('add(layer)', 'a layer made by dense()', layer);
    if (this.stack.includes(layer))
      throw new MaasError('MAAS_ERR_LAYER_CONFIG', `Layer ${layer.name} is already in model ${this.name}`);
    const prev = this.stack[this.stack.length - 1];
    if (prev) {
      layer.build(prev.units);
    } else if (layer.inputDim === null) {
      throw new MaasError(
        'MAAS_ERR_LAYER_CONFIG',
        `The first layer of ${this.name} needs an inputShape (e.g. dense({units, inputShape: [features]}))`,
      );
    } else {
      layer.build(layer.inputDim);
    }
    this.stack.push(layer);
    this.invalidate();
  }

  /** Runs the model on a batch: x is [batch, inputDim] (a Tensor, nested arrays or a Float32Array). */
  predict(x: TensorLike, options?: { batchSize?: number }): Tensor {
    const handle = this.compiled();
    if (options !== undefined) checkOptions('predict options', options, ['batchSize', 'verbose']);
    // Widths come from the layers, not the handle: a native accessor call costs more than the
    // whole batch-1 forward pass of a small model.
    const inputDim = this.stack[0]!.inputDim!;
    const units = this.stack[this.stack.length - 1]!.units;
    const input = toMatrix(x, inputDim, 'x');
    const out = new Float32Array(input.rows * units);
    try {
      handle.predict(input.data, input.rows, out);
    } catch (e) {
      throw fromNative(e);
    }
    return new Tensor(out, [input.rows, units]);
  }

  /** Attaches a fitted preparation pipeline: predictRaw and the service apply it to raw rows. */
  setPreparation(pipeline: Pipeline | null): void {
    this.checkLive();
    if (pipeline && this.stack[0] && pipeline.width !== this.stack[0].inputDim) {
      throw new MaasError(
        'MAAS_ERR_SHAPE_MISMATCH',
        `Expected a pipeline producing ${this.stack[0].inputDim} features but it produces ${pipeline.width}`,
      );
    }
    this.preparation = pipeline;
  }

  /** Predicts from raw rows (records or arrays of column values) through the preparation pipeline. */
  predictRaw(rows: RawRows): Tensor {
    if (!this.preparation)
      throw new MaasError(
        'MAAS_ERR_MODEL_EMPTY',
        `Model ${this.name} has no preparation pipeline: use predict() on numeric features, or setPreparation()`,
      );
    return this.predict(this.preparation.transform(rows));
  }

  /** The weights as tensors, kernel then bias for each layer (copies). */
  getWeights(): Tensor[] {
    this.checkLive();
    const out: Tensor[] = [];
    for (const layer of this.stack) {
      out.push(new Tensor(layer.kernel!.slice(), [layer.inputDim!, layer.units]));
      if (layer.bias) out.push(new Tensor(layer.bias.slice(), [layer.units]));
    }
    return out;
  }

  /** Replaces every weight, in getWeights() order; shapes must match exactly. */
  setWeights(weights: readonly (Tensor | Float32Array | number[] | number[][])[]): void {
    this.checkLive();
    if (!Array.isArray(weights)) throw invalidParameter('setWeights(weights)', 'an array of tensors', weights);
    const expected = this.stack.reduce((n, l) => n + (l.useBias ? 2 : 1), 0);
    if (weights.length !== expected) {
      throw new MaasError(
        'MAAS_ERR_WEIGHTS_MISMATCH',
        `Expected ${expected} weight tensors for setWeights but received ${weights.length}`,
      );
    }
    const staged: { layer: Dense; kernel: Float32Array; bias: Float32Array | null }[] = [];
    let i = 0;
    for (const layer of this.stack) {
      const kernel = weightValues(
        weights[i++],
        layer.inputDim! * layer.units,
        `weights[${i - 1}] (${layer.name} kernel [${layer.inputDim}, ${layer.units}])`,
      );
      const bias = layer.useBias
        ? weightValues(weights[i++], layer.units, `weights[${i - 1}] (${layer.name} bias [${layer.units}])`)
        : null;
      staged.push({ layer, kernel, bias });
    }
    for (const s of staged) {
      s.layer.kernel = s.kernel;
      s.layer.bias = s.bias;
    }
    this.invalidate();
  }

  /** Sets the optimizer, loss and metrics for fit/evaluate/trainOnBatch (tfjs's compile). */
  compile(args: CompileArgs): void {
    this.checkLive();
    const config = parseCompileArgs(args);
    const last = this.stack[this.stack.length - 1];
    if (!last) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    const categorical = config.loss === 'categoricalCrossentropy' || config.loss === 'sparseCategoricalCrossentropy';
    if (categorical !== (last.activation === 'softmax') && (categorical || config.loss === 'binaryCrossentropy')) {
      throw new MaasError(
        'MAAS_ERR_LOSS_OUTPUT_MISMATCH',
        `Expected ${categorical ? 'a softmax output layer' : 'an output layer other than softmax'} for loss '${config.loss}' but the last layer's activation is '${last.activation}'`,
      );
    }
    this.compileConfig = config;
    this.dropTrainer();
  }

  /** Trains on x and y (tfjs's fit): epochs, batchSize, validationSplit | validationData, shuffle, seed, callbacks, verbose. */
  async fit(x: TensorLike, y: TensorLike, args: FitArgs = {}): Promise<History> {
    return fitDataset(this.target(), x, y, args);
  }

  /** Loss (and metrics) on x and y without updating the model: a scalar Tensor or [loss, ...metrics]. */
  evaluate(x: TensorLike, y: TensorLike, args: { batchSize?: number } = {}): Tensor | Tensor[] {
    const o = checkOptions('evaluate', args, ['batchSize', 'verbose']);
    const target = this.target();
    const batchSize = o.batchSize === undefined ? 32 : checkInteger('evaluate.batchSize', o.batchSize, 1);
    return toScalars(evaluateDataset(target, toDataset(x, y, target), batchSize));
  }

  /** One gradient step on one batch: the loss, or [loss, ...metrics] (tfjs's trainOnBatch). */
  trainOnBatch(x: TensorLike, y: TensorLike): number | number[] {
    const target = this.target();
    const values = Object.values(trainBatch(target, toDataset(x, y, target)));
    return values.length === 1 ? values[0]! : values;
  }

  /**
   * Saves the model into `dir` as tfjs-layers model.json + weights (loadable by tfjs's
   * loadLayersModel and by loadModel), with the training configuration and signature in the
   * `maas` extension field. Atomic: a crash mid-save leaves the previous model in `dir` intact.
   */
  async save(dir: string, hooks?: WriteHooks): Promise<{ modelJson: string }> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalidParameter('save(dir)', 'a directory path', dir);
    return { modelJson: await writeArtifacts(dir, this.toArtifacts(), hooks) };
  }

  /** The model as ONNX bytes (opset 13): a Gemm per layer (or MatMul + Add) and its activation. */
  toOnnx(options: { op?: 'gemm' | 'matmul' } = {}): Uint8Array {
    this.checkLive();
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    return buildDenseOnnx(
      this.stack.map((l) => ({
        in: l.inputDim!,
        out: l.units,
        weights: l.kernel!,
        bias: l.bias,
        activation: l.activation,
        ...l.nativeActivationParams(),
      })),
      options,
    );
  }

  /** Writes the model as an .onnx file, for onnxruntime, Triton or any ONNX tool. */
  async saveOnnx(path: string, options: { op?: 'gemm' | 'matmul' } = {}): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) throw invalidParameter('saveOnnx(path)', 'a file path', path);
    await writeFile(path, this.toOnnx(options));
  }

  /** The model as file artifacts: topology, weight specs and bytes, extension field. */
  toArtifacts(): ModelArtifacts {
    this.checkLive();
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    const specs: WeightSpec[] = [];
    const parts: Float32Array[] = [];
    for (const layer of this.stack) {
      specs.push({ name: `${layer.name}/kernel`, shape: [layer.inputDim!, layer.units], dtype: 'float32' });
      parts.push(layer.kernel!);
      if (layer.bias) {
        specs.push({ name: `${layer.name}/bias`, shape: [layer.units], dtype: 'float32' });
        parts.push(layer.bias);
      }
    }
    const weightData = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let offset = 0;
    for (const p of parts) {
      weightData.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), offset);
      offset += p.byteLength;
    }
    const c = this.compileConfig;
    return {
      modelTopology: toTopology(this.name, this.stack),
      weightSpecs: specs,
      weightData,
      generatedBy: 'maas 0.1.0',
      maas: {
        formatVersion: 1,
        signature: {
          inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, this.stack[0]!.inputDim!] }],
          outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, this.stack[this.stack.length - 1]!.units] }],
        },
        weightsSha256: '',
        ...(c
          ? {
              trainingConfig: {
                loss: c.loss,
                metrics: c.metrics,
                optimizer: {
                  name: c.optimizer.name,
                  learningRate: c.optimizer.learningRate,
                  config: c.optimizer.config,
                },
              },
            }
          : {}),
        ...(this.preparation ? { preparation: this.preparation.toJSON() } : {}),
      },
    };
  }

  /** Total weight count. */
  countParams(): number {
    return this.stack.reduce((n, l) => n + l.countParams(), 0);
  }

  /** Prints a table of layers, output shapes and parameter counts (tfjs's summary layout). */
  summary(lineLength = 65, positions = [0.45, 0.85, 1], printFn: (line: string) => void = console.log): void {
    const cols = positions.map((p) => Math.floor(lineLength * p));
    const row = (cells: string[]): string => {
      let line = '';
      cells.forEach((c, j) => {
        line = (line + c).slice(0, cols[j]).padEnd(cols[j]!);
      });
      return line;
    };
    printFn('_'.repeat(lineLength));
    printFn(row(['Layer (type)', 'Output shape', 'Param #']));
    printFn('='.repeat(lineLength));
    this.stack.forEach((layer, j) => {
      const act = layer.activation === 'linear' ? '' : ` ${layer.activation}`;
      printFn(row([`${layer.name} (Dense${act})`, `[null,${layer.units}]`, String(layer.countParams())]));
      printFn(j === this.stack.length - 1 ? '='.repeat(lineLength) : '_'.repeat(lineLength));
    });
    const total = this.countParams();
    printFn(`Total params: ${total}`);
    printFn(`Trainable params: ${total}`);
    printFn('Non-trainable params: 0');
    printFn('_'.repeat(lineLength));
  }

  /** The weights packed for this thread's kernel, in a SharedArrayBuffer (made once, reused). */
  packed(): PackedModel {
    this.checkLive();
    if (this.packedModel) return this.packedModel;
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    const specs = this.nativeSpecs();
    try {
      const bytes = native.packedStackByteLength(specs);
      const buffer = new SharedArrayBuffer(bytes);
      const kernel = native.packStack(
        specs,
        this.stack.map((l) => l.kernel!),
        this.stack.map((l) => l.bias),
        new Uint8Array(buffer),
      );
      this.packedModel = { buffer, kernel, format: 'fp32' };
    } catch (e) {
      throw fromNative(e);
    }
    return this.packedModel;
  }

  /** The loss and metrics given to compile(), or null before compile (what reports compare). */
  get compileInfo(): { loss: string; metrics: readonly string[] } | null {
    const c = this.compileConfig;
    return c ? { loss: c.loss, metrics: [...c.metrics] } : null;
  }

  /** Frees the native handle and packed weights; later calls throw MAAS_ERR_MODEL_DISPOSED. */
  dispose(): void {
    this.invalidate();
    this.disposed = true;
  }

  private target(): TrainingTarget {
    this.checkLive();
    const config = this.compileConfig;
    if (!config)
      throw new MaasError(
        'MAAS_ERR_MODEL_NOT_COMPILED',
        `Model ${this.name} must be compiled before training or evaluation: call model.compile({optimizer, loss})`,
      );
    const model = this;
    return {
      inputDim: this.stack[0]!.inputDim!,
      outputDim: this.stack[this.stack.length - 1]!.units,
      config,
      get stopTraining() {
        return model.stopTraining;
      },
      set stopTraining(v: boolean) {
        model.stopTraining = v;
      },
      trainer: () => this.trainer(config),
      weightsChanged: () => this.invalidateInference(),
    };
  }

  /** The layers as the addon describes them (packing and training share it). */
  private nativeSpecs(): NativeLayerSpec[] {
    return this.stack.map((l) => ({
      in: l.inputDim!,
      out: l.units,
      activation: ACTIVATION_CODES[l.activation],
      ...l.nativeActivationParams(),
      hasBias: l.useBias,
    }));
  }

  /** The native trainer over the layers' own weight arrays (it updates them in place). */
  private trainer(config: CompiledConfig): NativeTrainer {
    if (this.nativeTrainer) return this.nativeTrainer;
    try {
      this.nativeTrainer = new native.Trainer(
        this.nativeSpecs(),
        this.stack.map((l) => l.kernel!),
        this.stack.map((l) => l.bias),
        this.stack.map((l) => ({ l1: l.kernelRegularizer?.l1 ?? 0, l2: l.kernelRegularizer?.l2 ?? 0 })),
        LOSS_CODES[config.loss],
      );
    } catch (e) {
      throw fromNative(e);
    }
    return this.nativeTrainer;
  }

  private dropTrainer(): void {
    this.nativeTrainer?.dispose();
    this.nativeTrainer = null;
  }

  private compiled(): NativeCompiledModel {
    this.checkLive();
    this.handle ??= openPackedModel(this.packed());
    return this.handle;
  }

  /** The weights changed in place (training): repack before the next predict. */
  private invalidateInference(): void {
    this.handle?.dispose();
    this.handle = null;
    this.packedModel = null;
  }

  /** The layers or weight arrays changed: drop every native view of them. */
  private invalidate(): void {
    this.invalidateInference();
    this.dropTrainer();
  }

  private checkLive(): void {
    if (this.disposed) throw new MaasError('MAAS_ERR_MODEL_DISPOSED', `Model ${this.name} was disposed`);
  }
}

function weightValues(value: unknown, size: number, name: string): Float32Array {
  let data: Float32Array;
  if (value instanceof Tensor) data = value.values;
  else if (value instanceof Float32Array) data = value;
  else if (Array.isArray(value)) data = Float32Array.from((value as unknown[]).flat(Infinity) as number[]);
  else if (
    isPlainObject(value) ||
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { dataSync?: unknown }).dataSync !== 'function'
  ) {
    throw invalidParameter(name, 'a Tensor, Float32Array or nested array', value, 'MAAS_ERR_WEIGHTS_MISMATCH');
  } else data = Float32Array.from((value as { dataSync(): ArrayLike<number> }).dataSync());
  if (data.length !== size) {
    throw new MaasError('MAAS_ERR_WEIGHTS_MISMATCH', `Expected ${size} values for ${name} but received ${data.length}`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]))
      throw new MaasError(
        'MAAS_ERR_WEIGHTS_MISMATCH',
        `Expected finite values for ${name} but index ${i} is ${data[i]}`,
      );
  }
  return data.slice();
}

/** Creates a Sequential model (tfjs: tf.sequential). */
export function sequential(args?: SequentialArgs): Sequential {
  return new Sequential(args);
}
