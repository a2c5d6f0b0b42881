/**
 * InferencePool: the inference workers and the load thread. Workers (threads of this process, or
 * processes of their own for isolation) hold light native handles over each model version's
 * shared-memory region; each runs `threadsPerWorker` intra-op threads (workers × threads never
 * above the cores by default). A worker that dies fails only what it was running, and is replaced.
 */
import { performance } from 'node:perf_hooks';
import { nowNs } from '../core/clock.js';
import { usableCores } from '../core/cores.js';
import { MaasError, isErrorCode } from '../core/errors.js';
import { defaultModelKeys, type ModelKeys } from '../io/model-keys.js';
import { native } from '../native/index.js';
import { openPackedRegion, type DensePrecision } from '../model/packed.js';
import type { NativeModelHandle } from '../native/index.js';
import { runLoadThread } from './load-thread.js';
import {
  RESULT_HEADER_BYTES,
  type FromWorker,
  type InferResult,
  type LoadedModel,
  type LoadReply,
  type LoadRequest,
  type SharedWeights,
  type WorkerFault,
  type WorkerIsolation,
  type WorkerOptions,
  type ExplainTask,
  type ToWorker,
  type WorkerExplanation,
} from './messages.js';
import { startWorker, type WorkerLink } from './worker-link.js';
import { runUpdateThread } from './update-thread.js';
import type { UpdateEpoch } from '../lifecycle/update.js';
import type { BackgroundResults, BackgroundTask } from './messages.js';

export type {
  ExplainTask,
  WorkerExplanation,
  InferResult,
  LoadedModel,
  SharedWeights,
  PackedFormat,
  PackedRegion,
  WorkerFault,
  WorkerIsolation,
} from './messages.js';

/** What the pool reports when a worker stops unexpectedly (before it replaces it). */
export interface WorkerExit {
  worker: number;
  isolation: WorkerIsolation;
  reason: string;
  /** Executions it was running, each failed with MAAS_ERR_WORKER_DIED. */
  failed: number;
}

/** Pool sizing. */
export interface PoolOptions {
  /** Inference workers (default: one per core). */
  workers?: number;
  /** Native intra-op threads in each worker (default 1). */
  threadsPerWorker?: number;
  /**
   * 'thread' (default): workers are threads of this process, the fastest hand-off. 'process':
   * each worker is a process of its own mapping the same weights, so a native abort or an
   * out-of-memory kill fails only that worker's executions (Linux).
   */
  isolation?: WorkerIsolation;
  /**
   * A load that takes longer is stopped, its thread ended (default 300 000 ms): no file can hold
   * the load thread, or the repository's queue for that model, for ever.
   */
  loadTimeoutMs?: number;
  /** The load thread's JavaScript heap cap in MB (default 4096): a file cannot exhaust the process. */
  loadHeapMb?: number;
  /** Called when a worker stops unexpectedly, before it is replaced (for logs). */
  onWorkerExit?: (exit: WorkerExit) => void;
  /** Enables injectFault() (tests only: it lets the caller crash a worker). */
  testHooks?: boolean;
}

/** An execution sent to a worker and not yet answered. */
interface Running {
  key: string;
  /** An inference's result buffer; an explanation's message (NO_RESULT for a pong). */
  resolve: (result: ArrayBuffer | ExplainedMessage) => void;
  reject: (error: MaasError) => void;
}

type ExplainedMessage = Extract<FromWorker, { kind: 'explained' }>;

/** What explain() returns: the explanations (without feature names), and how long the worker computed. */
export interface ExplainResult {
  explanations: WorkerExplanation[];
  computeNs: number;
}

/** One worker position: its current link (replaced when the worker dies) and what it is running. */
interface Slot {
  readonly index: number;
  link: WorkerLink | null;
  readonly running: Map<number, Running>;
  /** Retire messages sent and not yet acknowledged, by version key. */
  readonly retiring: Map<string, () => void>;
  /** When the recent deaths were, to slow down a worker that dies as soon as it starts. */
  deaths: number[];
  /** The replacement's pending start, if any. */
  respawn: NodeJS.Timeout | null;
}

/** A worker that died this often within RESPAWN_WINDOW_MS is restarted after RESPAWN_BACKOFF_MS. */
const QUICK_DEATHS = 3;
/** Round trips timed for hopCostNs(), after a few untimed ones. */
const HOP_SAMPLES = 64;
/** hopCostNs() when it cannot be measured (no worker answered): a round trip's usual share here. */
const DEFAULT_HOP_NS = 20_000;
/** A pong's resolution: no result travels with it. */
const NO_RESULT = new ArrayBuffer(0);
const RESPAWN_WINDOW_MS = 10_000;
const RESPAWN_BACKOFF_MS = 1_000;

/** The inference workers (threads or processes over shared weight regions) and the load thread. */
export class InferencePool {
  readonly workers: number;
  readonly threadsPerWorker: number;
  readonly isolation: WorkerIsolation;
  private readonly slots: Slot[];
  private readonly workerOptions: WorkerOptions;
  /** Loads run one at a time, each in a thread of its own: one file's memory at most. */
  private loads: Promise<unknown> = Promise.resolve();
  private readonly loadHeapMb: number;
  /** Attached versions by key; a detached one stays here until its last execution is answered. */
  private readonly attached = new Map<
    string,
    { weights: SharedWeights; running: number; detached: boolean; released?: Promise<void>; onReleased?: () => void }
  >();
  private nextId = 0;
  /** Executions in flight across the pool, and the timer that keeps the process alive meanwhile. */
  private inFlight = 0;
  private holds = 0;
  /** Referenced only while holds > 0 (ref/unref are flag flips: nothing allocated per request). */
  private readonly keepAlive = setInterval(() => {}, 2 ** 30).unref();
  /** close() waiting for inFlight to reach 0. */
  private idleWaiters: (() => void)[] = [];
  private nextLoadTag = 0;
  private closed = false;
  private waitingForWorker: (() => void)[] = [];
  private readonly loadTimeoutMs: number;
  private readonly onWorkerExit: (exit: WorkerExit) => void;
  /** This thread's handles for inline executions, by version key (opened on first use). */
  private readonly inlineHandles = new Map<string, NativeModelHandle>();
  private hop: Promise<number> | null = null;
  /** Ends the update threads still running when the pool closes. */
  private readonly closing = new AbortController();

  constructor(options: PoolOptions = {}) {
    this.loadTimeoutMs = options.loadTimeoutMs ?? 300_000;
    this.workers = options.workers ?? usableCores();
    this.threadsPerWorker = options.threadsPerWorker ?? 1;
    this.isolation = options.isolation ?? 'thread';
    this.onWorkerExit = options.onWorkerExit ?? (() => {});
    for (const [name, value] of [
      ['workers', this.workers],
      ['threadsPerWorker', this.threadsPerWorker],
    ] as const) {
      if (!Number.isInteger(value) || value < 1 || value > 256) {
        throw new MaasError('MAAS_ERR_ARG_RANGE', `Expected an integer in [1, 256] for ${name} but received ${value}`);
      }
    }
    if (this.isolation !== 'thread' && this.isolation !== 'process') {
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        `Expected 'thread' or 'process' for isolation but received ${String(this.isolation)}`,
      );
    }
    if (this.isolation === 'process' && process.platform !== 'linux') {
      throw new MaasError('MAAS_ERR_ARG_RANGE', "isolation 'process' needs Linux (workers reopen regions via /proc)");
    }
    this.workerOptions = {
      threadsPerWorker: this.threadsPerWorker,
      servingPid: process.pid,
      testHooks: options.testHooks === true,
    };
    this.slots = Array.from({ length: this.workers }, (_, index) => ({
      index,
      link: null,
      running: new Map(),
      retiring: new Map(),
      respawn: null,
      deaths: [],
    }));
    for (const slot of this.slots) this.spawn(slot);
    this.loadHeapMb = options.loadHeapMb ?? 4096;
  }

  /**
   * Opens and packs a model file in the load thread (DESIGN decision 11: large parsing, loading
   * and packing run off the event loop, in something that can be stopped): only the packed
   * region's descriptor and a few numbers come back. `signal` stops the load (the thread ends);
   * `strictIntegrity` refuses a file that records no digest; `precision` packs an fp32 file's
   * weights as bf16; `packedCache` maps the weights from (or packs them into) that cache; `keys` gives the keys of encrypted files (default: MAAS_MODEL_KEY from the
   * environment), asked for by the thread as it needs them.
   */
  async load(
    path: string,
    options: {
      signal?: AbortSignal;
      strictIntegrity?: boolean;
      precision?: DensePrecision;
      keys?: ModelKeys;
      packedCache?: string;
      roundTrip?: boolean;
    } = {},
  ): Promise<LoadedModel> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    const request: LoadRequest = {
      path,
      tag: ++this.nextLoadTag,
      strictIntegrity: options.strictIntegrity === true,
      ...(options.precision ? { precision: options.precision } : {}),
      ...(options.packedCache ? { packedCache: options.packedCache } : {}),
      ...(options.roundTrip ? { roundTrip: true } : {}),
    };
    let reply: LoadReply;
    let timeout: AbortSignal | undefined;
    const run = async () => {
      // The timeout counts from the load's start, not from when it was queued behind others.
      timeout = AbortSignal.timeout(this.loadTimeoutMs);
      return runLoadThread(
        request,
        this.loadHeapMb,
        options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
        options.keys ?? defaultModelKeys(),
      );
    };
    const turn = this.loads.then(run, run);
    this.loads = turn.catch(() => {});
    try {
      reply = await turn;
    } catch (error) {
      // The thread was ended mid-load: a region it made but never handed over is closed here.
      native.closeUnclaimedRegions(request.tag);
      if (options.signal?.aborted) throw new MaasError('MAAS_ERR_SERVER_STOPPING', `Loading ${path} was stopped`);
      if (timeout?.aborted)
        throw new MaasError(
          'MAAS_ERR_MODEL_LOAD_TIMEOUT',
          `Loading ${path} took longer than ${this.loadTimeoutMs} ms and was stopped`,
        );
      throw new MaasError('MAAS_ERR_MODEL_FORMAT', `Loading ${path} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!reply.ok) throw new MaasError(isErrorCode(reply.code) ? reply.code : 'MAAS_ERR_MODEL_FORMAT', reply.message);
    native.claimRegion(reply.model.region.fd);
    if (reply.model.roundTrip) native.claimRegion(reply.model.roundTrip.fd);
    if (this.closed) {
      this.discard(reply.model);
      throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    }
    return reply.model;
  }

  /**
   * Runs a background task — a model update (lifecycle/update.ts), a federated round's close, a
   * model file's weights read — in a thread of its own with `threads` native threads, at the
   * lowest priority; its rows and deltas are moved to it. `onEpoch` hears an update's epochs;
   * `signal` ends the thread, and so does close().
   */
  async background<K extends BackgroundTask['kind']>(
    task: Extract<BackgroundTask, { kind: K }>,
    options: { threads: number; signal?: AbortSignal; onEpoch?: (epoch: UpdateEpoch) => void },
  ): Promise<BackgroundResults[K]> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    const signal = options.signal ? AbortSignal.any([options.signal, this.closing.signal]) : this.closing.signal;
    this.hold(1);
    try {
      return await runUpdateThread(task, {
        threads: options.threads,
        heapMb: this.loadHeapMb,
        signal,
        ...(options.onEpoch ? { onEpoch: options.onEpoch } : {}),
      });
    } finally {
      this.hold(-1);
    }
  }

  /**
   * Closes a loaded model's region that will never be attached (its version failed before
   * serving); an attached one is released by detach().
   */
  discard(model: LoadedModel): void {
    native.closeRegion(model.region.fd);
    if (model.roundTrip) native.closeRegion(model.roundTrip.fd);
  }

  /**
   * Takes ownership of a version's region (from load()) and makes it runnable: workers map it
   * on first use. From here on detach() is what releases it.
   */
  attach(weights: SharedWeights): void {
    if (this.attached.has(weights.key))
      throw new MaasError('MAAS_ERR_ARG_RANGE', `Model weights ${weights.key} are already attached`);
    this.attached.set(weights.key, { weights, running: 0, detached: false });
  }

  /**
   * Retires a version: nothing new may run on it, and once its last execution is answered every
   * worker unmaps it and its region is closed, so its memory goes back to the system at once.
   * Resolves when that has happened (every worker has acknowledged, or died).
   */
  detach(key: string): Promise<void> {
    const entry = this.attached.get(key);
    if (!entry) return Promise.resolve();
    if (!entry.detached) {
      entry.detached = true;
      entry.released = new Promise((resolve) => (entry.onReleased = resolve));
      if (entry.running === 0) this.release(key);
    }
    return entry.released!;
  }

  private release(key: string): void {
    const entry = this.attached.get(key)!;
    this.attached.delete(key);
    this.inlineHandles.get(key)?.dispose();
    this.inlineHandles.delete(key);
    const acknowledged = this.slots.map((slot) => {
      if (!slot.link) return Promise.resolve();
      const ack = new Promise<void>((resolve) => slot.retiring.set(key, resolve));
      slot.link.send({ kind: 'retire', key });
      return ack;
    });
    closeRegions(entry.weights);
    // The acknowledgements come over unreferenced worker ports: hold the loop open until they do.
    this.hold(1);
    void Promise.all(acknowledged).then(() => {
      this.hold(-1);
      entry.onReleased?.();
    });
  }

  /** Counts what must keep the process alive (executions, retirements awaiting acknowledgement). */
  private hold(delta: 1 | -1): void {
    this.holds += delta;
    if (this.holds === 0) this.keepAlive.unref();
    else if (delta === 1 && this.holds === 1) this.keepAlive.ref();
  }

  /** Runs `rows` rows of x (transferred to a thread, not copied) through an attached model version. */
  async run(weights: SharedWeights, x: Float32Array, rows: number, outputSize: number): Promise<InferResult> {
    // Transfer only a buffer x owns whole; a view into someone else's memory is copied first.
    if (x.byteOffset !== 0 || x.byteLength !== x.buffer.byteLength || !(x.buffer instanceof ArrayBuffer)) x = x.slice();
    const result = (await this.dispatch(weights, (id) => ({ kind: 'infer', id, weights, x, rows, outputSize }), [
      x.buffer as ArrayBuffer,
    ])) as ArrayBuffer;
    return { y: new Float32Array(result, RESULT_HEADER_BYTES), computeNs: new Float64Array(result, 0, 1)[0]! };
  }

  /**
   * Explains task.rows rows in a worker (never on this thread: an explanation runs thousands of
   * rows through the model). The version must have been loaded with its round trip for gradients.
   */
  async explain(weights: SharedWeights, task: ExplainTask): Promise<ExplainResult> {
    const answer = (await this.dispatch(weights, (id) => ({ kind: 'explain', id, weights, task }))) as ExplainedMessage;
    return { explanations: answer.explanations, computeNs: answer.computeNs };
  }

  /** Sends one execution on an attached version to the least busy worker and waits for its answer. */
  private async dispatch(
    weights: SharedWeights,
    message: (id: number) => ToWorker,
    transfer: ArrayBuffer[] = [],
  ): Promise<ArrayBuffer | ExplainedMessage> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    const entry = this.attached.get(weights.key);
    if (!entry || entry.detached)
      throw new MaasError('MAAS_ERR_MODEL_DISPOSED', `Model weights ${weights.key} are not attached to the pool`);
    entry.running++;
    // Workers never hold the event loop open on their own; this does, while anything runs.
    this.inFlight++;
    this.hold(1);
    try {
      const slot = this.pick() ?? (await this.workerAvailable());
      const id = ++this.nextId;
      return await new Promise<ArrayBuffer | ExplainedMessage>((resolve, reject) => {
        slot.running.set(id, { key: weights.key, resolve, reject });
        slot.link!.send(message(id), transfer);
      });
    } finally {
      this.hold(-1);
      if (--this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      if (--entry.running === 0 && entry.detached) this.release(weights.key);
    }
  }

  /**
   * Runs an execution on this thread, synchronously: for batches that cost less than handing them
   * to a worker would cost this thread (see hopCostNs). Thread isolation only: a pool of worker
   * processes exists to keep native code out of the serving process.
   */
  runInline(weights: SharedWeights, x: Float32Array, rows: number, outputSize: number): InferResult {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
    const entry = this.attached.get(weights.key);
    if (!entry || entry.detached)
      throw new MaasError('MAAS_ERR_MODEL_DISPOSED', `Model weights ${weights.key} are not attached to the pool`);
    if (this.isolation !== 'thread')
      throw new MaasError('MAAS_ERR_ARG_RANGE', "Inline execution needs thread isolation (this pool runs 'process')");
    let handle = this.inlineHandles.get(weights.key);
    if (!handle) {
      handle = openPackedRegion(weights);
      this.inlineHandles.set(weights.key, handle);
    }
    const y = new Float32Array(rows * outputSize);
    const start = nowNs();
    handle.predict(x, rows, y);
    return { y, computeNs: nowNs() - start };
  }

  /**
   * What one execution handed to a worker costs this thread (the event loop), in nanoseconds:
   * sending, receiving and settling a round trip, measured once as the event loop's active time
   * over sequential pings to an idle worker. Below it, running a batch inline is the cheaper way.
   */
  hopCostNs(): Promise<number> {
    this.hop ??= this.measureHop().catch(() => DEFAULT_HOP_NS);
    return this.hop;
  }

  private async measureHop(): Promise<number> {
    const slot = this.pick() ?? (await this.workerAvailable());
    const ping = () =>
      new Promise<ArrayBuffer | ExplainedMessage>((resolve, reject) => {
        const id = ++this.nextId;
        slot.running.set(id, { key: '', resolve, reject });
        slot.link!.send({ kind: 'ping', id });
      });
    this.hold(1);
    try {
      for (let i = 0; i < 8; i++) await ping();
      const before = performance.eventLoopUtilization();
      for (let i = 0; i < HOP_SAMPLES; i++) await ping();
      return (performance.eventLoopUtilization(before).active * 1e6) / HOP_SAMPLES;
    } finally {
      this.hold(-1);
    }
  }

  /** The live worker running the fewest executions (null while every worker is being replaced). */
  private pick(): Slot | null {
    let best: Slot | null = null;
    for (const slot of this.slots) if (slot.link && (!best || slot.running.size < best.running.size)) best = slot;
    return best;
  }

  private async workerAvailable(): Promise<Slot> {
    for (;;) {
      await new Promise<void>((resolve) => this.waitingForWorker.push(resolve));
      if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closed');
      const slot = this.pick();
      if (slot) return slot;
    }
  }

  private spawn(slot: Slot): void {
    const link = startWorker(this.isolation, this.workerOptions, {
      message: (message) => this.answer(slot, message),
      exit: (reason) => this.died(slot, link, reason),
    });
    slot.link = link;
    const waiting = this.waitingForWorker;
    this.waitingForWorker = [];
    for (const wake of waiting) wake();
  }

  private answer(slot: Slot, message: FromWorker): void {
    if (message.kind === 'ready') return;
    if (message.kind === 'retired') {
      slot.retiring.get(message.key)?.();
      slot.retiring.delete(message.key);
      return;
    }
    const running = slot.running.get(message.id);
    if (!running) return;
    slot.running.delete(message.id);
    if (message.kind === 'result') running.resolve(message.result);
    else if (message.kind === 'explained') running.resolve(message);
    else if (message.kind === 'pong') running.resolve(NO_RESULT);
    else
      running.reject(
        new MaasError(isErrorCode(message.code) ? message.code : 'MAAS_ERR_NATIVE_INTERNAL', message.message),
      );
  }

  /** A worker stopped: fail what it was running (only that), then start its replacement. */
  private died(slot: Slot, link: WorkerLink, reason: string): void {
    if (slot.link !== link) return;
    slot.link = null;
    const failed = [...slot.running.values()];
    slot.running.clear();
    // A dead worker's mappings died with it (a thread's are unmapped when it is torn down).
    for (const acknowledge of slot.retiring.values()) acknowledge();
    slot.retiring.clear();
    if (this.closed) return;
    this.onWorkerExit({ worker: slot.index, isolation: this.isolation, reason, failed: failed.length });
    const error = new MaasError(
      'MAAS_ERR_WORKER_DIED',
      `Inference worker ${slot.index} (${this.isolation}) stopped (${reason}) while running this request; it is being replaced`,
    );
    for (const running of failed) running.reject(error);
    const now = Date.now();
    slot.deaths = [...slot.deaths.filter((t) => now - t < RESPAWN_WINDOW_MS), now];
    const delay = slot.deaths.length >= QUICK_DEATHS ? RESPAWN_BACKOFF_MS : 0;
    // Not unref'd: a caller awaiting run() while the replacement starts must keep the process alive.
    slot.respawn = setTimeout(() => {
      slot.respawn = null;
      if (!this.closed) this.spawn(slot);
    }, delay);
  }

  /** The workers' process ids (the serving process's own for threads). */
  workerPids(): number[] {
    return this.slots.map((slot) => slot.link?.pid ?? -1);
  }

  /**
   * Test hooks only (PoolOptions.testHooks): makes worker `index` exit, abort natively or run out
   * of heap. An abort in a thread would end the whole process, so it needs process isolation.
   */
  injectFault(index: number, fault: WorkerFault): void {
    if (!this.workerOptions.testHooks)
      throw new MaasError('MAAS_ERR_ARG_RANGE', 'injectFault needs a pool created with testHooks: true');
    if (fault === 'abort' && this.isolation !== 'process')
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        "a native abort in a worker thread ends the process: use isolation 'process'",
      );
    const link = this.slots[index]?.link;
    if (!link) throw new MaasError('MAAS_ERR_ARG_RANGE', `No live worker ${index}`);
    link.send({ kind: 'fault', fault });
  }

  /** Stops the workers after running executions finish, and closes every region still attached. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.closed = true;
    this.closing.abort(new MaasError('MAAS_ERR_SERVER_STOPPING', 'The inference pool is closing'));
    clearInterval(this.keepAlive);
    for (const slot of this.slots) if (slot.respawn) clearTimeout(slot.respawn);
    for (const wake of this.waitingForWorker) wake();
    this.waitingForWorker = [];
    const links = this.slots.map((slot) => slot.link).filter((link) => link !== null);
    for (const slot of this.slots) slot.link = null;
    for (const handle of this.inlineHandles.values()) handle.dispose();
    this.inlineHandles.clear();
    for (const { weights } of this.attached.values()) closeRegions(weights);
    this.attached.clear();
    await Promise.all([...links.map((link) => link.terminate()), this.loads]);
  }
}

/** Closes a version's regions: its weights and, when it has one, its round trip. */
function closeRegions(weights: SharedWeights): void {
  native.closeRegion(weights.fd);
  if (weights.roundTrip) native.closeRegion(weights.roundTrip.fd);
}
