/**
 * A typed client for the KServe v2 gRPC protocol (Triton has no Node client): every RPC of
 * inference.GRPCInferenceService, raw tensors by default, and a bidirectional inference stream.
 */
import type { ModelMetadata, ServerMetadata } from '../protocol/metadata.js';
import type { ModelStatisticsEntry } from '../protocol/statistics.js';
import type { ModelExplainResponse } from '../protocol/explain.js';
import * as grpc from '@grpc/grpc-js';
import {
  CONTENTS_FIELD,
  explainService,
  federatedService,
  inferenceService,
  toWireParameters,
  updateService,
} from '../protocol/grpc.js';
import {
  InferenceServerError,
  recordsToColumns,
  requestedOutput,
  stringsFromBytes,
  tensorBytes,
  tensorFromBytes,
  tokenHeaders,
  type ClientSecurity,
  type ExplainOptions,
  type InferOptions,
  type InferResult,
  flatFloats,
  type UpdateOptions,
  type UpdateOutcome,
  type FederatedRound,
  type FederatedRoundResult,
  type RoundOptions,
  type UpdateEventMessage,
  updateOutcomeOf,
  updateProgressOf,
} from './types.js';

type Callback = (error: grpc.ServiceError | null, value: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: Callback,
) => grpc.ClientUnaryCall;

function clientError(error: grpc.ServiceError): InferenceServerError {
  const code = error.metadata?.get('maas-error-code')[0];
  return new InferenceServerError(
    error.details || error.message,
    error.code,
    typeof code === 'string' ? code : undefined,
  );
}

/** RoundInfo as proto-loader decodes it. */
interface WireRoundInfo {
  model_name?: string;
  round_id?: string;
  base_version?: string;
  weights?: { shape?: number[]; data?: Buffer }[];
  clients?: number;
  samples?: number;
  clip_norm?: number;
  noise_multiplier?: number;
  max_norm?: number;
  min_clients?: number;
}

/** RoundResult as proto-loader decodes it. */
interface WireRoundResult {
  model_name?: string;
  round_id?: string;
  base_version?: string;
  clients?: number;
  samples?: number;
  clipped?: number;
  refused?: { client?: string; reason?: string }[];
  noise_std?: number;
  promoted?: boolean;
  model_version?: string;
  serving?: boolean;
  metrics?: Record<string, number>;
  serving_metrics?: Record<string, number>;
  metric?: string;
  improvement?: number;
  reason?: string;
  epsilon?: number;
  delta?: number;
  dp_rounds?: number;
}

function roundOf(w: WireRoundInfo): FederatedRound {
  return {
    model: w.model_name ?? '',
    roundId: w.round_id ?? '',
    baseVersion: w.base_version ?? '',
    weights: (w.weights ?? []).map((t) => {
      const data = t.data ?? Buffer.alloc(0);
      const values = new Float32Array(data.length / 4);
      new Uint8Array(values.buffer).set(data);
      return { shape: t.shape ?? [], values };
    }),
    clients: w.clients ?? 0,
    samples: w.samples ?? 0,
    clipNorm: w.clip_norm ?? 0,
    noiseMultiplier: w.noise_multiplier ?? 0,
    maxNorm: w.max_norm ?? 0,
    minClients: w.min_clients ?? 0,
  };
}

/** A ModelInferRequest for the wire. */
export function encodeInferRequest(options: InferOptions): object {
  const typed = options.typed === true;
  const records = options.records;
  if (records && options.inputs) throw new TypeError('Send records or inputs, not both');
  // Records travel as one input per column, MLServer's pandas content type.
  const inputs = records ? recordsToColumns(records) : (options.inputs ?? []);
  const parameters = records ? { content_type: 'pd', ...options.parameters } : options.parameters;
  return {
    model_name: options.model,
    model_version: options.version ?? '',
    id: options.id ?? '',
    parameters: toWireParameters(parameters),
    inputs: inputs.map((t) => {
      const base = { name: t.name, datatype: t.datatype, shape: t.shape };
      if (!typed) return base;
      const field = CONTENTS_FIELD[t.datatype];
      if (!field) throw new TypeError(`${t.datatype} has no typed contents field: send it raw`);
      if (field === 'bytes_contents')
        return { ...base, contents: { bytes_contents: (t.data as unknown[]).map((v) => Buffer.from(String(v))) } };
      const values = Array.from(t.data as ArrayLike<number | bigint | boolean>, (v) =>
        typeof v === 'bigint' ? Number(v) : v,
      );
      return { ...base, contents: { [field]: values } };
    }),
    outputs: (options.outputs ?? []).map((o) => {
      const { name, parameters: p } = requestedOutput(o);
      return { name, ...(p ? { parameters: toWireParameters(p) } : {}) };
    }),
    raw_input_contents: typed ? [] : inputs.map((t) => Buffer.from(tensorBytes(t))),
  };
}

interface WireResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: { name: string; datatype: string; shape: number[]; contents?: Record<string, number[]> }[];
  raw_output_contents: Buffer[];
}

/** A ModelInferResponse off the wire. */
export function decodeInferResponse(message: WireResponse): InferResult {
  return {
    model: message.model_name,
    version: message.model_version,
    ...(message.id ? { id: message.id } : {}),
    outputs: message.outputs.map((o, i) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      data: message.raw_output_contents[i]
        ? o.datatype === 'BYTES'
          ? stringsFromBytes(message.raw_output_contents[i])
          : tensorFromBytes(message.raw_output_contents[i], o.datatype)
        : o.datatype === 'BYTES'
          ? (o.contents?.bytes_contents ?? []).map((b) => Buffer.from(b as unknown as Uint8Array).toString('utf8'))
          : Float32Array.from(Object.values(o.contents ?? {})[0] ?? []),
    })),
  };
}

/** GrpcInferenceClient's options: TLS and a token (ClientSecurity), or channel credentials of your own. */
export interface GrpcClientOptions extends ClientSecurity {
  /** Largest message sent and received (default 2 GiB − 1). */
  maxMessageBytes?: number;
  /** Channel credentials of your own, instead of `tls` (default: plain text, or TLS with `tls`). */
  credentials?: grpc.ChannelCredentials;
}

function toBuffer(pem: string | Buffer | undefined): Buffer | null {
  return pem === undefined ? null : Buffer.isBuffer(pem) ? pem : Buffer.from(pem);
}

function channelCredentials(options: GrpcClientOptions): grpc.ChannelCredentials {
  if (options.credentials) return options.credentials;
  const tls = options.tls;
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(toBuffer(tls.ca), toBuffer(tls.key), toBuffer(tls.cert));
}

/** A gRPC client for one server address (host:port). */
export class GrpcInferenceClient {
  private readonly client: grpc.Client & Record<string, UnaryMethod>;
  /** maas.ExplainService over the same channel (made on first use). */
  private explainClient: (grpc.Client & Record<string, UnaryMethod>) | null = null;
  /** maas.UpdateService over the same channel (made on first use). */
  private updateClient: (grpc.Client & Record<string, UnaryMethod>) | null = null;
  /** maas.FederatedService over the same channel (made on first use). */
  private federatedClient: (grpc.Client & Record<string, UnaryMethod>) | null = null;
  private readonly headers: [string, string][];

  /** Connects (lazily) to a server at `address` (host:port). */
  constructor(address: string, options: GrpcClientOptions = {}) {
    const Service = inferenceService();
    const limit = options.maxMessageBytes ?? 2 ** 31 - 1;
    this.client = new Service(address, channelCredentials(options), {
      'grpc.max_receive_message_length': limit,
      'grpc.max_send_message_length': limit,
      ...(options.tls?.servername ? { 'grpc.ssl_target_name_override': options.tls.servername } : {}),
    }) as unknown as grpc.Client & Record<string, UnaryMethod>;
    this.headers = Object.entries(tokenHeaders(options));
  }

  /** A call's metadata: the token, when the client has one. */
  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    for (const [key, value] of this.headers) metadata.set(key, value);
    return metadata;
  }

  private call<T>(
    method: string,
    request: object,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
    client: grpc.Client & Record<string, UnaryMethod> = this.client,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const callOptions: grpc.CallOptions = options.timeoutMs ? { deadline: Date.now() + options.timeoutMs } : {};
      const call = client[method]!.call(client, request, this.metadata(), callOptions, (error, value) =>
        error ? reject(clientError(error)) : resolve(value as T),
      );
      if (options.signal) {
        if (options.signal.aborted) call.cancel();
        else options.signal.addEventListener('abort', () => call.cancel(), { once: true });
      }
    });
  }

  /** Whether the server is live (ServerLive). */
  async serverLive(): Promise<boolean> {
    return (await this.call<{ live?: boolean }>('ServerLive', {})).live === true;
  }

  /** Whether the server is ready: every model that should serve has a ready version (ServerReady). */
  async serverReady(): Promise<boolean> {
    return (await this.call<{ ready?: boolean }>('ServerReady', {})).ready === true;
  }

  /** Whether a model (or one version of it) is ready to infer (ModelReady). */
  async modelReady(name: string, version = ''): Promise<boolean> {
    return (await this.call<{ ready?: boolean }>('ModelReady', { name, version })).ready === true;
  }

  /** The server's name, version and protocol extensions (ServerMetadata). */
  serverMetadata(): Promise<ServerMetadata> {
    return this.call('ServerMetadata', {});
  }

  /** A model's versions, platform, inputs and outputs (ModelMetadata). */
  modelMetadata(name: string, version = ''): Promise<ModelMetadata> {
    return this.call('ModelMetadata', { name, version });
  }

  /** A model's completed configuration, Triton's fields (ModelConfig). */
  async modelConfig(name: string, version = ''): Promise<Record<string, unknown>> {
    return (await this.call<{ config: Record<string, unknown> }>('ModelConfig', { name, version })).config;
  }

  /** Triton's statistics of one model, or of every model when `name` is empty (ModelStatistics). */
  async modelStatistics(name = '', version = ''): Promise<ModelStatisticsEntry[]> {
    return (await this.call<{ model_stats: ModelStatisticsEntry[] }>('ModelStatistics', { name, version })).model_stats;
  }

  /** Every model in the repository with its versions' states; `ready` lists ready ones only (RepositoryIndex). */
  async repositoryIndex(ready = false): Promise<{ name: string; version?: string; state?: string; reason?: string }[]> {
    return (await this.call<{ models: { name: string }[] }>('RepositoryIndex', { repository_name: '', ready })).models;
  }

  /** Loads (or reloads) a model; `config` overrides its config.json. */
  async loadModel(name: string, options: { config?: object } = {}): Promise<void> {
    const parameters = options.config ? { config: { string_param: JSON.stringify(options.config) } } : {};
    await this.call('RepositoryModelLoad', { repository_name: '', model_name: name, parameters });
  }

  /** Unloads a model once its queued requests finish; explicit control mode only (RepositoryModelUnload). */
  async unloadModel(name: string): Promise<void> {
    await this.call('RepositoryModelUnload', { repository_name: '', model_name: name, parameters: {} });
  }

  /** Runs one inference request (ModelInfer); rejects with an InferenceServerError. */
  async infer(options: InferOptions): Promise<InferResult> {
    return decodeInferResponse(await this.call<WireResponse>('ModelInfer', encodeInferRequest(options), options));
  }

  /** Explains each row (maas.ExplainService/ModelExplain); rejects with an InferenceServerError. */
  async explain(options: ExplainOptions): Promise<ModelExplainResponse> {
    // The service's stub shares this client's channel (one connection for both services).
    this.explainClient ??= new (explainService())(
      this.client.getChannel().getTarget(),
      grpc.credentials.createInsecure(),
      {
        channelOverride: this.client.getChannel(),
      },
    ) as unknown as grpc.Client & Record<string, UnaryMethod>;
    const request = encodeInferRequest({
      ...options,
      parameters: { ...(options.parameters ?? {}), ...(options.method ? { method: options.method } : {}) },
    });
    return this.call<ModelExplainResponse>('ModelExplain', request, options, this.explainClient);
  }

  /**
   * Updates a model from new rows (maas.UpdateService/Update): streams the batches, reports the
   * training through onProgress, and resolves with the outcome — promoted as a new version, or
   * kept. Rejects with an InferenceServerError when the server refuses or the update fails;
   * options.signal cancels it.
   */
  async update(options: UpdateOptions): Promise<UpdateOutcome> {
    this.updateClient ??= new (updateService())(
      this.client.getChannel().getTarget(),
      grpc.credentials.createInsecure(),
      {
        channelOverride: this.client.getChannel(),
      },
    ) as unknown as grpc.Client & Record<string, UnaryMethod>;
    const call = (
      this.updateClient as unknown as {
        Update: (metadata: grpc.Metadata) => grpc.ClientDuplexStream<object, UpdateEventMessage>;
      }
    ).Update(this.metadata());
    const signal = options.signal;
    const cancel = () => call.cancel();
    if (signal?.aborted) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    const parameters = Object.fromEntries(
      Object.entries(options.parameters ?? {}).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : v]),
    );
    const outcome = new Promise<UpdateOutcome>((resolve, reject) => {
      let result: UpdateOutcome | null = null;
      call.on('data', (m: UpdateEventMessage) => {
        if (m.event === 'result') result = updateOutcomeOf(m);
        const progress = updateProgressOf(m);
        if (progress) options.onProgress?.(progress);
      });
      call.on('error', (error: grpc.ServiceError) => reject(clientError(error)));
      call.on('end', () =>
        result ? resolve(result) : reject(new InferenceServerError('The update stream ended before its result', 2)),
      );
    });
    // Writes wait for the stream's room (HTTP/2 flow control), so rows read lazily stay lazy.
    let ended = false;
    call.once('status', () => (ended = true));
    const write = (message: object) =>
      new Promise<void>((resolve) => {
        if (ended || call.write(message)) return resolve();
        const go = () => {
          call.off('drain', go);
          call.off('status', go);
          resolve();
        };
        call.once('drain', go);
        call.once('status', go); // the call ended: nothing more will drain
      });
    const sending = (async () => {
      await write({
        model_name: options.model,
        model_version: options.version ?? '',
        parameters: toWireParameters(parameters),
      });
      for await (const batch of options.batches) {
        if (signal?.aborted || ended) return;
        const x = flatFloats(batch.x);
        const y = flatFloats(batch.y);
        await write({
          batch: {
            set: batch.set ?? 'train',
            x: Buffer.from(x.buffer, x.byteOffset, x.byteLength),
            y: Buffer.from(y.buffer, y.byteOffset, y.byteLength),
          },
        });
      }
      call.end();
    })();
    try {
      const [result] = await Promise.all([
        outcome,
        sending.catch((error: unknown) => {
          cancel();
          throw error;
        }),
      ]);
      return result;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** maas.FederatedService's stub over this client's channel. */
  private federated(): grpc.Client & Record<string, UnaryMethod> {
    this.federatedClient ??= new (federatedService())(
      this.client.getChannel().getTarget(),
      grpc.credentials.createInsecure(),
      { channelOverride: this.client.getChannel() },
    ) as unknown as grpc.Client & Record<string, UnaryMethod>;
    return this.federatedClient;
  }

  /** Opens a federated round on a model's serving version (or `version`); one round per model. */
  async openRound(model: string, options: RoundOptions & { version?: string } = {}): Promise<FederatedRound> {
    const names: Record<string, string> = {
      clipNorm: 'clip_norm',
      noiseMultiplier: 'noise_multiplier',
      maxNorm: 'max_norm',
      seed: 'seed',
      minClients: 'min_clients',
      maxClients: 'max_clients',
      delta: 'delta',
    };
    const parameters: Record<string, number> = {};
    for (const [key, value] of Object.entries(options))
      if (key !== 'version' && value !== undefined) parameters[names[key] ?? key] = value as number;
    // Every value as a double, so an integral clip norm is not sent as an int64.
    const wire = Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, { double_param: v }]));
    const info = await this.call<WireRoundInfo>(
      'OpenRound',
      { model_name: model, model_version: options.version ?? '', parameters: wire },
      {},
      this.federated(),
    );
    return roundOf(info);
  }

  /** The open round of a model, with its base weights (checked against `roundId` when given). */
  async getRound(model: string, roundId = ''): Promise<FederatedRound> {
    return roundOf(
      await this.call<WireRoundInfo>('GetRound', { model_name: model, round_id: roundId }, {}, this.federated()),
    );
  }

  /** Submits one client's weight delta (trained − base, one tensor per weight) with its row count. */
  async submitUpdate(
    model: string,
    roundId: string,
    update: { client: string; samples: number; delta: readonly Float32Array[] },
  ): Promise<{ clients: number; norm: number }> {
    const answer = await this.call<{ clients?: number; norm?: number }>(
      'SubmitUpdate',
      {
        model_name: model,
        round_id: roundId,
        client: update.client,
        samples: update.samples,
        delta: update.delta.map((d) => ({
          shape: [d.length],
          data: Buffer.from(d.buffer, d.byteOffset, d.byteLength),
        })),
      },
      {},
      this.federated(),
    );
    return { clients: answer.clients ?? 0, norm: answer.norm ?? 0 };
  }

  /** Closes a round: the server averages, judges, and promotes the result when it wins. */
  async closeRound(model: string, roundId: string): Promise<FederatedRoundResult> {
    const r = await this.call<WireRoundResult>(
      'CloseRound',
      { model_name: model, round_id: roundId },
      {},
      this.federated(),
    );
    return {
      model: r.model_name ?? '',
      roundId: r.round_id ?? '',
      baseVersion: r.base_version ?? '',
      clients: r.clients ?? 0,
      samples: r.samples ?? 0,
      clipped: r.clipped ?? 0,
      refused: (r.refused ?? []).map((x) => ({ client: x.client ?? '', reason: x.reason ?? '' })),
      noiseStd: r.noise_std ?? 0,
      promoted: r.promoted === true,
      ...(r.model_version ? { version: r.model_version } : {}),
      serving: r.serving === true,
      metric: r.metric ?? '',
      improvement: r.improvement ?? 0,
      candidate: r.metrics ?? {},
      servingMetrics: r.serving_metrics ?? {},
      reason: r.reason ?? '',
      ...(r.dp_rounds ? { privacy: { epsilon: r.epsilon ?? 0, delta: r.delta ?? 0, rounds: r.dp_rounds } } : {}),
    };
  }

  /** Opens a ModelStreamInfer stream: send() resolves with the answer to that request (matched by id). */
  openStream(): InferStream {
    return new InferStream(
      (
        this.client as unknown as {
          ModelStreamInfer: (
            metadata: grpc.Metadata,
          ) => grpc.ClientDuplexStream<object, { error_message: string; infer_response?: WireResponse }>;
        }
      ).ModelStreamInfer(this.metadata()),
    );
  }

  /** Closes the channel; the client cannot be used after it. */
  close(): void {
    this.client.close();
    this.explainClient?.close();
    this.updateClient?.close();
    this.federatedClient?.close();
  }
}

/** A ModelStreamInfer answer: a response, or an error message for the request of the same id. */
interface StreamResponse {
  error_message: string;
  infer_response?: WireResponse;
}

/** One bidirectional inference stream. Answers may arrive in any order; ids tie them to requests. */
export class InferStream {
  private readonly waiting = new Map<string, { resolve: (r: InferResult) => void; reject: (e: Error) => void }>();
  private next = 0;

  constructor(private readonly call: grpc.ClientDuplexStream<object, StreamResponse>) {
    call.on('data', (message: StreamResponse) => {
      const id = message.infer_response?.id ?? '';
      const waiter = this.waiting.get(id);
      if (!waiter) return;
      this.waiting.delete(id);
      if (message.error_message || !message.infer_response)
        waiter.reject(new InferenceServerError(message.error_message || 'empty stream answer', grpc.status.UNKNOWN));
      else waiter.resolve(decodeInferResponse(message.infer_response));
    });
    call.on('error', (error: grpc.ServiceError) => this.failAll(clientError(error)));
    call.on('end', () =>
      this.failAll(new InferenceServerError('The stream ended before every answer arrived', grpc.status.UNAVAILABLE)),
    );
  }

  /** Sends one request on the stream; resolves with its answer (matched by id). */
  send(options: InferOptions): Promise<InferResult> {
    const id = options.id ?? `stream-${++this.next}`;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.call.write(encodeInferRequest({ ...options, id }));
    });
  }

  /** Half-closes the stream; the server ends it once every answer is sent. */
  end(): void {
    this.call.end();
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}
