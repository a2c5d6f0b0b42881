/**
 * Model updates as a service: a client streams new rows (training rows, and held-out rows unless
 * the model's config names a file of them), then the update trains a candidate in the pool's
 * update thread on a share of the workers, scores it beside the serving version, and, when it
 * wins by the configured margin, commits it as the next version and loads it. One update per
 * model at a time, in this process (a map) and across processes sharing the repository (a lock
 * file in the model's directory). Until the commit, a cancelled or failed update leaves nothing
 * behind: the staged directory is removed and the lock released.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MaasError, describeValue } from '../core/errors.js';
import { takeFileLock } from '../io/file-lock.js';
import { commitVersion, stagingPath } from '../lifecycle/publish.js';
import { rdpEpsilon } from '../lifecycle/federated.js';
import { lineagePrivacy } from '../lifecycle/federated-round.js';
import {
  parseUpdateTraining,
  stagedFileName,
  type UpdateJob,
  type UpdateRows,
  type UpdateTraining,
  type UpdateVerdict,
} from '../lifecycle/update.js';
import type { ModelRepository, ServedVersion } from './repository/repository.js';

/** Which rows a batch holds: rows to train on, or held-out rows to judge by. */
export type UpdateSet = 'train' | 'holdout';

/** One batch of an update's rows: x has `inputs` values a row; y the model's outputs a row, or one (a class index). */
export interface UpdateBatch {
  set: UpdateSet;
  /** Rows of inputs: flat numbers (Float32Array or array) or an array of rows. */
  x: unknown;
  /** Rows of targets, as x. */
  y: unknown;
  /** The rows the sender says x holds (checked when given). */
  rows?: number;
}

/** What an update reports while it runs. */
export type UpdateEvent =
  | {
      kind: 'training';
      model: string;
      baseVersion: number;
      rows: number;
      /** Held-out rows sent (0: the config's file is used). */
      holdoutRows: number;
      epochs: number;
    }
  | { kind: 'epoch'; epoch: number; epochs: number; logs: Record<string, number> };

/** How an update ended. */
export interface UpdateResult {
  model: string;
  baseVersion: number;
  /** Whether the candidate won and was committed as `version`. */
  promoted: boolean;
  version?: number;
  /** Whether the promoted version is serving (its load can fail, or the version policy skip it). */
  serving: boolean;
  verdict: UpdateVerdict;
  rows: number;
  dataSha256: string;
  /** Why the promoted version is not serving, when it is not. */
  loadError?: string;
}

/**
 * An event as both transports send it: proto/maas_update.proto's UpdateResponse fields, which the
 * gRPC adapter sends as a message and the REST adapter as an NDJSON line.
 */
export function updateEventMessage(event: UpdateEvent): Record<string, unknown> {
  if (event.kind === 'training')
    return {
      event: 'training',
      model_name: event.model,
      model_version: String(event.baseVersion),
      rows: event.rows,
      holdout_rows: event.holdoutRows,
      epochs: event.epochs,
    };
  return { event: 'epoch', epoch: event.epoch, epochs: event.epochs, metrics: event.logs };
}

/** An update's result as both transports send it (UpdateResponse's fields, `event: "result"`). */
export function updateResultMessage(r: UpdateResult): Record<string, unknown> {
  return {
    event: 'result',
    model_name: r.model,
    base_version: String(r.baseVersion),
    model_version: r.version === undefined ? '' : String(r.version),
    promoted: r.promoted,
    serving: r.serving,
    metric: r.verdict.metric,
    margin: r.verdict.margin,
    improvement: r.verdict.improvement,
    metrics: r.verdict.candidate,
    serving_metrics: r.verdict.serving,
    rows: r.rows,
    holdout_rows: r.verdict.holdoutRows,
    data_sha256: r.dataSha256,
    reason: r.loadError ? `${r.verdict.reason}; not serving: ${r.loadError}` : r.verdict.reason,
  };
}

/** The lock file that keeps a second update of a model out, across processes. */
export const UPDATE_LOCK_FILE = '.update.lock';

/** Rows of one set as they arrive, joined once at the end. */
class RowSink {
  private readonly xs: Float32Array[] = [];
  private readonly ys: Float32Array[] = [];
  rows = 0;
  yWidth = 0;

  add(x: Float32Array, y: Float32Array, rows: number): void {
    this.xs.push(x);
    this.ys.push(y);
    this.rows += rows;
  }

  /** The rows in one buffer each, owned (so they can move to the update thread). */
  take(): UpdateRows {
    return { x: join32(this.xs), y: join32(this.ys), rows: this.rows };
  }
}

function join32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  parts.length = 0;
  return out;
}

/** A batch's x or y as flat float32 rows of `width` (null width: taken from the rows), every value finite. */
function flatRows(
  value: unknown,
  width: number | null,
  what: string,
): { values: Float32Array; rows: number; width: number } {
  const bad = (expected: string, received: unknown) =>
    new MaasError('MAAS_ERR_UPDATE_DATA', `Expected ${expected} for ${what} but received ${describeValue(received)}`);
  let values: Float32Array;
  let rowWidth = width;
  if (value instanceof Float32Array) values = value;
  else if (Array.isArray(value) && value.length > 0 && Array.isArray(value[0])) {
    rowWidth ??= (value[0] as unknown[]).length;
    values = new Float32Array(value.length * rowWidth);
    value.forEach((row: unknown, r) => {
      if (!Array.isArray(row) || row.length !== rowWidth)
        throw new MaasError(
          'MAAS_ERR_UPDATE_DATA',
          `Expected rows of ${rowWidth} numbers for ${what} but row ${r} ${Array.isArray(row) ? `holds ${row.length}` : `is ${describeValue(row)}`}`,
        );
      for (let j = 0; j < rowWidth; j++) {
        const v: unknown = row[j];
        if (typeof v !== 'number') throw bad('numbers', v);
        values[r * rowWidth + j] = v;
      }
    });
  } else if (Array.isArray(value)) {
    values = new Float32Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'number') throw bad('numbers', v);
      values[i] = v;
    }
  } else throw bad('an array of rows (or flat numbers)', value);
  if (values.length === 0) throw bad('at least one row', '[]');
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i]!)) throw bad('finite numbers', `${values[i]} at value ${i}`);
  rowWidth ??= values.length; // flat y with no width yet: fixed by x's rows below
  return { values, rows: values.length / rowWidth, width: rowWidth };
}

/**
 * Takes the model directory's update lock (src/io/file-lock.ts), or says who holds it: one of
 * another host, or one that cannot be read, counts as held (an operator removes it: the message
 * says where).
 */
function takeLock(modelDir: string, model: string): Promise<() => Promise<void>> {
  const path = join(modelDir, UPDATE_LOCK_FILE);
  return takeFileLock(path, (held) =>
    held === 'raced'
      ? new MaasError('MAAS_ERR_UPDATE_BUSY', `Another update of '${model}' took the lock first`)
      : new MaasError(
          'MAAS_ERR_UPDATE_BUSY',
          held
            ? `An update of '${model}' is already running (host ${held.host}, process ${held.pid}): one update per model at a time`
            : `An update of '${model}' holds ${path}, which cannot be read: remove it if no update runs`,
        ),
  );
}

/** One update, from its first batch to its result. */
export class UpdateSession {
  private readonly train = new RowSink();
  private readonly holdout = new RowSink();
  private readonly digest = createHash('sha256');
  private bytes = 0;
  private state: 'receiving' | 'running' | 'ended' = 'receiving';
  private readonly abort = new AbortController();
  /** Settles once the session let go of its model (the lock released). */
  private readonly released: Promise<void>;
  private unlocked!: () => void;

  constructor(
    private readonly repository: ModelRepository,
    private readonly base: ServedVersion,
    private readonly training: UpdateTraining,
    private readonly unlock: () => Promise<void>,
    private readonly promoted: (name: string) => Promise<void>,
  ) {
    this.released = new Promise((resolve) => (this.unlocked = resolve));
  }

  /** Releases the model (once). */
  private async release(): Promise<void> {
    await this.unlock();
    this.unlocked();
  }

  get model(): string {
    return this.base.model;
  }

  /** Adds a batch of rows; a malformed one is refused (both transports then end the update). */
  add(batch: UpdateBatch): void {
    if (this.state !== 'receiving')
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `The update of '${this.model}' takes no more rows: it is ${this.state}`,
      );
    if (batch.set !== 'train' && batch.set !== 'holdout')
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Expected set 'train' or 'holdout' for an update batch but received ${describeValue(batch.set)}`,
      );
    if (batch.set === 'holdout' && this.base.update.holdoutFile !== undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Model '${this.model}' judges updates on the held-out rows its config names (update_holdout): send no 'holdout' batches`,
      );
    if (batch.set === 'holdout' && this.base.update.holdoutFile !== undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Model '${this.model}' judges updates on the held-out rows its config names (update_holdout): send no 'holdout' batches`,
      );
    const x = flatRows(batch.x, this.base.inputSize, `${batch.set} batch x`);
    if (!Number.isInteger(x.rows))
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Expected ${batch.set} batch x to hold whole rows of ${this.base.inputSize} inputs but received ${x.values.length} values`,
      );
    if (batch.rows !== undefined && batch.rows !== x.rows)
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `The ${batch.set} batch says it holds ${batch.rows} rows, but its x holds ${x.rows} rows of ${this.base.inputSize} inputs`,
      );
    const sink = batch.set === 'train' ? this.train : this.holdout;
    const y = flatRows(batch.y, sink.yWidth || null, `${batch.set} batch y`);
    const yWidth = y.values.length / x.rows;
    if (!Number.isInteger(yWidth) || (yWidth !== 1 && yWidth !== this.base.outputSize))
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Expected y to hold ${x.rows} rows of ${this.base.outputSize} targets (or of 1 class index) for ${x.rows} rows of x but received ${y.values.length} values`,
      );
    if (sink.yWidth !== 0 && yWidth !== sink.yWidth)
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Expected ${sink.yWidth} targets a row, as in the earlier ${batch.set} batches, but received ${yWidth}`,
      );
    const bytes = x.values.byteLength + y.values.byteLength;
    if (this.bytes + bytes > this.base.update.maxBytes)
      throw new MaasError(
        'MAAS_ERR_UPDATE_TOO_LARGE',
        `The update of '${this.model}' passed ${this.base.update.maxBytes} bytes of rows (its config's update_max_bytes)`,
      );
    this.bytes += bytes;
    sink.yWidth = yWidth;
    sink.add(x.values, y.values, x.rows);
    if (batch.set === 'train') {
      this.digest.update(new Uint8Array(x.values.buffer, x.values.byteOffset, x.values.byteLength));
      this.digest.update(new Uint8Array(y.values.buffer, y.values.byteOffset, y.values.byteLength));
    }
  }

  /**
   * Ends the update where it is: nothing it staged stays, and its model may be updated again
   * once the returned promise settles. After the commit it is too late: the update completes.
   */
  cancel(reason = 'the client cancelled the update'): Promise<void> {
    if (this.state === 'receiving') {
      this.state = 'ended';
      void this.release();
    } else if (this.state === 'running')
      this.abort.abort(new MaasError('MAAS_ERR_REQUEST_CANCELLED', `The update was cancelled: ${reason}`));
    return this.released;
  }

  /** Throws unless the rows are enough to run: some to train on, and held-out rows or the config's file. */
  checkRows(): void {
    if (this.train.rows === 0)
      throw new MaasError('MAAS_ERR_UPDATE_DATA', `The update of '${this.model}' sent no training rows`);
    if (this.holdout.rows === 0 && this.base.update.holdoutFile === undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `The update of '${this.model}' sent no held-out rows (set 'holdout') and its config names no update_holdout file to judge the candidate by`,
      );
  }

  /** The rows are all in: trains, judges, and promotes when the candidate wins. */
  async run(onEvent: (event: UpdateEvent) => void): Promise<UpdateResult> {
    if (this.state !== 'receiving')
      throw new MaasError('MAAS_ERR_UPDATE_DATA', `The update of '${this.model}' is already ${this.state}`);
    this.state = 'running';
    const { base } = this;
    const modelDir = this.repository.modelDir(base.model);
    const staging = stagingPath(modelDir);
    try {
      this.checkRows();
      const holdoutFile = base.update.holdoutFile;
      const holdoutRows = this.holdout.rows;
      const job: UpdateJob = {
        modelDir,
        staging,
        baseFile: base.file,
        baseVersion: base.version,
        fileName: stagedFileName(basename(base.file))!,
        training: this.training,
        policy: base.update.policy,
        train: this.train.take(),
        holdout: holdoutRows > 0 ? this.holdout.take() : { file: join(modelDir, holdoutFile!) },
        dataSha256: this.digest.digest('hex'),
      };
      const lineage = await lineagePrivacy(join(modelDir, String(base.version)));
      if (lineage.rounds > 0) job.lineagePrivacy = { ...lineage, ...rdpEpsilon(lineage.rdp, lineage.delta ?? 1e-5) };
      onEvent({
        kind: 'training',
        model: base.model,
        baseVersion: base.version,
        rows: job.train.rows,
        holdoutRows,
        epochs: this.training.epochs,
      });
      const verdict = await this.repository.runUpdate(job, base.update.workerShare, {
        signal: this.abort.signal,
        onEpoch: (e) => onEvent({ kind: 'epoch', ...e }),
      });
      const result: UpdateResult = {
        model: base.model,
        baseVersion: base.version,
        promoted: false,
        serving: false,
        verdict,
        rows: job.train.rows,
        dataSha256: job.dataSha256,
      };
      if (!verdict.promoted) return result;
      this.abort.signal.throwIfAborted();
      const now = this.repository.servingVersion(base.model);
      if (now !== base.version) {
        // Judged against a version that no longer serves: its win says nothing about the new one.
        result.verdict = {
          ...verdict,
          promoted: false,
          reason: `${verdict.reason}, but the serving version changed from ${base.version} to ${now} while it trained: not promoted`,
        };
        return result;
      }
      // The commit point: from here the version exists, whatever happens to the stream.
      result.version = await commitVersion(modelDir, staging);
      result.promoted = true;
      try {
        await this.promoted(base.model);
        result.serving = this.repository.servedVersions(base.model).some((v) => v.version === result.version);
        if (!result.serving) result.loadError = "the model's version policy does not serve it";
      } catch (error) {
        result.loadError = (error as Error).message;
      }
      return result;
    } finally {
      this.state = 'ended';
      try {
        await rm(staging, { recursive: true, force: true });
      } finally {
        await this.release();
      }
    }
  }
}

/** The running updates, one per model. */
export class ModelUpdates {
  private readonly running = new Set<string>();

  constructor(
    private readonly repository: ModelRepository,
    /** Loads a promoted version (here, and in the other serving processes). */
    private readonly promoted: (name: string) => Promise<void>,
  ) {}

  /**
   * Starts an update of `name` (its serving version, or `version`): checks the version can be
   * updated and the parameters, and takes the model's lock. The session then takes batches
   * until run() or cancel(); either releases the lock.
   */
  async begin(name: string, version: string | undefined, parameters: Record<string, unknown>): Promise<UpdateSession> {
    const base = await this.updatableBase(name, version);
    let training: UpdateTraining;
    try {
      training = parseUpdateTraining(parameters, base.update);
    } catch (error) {
      if (error instanceof MaasError && error.code === 'MAAS_ERR_UPDATE_PARAMETER') throw error;
      throw new MaasError('MAAS_ERR_UPDATE_PARAMETER', (error as Error).message);
    }
    const unlock = await this.lock(name);
    return new UpdateSession(this.repository, base, training, unlock, this.promoted);
  }

  /**
   * The version a job that writes the next version (an update, a federated round) starts from:
   * the serving one (naming another is refused), and one that maas can update and write back.
   */
  async updatableBase(name: string, version: string | undefined): Promise<ServedVersion> {
    const base = this.repository.resolve(name, version);
    const serving = this.repository.servingVersion(name);
    if (version !== undefined && base.version !== serving)
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Version ${base.version} of '${name}' is not the one unversioned requests reach (${serving}): a new version starts from the serving one, which it must beat`,
      );
    if (base.weights.format === 'int8')
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Version ${base.version} of '${name}' is int8: update the fp32 model it was quantized from, then quantize the result`,
      );
    if (base.keyId !== undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Version ${base.version} of '${name}' is encrypted: an update would write its weights unencrypted`,
      );
    const store = this.repository.mirroredFrom;
    if (store !== undefined)
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `'${name}' is served from a copy of ${store}: publish new versions to the store (every replica polls it); an update here would be overwritten by the next sync`,
      );
    if (await this.repository.isFlat(name))
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `'${name}' is served from a directory of one model's files, with no version directories to add one beside`,
      );
    if (!stagedFileName(basename(base.file)))
      throw new MaasError(
        'MAAS_ERR_UPDATE_REFUSED',
        `Version ${base.version} of '${name}' is served from ${basename(base.file)}, a file an update cannot write`,
      );
    return base;
  }

  /**
   * Takes model `name` for one job that may produce a version (an update, a federated round's
   * close): refused with MAAS_ERR_UPDATE_BUSY while another holds it, here or in another process.
   * Resolves with the function that lets go.
   */
  async lock(name: string): Promise<() => Promise<void>> {
    if (this.running.has(name))
      throw new MaasError('MAAS_ERR_UPDATE_BUSY', `An update of '${name}' is already running: one per model at a time`);
    this.running.add(name);
    let unlockFile: () => Promise<void>;
    try {
      unlockFile = await takeLock(this.repository.modelDir(name), name);
    } catch (error) {
      this.running.delete(name);
      throw error;
    }
    return async () => {
      await unlockFile();
      this.running.delete(name);
    };
  }

  /** Loads a promoted version here and in the other serving processes. */
  promote(name: string): Promise<void> {
    return this.promoted(name);
  }
}
