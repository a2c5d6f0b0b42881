/**
 * InferencePool: a typed facade over piscina. Workers hold light native handles over each model
 * version's shared packed weights; the pool gives parallelism across executions, each worker runs
 * `threadsPerWorker` intra-op threads (workers × threads never above the cores by default).
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { MaasError, isErrorCode } from '../core/errors.js';
import { workerEntry } from './entry.js';
import {
  RESULT_HEADER_BYTES,
  type InferResult,
  type InferTask,
  type LoadedModel,
  type LoadReply,
  type LoadRequest,
  type SharedWeights,
  type WorkerOptions,
} from './messages.js';

export type { InferResult, LoadedModel, SharedWeights, PackedFormat } from './messages.js';

/** Pool sizing. */
export interface PoolOptions {
  /** Worker threads (default: one per core). */
  workers?: number;
  /** Native intra-op threads in each worker (default 1). */
  threadsPerWorker?: number;
  /**
   * A load that takes longer is stopped, its thread ended (default 300 000 ms): no file can hold
   * the load thread, or the repository's queue for that model, for ever.
   */
  loadTimeoutMs?: number;
  /** The load thread's JavaScript heap cap in MB (default 4096): a file cannot exhaust the process. */
  loadHeapMb?: number;
}

/** The worker threads that run inference and loads (piscina), each holding native handles over shared packed weights. */
export class InferencePool {
  readonly workers: number;
  readonly threadsPerWorker: number;
  private readonly piscina: Piscina;
  /** One load thread, started per load and ended when idle: opening and packing model files. */
  private readonly loader: Piscina;
  private readonly live = new Set<string>();
  private liveEpoch = 0;
  private liveKeys: string[] = [];
  private closed = false;
  private readonly loadTimeoutMs: number;

  constructor(options: PoolOptions = {}) {
    this.loadTimeoutMs = options.loadTimeoutMs ?? 300_000;
    this.workers = options.workers ?? availableParallelism();
    this.threadsPerWorker = options.threadsPerWorker ?? 1;
    for (const [name, value] of [
      ['workers', this.workers],
      ['threadsPerWorker', this.threadsPerWorker],
    ] as const) {
      if (!Number.isInteger(value) || value < 1 || value > 256) {
        throw new MaasError('MAAS_ERR_ARG_RANGE', `Expected an integer in [1, 256] for ${name} but received ${value}`);
      }
    }
    const entry = workerEntry('worker');
    const workerData: WorkerOptions = { threadsPerWorker: this.threadsPerWorker };
    this.piscina = new Piscina({
      filename: entry.filename,
      execArgv: entry.execArgv,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: Infinity,
      workerData,
      // The batchers above keep their own queues; piscina only holds what is already dispatched.
      maxQueue: Infinity,
    });
    const loadEntry = workerEntry('load-worker');
    this.loader = new Piscina({
      filename: loadEntry.filename,
      execArgv: loadEntry.execArgv,
      minThreads: 0,
      maxThreads: 1,
      // The thread goes as soon as it is idle, and with it the heap that held the file's bytes
      // (a collection in this thread cannot reach that garbage; ending the thread frees it).
      idleTimeout: 0,
      maxQueue: Infinity,
      resourceLimits: { maxOldGenerationSizeMb: options.loadHeapMb ?? 4096 },
    });
  }

  /**
   * Opens and packs a model file in the load thread (DESIGN decision 11: large parsing, loading
   * and packing run off the event loop, in something that can be stopped): only the packed
   * SharedArrayBuffer and a few numbers come back. `signal` stops the load (the thread ends);
   * `strictIntegrity` refuses a file that records no digest.
   */
  async load(path: string, options: { signal?: AbortSignal; strictIntegrity?: boolean } = {}): Promise<LoadedModel> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    const request: LoadRequest = { path, strictIntegrity: options.strictIntegrity === true };
    let reply: LoadReply;
    const timeout = AbortSignal.timeout(this.loadTimeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      reply = (await this.loader.run(request, { signal })) as LoadReply;
    } catch (error) {
      if (options.signal?.aborted) throw new MaasError('MAAS_ERR_SERVER_STOPPING', `Loading ${path} was stopped`);
      if (timeout.aborted)
        throw new MaasError(
          'MAAS_ERR_MODEL_LOAD_TIMEOUT',
          `Loading ${path} took longer than ${this.loadTimeoutMs} ms and was stopped`,
        );
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Loading ${path} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!reply.ok) throw new MaasError(isErrorCode(reply.code) ? reply.code : 'MAAS_ERR_MODEL_FORMAT', reply.message);
    return reply.model;
  }

  /** Marks a model version's weights as live: workers open handles over them on first use. */
  attach(weights: SharedWeights): void {
    this.live.add(weights.key);
    this.changed();
  }

  /** Retires a version: each worker drops its handle on its next task, releasing the shared weights. */
  detach(key: string): void {
    if (this.live.delete(key)) this.changed();
  }

  private changed(): void {
    this.liveEpoch++;
    this.liveKeys = [...this.live];
  }

  /** Runs `rows` rows of x (transferred, not copied) through a live model version. */
  async run(weights: SharedWeights, x: Float32Array, rows: number, outputSize: number): Promise<InferResult> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    // Transfer only a buffer x owns whole; a view into someone else's memory is copied first.
    if (x.byteOffset !== 0 || x.byteLength !== x.buffer.byteLength || !(x.buffer instanceof ArrayBuffer)) x = x.slice();
    // The live list is a few short strings: always sending it lets every worker retire old handles.
    const task: InferTask = { weights, x, rows, outputSize, live: this.liveKeys, liveEpoch: this.liveEpoch };
    const result = (await this.piscina.run(task, { transferList: [x.buffer as ArrayBuffer] })) as ArrayBuffer;
    return { y: new Float32Array(result, RESULT_HEADER_BYTES), computeNs: new Float64Array(result, 0, 1)[0]! };
  }

  /** Stops the workers after running tasks finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.piscina.close(), this.loader.close()]);
  }
}
