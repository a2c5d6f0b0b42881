/**
 * InferenceModel: the one shell over a packed model. It packs the weights once (into a
 * SharedArrayBuffer workers can share), keeps one native handle over them, and gives predict,
 * predictRaw, packed, summary, save, saveOnnx and dispose to every model kind: Sequential (fp32)
 * and QuantizedModel (int8) only say how they pack and what they write.
 */
import { writeFile } from 'node:fs/promises';
import { MaasError, fromNative, invalidParameter } from '../core/errors.js';
import { Tensor, toMatrix, type TensorLike } from '../core/tensor.js';
import { checkOptions } from '../core/validation.js';
import type { Dense } from '../layers/dense.js';
import { native, type NativeInputGradientHandle, type NativeModelHandle } from '../native/index.js';
import type { Pipeline, PredictedLabel, RawRows, TransformOptions } from '../data/pipeline.js';
import { writeArtifacts, type ModelArtifacts, type WriteHooks } from '../io/artifacts.js';
import { formatOfFileName } from '../io/formats.js';
import { writeKerasH5 } from '../io/keras-h5-write.js';
import { printSummary } from '../io/summary.js';
import { openInputGradients, openPackedModel, packRoundTrip, type PackedModel } from './packed.js';
import { featureRows } from '../data/feature-rows.js';
import { checkInteger } from '../core/validation.js';
import type { History } from '../train/callbacks.js';
import {
  MAX_SAVED_BACKGROUND_ROWS,
  MAX_SAVED_BACKGROUND_VALUES,
  MAX_SAVED_EPOCHS,
  backgroundToJSON,
  historyToJSON,
  sampleRows,
  type BackgroundJson,
  type EpochLog,
  type TrainingHistoryJson,
} from './carried.js';

/** setExplanationBackground's options. */
export interface BackgroundOptions {
  /** Most rows kept: more are sampled down to it (default 100, at most 1000, and at most 4 Mi values in all). */
  maxRows?: number;
  /** Seed of that sampling (default 0). */
  seed?: number;
}

/** Where save() wrote the model: a tfjs model.json, or a Keras HDF5 file. */
export type SavedModel = { modelJson: string; h5?: undefined } | { h5: string; modelJson?: undefined };

/** predict's output over a buffer lent by the addon's output pool: dispose returns it there. */
class PooledOutput extends Tensor {
  protected override release(): void {
    native.releaseOutput(this.values);
  }
}

/** A dense stack that predicts through a native handle over its packed weights. */
export abstract class InferenceModel<OnnxOptions extends object = Record<string, never>> {
  /** The model's name. */
  abstract readonly name: string;
  /** The layers, first to last. */
  abstract get layers(): readonly Dense[];
  private handleCache: NativeModelHandle | null = null;
  private packedCache: PackedModel | null = null;
  private roundTripCache: PackedModel | null = null;
  private gradientCache: NativeInputGradientHandle | null = null;
  private disposed = false;
  /** Every epoch of every fit of this model, in order: what is logged (loss, metrics, val_ values). */
  readonly trainingHistory: EpochLog[] = [];
  private background: Float32Array | null = null;

  /** Packs the weights for this thread's kernel (called once until the weights change). */
  protected abstract pack(): PackedModel;
  /** The preparation pipeline predictRaw applies, or null. */
  protected abstract preparationPipeline(): Pipeline | null;
  /** The model as file artifacts (what save writes). */
  abstract toArtifacts(): ModelArtifacts;
  /** The model as ONNX bytes (what saveOnnx writes). */
  abstract toOnnx(options?: OnnxOptions): Uint8Array;

  /** The preparation pipeline raw rows go through (predictRaw, explanations by column), or null. */
  get pipeline(): Pipeline | null {
    return this.preparationPipeline();
  }

  /** [null, inputDim] once the first layer knows its input width. */
  get inputShape(): [null, number] | null {
    const dim = this.layers[0]?.inputDim;
    return dim == null ? null : [null, dim];
  }

  /** [null, units of the last layer]. */
  get outputShape(): [null, number] | null {
    const last = this.layers[this.layers.length - 1];
    return last ? [null, last.units] : null;
  }

  /** Runs the model on a batch: x is [batch, inputDim] (a Tensor, nested arrays or a Float32Array); fp32 out. */
  predict(x: TensorLike, options?: { batchSize?: number }): Tensor {
    const handle = this.handle();
    if (options !== undefined) checkOptions('predict options', options, ['batchSize', 'verbose']);
    // Widths come from the layers, not the handle: a native accessor call costs more than the
    // whole batch-1 forward pass of a small model.
    const layers = this.layers;
    const inputDim = layers[0]!.inputDim!;
    const units = layers[layers.length - 1]!.units;
    const input = toMatrix(x, inputDim, 'x');
    // Pooled when large: the pages of a fresh 16 MB output cost more to fault in than a sixth of
    // a 1024 × 4096 × 4096 product. Small ones skip the native call (batch 1 of model S takes
    // about a microsecond in all). Every element is written below.
    const floats = input.rows * units;
    const pooled = floats >= native.pooledOutputMinFloats;
    const out = pooled ? native.allocOutput(floats) : new Float32Array(floats);
    try {
      handle.predict(input.data, input.rows, out);
    } catch (e) {
      if (pooled) native.releaseOutput(out);
      throw fromNative(e);
    }
    return pooled ? new PooledOutput(out, [input.rows, units]) : new Tensor(out, [input.rows, units]);
  }

  /**
   * Predicts from raw rows (records, a DataFrame, or arrays of column values) through the
   * preparation pipeline. Strict: a record lacking a column the model takes, or naming one it does
   * not know, is an error (MAAS_ERR_DATA_COLUMNS); `allowMissing` fills absent columns with the
   * saved policy and warns.
   */
  predictRaw(rows: RawRows, options?: TransformOptions): Tensor {
    return this.predict(this.requirePipeline().transform(rows, options));
  }

  /**
   * Predicts labels from raw rows: class names (classification) or values in the label's units
   * (regression), through the pipeline fitted with a label column.
   */
  predictLabels(rows: RawRows, options?: TransformOptions): PredictedLabel[] {
    const pipeline = this.requirePipeline();
    const outputs = this.predict(pipeline.transform(rows, options));
    const labels = pipeline.decode(outputs.values, outputs.shape[0]!);
    outputs.dispose();
    return labels;
  }

  private requirePipeline(): Pipeline {
    const pipeline = this.preparationPipeline();
    if (!pipeline)
      throw new MaasError(
        'MAAS_ERR_MODEL_EMPTY',
        `Model ${this.name} has no preparation pipeline: use predict() on numeric features, or setPreparation()`,
      );
    return pipeline;
  }

  /**
   * The weights packed for this thread's kernel in a SharedArrayBuffer (made once, reused).
   * Post `buffer` to workers and call openPackedModel there: every worker shares these bytes.
   */
  packed(): PackedModel {
    this.checkLive();
    this.packedCache ??= this.pack();
    return this.packedCache;
  }

  /**
   * The round-trip stack input gradients run on (packRoundTrip), made once until the weights
   * change: fp32 weights, the dequantized ones for an int8 model. Post `buffer` to workers and
   * open it there with openInputGradients.
   */
  roundTripPacked(): PackedModel {
    this.checkLive();
    this.roundTripCache ??= packRoundTrip(this.layers);
    return this.roundTripCache;
  }

  /** The native input-gradient handle over roundTripPacked() (opened on first use). */
  inputGradients(): NativeInputGradientHandle {
    this.gradientCache ??= openInputGradients(this.roundTripPacked());
    return this.gradientCache;
  }

  /**
   * The rows SHAP and LIME compare against when they are given none (rows × inputs), saved with
   * the model so the service explains it without a file beside it; null when none was set.
   */
  get explanationBackground(): Float32Array | null {
    return this.background;
  }

  /**
   * Keeps rows of typical inputs as the explanation background, saved with the model: rows of
   * numbers, or raw records when the model has a preparation pipeline. More than
   * `options.maxRows` (default 100) are sampled down to it. They are part of the saved file,
   * so give rows you may publish with the model (null removes them).
   */
  setExplanationBackground(rows: unknown, options: BackgroundOptions = {}): void {
    this.checkLive();
    const o = checkOptions('setExplanationBackground options', options, ['maxRows', 'seed']);
    if (rows === null) {
      this.background = null;
      return;
    }
    const width = this.inputShape?.[1];
    if (width === undefined)
      throw new MaasError('MAAS_ERR_MODEL_EMPTY', `Model ${this.name} is not built: it has no input shape`);
    const maxRows =
      o.maxRows === undefined
        ? 100
        : checkInteger('setExplanationBackground maxRows', o.maxRows, 1, MAX_SAVED_BACKGROUND_ROWS);
    const seed = o.seed === undefined ? 0 : checkInteger('setExplanationBackground seed', o.seed, 0);
    const x = featureRows(rows, width, this.pipeline, 'setExplanationBackground(rows)');
    // A saved background holds at most MAX_SAVED_BACKGROUND_VALUES values: a wide model keeps fewer
    // rows, so the file it saves loads again.
    const fit = Math.max(1, Math.floor(MAX_SAVED_BACKGROUND_VALUES / width));
    this.background = sampleRows(x, width, Math.min(maxRows, fit), seed);
  }

  /** Appends a fit's epochs to trainingHistory (the oldest go past MAX_SAVED_EPOCHS). */
  protected recordHistory(history: History): void {
    const names = Object.keys(history.history);
    history.epoch.forEach((_, i) =>
      this.trainingHistory.push(Object.fromEntries(names.map((name) => [name, history.history[name]![i]!]))),
    );
    const over = this.trainingHistory.length - MAX_SAVED_EPOCHS;
    if (over > 0) this.trainingHistory.splice(0, over);
  }

  /** The history and background as the maas field saves them (only those the model has). */
  protected carriedArtifacts(): { trainingHistory?: TrainingHistoryJson; explanationBackground?: BackgroundJson } {
    const width = this.inputShape?.[1];
    return {
      ...(this.trainingHistory.length > 0 ? { trainingHistory: historyToJSON(this.trainingHistory) } : {}),
      ...(this.background && width ? { explanationBackground: backgroundToJSON(this.background, width) } : {}),
    };
  }

  /** Takes another model's history and background (a quantized model its fp32 twin's). */
  protected adoptCarried(from: InferenceModel): void {
    this.trainingHistory.push(...from.trainingHistory);
    this.background = from.background;
  }

  /** Total weight count. */
  countParams(): number {
    return this.layers.reduce((n, l) => n + l.countParams(), 0);
  }

  /** Prints a table of layers, output shapes and parameter counts (tfjs's summary layout). */
  summary(lineLength?: number, positions?: number[], printFn?: (line: string) => void): void {
    printSummary(this.layers, lineLength, positions, printFn);
  }

  /**
   * Saves the model. Into a directory: tfjs-layers model.json + weights (loadable by tfjs's
   * loadLayersModel and by loadModel), with maas's extras in the `maas` extension field. To a path
   * ending .h5 or .hdf5: a Keras HDF5 file as Keras 2's model.save writes it (loadable by Keras's
   * load_model, tfjs's converter and loadModel; fp32 weights and the architecture, without maas's
   * extras such as the preparation pipeline). Atomic: a crash mid-save leaves the previous model
   * intact.
   */
  async save(path: string, hooks?: WriteHooks): Promise<SavedModel> {
    this.checkLive();
    if (typeof path !== 'string' || path.length === 0)
      throw invalidParameter('save(path)', 'a directory path, or a file path ending .h5', path);
    if (formatOfFileName(path) === 'keras-h5') return { h5: await writeKerasH5(path, this.toArtifacts()) };
    return { modelJson: await writeArtifacts(path, this.toArtifacts(), hooks) };
  }

  /** Writes the model as an .onnx file, for onnxruntime, Triton or any ONNX tool. */
  async saveOnnx(path: string, options?: OnnxOptions): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) throw invalidParameter('saveOnnx(path)', 'a file path', path);
    await writeFile(path, this.toOnnx(options));
  }

  /** Frees the native handle and packed weights; later calls throw MAAS_ERR_MODEL_DISPOSED. */
  dispose(): void {
    this.dropPacked();
    this.disposed = true;
  }

  /** The native handle over the packed weights (opened on first use). */
  protected handle(): NativeModelHandle {
    this.checkLive();
    this.handleCache ??= openPackedModel(this.packed());
    return this.handleCache;
  }

  /** The weights changed: repack before the next predict. */
  protected dropPacked(): void {
    this.handleCache?.dispose();
    this.handleCache = null;
    this.packedCache = null;
    this.gradientCache?.dispose();
    this.gradientCache = null;
    this.roundTripCache = null;
  }

  protected checkLive(): void {
    if (this.disposed) throw new MaasError('MAAS_ERR_MODEL_DISPOSED', `Model ${this.name} was disposed`);
  }
}
