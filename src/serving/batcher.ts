/**
 * DynamicBatcher: one per model version. Queues requests by priority, forms batches with Triton's
 * knobs (max_batch_size, preferred_batch_size, max_queue_delay_microseconds, max_queue_size,
 * per-request timeout and priority), drops requests whose client went away, and runs an
 * execution only when its share of the workers allows (WorkerShares), so the queue forms here,
 * where it can be batched, and one model cannot take every worker from the others. A batch small
 * enough for its version's inline placement runs on this thread instead, without a worker.
 */
import { MaasError, messageOf } from '../core/errors.js';
import { nowNs } from '../core/clock.js';
import type { Cancellation } from './cancellation.js';
import { WorkerShares, type ExecutionShare } from './worker-shares.js';

/** The scheduling part of a model config, resolved to plain numbers. */
export interface BatchingPolicy {
  /** Rows per execution; 0 means the model takes no batch dimension (one request per execution). */
  maxBatchSize: number;
  /** Dynamic batching on: requests are combined up to maxBatchSize. */
  dynamic: boolean;
  preferredBatchSizes: number[];
  maxQueueDelayUs: number;
  /** Queued requests beyond this are rejected; 0 = unbounded. */
  maxQueueSize: number;
  /** Queued input bytes beyond this are rejected (a request always fits an empty queue); 0 = unbounded. */
  maxQueueBytes: number;
  /** A queued request older than this is rejected; 0 = no timeout. */
  defaultTimeoutUs: number;
  allowTimeoutOverride: boolean;
  /** Priority levels 1 (highest) … priorityLevels; 0 = one level. */
  priorityLevels: number;
  defaultPriorityLevel: number;
}

/** Where an execution ran: on the serving thread, or in a pool worker. */
export type Placement = 'inline' | 'pool';

/** How one execution went, as the batcher reports it (for statistics and metrics). */
export interface Execution {
  placement: Placement;
  rows: number;
  requests: number;
  /** Gathering the requests' rows into the batch. */
  inputNs: number;
  computeNs: number;
  /** Handing each request its share of the output. */
  outputNs: number;
}

/**
 * A request's input rows: float32 values, or the little-endian float32 bytes exactly as they
 * arrived (gRPC raw contents, REST binary data), which are copied only into the batch.
 */
export type InputRows = Float32Array | Uint8Array;

/** Runs one batch: returns rows·outputSize floats and the native compute time. */
export type Executor = (x: Float32Array, rows: number) => Promise<{ y: Float32Array; computeNs: number }>;

/** Batches of at most `maxRows` rows run synchronously on this thread, through `run`. */
export interface InlinePlacement {
  maxRows: number;
  run: (x: Float32Array, rows: number) => { y: Float32Array; computeNs: number };
}

/** Per-request options. */
export interface SubmitOptions {
  priority?: number;
  timeoutUs?: number;
  cancellation?: Cancellation;
}

/** A request's share of a batch. */
export interface BatchedResult {
  /** rows·outputSize floats (a view into the batch output). */
  y: Float32Array;
  queueNs: number;
  computeNs: number;
  batchRows: number;
}

/** When and where an execution ran, for its statistics. */
interface ExecutionTiming {
  placement: Placement;
  rows: number;
  gathering: number;
  started: number;
}

interface Pending {
  x: InputRows;
  rows: number;
  enqueued: number;
  level: number;
  resolve: (result: BatchedResult) => void;
  reject: (error: MaasError) => void;
  timer?: NodeJS.Timeout;
  cancellation?: Cancellation;
  done: boolean;
}

/** Rows of the reused inline input buffer at most; a larger inline batch gets its own. */
const INLINE_INPUT_ROWS = 256;

export class DynamicBatcher {
  private readonly queues: Pending[][];
  private queued = 0;
  private queuedRows = 0;
  private queuedBytes = 0;
  private inFlight = 0;
  private delayTimer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly share: ExecutionShare;
  private inline: InlinePlacement | null = null;
  /** The inline runs' input, reused batch after batch (the addon reads it and keeps nothing). */
  private inlineInput: Float32Array | undefined;

  /**
   * `workers`: the shared workers and this version's instance count, or a number of workers of
   * its own (a batcher used alone).
   */
  constructor(
    readonly policy: BatchingPolicy,
    private readonly inputSize: number,
    private readonly outputSize: number,
    workers: { shares: WorkerShares; instances: number } | number,
    private readonly execute: Executor,
    private readonly onExecuted: (execution: Execution) => void = () => {},
  ) {
    this.queues = Array.from({ length: Math.max(1, policy.priorityLevels) }, () => []);
    const { shares, instances } =
      typeof workers === 'number' ? { shares: new WorkerShares(workers), instances: workers } : workers;
    this.share = shares.join(instances, () => this.pump());
  }

  /** Batches up to `placement.maxRows` rows run inline from now on (null: every batch in the pool). */
  placeInline(placement: InlinePlacement | null): void {
    this.inline = placement && placement.maxRows > 0 ? placement : null;
    const rows = this.inline ? Math.min(this.inline.maxRows, INLINE_INPUT_ROWS) : 0;
    this.inlineInput = rows > 0 ? new Float32Array(rows * this.inputSize) : undefined;
  }

  /** The version is retired: it gives up its seat among the shared workers. */
  close(): void {
    this.share.leave();
  }

  /** Requests waiting or running. */
  get pending(): number {
    return this.queued + this.inFlight;
  }

  /** Queues `rows` rows of x; resolves with this request's outputs once its batch ran. */
  submit(x: InputRows, rows: number, options: SubmitOptions = {}): Promise<BatchedResult> {
    const policy = this.policy;
    if (policy.maxQueueSize > 0 && this.queued >= policy.maxQueueSize) {
      return Promise.reject(
        new MaasError('MAAS_ERR_QUEUE_FULL', `Exceeds maximum queue size (${policy.maxQueueSize})`),
      );
    }
    if (policy.maxQueueBytes > 0 && this.queued > 0 && this.queuedBytes + x.byteLength > policy.maxQueueBytes) {
      return Promise.reject(
        new MaasError(
          'MAAS_ERR_QUEUE_FULL',
          `Exceeds maximum queue size (${policy.maxQueueBytes} bytes of queued inputs)`,
        ),
      );
    }
    const level = this.levelOf(options.priority);
    const timeoutUs =
      options.timeoutUs !== undefined && policy.allowTimeoutOverride ? options.timeoutUs : policy.defaultTimeoutUs;
    return new Promise<BatchedResult>((resolve, reject) => {
      const request: Pending = { x, rows, enqueued: nowNs(), level, resolve, reject, done: false };
      const cancellation = options.cancellation;
      if (cancellation?.aborted) return reject(cancelled());
      this.queues[level]!.push(request);
      this.queued++;
      this.queuedRows += rows;
      this.queuedBytes += x.byteLength;
      this.pump();
      // Taken at once (run inline, or handed to a worker): nothing to cancel or time out.
      if (!request.done) this.watchWhileQueued(request, cancellation, timeoutUs);
    });
  }

  /** A request left waiting is dropped when its client goes away or its timeout expires. */
  private watchWhileQueued(request: Pending, cancellation: Cancellation | undefined, timeoutUs: number): void {
    if (cancellation) {
      request.cancellation = cancellation;
      cancellation.onAbort(() => this.drop(request, cancelled()));
    }
    if (timeoutUs > 0) {
      request.timer = setTimeout(
        () =>
          this.drop(
            request,
            new MaasError('MAAS_ERR_REQUEST_TIMEOUT', `Request timeout expired (${timeoutUs} µs in the queue)`),
          ),
        Math.max(1, timeoutUs / 1000),
      );
    }
  }

  /** Resolves once nothing is queued or running (for unloading a version). */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Rejects everything still queued (the version is going away and nothing may hang). */
  rejectQueued(error: MaasError): void {
    for (const queue of this.queues) for (const request of [...queue]) this.drop(request, error);
  }

  private levelOf(priority: number | undefined): number {
    const levels = Math.max(1, this.policy.priorityLevels);
    // Triton: priority 0 (or absent) means the default level; 1 is the highest.
    const p = priority === undefined || priority === 0 ? this.policy.defaultPriorityLevel || 1 : priority;
    if (!Number.isInteger(p) || p < 1 || p > levels) {
      throw new MaasError(
        'MAAS_ERR_INFER_PARAMETER',
        `Expected priority in [0, ${levels}] for parameter priority but received ${priority}`,
      );
    }
    return p - 1;
  }

  /** Takes a request out of the queue before it runs and fails it. */
  private drop(request: Pending, error: MaasError): void {
    if (request.done) return;
    const queue = this.queues[request.level]!;
    const at = queue.indexOf(request);
    if (at < 0) return; // already in a batch: it runs, and its answer is discarded by the caller
    queue.splice(at, 1);
    this.queued--;
    if (this.queued === 0) this.share.idle();
    this.queuedRows -= request.rows;
    this.queuedBytes -= request.x.byteLength;
    this.settle(request);
    request.reject(error);
    this.notifyIdle();
  }

  private settle(request: Pending): void {
    request.done = true;
    if (request.timer) clearTimeout(request.timer);
    request.cancellation?.onAbort(null);
  }

  /** Dispatches batches while the policy says a batch is ready and a worker is ours to take. */
  private pump(): void {
    while (this.queued > 0) {
      const rows = this.readyRows();
      if (rows === 0) return;
      if (this.inline && rows <= this.inline.maxRows) {
        this.runInline(this.inline, this.take(rows));
        continue;
      }
      if (!this.share.tryAcquire()) return;
      this.dispatch(this.take(rows));
    }
    this.share.idle();
  }

  /** How many rows to send now, or 0 to wait for more (a timer is then armed). */
  private readyRows(): number {
    const policy = this.policy;
    if (!policy.dynamic || policy.maxBatchSize === 0) return this.peek()!.rows;
    const max = policy.maxBatchSize;
    if (this.queuedRows >= max) return max;
    const preferred = policy.preferredBatchSizes.filter((size) => size <= this.queuedRows);
    if (preferred.length > 0) return Math.max(...preferred);
    const waitedUs = (nowNs() - this.oldest()) / 1000;
    if (waitedUs >= policy.maxQueueDelayUs) return this.queuedRows;
    if (!this.delayTimer) {
      this.delayTimer = setTimeout(
        () => {
          this.delayTimer = null;
          this.pump();
        },
        Math.max(1, (policy.maxQueueDelayUs - waitedUs) / 1000),
      );
    }
    return 0;
  }

  private peek(): Pending | undefined {
    for (const queue of this.queues) if (queue.length > 0) return queue[0];
    return undefined;
  }

  private oldest(): number {
    let oldest = nowNs();
    for (const queue of this.queues) if (queue.length > 0 && queue[0]!.enqueued < oldest) oldest = queue[0]!.enqueued;
    return oldest;
  }

  /** Takes whole requests, highest priority first, until `rows` rows (always at least one request). */
  private take(rows: number): Pending[] {
    const batch: Pending[] = [];
    let taken = 0;
    for (const queue of this.queues) {
      while (queue.length > 0 && (batch.length === 0 || taken + queue[0]!.rows <= rows)) {
        const request = queue.shift()!;
        batch.push(request);
        taken += request.rows;
        this.queued--;
        this.queuedRows -= request.rows;
        this.queuedBytes -= request.x.byteLength;
        this.settle(request);
      }
      if (taken >= rows) break;
    }
    return batch;
  }

  /**
   * Copies each request's rows once, into the batch; a lone float32 request that owns its buffer
   * is used as it is. `scratch` (an inline run, which keeps nothing of its input) is reused
   * when it is large enough; a batch for a worker gets a fresh buffer, which is transferred.
   */
  private gather(batch: Pending[], scratch?: Float32Array): { x: Float32Array; rows: number } {
    // A delay armed for the requests just taken is void; pump() arms one for whoever still waits.
    if (this.delayTimer) {
      clearTimeout(this.delayTimer);
      this.delayTimer = null;
    }
    const rows = batch.reduce((sum, r) => sum + r.rows, 0);
    const lone = batch.length === 1 ? batch[0]!.x : null;
    if (lone instanceof Float32Array && lone.byteOffset === 0 && lone.byteLength === lone.buffer.byteLength)
      return { x: lone, rows };
    const size = rows * this.inputSize;
    const x = scratch && scratch.length >= size ? scratch.subarray(0, size) : new Float32Array(size);
    const bytes = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    let at = 0;
    for (const { x: rowsIn } of batch) {
      bytes.set(
        rowsIn instanceof Uint8Array ? rowsIn : new Uint8Array(rowsIn.buffer, rowsIn.byteOffset, rowsIn.byteLength),
        at,
      );
      at += rowsIn.byteLength;
    }
    return { x, rows };
  }

  /** Hands each request its share of the batch's outputs, and reports the execution. */
  private deliver(batch: Pending[], y: Float32Array, computeNs: number, timing: ExecutionTiming): void {
    const splitting = nowNs();
    let row = 0;
    for (const request of batch) {
      const n = request.rows * this.outputSize;
      request.resolve({
        y: y.subarray(row, row + n),
        queueNs: timing.started - request.enqueued,
        computeNs,
        batchRows: timing.rows,
      });
      row += n;
    }
    this.onExecuted({
      placement: timing.placement,
      rows: timing.rows,
      requests: batch.length,
      inputNs: timing.started - timing.gathering,
      computeNs,
      outputNs: nowNs() - splitting,
    });
  }

  private fail(batch: Pending[], error: unknown): void {
    const failure =
      error instanceof MaasError
        ? error
        : new MaasError('MAAS_ERR_NATIVE_INTERNAL', `Execution failed: ${messageOf(error)}`);
    for (const request of batch) request.reject(failure);
  }

  /** Runs a batch on this thread now; its requests settle when the caller's turn of the event loop ends. */
  private runInline(inline: InlinePlacement, batch: Pending[]): void {
    const gathering = nowNs();
    const { x, rows } = this.gather(batch, this.inlineInput);
    const started = nowNs();
    try {
      const { y, computeNs } = inline.run(x, rows);
      this.deliver(batch, y, computeNs, { placement: 'inline', rows, gathering, started });
    } catch (error) {
      this.fail(batch, error);
    }
    this.notifyIdle();
  }

  private dispatch(batch: Pending[]): void {
    const gathering = nowNs();
    const { x, rows } = this.gather(batch);
    const started = nowNs();
    this.inFlight++;
    this.execute(x, rows)
      .then(
        ({ y, computeNs }) => this.deliver(batch, y, computeNs, { placement: 'pool', rows, gathering, started }),
        (error: unknown) => this.fail(batch, error),
      )
      .finally(() => {
        this.inFlight--;
        this.share.release(); // pumps this batcher, then wakes those waiting for a worker
        this.notifyIdle();
      });
  }

  private notifyIdle(): void {
    if (this.pending > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function cancelled(): MaasError {
  return new MaasError('MAAS_ERR_REQUEST_CANCELLED', 'The request was cancelled: the client went away before it ran');
}
