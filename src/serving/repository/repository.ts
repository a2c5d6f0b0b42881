/**
 * ModelRepository: Triton's layout (`<repo>/<model>/config.json`, `<repo>/<model>/<N>/<model file>`),
 * version policies, and the model control modes none | poll | explicit. A new version loads
 * beside the serving one and traffic switches in one step; a failed load keeps what was serving
 * and records why; a version is warmed up on every worker before it is READY.
 */
import { CanaryGuard } from '../canary-guard.js';
import type { EpochLog } from '../../model/carried.js';
import { DEFAULT_MAX_QUEUE_BYTES } from '../../protocol/limits.js';
import { exists, readRegularFile, versionNumbers } from '../../io/files.js';
import type { ModelKeys } from '../../io/model-keys.js';
import { SEALED_SUFFIX, isSealedPath } from '../../io/sealed.js';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import type { RepositoryMirror } from './s3-mirror.js';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MaasError, type ErrorCode } from '../../core/errors.js';
import type { ExplainResult, ExplainTask, InferResult, InferencePool, SharedWeights } from '../../pool/pool.js';
import type { ExplainMethod } from '../../explain/explanation.js';
import { MAX_BACKGROUND_ROWS } from '../../explain/target.js';
import { readJsonRows } from '../../explain/json-rows.js';
import { PackedCache } from '../../pool/packed-cache.js';
import { DynamicBatcher } from '../batcher.js';
import { VersionStatistics } from '../statistics.js';
import {
  MODEL_FILE_NAMES,
  batchingPolicy,
  completeConfig,
  instanceCount,
  selectVersions,
  strictIntegrityOf,
  requestedPrecisionOf,
  placementOf,
  routingFromConfig,
  canaryBoundsOf,
  updateSettingsOf,
  type UpdateSettings,
  checkedRouting,
  type VersionRouting,
  PLACEMENT_PARAMETER,
  explainSettingsOf,
  type ExplainSettings,
  type PlacementChoice,
  type ModelConfig,
} from './config.js';
import { WorkerShares } from '../worker-shares.js';
import type { UpdateEpoch, UpdateJob, UpdateVerdict } from '../../lifecycle/update.js';
import type { FederatedRoundJob, FederatedVerdict } from '../../lifecycle/federated-round.js';
import { Pipeline } from '../../data/pipeline.js';
import type { DensePrecision } from '../../model/packed.js';

/** Warm-up rounds of one execution per worker; the rounds after the first are timed. */
const WARM_UP_ROUNDS = 2;
/** The batch an "auto" or "inline" version is timed at on the serving thread, besides one row. */
const INLINE_PROBE_ROWS = 8;

/** Triton's model control modes: load everything at start, follow the directory, or load on request. */
export type ControlMode = 'none' | 'poll' | 'explicit';
/** A model version's state in the repository index, as Triton names them. */
export type VersionState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

/** A loaded, servable model version: its weights in the pool, its batcher, its statistics. */
export interface ServedVersion {
  readonly model: string;
  readonly version: number;
  readonly config: ModelConfig;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly weights: SharedWeights;
  readonly batcher: DynamicBatcher;
  readonly stats: VersionStatistics;
  /** Fingerprint of the files it was loaded from (a change triggers a reload). */
  readonly fingerprint: string;
  /** For an encrypted model file: the key id it was decrypted with. */
  readonly keyId?: string;
  /** The preparation pipeline saved with the model: raw records in, labels out. */
  readonly preparation: Pipeline | null;
  /** Class names of the output (the pipeline's, or the config's label_filename), for classification. */
  readonly labels: string[] | null;
  /** The explain extension, when the config enables it (explain_method). */
  readonly explain: ServedExplain | null;
  /** Every epoch of the model's training, as saved with it (empty when it carries none). */
  readonly history: readonly EpochLog[];
  /** The model file it was loaded from (an update fine-tunes a copy of it). */
  readonly file: string;
  /** What its config says about updates from new rows. */
  readonly update: UpdateSettings;
}

/** A version's explanations: the config's defaults, its background rows, and the pool call that runs one. */
export interface ServedExplain {
  readonly method: ExplainMethod;
  readonly options: Readonly<Record<string, unknown>>;
  /** Background feature rows (flattened, shared memory): the config's explain_background file, else those saved with the model, else null. */
  readonly background: Float32Array | null;
  readonly run: (task: ExplainTask) => Promise<ExplainResult>;
}

/** Largest explain_background file read. */
const MAX_BACKGROUND_FILE_BYTES = 16 * 2 ** 20;

/** The pipeline a model file carries (its JSON, from the load worker), checked against the model's input width. */
function pipelineOf(saved: unknown, path: string, inputSize: number): Pipeline | null {
  if (saved === undefined) return null;
  const pipeline = Pipeline.fromJSON(saved);
  if (pipeline.width !== inputSize)
    throw new MaasError(
      'MAAS_ERR_MODEL_FORMAT',
      `The preparation pipeline saved with ${path} makes ${pipeline.width} features but the model takes ${inputSize}`,
    );
  return pipeline;
}

/** Largest label file read (Triton's label_filename: one class name per line). */
const MAX_LABEL_FILE_BYTES = 4 * 2 ** 20;

/** One row of RepositoryIndex. */
export interface IndexEntry {
  name: string;
  version: string;
  state: VersionState | '';
  reason: string;
}

interface ModelEntry {
  name: string;
  served: Map<number, ServedVersion>;
  loading: Set<number>;
  failures: Map<number, string>;
  /** Why the model as a whole is unavailable (bad config, unloaded), if it is. */
  reason: string;
  unloaded: boolean;
  fingerprint: string;
  /** Loads and unloads of one model run one after another. */
  chain: Promise<unknown>;
  /** Version labels and the canary's share of unversioned requests (config.json, or set at run time). */
  routing: VersionRouting | null;
  /** The canary's guard (config.json's canary_* bounds), fresh whenever the labels change. */
  guard: CanaryGuard | null;
}

export interface RepositoryOptions {
  root: string;
  pool: InferencePool;
  logger: Logger;
  controlMode?: ControlMode;
  /** Seconds between scans in poll mode. */
  pollSeconds?: number;
  /** Models loaded at start in explicit mode (Triton's --load-model); '*' loads all. */
  startupModels?: string[];
  /** Queued input bytes per model version beyond which requests are rejected (default 256 MiB; 0 = unbounded). */
  maxQueueBytes?: number;
  /**
   * Refuse model files that record no digest, unless a model's config sets the strict_integrity
   * parameter to "false" (default false: a digest is verified when a file records one).
   */
  strictIntegrity?: boolean;
  /** The keys of encrypted model files (default: MAAS_MODEL_KEY from the environment). */
  modelKeys?: ModelKeys;
  /** A packed cache directory (pool/packed-cache.ts): versions map their packed weights from it (default: none). */
  packedCache?: string;
  /** The packed cache's size cap: pruned after each version packed into it (default: none). */
  packedCacheMaxBytes?: number;
  /**
   * Single-model mode (KServe's `--model_name`): `root` is the directory of one model served under
   * this name — its versions (`1/`, `2/`, …) and config.json, or a model's files directly (served
   * as version 1).
   */
  singleModel?: string;
  /**
   * The source `root` is a local copy of (an s3:// repository): synced before the first scan,
   * before each poll, and before each load in explicit mode.
   */
  mirror?: RepositoryMirror;
}

const unknownModel = (name: string) =>
  new MaasError('MAAS_ERR_MODEL_UNKNOWN', `Request for unknown model: '${name}' is not found`);

export class ModelRepository {
  readonly root: string;
  readonly controlMode: ControlMode;
  private readonly models = new Map<string, ModelEntry>();
  private readonly pool: InferencePool;
  /** How the versions share the pool's workers (instance counts, fair shares). */
  private readonly shares: WorkerShares;
  readonly logger: Logger;
  private readonly pollSeconds: number;
  private readonly startupModels: string[];
  private readonly maxQueueBytes: number;
  private readonly strictIntegrity: boolean;
  private readonly modelKeys: ModelKeys | undefined;
  private readonly packedCache: string | undefined;
  private readonly packedCacheMaxBytes: number | undefined;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private keySequence = 0;
  private closed = false;
  /** Stops the load threads still running when the repository closes. */
  private readonly stopping = new AbortController();
  private readonly singleModel: string | undefined;
  private readonly mirror: RepositoryMirror | undefined;

  constructor(options: RepositoryOptions) {
    this.root = options.root;
    this.pool = options.pool;
    this.shares = new WorkerShares(options.pool.workers);
    this.logger = options.logger;
    this.controlMode = options.controlMode ?? 'none';
    this.pollSeconds = options.pollSeconds ?? 15;
    this.startupModels = options.startupModels ?? [];
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.strictIntegrity = options.strictIntegrity ?? false;
    this.modelKeys = options.modelKeys;
    this.packedCache = options.packedCache;
    this.packedCacheMaxBytes = options.packedCacheMaxBytes;
    this.singleModel = options.singleModel;
    this.mirror = options.mirror;
  }

  /** The object store the repository is a copy of (s3://…), or undefined for a local directory. */
  get mirroredFrom(): string | undefined {
    return this.mirror?.source;
  }

  /** Loads what the control mode says to load at start; a model that fails is logged, not fatal. */
  async start(): Promise<void> {
    await this.mirror?.prepare();
    if (!(await exists(this.root)))
      throw new MaasError(
        'MAAS_ERR_MODEL_NOT_FOUND',
        `Expected a model repository directory at ${this.root} but nothing is there`,
      );
    const names =
      this.controlMode === 'explicit' && !this.startupModels.includes('*')
        ? this.startupModels
        : await this.modelDirs();
    await Promise.all(names.map((name) => this.load(name).catch(() => {})));
    if (this.controlMode === 'poll') this.schedulePoll();
  }

  /** Stops polling, lets queued work finish, and releases every version. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await this.mirror?.close(); // a sync in flight has its store calls aborted, then ends
    await this.polling;
    await Promise.all(
      [...this.models.values()].map((entry) => this.enqueue(entry, () => this.retireAll(entry, 'server stopping'))),
    );
  }

  /** True when every model that should be serving has a READY version (Triton's strict readiness). */
  get ready(): boolean {
    if (this.closed) return false;
    for (const entry of this.models.values()) if (!entry.unloaded && entry.served.size === 0) return false;
    return true;
  }

  /**
   * The version a request addresses: the given number, or the version a label names ("stable",
   * "canary"); without one, the canary for its share of requests and the stable version for the
   * rest when the model has those labels, else the highest READY version.
   */
  resolve(name: string, version?: string): ServedVersion {
    const entry = this.models.get(name);
    if (!entry) throw unknownModel(name);
    if (version !== undefined && version !== '') {
      const labelled =
        entry.routing && Object.hasOwn(entry.routing.labels, version) ? entry.routing.labels[version] : undefined;
      const v = labelled ?? Number(version);
      const served = Number.isInteger(v) ? entry.served.get(v) : undefined;
      if (served) return served;
      if (Number.isInteger(v) && (entry.loading.has(v) || entry.failures.has(v))) {
        throw new MaasError(
          'MAAS_ERR_MODEL_UNAVAILABLE',
          `Model '${name}' version ${v} is not ready: ${entry.loading.has(v) ? 'loading' : entry.failures.get(v)}`,
        );
      }
      throw new MaasError(
        'MAAS_ERR_MODEL_UNKNOWN',
        `Request for unknown model: '${name}' version ${version}${labelled !== undefined ? ` (label of version ${labelled})` : ''} is not found`,
      );
    }
    const routed = entry.routing && this.routed(entry, entry.routing);
    if (routed) return routed;
    let best: ServedVersion | undefined;
    for (const served of entry.served.values()) if (!best || served.version > best.version) best = served;
    if (best) return best;
    const why =
      entry.reason || (entry.loading.size > 0 ? 'loading' : ([...entry.failures.values()][0] ?? 'not loaded'));
    throw new MaasError('MAAS_ERR_MODEL_UNAVAILABLE', `Model '${name}' has no ready version: ${why}`);
  }

  /** An unversioned request's version under labels: the canary for its share, else stable (when serving). */
  private routed(entry: ModelEntry, routing: VersionRouting): ServedVersion | undefined {
    const stable = routing.labels.stable === undefined ? undefined : entry.served.get(routing.labels.stable);
    const canary = routing.labels.canary === undefined ? undefined : entry.served.get(routing.labels.canary);
    if (canary && routing.canaryPercent > 0 && (!stable || Math.random() * 100 < routing.canaryPercent)) return canary;
    return stable;
  }

  /**
   * Records a finished request of a guarded model's stable or canary version; returns why the
   * canary should be rolled back now, or null.
   */
  recordOutcome(served: ServedVersion, ok: boolean, latencyNs: number): string | null {
    const entry = this.models.get(served.model);
    const routing = entry?.routing;
    if (!entry?.guard || !routing || routing.canaryPercent === 0) return null;
    const side =
      served.version === routing.labels.canary ? 'canary' : served.version === routing.labels.stable ? 'stable' : null;
    if (!side) return null;
    const now = Date.now();
    return entry.guard.record(side, ok, latencyNs, now) ? entry.guard.breach(now) : null;
  }

  /**
   * The version unversioned requests reach, canary aside: the `stable` label's when the model has
   * labels, else the highest ready version (null: none is ready). Updates start from it and
   * promote only while it is still the one.
   */
  servingVersion(name: string): number | null {
    const entry = this.models.get(name);
    if (!entry) return null;
    const stable = entry.routing?.labels.stable;
    if (stable !== undefined && entry.served.has(stable)) return stable;
    let best: number | null = null;
    for (const v of entry.served.keys()) if (best === null || v > best) best = v;
    return best;
  }

  /** The model's directory in the repository (in single-model mode, the root for its one name). */
  modelDir(name: string): string {
    if (this.singleModel === undefined) return join(this.root, name);
    // Any other name is a directory that cannot exist: NUL is never in a path.
    return name === this.singleModel ? this.root : join(this.root, '\0');
  }

  /**
   * Whether the model is served from a flat directory (single-model mode, the model's files in
   * the root and no version directories): its one version is the directory itself, and nothing
   * can be added beside it.
   */
  async isFlat(name: string): Promise<boolean> {
    if (this.singleModel === undefined || name !== this.singleModel) return false;
    if ((await versionNumbers(this.root).catch(() => [])).length > 0) return false;
    for (const file of MODEL_FILE_NAMES) if (await exists(join(this.root, file))) return true;
    return false;
  }

  /** The version numbers a model has on disk (a flat model: 1). */
  private async versionsOnDisk(name: string): Promise<number[]> {
    if (await this.isFlat(name)) return [1];
    return versionNumbers(this.modelDir(name));
  }

  /** A version's directory (a flat model's: the model's). */
  private async versionDir(name: string, version: number): Promise<string> {
    return (await this.isFlat(name)) ? this.modelDir(name) : join(this.modelDir(name), String(version));
  }

  /**
   * Runs an update job in the pool's update thread, on `share` of the workers (rounded down):
   * those are kept from inference while it trains, and its native threads are theirs (at least
   * one, at the lowest priority when no worker is kept).
   */
  async runUpdate(
    job: UpdateJob,
    share: number,
    options: { signal: AbortSignal; onEpoch: (epoch: UpdateEpoch) => void },
  ): Promise<UpdateVerdict> {
    return this.onShare(share, (threads) => this.pool.background({ kind: 'update', job }, { threads, ...options }));
  }

  /** Closes a federated round in the pool's update thread, on `share` of the workers (as runUpdate). */
  async runFederatedRound(job: FederatedRoundJob, share: number, signal: AbortSignal): Promise<FederatedVerdict> {
    return this.onShare(share, (threads) => this.pool.background({ kind: 'federated', job }, { threads, signal }));
  }

  /** A model file's weights, read in the pool's update thread (a round's base, for its clients). */
  async readWeights(file: string): Promise<{ shape: number[]; values: Float32Array }[]> {
    return this.pool.background({ kind: 'weights', file }, { threads: 1 });
  }

  /** Runs `work` with `share` of the workers kept from inference, and their native threads. */
  private async onShare<T>(share: number, work: (threads: number) => Promise<T>): Promise<T> {
    const seats = Math.floor(share * this.pool.workers);
    const release = this.shares.reserve(seats);
    try {
      return await work(Math.min(64, Math.max(1, seats) * this.pool.threadsPerWorker));
    } finally {
      release();
    }
  }

  /** A model's labels and canary share now (null: none, the highest version serves). */
  routingOf(name: string): VersionRouting | null {
    const entry = this.models.get(name);
    if (!entry) throw unknownModel(name);
    return entry.routing ? { labels: { ...entry.routing.labels }, canaryPercent: entry.routing.canaryPercent } : null;
  }

  /**
   * Sets a model's labels and canary share at run time (until its config changes or it reloads):
   * each label must name a version that is serving. Takes effect for the next request.
   */
  setRouting(name: string, labels: unknown, canaryPercent: unknown): VersionRouting {
    const entry = this.models.get(name);
    if (!entry) throw unknownModel(name);
    const routing = checkedRouting(name, labels, canaryPercent, 'routing ');
    for (const [label, version] of Object.entries(routing.labels))
      if (!entry.served.has(version))
        throw new MaasError(
          'MAAS_ERR_MODEL_UNAVAILABLE',
          `Label '${label}' names version ${version} of '${name}', which is not serving (serving: ${[...entry.served.keys()].join(', ') || 'none'})`,
        );
    const relabelled = JSON.stringify(entry.routing?.labels) !== JSON.stringify(routing.labels);
    entry.routing = routing;
    // New labels compare other versions: the guard's window starts again.
    if (entry.guard && relabelled) entry.guard = new CanaryGuard(entry.guard.bounds);
    this.logger.info({ model: name, labels: routing.labels, canaryPercent: routing.canaryPercent }, 'routing set');
    return this.routingOf(name)!;
  }

  servedVersions(name?: string): ServedVersion[] {
    const entries =
      name === undefined
        ? [...this.models.values()]
        : [this.models.get(name)].filter((e): e is ModelEntry => e !== undefined);
    return entries
      .flatMap((entry) => [...entry.served.values()])
      .sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version);
  }

  /** The versions a model has on disk or in memory, as strings (ModelMetadata's versions). */
  versionsOf(name: string): string[] {
    const entry = this.models.get(name);
    return entry ? [...entry.served.keys()].sort((a, b) => a - b).map(String) : [];
  }

  /** RepositoryIndex: every model in the repository, with each version's state. */
  async index(readyOnly = false): Promise<IndexEntry[]> {
    const rows: IndexEntry[] = [];
    const names = new Set([...(await this.modelDirs()), ...this.models.keys()]);
    for (const name of [...names].sort()) {
      const entry = this.models.get(name);
      if (!entry) {
        if (!readyOnly) rows.push({ name, version: '', state: '', reason: '' });
        continue;
      }
      const versions = new Set([...entry.served.keys(), ...entry.loading, ...entry.failures.keys()]);
      for (const v of [...versions].sort((a, b) => a - b)) {
        const state: VersionState = entry.served.has(v) ? 'READY' : entry.loading.has(v) ? 'LOADING' : 'UNAVAILABLE';
        if (readyOnly && state !== 'READY') continue;
        rows.push({
          name,
          version: String(v),
          state,
          reason: state === 'UNAVAILABLE' ? (entry.failures.get(v) ?? '') : '',
        });
      }
      if (versions.size === 0 && !readyOnly)
        rows.push({ name, version: '', state: 'UNAVAILABLE', reason: entry.reason || 'unloaded' });
    }
    return rows;
  }

  /** Loads (or reloads) a model. `config` overrides config.json (RepositoryModelLoad's `config`). */
  async load(name: string, config?: unknown): Promise<void> {
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    if (!/^[\w.-]+$/.test(name) || name === '.' || name === '..') throw unknownModel(name);
    // In explicit mode a load takes what the store holds now (in poll mode the poll has just
    // synced); with the store unreachable it loads the copy it has.
    if (this.controlMode === 'explicit' && this.mirror)
      await this.mirror.sync().catch((error: unknown) => {
        if (this.closed) throw error;
        this.logger.warn({ err: error, source: this.mirror!.source }, 'model store not synced: loading the copy');
      });
    // An unknown name creates nothing: no index entry, no effect on readiness.
    if (!this.models.has(name) && !(await exists(this.modelDir(name)))) throw unknownModel(name);
    const entry = this.entry(name);
    return this.enqueue(entry, () => this.reload(entry, config));
  }

  /** Unloads every version once its queued and running requests finish. */
  unload(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (!entry) return Promise.reject(unknownModel(name));
    return this.enqueue(entry, async () => {
      await this.retireAll(entry, 'unloaded');
      entry.unloaded = true;
      entry.reason = 'unloaded';
      entry.failures.clear();
      entry.fingerprint = '';
    });
  }

  /** One scan in poll mode: loads new or changed models, unloads removed ones. */
  async poll(): Promise<void> {
    await this.mirror?.sync();
    const dirs = new Set(await this.modelDirs());
    const work: Promise<unknown>[] = [];
    for (const name of dirs) {
      const entry = this.models.get(name);
      if (!entry || entry.fingerprint !== (await this.modelFingerprint(name)))
        work.push(this.load(name).catch(() => {}));
    }
    for (const [name, entry] of this.models) if (!dirs.has(name) && !entry.unloaded) work.push(this.unload(name));
    await Promise.all(work);
  }

  private schedulePoll(): void {
    this.pollTimer = setTimeout(() => {
      this.polling = this.poll()
        .catch((error: unknown) => this.logger.error({ err: error }, 'repository poll failed'))
        .finally(() => {
          this.polling = null;
          if (!this.closed) this.schedulePoll();
        });
    }, this.pollSeconds * 1000);
    this.pollTimer.unref();
  }

  private entry(name: string): ModelEntry {
    let entry = this.models.get(name);
    if (!entry) {
      entry = {
        name,
        served: new Map(),
        loading: new Set(),
        failures: new Map(),
        reason: '',
        unloaded: false,
        fingerprint: '',
        chain: Promise.resolve(),
        routing: null,
        guard: null,
      };
      this.models.set(name, entry);
    }
    return entry;
  }

  private enqueue<T>(entry: ModelEntry, step: () => Promise<T>): Promise<T> {
    const run = entry.chain.then(step, step);
    entry.chain = run.catch(() => {});
    return run;
  }

  /** Brings the packed cache under its cap after a pack; a failure is logged, never a failed load. */
  private async pruneCache(dir: string, maxBytes: number): Promise<void> {
    try {
      const report = await new PackedCache(dir).prune({ maxBytes });
      if (report.stale.length + report.evicted.length + report.leftovers > 0)
        this.logger.info(
          {
            packedCache: dir,
            stale: report.stale,
            evicted: report.evicted,
            leftovers: report.leftovers,
            freedBytes: report.freedBytes,
            keptBytes: report.keptBytes,
          },
          'packed cache pruned',
        );
    } catch (e) {
      this.logger.warn({ packedCache: dir, err: (e as Error).message }, 'packed cache could not be pruned');
    }
  }

  private async reload(entry: ModelEntry, override: unknown): Promise<void> {
    const { name } = entry;
    const dir = this.modelDir(name);
    entry.unloaded = false;
    try {
      if (!(await exists(dir))) throw unknownModel(name);
      await refuseSymlink(dir, `model directory '${name}'`);
      const fingerprint = await this.modelFingerprint(name);
      const raw = override !== undefined ? override : await readConfig(dir, name);
      const policyConfig = completeConfig(name, raw);
      const strictIntegrity = strictIntegrityOf(policyConfig, this.strictIntegrity);
      const precision = requestedPrecisionOf(policyConfig);
      const placement = placementOf(policyConfig);
      const explain = explainSettingsOf(policyConfig);
      const routing = routingFromConfig(policyConfig);
      if (placement === 'inline' && this.pool.isolation !== 'thread')
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Model '${name}' asks for placement inline, but the workers are processes (--isolation process keeps native code out of the serving process)`,
        );
      const onDisk = await this.versionsOnDisk(name).catch(() => []);
      const wanted = selectVersions(policyConfig.version_policy, onDisk);
      if (wanted.length === 0)
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Model '${name}' has no version directory its version policy selects (found: ${onDisk.join(', ') || 'none'})`,
        );
      for (const [label, version] of Object.entries(routing?.labels ?? {}))
        if (!wanted.includes(version))
          throw new MaasError(
            'MAAS_ERR_MODEL_CONFIG',
            `Model '${name}' labels version ${version} '${label}', but its version policy does not serve it (serving: ${wanted.join(', ')})`,
          );
      entry.routing = routing;
      const bounds = canaryBoundsOf(policyConfig);
      if (bounds && !routing?.labels.canary)
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Model '${name}' has canary_* bounds but no "canary" label to guard`,
        );
      entry.guard = bounds ? new CanaryGuard(bounds) : null;
      entry.reason = '';
      const failed: string[] = [];
      const failedCodes = new Set<ErrorCode>();
      for (const version of wanted) {
        const files = `${JSON.stringify(raw)}|${await versionFingerprint(await this.versionDir(name, version))}`;
        if (entry.served.get(version)?.fingerprint === files) continue;
        entry.loading.add(version);
        try {
          const served = await this.loadVersion(name, version, raw, files, {
            strictIntegrity,
            precision,
            placement,
            explain,
          });
          const old = entry.served.get(version);
          entry.served.set(version, served); // traffic switches here, in one step
          entry.failures.delete(version);
          this.logger.info(
            {
              model: name,
              version,
              format: served.weights.format,
              bytes: served.weights.byteLength,
              placement: served.config.parameters[PLACEMENT_PARAMETER]?.string_value,
              inlineMaxRows: served.config.parameters.inline_max_rows?.string_value,
              costPerRowNs: Number(served.config.parameters.cost_per_row_ns?.string_value),
              ...(served.keyId ? { keyId: served.keyId } : {}),
            },
            'model version ready',
          );
          if (old) void this.retire(old);
        } catch (error) {
          const reason = (error as Error).message;
          failedCodes.add(error instanceof MaasError ? error.code : 'MAAS_ERR_MODEL_FORMAT');
          entry.failures.set(version, reason);
          failed.push(`version ${version}: ${reason}`);
          this.logger.error({ model: name, version, reason }, 'model version failed to load; keeping what was serving');
        } finally {
          entry.loading.delete(version);
        }
      }
      // Versions the policy no longer selects go once every selected one is serving.
      if (failed.length === 0) {
        for (const [version, served] of entry.served) {
          if (!wanted.includes(version)) {
            entry.served.delete(version);
            void this.retire(served);
          }
        }
        for (const version of [...entry.failures.keys()]) if (!wanted.includes(version)) entry.failures.delete(version);
      }
      entry.fingerprint = fingerprint;
      // The versions' own code when they agree (MAAS_ERR_MODEL_DECRYPT, _INTEGRITY, …), so a client
      // can tell why; MAAS_ERR_MODEL_FORMAT when they differ.
      if (failed.length > 0)
        throw new MaasError(
          failedCodes.size === 1 ? [...failedCodes][0]! : 'MAAS_ERR_MODEL_FORMAT',
          `failed to load '${name}': ${failed.join('; ')}`,
        );
    } catch (error) {
      if (entry.served.size === 0 && entry.failures.size === 0) entry.reason = (error as Error).message;
      entry.fingerprint = await this.modelFingerprint(name).catch(() => '');
      this.logger.error({ model: name, reason: (error as Error).message }, 'model load failed');
      throw error;
    }
  }

  private async loadVersion(
    name: string,
    version: number,
    raw: unknown,
    fingerprint: string,
    asked: {
      strictIntegrity: boolean;
      precision: DensePrecision | undefined;
      placement: PlacementChoice;
      explain: ExplainSettings | null;
    },
  ): Promise<ServedVersion> {
    const { strictIntegrity, precision } = asked;
    const dir = await this.versionDir(name, version);
    await refuseSymlink(dir, `version directory ${name}/${version}`);
    const declared = (raw as { default_model_filename?: unknown } | undefined)?.default_model_filename;
    let fileName = typeof declared === 'string' ? declared : undefined;
    for (const candidate of MODEL_FILE_NAMES)
      if (!fileName && (await exists(join(dir, candidate)))) fileName = candidate;
    if (!fileName || !(await exists(join(dir, fileName)))) {
      throw new MaasError(
        'MAAS_ERR_MODEL_NOT_FOUND',
        `Expected a model file (${typeof declared === 'string' ? declared : MODEL_FILE_NAMES.join(', ')}) in ${dir} but found none`,
      );
    }
    // Read, checked, folded and packed in a load thread: only the packed region's descriptor and
    // a few numbers come back, so a large model does not stall the requests this loop answers.
    const plaintextTwin = isSealedPath(fileName) ? fileName.slice(0, -SEALED_SUFFIX.length) : null;
    if (plaintextTwin && (await exists(join(dir, plaintextTwin))))
      this.logger.warn(
        { model: name, version, file: plaintextTwin },
        'a plaintext model file lies beside the encrypted one that is served',
      );
    const loaded = await this.pool.load(join(dir, fileName), {
      signal: this.stopping.signal,
      strictIntegrity,
      ...(precision ? { precision } : {}),
      ...(this.modelKeys ? { keys: this.modelKeys } : {}),
      ...(this.packedCache ? { packedCache: this.packedCache } : {}),
      ...(asked.explain ? { roundTrip: true } : {}),
    });
    const { region, inputSize, outputSize, quantization, keyId, cached } = loaded;
    if (cached)
      this.logger.info(
        { model: name, version, packedCache: cached },
        cached === 'hit' ? 'packed weights mapped from the cache' : 'packed weights written to the cache',
      );
    if (loaded.roundTripCached)
      this.logger.info(
        { model: name, version, packedCache: loaded.roundTripCached },
        loaded.roundTripCached === 'hit'
          ? 'round-trip weights (explanations) mapped from the cache'
          : 'round-trip weights (explanations) written to the cache',
      );
    if (
      (cached === 'written' || loaded.roundTripCached === 'written') &&
      this.packedCache &&
      this.packedCacheMaxBytes !== undefined
    )
      await this.pruneCache(this.packedCache, this.packedCacheMaxBytes);
    const weights: SharedWeights = {
      key: `${name}/${version}/${++this.keySequence}`,
      format: region.format,
      fd: region.fd,
      byteLength: region.byteLength,
      ...(loaded.roundTrip ? { roundTrip: { fd: loaded.roundTrip.fd, byteLength: loaded.roundTrip.byteLength } } : {}),
    };
    // From here the pool owns the region: every way out of this function either serves it or detaches it.
    this.pool.attach(weights);
    let batcher: DynamicBatcher | undefined;
    try {
      const parameters: Record<string, string> = { precision: region.format, kernel: region.kernel };
      if (quantization) parameters.quantization = quantization;
      const platform = region.format === 'int8' ? 'maas_dense_int8' : 'maas_dense';
      const config = completeConfig(name, raw, {
        inputSize,
        outputSize,
        platform,
        fileName,
        parameters,
        defaultInstances: this.pool.workers,
      });
      const stats = new VersionStatistics(name, String(version));
      const run = (x: Float32Array, rows: number) => this.pool.run(weights, x, rows, outputSize);
      batcher = new DynamicBatcher(
        batchingPolicy(config, this.maxQueueBytes),
        inputSize,
        outputSize,
        { shares: this.shares, instances: instanceCount(config) },
        run,
        (e) => stats.recordExecution(e),
      );
      const warmRowNs = await this.warmUp(weights, inputSize, outputSize);
      const runInline = (x: Float32Array, rows: number) => this.pool.runInline(weights, x, rows, outputSize);
      const cost = await this.placementFor(
        asked.placement,
        warmRowNs,
        (rows) => runInline(new Float32Array(rows * inputSize), rows).computeNs,
      );
      // What was measured and decided is part of the served config: ModelConfig shows it.
      Object.assign(config.parameters, {
        [PLACEMENT_PARAMETER]: { string_value: asked.placement },
        inline_max_rows: { string_value: Number.isFinite(cost.maxRows) ? String(cost.maxRows) : 'all' },
        cost_per_row_ns: { string_value: String(Math.round(cost.perRowNs)) },
        cost_per_batch_ns: { string_value: String(Math.round(cost.fixedNs)) },
      });
      batcher.placeInline({ maxRows: cost.maxRows, run: runInline });
      const path = join(dir, fileName);
      const preparation = pipelineOf(loaded.preparation, path, inputSize);
      const history = loaded.history ?? [];
      const savedBackground = loaded.background ?? null;
      const update = updateSettingsOf(config);
      const labels = preparation?.classes ?? (await this.labelFile(name, config.output[0]!.label_filename));
      const explain = asked.explain
        ? await this.servedExplain(name, asked.explain, inputSize, preparation, savedBackground, (task) =>
            this.pool.explain(weights, task),
          )
        : null;
      return {
        model: name,
        version,
        config,
        inputSize,
        outputSize,
        weights,
        batcher,
        stats,
        fingerprint,
        ...(keyId ? { keyId } : {}),
        preparation,
        labels,
        explain,
        history,
        file: path,
        update,
      };
    } catch (error) {
      batcher?.close();
      await this.pool.detach(weights.key);
      throw error;
    }
  }

  /**
   * A version's explain settings with its background rows read: the explain_background file holds
   * a JSON array of feature rows (inputSize numbers each) or, for a model with a preparation
   * pipeline, of raw records, which the pipeline prepares. Without the file, the background saved
   * with the model serves.
   */
  private async servedExplain(
    model: string,
    settings: ExplainSettings,
    inputSize: number,
    preparation: Pipeline | null,
    saved: Float32Array | null,
    run: ServedExplain['run'],
  ): Promise<ServedExplain> {
    let rows = saved;
    if (settings.backgroundFile !== undefined) {
      const file = join(this.modelDir(model), settings.backgroundFile);
      const limits = { maxBytes: MAX_BACKGROUND_FILE_BYTES, maxRows: MAX_BACKGROUND_ROWS };
      try {
        rows = await readJsonRows(file, inputSize, preparation, 'the explain_background file', limits);
      } catch (error) {
        // The file is part of the model's configuration: its faults are the config's.
        throw new MaasError('MAAS_ERR_MODEL_CONFIG', (error as Error).message, { cause: error });
      }
    }
    // In shared memory: each request hands it to a worker thread without a copy (a worker
    // process gets its own copy with the message).
    let background: Float32Array | null = null;
    if (rows) {
      background = new Float32Array(new SharedArrayBuffer(rows.byteLength));
      background.set(rows);
    }
    return { method: settings.method, options: settings.options, background, run };
  }

  /** The class names of a config's label_filename, one per line. */
  private async labelFile(model: string, file: string | undefined): Promise<string[] | null> {
    if (file === undefined) return null;
    const text = (
      await readRegularFile(join(this.modelDir(model), file), MAX_LABEL_FILE_BYTES, 'a label file')
    ).toString('utf8');
    const lines = text.split(/\r?\n/);
    if (lines.at(-1) === '') lines.pop();
    return lines;
  }

  /**
   * Two rounds of one execution per worker (each opens its handle, then runs warm), and outputs
   * must be finite. Returns the version's cost of one row: the fastest warm execution's compute time.
   */
  private async warmUp(weights: SharedWeights, inputSize: number, outputSize: number): Promise<number> {
    let fastest = Infinity;
    for (let round = 0; round < WARM_UP_ROUNDS; round++) {
      const runs = Array.from({ length: this.pool.workers }, () =>
        this.pool.run(weights, new Float32Array(inputSize), 1, outputSize),
      );
      // Every run settles before any failure is reported: the version is detached only when idle.
      const settled = await Promise.allSettled(runs);
      for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
      for (const { y, computeNs } of settled.map((o) => (o as PromiseFulfilledResult<InferResult>).value)) {
        if (!y.every(Number.isFinite))
          throw new MaasError('MAAS_ERR_MODEL_FORMAT', 'warmup produced non-finite outputs (corrupt weights?)');
        if (round > 0) fastest = Math.min(fastest, computeNs);
      }
    }
    return fastest;
  }

  /**
   * The largest batch that runs inline: every batch for "inline", none for "pool" (or when the
   * workers are processes), and for "auto" the batches whose cost stays below what handing them
   * to a worker costs the event loop, so inline execution never holds the loop longer than
   * offloading would. A version whose warm one-row execution in a worker already costs more than
   * that runs in the pool; one below is timed on this thread at one and at INLINE_PROBE_ROWS rows
   * (a few dozen µs of the loop, once), and the cost is taken as fixed + rows × per-row.
   */
  private async placementFor(
    placement: PlacementChoice,
    warmRowNs: number,
    probe: (rows: number) => number,
  ): Promise<{ maxRows: number; fixedNs: number; perRowNs: number }> {
    const pooled = { maxRows: 0, fixedNs: 0, perRowNs: warmRowNs };
    if (placement === 'pool' || this.pool.isolation !== 'thread') return pooled;
    const hopNs = await this.pool.hopCostNs();
    if (placement === 'auto' && warmRowNs > hopNs) return pooled;
    const fastest = (rows: number, runs: number) => {
      let best = Infinity;
      for (let i = 0; i < runs; i++) best = Math.min(best, probe(rows));
      return best;
    };
    const one = fastest(1, 16);
    const many = fastest(INLINE_PROBE_ROWS, 4);
    const perRowNs = Math.max((many - one) / (INLINE_PROBE_ROWS - 1), 1);
    const fixedNs = Math.max(one - perRowNs, 0);
    if (placement === 'inline') return { maxRows: Infinity, fixedNs, perRowNs };
    return { maxRows: Math.max(0, Math.floor((hopNs - fixedNs) / perRowNs)), fixedNs, perRowNs };
  }

  /** Takes a version out of service: no new requests; queued and running ones finish; then its weights go. */
  private async retire(served: ServedVersion): Promise<void> {
    await served.batcher.drained();
    served.batcher.close();
    await this.pool.detach(served.weights.key);
    this.logger.info({ model: served.model, version: served.version }, 'model version unloaded');
  }

  private async retireAll(entry: ModelEntry, why: string): Promise<void> {
    const versions = [...entry.served.values()];
    entry.served.clear();
    if (why === 'server stopping')
      for (const v of versions)
        v.batcher.rejectQueued(new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down'));
    await Promise.all(versions.map((v) => this.retire(v)));
  }

  private async modelDirs(): Promise<string[]> {
    if (this.singleModel !== undefined) return (await exists(this.root)) ? [this.singleModel] : [];
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  private async modelFingerprint(name: string): Promise<string> {
    const dir = this.modelDir(name);
    const config = await readFile(join(dir, 'config.json'), 'utf8').catch(() => '');
    const parts = [config];
    for (const v of await this.versionsOnDisk(name).catch(() => []))
      parts.push(`${v}:${await versionFingerprint(await this.versionDir(name, v))}`);
    return parts.join('|');
  }
}

/** Largest config.json read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** A model or version directory must be a real directory of the repository, not a link out of it. */
async function refuseSymlink(path: string, what: string): Promise<void> {
  const info = await lstat(path).catch(() => null);
  if (info?.isSymbolicLink())
    throw new MaasError('MAAS_ERR_MODEL_FILE', `Expected the ${what} to be a directory, not a symbolic link`);
}

async function readConfig(dir: string, name: string): Promise<unknown> {
  let text: string;
  try {
    text = (await readRegularFile(join(dir, 'config.json'), MAX_CONFIG_BYTES, 'a config.json')).toString('utf8');
  } catch (error) {
    // No config.json: everything comes from the model (Triton's auto-complete).
    if (error instanceof MaasError && error.code === 'MAAS_ERR_MODEL_NOT_FOUND') return {};
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new MaasError(
      'MAAS_ERR_MODEL_CONFIG',
      `Expected valid JSON in ${join(dir, 'config.json')} for model '${name}' but parsing failed: ${(error as Error).message}`,
    );
  }
}

/** Names, sizes and modification times of a version directory's files. */
async function versionFingerprint(dir: string): Promise<string> {
  const files = await readdir(dir).catch(() => [] as string[]);
  const parts: string[] = [];
  for (const f of files.sort()) {
    const s = await stat(join(dir, f)).catch(() => null);
    if (s) parts.push(`${f}:${s.size}:${s.mtimeMs}`);
  }
  return parts.join(',');
}
