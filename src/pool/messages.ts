/**
 * The messages between the pool and its workers, in one place. Weights travel as a
 * SharedArrayBuffer (one copy for every worker); batch inputs and outputs as transferred buffers.
 */

/** The packed formats a worker can open a native handle over (model.packed(), quantizedModel.packed()). */
export type PackedFormat = 'fp32' | 'int8';

/** A model version's packed weights, as every worker sees them. */
export interface SharedWeights {
  /** Unique per loaded model version (a reload gets a new key). */
  key: string;
  format: PackedFormat;
  buffer: SharedArrayBuffer;
}

/** One execution: `rows` rows of `x` through the model that `weights` describes. */
export interface InferTask {
  weights: SharedWeights;
  x: Float32Array;
  rows: number;
  outputSize: number;
  /** Keys of every live model version, so workers drop the handles of retired ones. */
  live: string[];
  liveEpoch: number;
}

/** What a pool run returns: the outputs, and how long the native call took. */
export interface InferResult {
  y: Float32Array;
  computeNs: number;
}

/**
 * A worker answers with one transferred buffer: a float64 compute time in nanoseconds, then the
 * rows·outputSize float32 outputs (piscina transfers only a top-level value).
 */
export const RESULT_HEADER_BYTES = 8;

/** What each worker is started with. */
export interface WorkerOptions {
  threadsPerWorker: number;
}
