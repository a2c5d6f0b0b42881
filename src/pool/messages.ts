/**
 * The messages between the pool and its workers, in one place. Weights travel as a
 * SharedArrayBuffer (one copy for every worker); batch inputs and outputs as transferred buffers.
 */

import type { PackedFormat, PackedModel } from '../model/packed.js';

export type { PackedFormat } from '../model/packed.js';

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

/** What the load worker is started with: one model file to open and pack. */
export interface LoadRequest {
  path: string;
  /** Refuse a file that records no digest (openModelFile's strictIntegrity). */
  strictIntegrity?: boolean;
}

/** A model file opened and packed in the load worker: the packed bytes and what serving needs. */
export interface LoadedModel {
  packed: PackedModel & { readonly format: PackedFormat };
  inputSize: number;
  outputSize: number;
  /** The int8 scheme in words (int8 models only), for the served config's parameters. */
  quantization?: string;
}

/** The load worker's one message: the loaded model, or the error's code and message. */
export type LoadReply = { ok: true; model: LoadedModel } | { ok: false; code: string; message: string };
