/**
 * Sequential: a stack of Dense layers with tfjs's API: building (add, getWeights, setWeights)
 * and training (compile, fit, evaluate, trainOnBatch). Inference (predict, packed, save, dispose)
 * is the InferenceModel shell's: the weights pack once into a SharedArrayBuffer and the whole
 * stack runs in one native call.
 */
import { MaasError, fromNative, invalidParameter } from '../core/errors.js';
import { Tensor, type TensorLike } from '../core/tensor.js';
import { checkInteger, checkOptions, isPlainObject } from '../core/validation.js';
import { Dense } from '../layers/dense.js';
import {
  LOSS_CODES,
  native,
  type NativeCudaStackHandle,
  type NativeModelHandle,
  type NativeTrainer,
} from '../native/index.js';
import type { History } from '../train/callbacks.js';
import type { ModelArtifacts } from '../io/artifacts.js';
import { denseArtifacts, denseOnnx } from '../io/export.js';
import type { Pipeline } from '../data/pipeline.js';
import {
  evaluateDataset,
  fitArrays,
  fitDataset,
  parseCompileArgs,
  toDataset,
  toScalars,
  trainBatch,
  type CompileArgs,
  type CompiledConfig,
  type FitArgs,
  type BatchSource,
  type FitDatasetArgs,
  type TrainingTarget,
} from '../train/engine.js';
import { DENSE_PRECISIONS, nativeLayerSpec, packDenseStack, type DensePrecision, type PackedModel } from './packed.js';
import { BACKENDS, openCudaStack, type Backend, type CudaOptions } from './cuda.js';
import { InferenceModel } from './shell.js';

export type { PackedModel } from './packed.js';

/** Options of sequential(), as in tfjs. */
export interface SequentialArgs {
  layers?: Dense[];
  name?: string;
}

let modelCounter = 0;

/** A linear stack of dense layers. */
export class Sequential extends InferenceModel<{ op?: 'gemm' | 'matmul' }> {
  readonly name: string;
  private readonly stack: Dense[] = [];
  private nativeTrainer: NativeTrainer | null = null;
  private compileConfig: CompiledConfig | null = null;
  /** Set by a callback (earlyStopping) to end fit after the current epoch. */
  stopTraining = false;
  /** The fitted preparation pipeline for raw inputs, saved with the model; null when none. */
  preparation: Pipeline | null = null;
  private inferencePrecision: DensePrecision = 'fp32';
  private inferenceBackend: Backend = 'cpu';
  private cudaTf32 = false;
  private cudaHandle: NativeCudaStackHandle | null = null;

  constructor(args: SequentialArgs = {}) {
    super();
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

  /** The precision predict runs in (see setPrecision). */
  get precision(): DensePrecision {
    return this.inferencePrecision;
  }

  /**
   * Runs predict in 'bf16' (weights stored as bf16, each input row rounded to bf16 as it is
   * multiplied, products summed in fp32, activations in fp32: half the weight bytes, and twice the
   * multiplies per instruction where the CPU has AVX512_BF16) or back in 'fp32'. Training is
   * unaffected: fit updates the fp32 weights, and predict packs them again in this precision.
   */
  setPrecision(precision: DensePrecision): void {
    this.checkLive();
    if (!DENSE_PRECISIONS.includes(precision))
      throw invalidParameter('setPrecision(precision)', "'fp32' or 'bf16'", precision, 'MAAS_ERR_ARG_RANGE');
    if (precision === this.inferencePrecision) return;
    this.inferencePrecision = precision;
    this.dropPacked();
  }

  /** Where predict runs (see setBackend). */
  get backend(): Backend {
    return this.inferenceBackend;
  }

  /**
   * Runs predict on this machine's CPU kernels ('cpu', the default) or on the first CUDA device
   * ('cuda'): the weights go to the device once, in the model's precision (fp32, or bf16 converted
   * there; `tf32: true` lets fp32 products use TF32 tensor cores), and each predict stages its
   * batch through pinned memory. Training stays on the CPU; predict uploads the weights again after
   * they change. MAAS_ERR_CUDA_UNAVAILABLE where backendInfo().cuda lists no device.
   */
  setBackend(backend: Backend, options: CudaOptions = {}): void {
    this.checkLive();
    if (!BACKENDS.includes(backend))
      throw invalidParameter('setBackend(backend)', "'cpu' or 'cuda'", backend, 'MAAS_ERR_ARG_RANGE');
    checkOptions('setBackend options', options, ['tf32']);
    if (options.tf32 !== undefined && typeof options.tf32 !== 'boolean')
      throw invalidParameter('setBackend options.tf32', 'a boolean', options.tf32);
    if (backend === 'cuda') {
      const cuda = native.cudaInfo();
      if (cuda.devices.length === 0) throw new MaasError('MAAS_ERR_CUDA_UNAVAILABLE', `CUDA: ${cuda.reason}`);
    }
    this.inferenceBackend = backend;
    this.cudaTf32 = options.tf32 ?? false;
    this.dropPacked();
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

  protected preparationPipeline(): Pipeline | null {
    return this.preparation;
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
    const history = await fitArrays(this.target(), x, y, args);
    this.recordHistory(history);
    return history;
  }

  /**
   * Trains on a dataset of {xs, ys} batches read as it trains (tfjs's fitDataset): csvDataset()
   * for a CSV file larger than memory, an array or generator of batches, or a tfjs Dataset.
   */
  async fitDataset(dataset: BatchSource, args: FitDatasetArgs = {}): Promise<History> {
    const history = await fitDataset(this.target(), dataset, args);
    this.recordHistory(history);
    return history;
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

  /** The model as ONNX bytes (opset 13): a Gemm per layer (or MatMul + Add) and its activation. */
  toOnnx(options: { op?: 'gemm' | 'matmul' } = {}): Uint8Array {
    this.checkLive();
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    return denseOnnx(this.stack, options);
  }

  /** The model as file artifacts: topology, weight specs and bytes, the training configuration and preparation. */
  toArtifacts(): ModelArtifacts {
    this.checkLive();
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    const c = this.compileConfig;
    return denseArtifacts(this.name, this.stack, {
      ...(c
        ? {
            trainingConfig: {
              loss: c.loss,
              metrics: c.metrics,
              optimizer: { name: c.optimizer.name, learningRate: c.optimizer.learningRate, config: c.optimizer.config },
            },
          }
        : {}),
      ...(this.preparation ? { preparation: this.preparation.toJSON() } : {}),
      ...this.carriedArtifacts(),
    });
  }

  /** Packs the layers' weights for this thread's kernel of the model's precision. */
  protected pack(): PackedModel {
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    return packDenseStack(this.stack, this.inferencePrecision);
  }

  /** What compile() was given, validated (the optimizer is the live one), or null before compile. */
  get compileSettings(): Readonly<CompiledConfig> | null {
    return this.compileConfig;
  }

  /** The loss and metrics given to compile(), or null before compile (what reports compare). */
  get compileInfo(): { loss: string; metrics: readonly string[] } | null {
    const c = this.compileConfig;
    return c ? { loss: c.loss, metrics: [...c.metrics] } : null;
  }

  /** Frees the native handle, packed weights and trainer; later calls throw MAAS_ERR_MODEL_DISPOSED. */
  override dispose(): void {
    this.dropTrainer();
    super.dispose();
  }

  /** The CPU handle over the packed weights, or the device-resident stack under setBackend('cuda'). */
  protected override handle(): NativeModelHandle {
    if (this.inferenceBackend === 'cpu') return super.handle();
    this.checkLive();
    if (this.stack.length === 0) throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} has no layers`);
    this.cudaHandle ??= openCudaStack(this.stack, this.inferencePrecision, this.cudaTf32);
    return this.cudaHandle;
  }

  protected override dropPacked(): void {
    super.dropPacked();
    this.cudaHandle?.dispose();
    this.cudaHandle = null;
  }

  private target(): TrainingTarget {
    this.checkLive();
    const config = this.compileConfig;
    if (!config)
      throw new MaasError(
        'MAAS_ERR_MODEL_NOT_COMPILED',
        `Model ${this.name} must be compiled before training or evaluation: call model.compile({optimizer, loss})`,
      );
    // The engine reads and sets the model's flag (callbacks set it to end fit early).
    const stopped = () => this.stopTraining;
    const stop = (v: boolean) => {
      this.stopTraining = v;
    };
    return {
      inputDim: this.stack[0]!.inputDim!,
      outputDim: this.stack[this.stack.length - 1]!.units,
      config,
      get stopTraining() {
        return stopped();
      },
      set stopTraining(v: boolean) {
        stop(v);
      },
      trainer: () => this.trainer(config),
      weightsChanged: () => this.dropPacked(),
    };
  }

  /** The native trainer over the layers' own weight arrays (it updates them in place). */
  private trainer(config: CompiledConfig): NativeTrainer {
    if (this.nativeTrainer) return this.nativeTrainer;
    try {
      this.nativeTrainer = new native.Trainer(
        this.stack.map(nativeLayerSpec),
        this.stack.map((l) => l.kernel!),
        this.stack.map((l) => l.bias),
        this.stack.map((l) => ({ l1: l.kernelRegularizer?.l1 ?? 0, l2: l.kernelRegularizer?.l2 ?? 0 })),
        LOSS_CODES[config.loss],
        config.precision,
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

  /** The layers or weight arrays changed: drop every native view of them. */
  private invalidate(): void {
    this.dropPacked();
    this.dropTrainer();
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
