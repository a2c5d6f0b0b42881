/**
 * DataPlane: the protocol-free core of the inference service (KServe v2 / Open Inference
 * Protocol semantics). The gRPC and REST adapters decode into these types, call one method, and
 * encode what comes back; they never reach past this file.
 */
import type { ModelMetadata, ServerMetadata } from '../protocol/metadata.js';
import type { ModelExplainResponse } from '../protocol/explain.js';
import { DATATYPE_BYTES } from '../protocol/datatypes.js';
import { MAX_JSON_DEPTH, jsonNestsDeeper } from '../protocol/limits.js';
import { MaasError } from '../core/errors.js';
import type { DurationStat, ModelStatisticsEntry } from '../protocol/statistics.js';
import type { ModelConfig, VersionRouting } from './repository/config.js';
import type { IndexEntry, ModelRepository, ServedVersion } from './repository/repository.js';
import type { FailureReason, ServingMetrics, VersionStatistics } from './statistics.js';
import { checkedRawFloats, floatsFromRaw, floatsFromValues } from './tensors.js';
import { nowNs } from '../core/clock.js';
import { Cancellation } from './cancellation.js';
import { ModelUpdates, type UpdateSession } from './updates.js';
import { FederatedRounds, type RoundInfo, type RoundResult } from './federated.js';
import type { InputRows } from './batcher.js';
import {
  EXPLAIN_METHODS,
  EXPLAIN_OPTION_NAMES,
  relabel,
  type Explanation,
  type ExplainMethod,
} from '../explain/explanation.js';
import type { ColumnForm } from '../data/pipeline.js';
import { historyToJSON } from '../model/carried.js';
import {
  PANDAS_CONTENT_TYPE,
  checkedRecords,
  classificationOf,
  classificationStrings,
  recordsFromColumns,
} from './records.js';

/** The adapters' handle on a request: abort it when the client goes away. */
export { Cancellation };
export type { UpdateBatch, UpdateEvent, UpdateResult, UpdateSession, UpdateSet } from './updates.js';
export { updateEventMessage, updateResultMessage } from './updates.js';
export type { RoundInfo, RoundResult, RoundTensor } from './federated.js';
/** An output's bytes on the wire, for the adapters (FP32 as it is, BYTES serialized). */
export { outputBytes, fp32Copy } from './tensors.js';
export type { ModelMetadata, ServerMetadata, TensorMetadata } from '../protocol/metadata.js';
export type { VersionRouting } from './repository/config.js';

/** A request or tensor parameter value. */
export type ParameterValue = boolean | number | string | bigint;
/** Request or tensor parameters by name. */
export type Parameters = Record<string, ParameterValue>;

/** One input tensor, as an adapter decoded it: raw little-endian bytes, or typed values. */
export interface InferInput {
  name: string;
  datatype: string;
  shape: number[];
  raw?: Uint8Array;
  values?: ArrayLike<unknown>;
  /**
   * The adapter hands `values` (a Float32Array that is the whole of its buffer) over: it goes to
   * the batcher as it is, which may move it to a worker, instead of being copied first.
   */
  handedOver?: boolean;
  parameters?: Parameters;
}

/** An inference request, as an adapter decoded it from its protocol. */
export interface InferRequest {
  model: string;
  version?: string;
  id?: string;
  parameters?: Parameters;
  inputs: InferInput[];
  /** Requested outputs; absent or empty means all. */
  outputs?: { name: string; parameters?: Parameters }[];
  /** Raw JSON records (REST) for a model with a preparation pipeline, instead of inputs. */
  records?: unknown;
}

/** One output tensor of a response: FP32 values, or BYTES strings (labels, classification). */
export type InferOutput = {
  name: string;
  shape: number[];
  /** The parameters the client attached to this requested output (binary_data, for REST). */
  parameters?: Parameters;
} & ({ datatype: 'FP32'; data: Float32Array } | { datatype: 'BYTES'; data: string[] });

/** The answer to an InferRequest, before an adapter encodes it. */
export interface InferResponse {
  model: string;
  version: string;
  id?: string;
  outputs: InferOutput[];
}

/**
 * config.json parameter (`"parameters": {"convert_input_datatypes": {"string_value": "true"}}`)
 * that lets a model take any numeric datatype, converted to FP32.
 */
export const CONVERT_DATATYPES_PARAMETER = 'convert_input_datatypes';

/**
 * An input's datatype must be the model's (FP32), as Triton requires, unless the model opts in to
 * conversion; an unknown datatype is always the client's error.
 */
function checkDatatype(input: InferInput, config: ModelConfig): void {
  if (input.datatype === 'FP32') return;
  const shown = input.datatype.length > 32 ? `${input.datatype.slice(0, 32)}…` : input.datatype;
  if (DATATYPE_BYTES[input.datatype] === undefined && input.datatype !== 'BYTES') {
    throw new MaasError(
      'MAAS_ERR_INFER_DATATYPE',
      `unknown datatype '${shown}' for inference input '${input.name}', expecting FP32`,
    );
  }
  if (
    input.datatype === 'BYTES' ||
    config.parameters[CONVERT_DATATYPES_PARAMETER]?.string_value?.toLowerCase() !== 'true'
  ) {
    throw new MaasError(
      'MAAS_ERR_INFER_DATATYPE',
      `unexpected datatype TYPE_${input.datatype === 'BYTES' ? 'STRING' : shown} for inference input '${input.name}', expecting TYPE_FP32`,
    );
  }
}

function statisticsEntry(served: ServedVersion): ModelStatisticsEntry {
  const s: VersionStatistics = served.stats;
  const copy = (d: DurationStat) => ({ count: d.count, ns: d.ns });
  return {
    name: served.model,
    version: String(served.version),
    last_inference: s.lastInference,
    inference_count: s.inferenceCount,
    execution_count: s.executionCount,
    inference_stats: {
      success: copy(s.success),
      fail: copy(s.fail),
      queue: copy(s.queue),
      compute_input: copy(s.computeInput),
      compute_infer: copy(s.computeInfer),
      compute_output: copy(s.computeOutput),
      cache_hit: { count: 0, ns: 0 },
      cache_miss: { count: 0, ns: 0 },
    },
    batch_stats: [...s.batches]
      .sort((a, b) => a[0] - b[0])
      .map(([size, b]) => ({
        batch_size: size,
        compute_input: copy(b.computeInput),
        compute_infer: copy(b.computeInfer),
        compute_output: copy(b.computeOutput),
      })),
    // The packed weights, shared by every worker: counted once (and the round trip explanations use).
    memory_usage: [
      { type: 'CPU', id: 0, byte_size: served.weights.byteLength + (served.weights.roundTrip?.byteLength ?? 0) },
    ],
    ...(served.explain
      ? {
          explain_stats: {
            success: copy(s.explainSuccess),
            fail: copy(s.explainFail),
            compute_explain: copy(s.explainCompute),
            explained_rows: { ...s.explainedRows },
          },
        }
      : {}),
  };
}

/** The extensions this server implements (clients feature-detect from this list). */
export const EXTENSIONS = [
  'model_repository',
  'model_configuration',
  'schedule_policy',
  'binary_tensor_data',
  'parameters',
  'statistics',
  // maas's own: POST …/explain and maas.ExplainService/ModelExplain.
  'explain',
  // maas's own: GET …/card (what the /ui page shows of a version).
  'model_card',
  // maas's own: POST …/update and maas.UpdateService/Update (new rows in, a judged version out).
  'update',
  // maas's own: maas.FederatedService (rounds of weight deltas, never rows).
  'federated',
] as const;

/**
 * What a person needs to try a model version (the /ui page's view of it): how to fill one input
 * row, what the outputs mean, whether it explains, and how its training went.
 */
export interface ModelCard {
  name: string;
  version: string;
  platform: string;
  /** Raw columns (a model saved with its preparation pipeline) or one tensor of numbers. */
  inputs:
    { kind: 'columns'; columns: ColumnForm[] } | { kind: 'tensor'; name: string; width: number; typical: number[] };
  output: { name: string; width: number; labels: string[] | null };
  task: 'classification' | 'regression' | null;
  /** The configured explanation method, or null when the version does not explain. */
  explain: { method: ExplainMethod } | null;
  /** Loss and metrics per epoch, as saved with the model (null where a value was NaN). */
  history: Record<string, number | null>[];
}

/** An explain answer as both transports send it (snake_case, as the protocol's messages). */
export function explainMessage(r: ExplainResponse): ModelExplainResponse {
  return {
    model_name: r.model,
    model_version: r.version,
    ...(r.id ? { id: r.id } : {}),
    method: r.method,
    explanations: r.explanations.map((e) => ({
      output: e.output,
      value: e.value,
      base: e.base,
      attributions: e.attributions,
      features: e.features,
      ...(e.columns ? { columns: e.columns } : {}),
      ...(e.completenessGap !== undefined ? { completeness_gap: e.completenessGap } : {}),
      ...(e.additivityGap !== undefined ? { additivity_gap: e.additivityGap } : {}),
      ...(e.r2 !== undefined ? { r2: e.r2 } : {}),
      ...(e.coefficients ? { coefficients: e.coefficients } : {}),
      ...(e.coalitions !== undefined ? { coalitions: e.coalitions } : {}),
      ...(e.exact !== undefined ? { exact: e.exact } : {}),
    })),
  };
}

/** Rows one explain request may carry: each costs thousands of forward rows (SHAP, LIME) or a path (IG). */
export const MAX_EXPLAIN_ROWS = 64;

/** The answer to an explain request: one explanation per row, for the method that ran. */
export interface ExplainResponse {
  model: string;
  version: string;
  id?: string;
  method: ExplainMethod;
  explanations: Explanation[];
}

/** What a DataPlane serves from. */
export interface DataPlaneOptions {
  repository: ModelRepository;
  metrics: ServingMetrics;
  serverName?: string;
  serverVersion: string;
  /** The other serving processes of this machine (maas serve --processes N), which control operations reach too. */
  peers?: ServingPeers;
}

/** A repository control operation, as it travels to the other serving processes. */
export type ControlOperation =
  | { kind: 'load'; name: string; config?: string }
  | { kind: 'unload'; name: string }
  /** An update promoted a new version: load the model again, in any control mode. */
  | { kind: 'reload'; name: string }
  | { kind: 'routing'; name: string; labels: Record<string, number>; canaryPercent: number };

/** The other serving processes: a load or unload that succeeds here runs in each of them as well. */
export interface ServingPeers {
  /** Runs `operation` in every other process; rejects with the first failure. */
  broadcast(operation: ControlOperation): Promise<void>;
}

/** The protocol-free core of the service: every operation of the protocol, which the gRPC and REST adapters call. */
export class DataPlane {
  readonly repository: ModelRepository;
  readonly metrics: ServingMetrics;
  private readonly serverName: string;
  private readonly serverVersion: string;
  private readonly peers: ServingPeers | undefined;
  private stopping = false;
  private readonly updates: ModelUpdates;
  private readonly rounds: FederatedRounds;

  constructor(options: DataPlaneOptions) {
    this.repository = options.repository;
    this.metrics = options.metrics;
    this.serverName = options.serverName ?? 'maas';
    this.serverVersion = options.serverVersion;
    this.peers = options.peers;
    this.updates = new ModelUpdates(this.repository, async (name) => {
      await this.repository.load(name);
      await this.peers?.broadcast({ kind: 'reload', name });
    });
    this.rounds = new FederatedRounds(this.repository, this.updates);
  }

  /** Opens a federated round on a model's serving version (maas.FederatedService/OpenRound). */
  openRound(name: string, version: string | undefined, parameters: Record<string, unknown>): Promise<RoundInfo> {
    if (this.stopping) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    // A round lives in the process that opened it, and the group spreads connections over them all.
    if (this.peers)
      throw new MaasError(
        'MAAS_ERR_FEDERATED_ROUND',
        'Federated rounds need a server of one serving process (this one runs several: --processes)',
      );
    return this.rounds.open(name, version, parameters);
  }

  /** The open round of a model, with its base weights (GetRound). */
  getRound(name: string, roundId?: string): RoundInfo {
    return this.rounds.get(name, roundId);
  }

  /** One client's weight delta for the open round (SubmitUpdate). */
  submitRoundUpdate(
    name: string,
    roundId: string,
    client: string,
    samples: number,
    delta: Float32Array[],
  ): { clients: number; norm: number } {
    return this.rounds.submit(name, roundId, client, samples, delta);
  }

  /** Closes a model's round: averages, judges, and promotes when it wins (CloseRound). */
  closeRound(name: string, roundId: string): Promise<RoundResult> {
    return this.rounds.close(name, roundId);
  }

  /**
   * Starts an update of a model from new rows (the update extension): the session takes the
   * client's batches, then run() trains, judges and promotes. Refused while the server stops,
   * while another update of the model runs, or for a version that cannot be updated.
   */
  async beginUpdate(
    name: string,
    version: string | undefined,
    parameters: Record<string, unknown>,
  ): Promise<UpdateSession> {
    if (this.stopping) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    return this.updates.begin(name, version, parameters);
  }

  /** Marks the server as going away: not ready, new inferences refused. */
  stop(): void {
    this.stopping = true;
  }

  live(): boolean {
    return true;
  }

  ready(): boolean {
    return !this.stopping && this.repository.ready;
  }

  modelReady(name: string, version?: string): boolean {
    try {
      this.repository.resolve(name, version);
      return !this.stopping;
    } catch (error) {
      if ((error as MaasError).code === 'MAAS_ERR_MODEL_UNAVAILABLE') return false;
      throw error;
    }
  }

  serverMetadata(): ServerMetadata {
    return { name: this.serverName, version: this.serverVersion, extensions: [...EXTENSIONS] };
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const served = this.repository.resolve(name, version);
    const { config } = served;
    return {
      name,
      versions: this.repository.versionsOf(name),
      platform: config.platform,
      inputs: [
        ...config.input.map((t) => ({ name: t.name, datatype: 'FP32', shape: [-1, ...t.dims] })),
        // The raw columns the saved pipeline takes: one input per column (MLServer's content_type "pd").
        ...Object.entries(served.preparation?.inputKinds ?? {}).map(([column, kind]) => ({
          name: column,
          datatype: kind === 'number' ? 'FP32' : 'BYTES',
          shape: [-1],
        })),
      ],
      outputs: [
        ...config.output.map((t) => ({ name: t.name, datatype: 'FP32', shape: [-1, ...t.dims] })),
        ...(labelOutputName(served)
          ? [
              {
                name: labelOutputName(served)!,
                datatype: served.preparation!.task === 'classification' ? 'BYTES' : 'FP32',
                shape: [-1],
              },
            ]
          : []),
      ],
    };
  }

  /** The version's card: its input form, outputs, explanation method and training history. */
  modelCard(name: string, version?: string): ModelCard {
    const served = this.repository.resolve(name, version);
    const { config, preparation, explain, inputSize } = served;
    const background = explain?.background;
    // A tensor row starts at the background's mean, when the model has one, else at zero.
    const typical = new Array<number>(inputSize).fill(0);
    if (background)
      for (let i = 0; i < background.length; i++)
        typical[i % inputSize] = typical[i % inputSize]! + background[i]! / (background.length / inputSize);
    return {
      name,
      version: String(served.version),
      platform: config.platform,
      inputs: preparation
        ? { kind: 'columns', columns: preparation.columnForms }
        : { kind: 'tensor', name: config.input[0]!.name, width: inputSize, typical },
      output: { name: config.output[0]!.name, width: served.outputSize, labels: served.labels },
      task: preparation?.task ?? (served.labels ? 'classification' : null),
      explain: explain ? { method: explain.method } : null,
      history: historyToJSON(served.history).epochs,
    };
  }

  modelConfig(name: string, version?: string): ModelConfig {
    return this.repository.resolve(name, version).config;
  }

  /** Statistics for every ready version, one model, or one version. */
  modelStatistics(name?: string, version?: string): ModelStatisticsEntry[] {
    if (name && version) return [statisticsEntry(this.repository.resolve(name, version))];
    if (name) this.repository.resolve(name); // unknown model → Triton's error
    return this.repository.servedVersions(name || undefined).map(statisticsEntry);
  }

  repositoryIndex(readyOnly = false): Promise<IndexEntry[]> {
    return this.repository.index(readyOnly);
  }

  async loadModel(name: string, parameters: Record<string, unknown> = {}): Promise<void> {
    this.checkExplicit('load');
    let config: unknown;
    if (parameters.config !== undefined) {
      if (typeof parameters.config !== 'string')
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Expected a JSON string for load parameter config but received ${typeof parameters.config}`,
        );
      if (jsonNestsDeeper(parameters.config))
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Expected a JSON model config nested at most ${MAX_JSON_DEPTH} arrays or objects deep for load parameter config but it nests deeper`,
        );
      try {
        config = JSON.parse(parameters.config);
      } catch (error) {
        throw new MaasError(
          'MAAS_ERR_MODEL_CONFIG',
          `Expected a JSON model config for load parameter config but parsing failed: ${(error as Error).message}`,
        );
      }
    }
    await this.repository.load(name, config);
    const text = parameters.config;
    await this.peers?.broadcast({ kind: 'load', name, ...(text !== undefined ? { config: text } : {}) });
  }

  /** A model's version labels and the canary's share of unversioned requests (null: none). */
  modelRouting(name: string): VersionRouting | null {
    return this.repository.routingOf(name);
  }

  /** Sets a model's labels and canary share, in every serving process; each label must name a serving version. */
  async setModelRouting(name: string, labels: unknown, canaryPercent: unknown): Promise<VersionRouting> {
    const routing = this.repository.setRouting(name, labels, canaryPercent);
    await this.peers?.broadcast({ kind: 'routing', name, ...routing });
    return routing;
  }

  async unloadModel(name: string): Promise<void> {
    this.checkExplicit('unload');
    await this.repository.unload(name);
    await this.peers?.broadcast({ kind: 'unload', name });
  }

  /** Runs a control operation another serving process received (and already ran) here, without passing it on. */
  async applyPeerOperation(operation: ControlOperation): Promise<void> {
    if (operation.kind === 'routing') {
      this.repository.setRouting(operation.name, operation.labels, operation.canaryPercent);
      return;
    }
    if (operation.kind === 'reload') return this.repository.load(operation.name);
    this.checkExplicit(operation.kind);
    if (operation.kind === 'unload') return this.repository.unload(operation.name);
    await this.repository.load(
      operation.name,
      operation.config === undefined ? undefined : (JSON.parse(operation.config) as unknown),
    );
  }

  /** Runs one inference request through its model version's batcher. */
  async infer(request: InferRequest, cancellation?: Cancellation): Promise<InferResponse> {
    const started = nowNs();
    if (this.stopping) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    const served = this.repository.resolve(request.model, request.version);
    try {
      const raw = this.rawRows(served, request);
      const { x, rows, batched } = raw ?? this.inputRows(served, request);
      const outputs = this.requestedOutputs(served, request, raw !== null);
      const inputDone = nowNs();
      const result = await served.batcher.submit(x, rows, {
        priority: integerParameter(request.parameters, 'priority'),
        timeoutUs: integerParameter(request.parameters, 'timeout'),
        cancellation,
      });
      const outputStart = nowNs();
      const response: InferResponse = {
        model: served.model,
        version: String(served.version),
        ...(request.id ? { id: request.id } : {}),
        outputs: outputs.map((o) => outputTensor(served, o, result.y, rows, batched)),
      };
      const done = nowNs();
      served.stats.recordSuccess(rows, {
        totalNs: done - started,
        queueNs: result.queueNs,
        inputNs: inputDone - started,
        inferNs: result.computeNs,
        outputNs: done - outputStart,
      });
      this.guardCanary(served, true, done - started);
      return response;
    } catch (error) {
      const failedNs = nowNs() - started;
      served.stats.recordFailure(failureReason(error), failedNs);
      this.guardCanary(served, false, failedNs);
      throw error;
    }
  }

  /**
   * Feeds a finished request to the model's canary guard and, when the canary breaks its bounds,
   * rolls it back: its share to 0 in every serving process (the labels stay, to look at).
   */
  private guardCanary(served: ServedVersion, ok: boolean, latencyNs: number): void {
    const breach = this.repository.recordOutcome(served, ok, latencyNs);
    if (!breach) return;
    const routing = this.repository.routingOf(served.model)!;
    served.stats.canaryRollbacks++;
    this.repository.logger.warn(
      { model: served.model, canary: served.version, reason: breach },
      'canary rolled back: its share of requests is 0',
    );
    this.setModelRouting(served.model, routing.labels, 0).catch((error: unknown) =>
      this.repository.logger.error({ model: served.model, err: error }, 'canary rollback did not reach every process'),
    );
  }

  /**
   * Explains each row of a request (its inputs, or raw records or columns through the model's
   * pipeline, exactly as infer reads them) with the method the request's `method` parameter names
   * or the config's default. Options come from the config, and request parameters of the same
   * names override them. Runs in the pool, never on the event loop.
   */
  async explain(request: InferRequest): Promise<ExplainResponse> {
    const started = nowNs();
    if (this.stopping) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    const served = this.repository.resolve(request.model, request.version);
    const settings = served.explain;
    if (!settings)
      throw new MaasError(
        'MAAS_ERR_EXPLAIN_OFF',
        `Explanations are not enabled for model '${served.model}': set parameters.explain_method in its config.json`,
      );
    try {
      const asked = request.parameters?.method;
      if (asked !== undefined && !EXPLAIN_METHODS.includes(asked as ExplainMethod))
        throw new MaasError(
          'MAAS_ERR_ARG_RANGE',
          `Expected one of ${EXPLAIN_METHODS.join(', ')} for parameter method but received ${String(asked)}`,
        );
      const method = (asked as ExplainMethod | undefined) ?? settings.method;
      const options: Record<string, unknown> = method === settings.method ? { ...settings.options } : {};
      for (const name of EXPLAIN_OPTION_NAMES[method]) {
        const value = request.parameters?.[name];
        if (value !== undefined) options[name] = typeof value === 'bigint' ? Number(value) : value;
      }
      const raw = this.rawRows(served, request);
      const { x, rows } = raw ?? this.inputRows(served, request);
      if (rows > MAX_EXPLAIN_ROWS)
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `An explain request carries at most ${MAX_EXPLAIN_ROWS} rows but this one has ${rows}`,
        );
      const features =
        x instanceof Float32Array ? x.slice() : floatsFromRaw(x, 'FP32', rows * served.inputSize, 'input');
      const result = await settings.run({
        method,
        x: features,
        rows,
        options,
        ...(settings.background ? { background: settings.background } : {}),
      });
      const explanations = result.explanations.map((e) => relabel(e, served.inputSize, served.preparation));
      served.stats.recordExplain(method, rows, nowNs() - started, result.computeNs);
      return {
        model: served.model,
        version: String(served.version),
        ...(request.id ? { id: request.id } : {}),
        method,
        explanations,
      };
    } catch (error) {
      served.stats.recordExplainFailure(nowNs() - started);
      throw error;
    }
  }

  private checkExplicit(what: string): void {
    if (this.repository.controlMode !== 'explicit') {
      throw new MaasError(
        'MAAS_ERR_REPOSITORY_CONTROL',
        `explicit model ${what} is not allowed if the model control mode is '${this.repository.controlMode}' (start the server with --model-control-mode explicit)`,
      );
    }
  }

  /** Checks the request's one input against the config and converts it to float32 rows. */
  private inputRows(served: ServedVersion, request: InferRequest): { x: InputRows; rows: number; batched: boolean } {
    const { config, model, inputSize } = served;
    const expected = config.input[0]!;
    if (request.inputs.length !== 1) {
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `expected 1 inputs but got ${request.inputs.length} inputs for model '${model}'`,
      );
    }
    const input = request.inputs[0]!;
    if (input.name !== expected.name) {
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `unexpected inference input '${input.name}' for model '${model}', allowed inputs are: ${expected.name}`,
      );
    }
    checkDatatype(input, config);
    const shape = input.shape;
    const maxBatch = config.max_batch_size;
    const batched = shape.length === 2;
    const rows = batched ? shape[0]! : 1;
    const shapeOk =
      (batched || (shape.length === 1 && maxBatch === 0)) &&
      shape[shape.length - 1] === inputSize &&
      Number.isInteger(rows) &&
      rows >= 1 &&
      (maxBatch === 0 || rows <= maxBatch);
    if (!shapeOk) {
      const want =
        maxBatch > 0 ? `[-1,${inputSize}] with a batch of 1 to ${maxBatch}` : `[${inputSize}] or [-1,${inputSize}]`;
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `unexpected shape for input '${input.name}' for model '${model}'. Expected ${want}, got [${shape.join(',')}]`,
      );
    }
    const what = `input '${input.name}'`;
    if (input.raw !== undefined && input.values !== undefined) {
      throw new MaasError('MAAS_ERR_INFER_INPUT', `${what} has both raw and typed contents; send one of them`);
    }
    const elements = rows * inputSize;
    if (input.raw !== undefined) {
      // Raw FP32 bytes go to the batcher as they are: their one copy is into the batch.
      if (input.datatype === 'FP32') return { x: checkedRawFloats(input.raw, elements, what), rows, batched };
      return { x: floatsFromRaw(input.raw, input.datatype, elements, what), rows, batched };
    }
    if (input.values !== undefined) {
      if (input.handedOver && input.datatype === 'FP32' && isWholeFloat32Array(input.values, elements))
        return { x: input.values, rows, batched };
      return { x: floatsFromValues(input.values, input.datatype, elements, what), rows, batched };
    }
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `${what} has no data: expected typed contents or raw bytes for ${elements} elements`,
    );
  }

  /**
   * Rows from a raw request, through the model's preparation pipeline: JSON records, or one input
   * per column (MLServer's content_type "pd", or inputs named after the pipeline's columns); null
   * for a request of prepared features, which inputRows reads.
   */
  private rawRows(
    served: ServedVersion,
    request: InferRequest,
  ): { x: Float32Array; rows: number; batched: true } | null {
    const pipeline = served.preparation;
    const pandas = request.parameters?.content_type === PANDAS_CONTENT_TYPE;
    const prepared = served.config.input[0]!.name;
    const byColumn =
      pandas ||
      (pipeline !== null &&
        request.inputs.length > 0 &&
        request.inputs.every((i) => i.name !== prepared && pipeline.knowsColumn(i.name)));
    if (request.records === undefined && !byColumn) return null;
    if (!pipeline)
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `Model '${served.model}' was saved without a preparation pipeline: send its input '${prepared}' as ${served.inputSize} FP32 features per row`,
      );
    if (request.records !== undefined && request.inputs.length > 0)
      throw new MaasError('MAAS_ERR_INFER_INPUT', 'A request carries records or inputs, not both');
    const maxRows = served.config.max_batch_size;
    const records =
      request.records !== undefined
        ? checkedRecords(request.records, maxRows)
        : recordsFromColumns(request.inputs, maxRows);
    const allowMissing = request.parameters?.allow_missing === true || request.parameters?.allow_missing === 'true';
    const x = pipeline.transform(records, { allowMissing, onWarning: 'ignore' });
    return { x, rows: records.length, batched: true };
  }

  /**
   * The outputs to answer: the model's output (scores, or Triton's classification strings when
   * asked), and the label output (named after the pipeline's label column). A raw request gets
   * both by default, a request of prepared features the model's output.
   */
  private requestedOutputs(served: ServedVersion, request: InferRequest, raw: boolean): RequestedOutput[] {
    const output = served.config.output[0]!;
    const label = labelOutputName(served);
    if (!request.outputs || request.outputs.length === 0)
      return [{ name: output.name }, ...(raw && label ? [{ name: label, label: true }] : [])];
    return request.outputs.map((o) => {
      if (o.name !== output.name && o.name !== label)
        throw new MaasError(
          'MAAS_ERR_INFER_OUTPUT',
          `unexpected inference output '${o.name}' for model '${served.model}', allowed outputs are: ${[output.name, ...(label ? [label] : [])].join(', ')}`,
        );
      const classification = classificationOf(o.parameters);
      return { ...o, ...(o.name === label ? { label: true } : {}), ...(classification ? { classification } : {}) };
    });
  }
}

/** An output to answer, as requestedOutputs reads it. */
interface RequestedOutput {
  name: string;
  parameters?: Parameters;
  /** The label output (class names or values in the label's units). */
  label?: boolean;
  /** Triton's classification extension: the top k classes as strings. */
  classification?: number;
}

/** The label output's name: the pipeline's label column, unless the model's output has that name. */
function labelOutputName(served: ServedVersion): string | null {
  const label = served.preparation?.label ?? null;
  return label !== null && label !== served.config.output[0]!.name ? label : null;
}

/** One output of a response from the batch's outputs. */
function outputTensor(
  served: ServedVersion,
  o: RequestedOutput,
  y: Float32Array,
  rows: number,
  batched: boolean,
): InferOutput {
  const parameters = o.parameters ? { parameters: o.parameters } : {};
  if (o.label) {
    const labels = served.preparation!.decode(y, rows);
    if (served.preparation!.task === 'classification')
      return { name: o.name, datatype: 'BYTES', shape: [rows], data: labels.map(String), ...parameters };
    return {
      name: o.name,
      datatype: 'FP32',
      shape: [rows],
      data: Float32Array.from(labels as number[]),
      ...parameters,
    };
  }
  if (o.classification !== undefined) {
    const { strings, k } = classificationStrings(y, rows, o.classification, served.preparation, served.labels);
    return { name: o.name, datatype: 'BYTES', shape: batched ? [rows, k] : [k], data: strings, ...parameters };
  }
  const shape = batched ? [rows, served.outputSize] : [served.outputSize];
  return { name: o.name, datatype: 'FP32', shape, data: y, ...parameters };
}

function isWholeFloat32Array(values: ArrayLike<unknown>, elements: number): values is Float32Array {
  return (
    values instanceof Float32Array &&
    values.length === elements &&
    values.byteOffset === 0 &&
    values.byteLength === values.buffer.byteLength
  );
}

function integerParameter(parameters: Parameters | undefined, name: string): number | undefined {
  const value = parameters?.[name];
  if (value === undefined) return undefined;
  const n =
    typeof value === 'bigint'
      ? Number(value)
      : typeof value === 'string' && /^\d+$/.test(value)
        ? Number(value)
        : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new MaasError(
      'MAAS_ERR_INFER_PARAMETER',
      `Expected a non-negative integer for parameter ${name} but received ${JSON.stringify(typeof value === 'bigint' ? String(value) : value)}`,
    );
  }
  return n;
}

function failureReason(error: unknown): FailureReason {
  const code = (error as MaasError).code;
  if (code === 'MAAS_ERR_QUEUE_FULL' || code === 'MAAS_ERR_REQUEST_TIMEOUT') return 'REJECTED';
  if (code === 'MAAS_ERR_REQUEST_CANCELLED') return 'CANCELED';
  if (typeof code === 'string' && code.startsWith('MAAS_ERR_NATIVE')) return 'BACKEND';
  return 'OTHER';
}
