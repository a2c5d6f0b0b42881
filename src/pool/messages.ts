/**
 * The messages between the pool and its workers, in one place. Weights live in a shared-memory
 * region that every worker maps (one copy for all threads and processes); batch inputs and
 * outputs travel as transferred (threads) or serialized (processes) buffers.
 */

import type { EpochLog } from '../model/carried.js';
import type { KeyObject } from 'node:crypto';
import type { DensePrecision, PackedFormat, PackedRegion } from '../model/packed.js';
import type { ExplainTask, WorkerExplanation } from '../explain/task.js';

import type { UpdateEpoch, UpdateJob, UpdateVerdict } from '../lifecycle/update.js';
import type { FederatedRoundJob, FederatedVerdict } from '../lifecycle/federated-round.js';

export type { ExplainTask, WorkerExplanation } from '../explain/task.js';

export type { PackedFormat, PackedRegion } from '../model/packed.js';

/** A model version's packed weights, as every worker sees them. */
export interface SharedWeights {
  /** Unique per loaded model version (a reload gets a new key). */
  key: string;
  format: PackedFormat;
  /** The region's descriptor in the serving process, and its packed byte count. */
  fd: number;
  byteLength: number;
  /** The round-trip stack input gradients run on (models whose config enables explanations). */
  roundTrip?: { fd: number; byteLength: number };
}

/** How workers are isolated: threads of the serving process, or processes of their own. */
export type WorkerIsolation = 'thread' | 'process';

/** A fault a test asks a worker to have (test hooks only): exit, a native abort, or running out of heap. */
export type WorkerFault = 'exit' | 'abort' | 'oom';

/** The pool's messages to a worker. */
export type ToWorker =
  /** One execution: `rows` rows of `x` through the model that `weights` describes. */
  | { kind: 'infer'; id: number; weights: SharedWeights; x: Float32Array; rows: number; outputSize: number }
  /** Explanations of task.rows rows through the model that `weights` describes. */
  | { kind: 'explain'; id: number; weights: SharedWeights; task: ExplainTask }
  /** The version is unloaded and nothing of it is in flight: close its handle (unmapping its weights). */
  | { kind: 'retire'; key: string }
  /** Answered at once with a pong: the pool times the event loop's share of a round trip. */
  | { kind: 'ping'; id: number }
  | { kind: 'fault'; fault: WorkerFault };

/** A worker's messages to the pool. */
export type FromWorker =
  | { kind: 'ready' }
  /** The version's handle is closed and its weights unmapped. */
  | { kind: 'retired'; key: string }
  | { kind: 'pong'; id: number }
  /** The result buffer: a float64 compute time (RESULT_HEADER_BYTES), then the outputs. */
  | { kind: 'result'; id: number; result: ArrayBuffer }
  | { kind: 'explained'; id: number; explanations: WorkerExplanation[]; computeNs: number }
  | { kind: 'error'; id: number; code: string; message: string };

/** What a pool run returns: the outputs, and how long the native call took. */
export interface InferResult {
  y: Float32Array;
  computeNs: number;
}

/** A result buffer starts with the float64 compute time in nanoseconds; the rows·outputSize float32 outputs follow. */
export const RESULT_HEADER_BYTES = 8;

/** What each worker is started with. */
export interface WorkerOptions {
  threadsPerWorker: number;
  /** The serving process: a worker process opens regions through /proc/<servingPid>/fd/<fd>. */
  servingPid: number;
  /** Whether the worker obeys 'fault' messages. */
  testHooks: boolean;
}

/** What the load worker is started with: one model file to open and pack, and the load's tag for its region. */
export interface LoadRequest {
  path: string;
  tag: number;
  /** Refuse a file that records no digest (openModelFile's strictIntegrity). */
  strictIntegrity?: boolean;
  /** The precision to pack an fp32 file in (absent: as the file is). */
  precision?: DensePrecision;
  /** A packed cache directory to map the model from, or to pack it into (absent: no cache). */
  packedCache?: string;
  /** Also pack the round-trip stack input gradients run on (the config enables explanations). */
  roundTrip?: boolean;
}

/** A model file opened and packed in the load worker: the packed region and what serving needs. */
export interface LoadedModel {
  /** The packed weights; the pool owns the region's descriptor until the version is detached. */
  region: PackedRegion;
  /** The round-trip stack (LoadRequest.roundTrip): fp32, or the dequantized weights of an int8 model. */
  roundTrip?: PackedRegion;
  /** With a packed cache: whether the round trip was mapped from an entry or packed into a new one. */
  roundTripCached?: 'hit' | 'written';
  inputSize: number;
  outputSize: number;
  /** The int8 scheme in words (int8 models only), for the served config's parameters. */
  quantization?: string;
  /** For an encrypted model file: the key id it was decrypted with. */
  keyId?: string;
  /** With a packed cache: whether the weights were mapped from an entry ('hit') or packed into a new one. */
  cached?: 'hit' | 'written';
  /** The preparation pipeline the model file carries (its JSON, read in the load worker; checked by the repository). */
  preparation?: unknown;
  /** The training history the model file carries, checked in the load thread. */
  history?: EpochLog[];
  /** The explanation background the model file carries (rows × inputSize), decoded in the load thread. */
  background?: Float32Array;
}

/** The load worker's last message: the loaded model, or the error's code and message. */
export type LoadReply = { ok: true; model: LoadedModel } | { ok: false; code: string; message: string };

/**
 * The load worker asks for the key of an encrypted model file by its key id: the keys stay with
 * the pool's owner (one cache, one key command), and only the key asked for crosses, as a
 * KeyObject, never as text.
 */
export interface KeyRequest {
  keyRequest: string;
}

/** The answer to a KeyRequest: the key, or the error's code and message. */
export type KeyAnswer =
  { keyId: string; ok: true; key: KeyObject } | { keyId: string; ok: false; code: string; message: string };

/** What the load worker posts: key requests, then one LoadReply. */
export type FromLoadWorker = KeyRequest | LoadReply;

/** The work an update thread does: an update, a federated round's close, or reading a model's weights. */
export type BackgroundTask =
  | { kind: 'update'; job: UpdateJob }
  | { kind: 'federated'; job: FederatedRoundJob }
  | { kind: 'weights'; file: string };

/** What each task resolves with. */
export interface BackgroundResults {
  update: UpdateVerdict;
  federated: FederatedVerdict;
  weights: { shape: number[]; values: Float32Array }[];
}

/** What an update thread is started with: the task, and the native threads it may use. */
export interface UpdateThreadData {
  task: BackgroundTask;
  threads: number;
}

/** What an update thread posts: an update's epochs, then the result or the error's code and message. */
export type FromUpdateWorker =
  | { kind: 'epoch'; epoch: UpdateEpoch }
  | { kind: 'done'; result: BackgroundResults[BackgroundTask['kind']] }
  | { kind: 'failed'; code: string; message: string };
