/**
 * What both client transports (gRPC and REST) take and return: plain typed arrays in, typed
 * arrays out, and one error type carrying the transport status and maas's error code.
 */

import { DATATYPE_ARRAYS, type TypedArray } from '../protocol/datatypes.js';
import { deserializeBytesTensor, serializeBytesTensor } from '../protocol/bytes-tensor.js';

export type { TypedArray };

/** TLS for a client: the CA to trust, and a certificate and key for mutual TLS. */
export interface ClientTls {
  /** PEM CA bundle the server's certificate must chain to (default: the system's). */
  ca?: string | Buffer;
  /** PEM client certificate (mutual TLS). */
  cert?: string | Buffer;
  /** PEM key of the client certificate. */
  key?: string | Buffer;
  /** The name the server's certificate must carry when it differs from the address's host. */
  servername?: string;
}

/** What both clients take besides the address: TLS and a token. */
export interface ClientSecurity {
  /** Speak TLS (https:// for REST takes the system's CAs without it). */
  tls?: ClientTls;
  /** An API token, sent as `Authorization: Bearer <token>` (or in `tokenHeader`). */
  token?: string;
  /** Send the token as this header instead (a server's --token-header, Triton's restricted-API form). */
  tokenHeader?: string;
}

/** The header that carries a token: Authorization, or the server's token header. */
export function tokenHeaders(security: ClientSecurity): Record<string, string> {
  if (security.token === undefined) return {};
  return security.tokenHeader
    ? { [security.tokenHeader.toLowerCase()]: security.token }
    : { authorization: `Bearer ${security.token}` };
}

/** A tensor to send: `data` row-major; FP16/BF16 as Uint16Array bit patterns. */
export interface ClientTensor {
  /** The model's input name (see the model's metadata). */
  name: string;
  /** The protocol datatype: FP32, FP64, FP16, BF16, INT8…INT64, UINT8…UINT64, BOOL or BYTES. */
  datatype: string;
  /** Dimensions, the batch first. */
  shape: number[];
  /** The values, row-major; strings for BYTES. */
  data: TypedArray | number[] | boolean[] | string[];
}

/** A tensor received. */
export interface ResultTensor {
  /** The output's name. */
  name: string;
  /** The protocol datatype of `data`. */
  datatype: string;
  /** Dimensions, the batch first. */
  shape: number[];
  /** The values, row-major, in the typed array of `datatype`; strings for BYTES. */
  data: TypedArray | string[];
}

/** An output to return, by name, with parameters (e.g. Triton's classification: k). */
export interface RequestedOutput {
  name: string;
  parameters?: ParameterValues;
}

/** Request parameters by name (the protocol's bool, int64 and string parameters). */
export type ParameterValues = Record<string, boolean | number | string>;

/** One inference request, for either client. */
/** An explain request (maas's explain extension): the rows as infer takes them, and the method and its options. */
export interface ExplainOptions extends Omit<InferOptions, 'outputs' | 'typed'> {
  /** integratedGradients, kernelShap, exactShap or lime (default: the model config's explain_method). */
  method?: string;
}

export interface InferOptions {
  /** The model's name in the repository. */
  model: string;
  /** A version; without one the server picks the highest ready version. */
  version?: string;
  /** Echoed in the response (and matches stream answers to requests). */
  id?: string;
  /** The input tensors. */
  inputs?: ClientTensor[];
  /**
   * Raw records, for a model saved with its preparation pipeline, instead of inputs: REST sends
   * them as they are, gRPC as one input per column (MLServer's content_type "pd").
   */
  records?: Record<string, string | number | boolean | null>[];
  /** Outputs to return, by name or with parameters (default: all). */
  outputs?: (string | RequestedOutput)[];
  /** Request parameters, e.g. {priority: 1, timeout: 5000}. */
  parameters?: ParameterValues;
  /** Send typed contents (gRPC) or JSON data (REST) instead of raw bytes. */
  typed?: boolean;
  /** Cancels the call: the server drops the request if it has not run. */
  signal?: AbortSignal;
  /** Per-call deadline in milliseconds. */
  timeoutMs?: number;
}

/** A server's answer to one inference request. */
export interface InferResult {
  /** The model that answered. */
  model: string;
  /** The version that answered. */
  version: string;
  /** The request's id, when it had one. */
  id?: string;
  /** The output tensors. */
  outputs: ResultTensor[];
}

/** An error answered by the server (or the transport), with its status. */
export class InferenceServerError extends Error {
  constructor(
    message: string,
    /** gRPC status code, or HTTP status. */
    readonly status: number,
    /** maas's MAAS_ERR_* code when the server sent one. */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'InferenceServerError';
  }
}

/** A requested output as the protocol spells it. */
export function requestedOutput(output: string | RequestedOutput): RequestedOutput {
  return typeof output === 'string' ? { name: output } : output;
}

/**
 * Records as one tensor per column: FP32 where every value is a number or null (null as NaN,
 * which the pipeline reads as missing), else BYTES strings (null as '', also missing).
 */
export function recordsToColumns(records: readonly Record<string, unknown>[]): ClientTensor[] {
  const names = [...new Set(records.flatMap((r) => Object.keys(r)))];
  return names.map((name) => {
    const values = records.map((r) => r[name] ?? null);
    const numeric = values.every((v) => v === null || typeof v === 'number');
    return numeric
      ? {
          name,
          datatype: 'FP32',
          shape: [records.length],
          data: Float32Array.from(values, (v) => (typeof v === 'number' ? v : NaN)),
        }
      : {
          name,
          datatype: 'BYTES',
          shape: [records.length],
          data: values.map((v) => (v === null ? '' : String(v as string | number | boolean))),
        };
  });
}

/** BYTES data off the wire (Triton's serialization) as strings. */
export function stringsFromBytes(bytes: Uint8Array): string[] {
  return deserializeBytesTensor(bytes, undefined, 'a BYTES output').map((e) => Buffer.from(e).toString('utf8'));
}

/** A tensor's data as little-endian bytes (a view when it already is a typed array of the right type); BYTES serialized. */
export function tensorBytes(tensor: ClientTensor): Uint8Array {
  if (tensor.datatype === 'BYTES') return serializeBytesTensor((tensor.data as unknown[]).map(String));
  const Ctor = DATATYPE_ARRAYS[tensor.datatype];
  if (!Ctor) throw new TypeError(`Expected a numeric datatype for ${tensor.name} but received ${tensor.datatype}`);
  let data = tensor.data as ArrayLike<unknown>;
  if (!(data instanceof Ctor)) {
    const typed = new (Ctor as unknown as { new (n: number): TypedArray })(data.length);
    const big = typed instanceof BigInt64Array || typed instanceof BigUint64Array;
    for (let i = 0; i < data.length; i++)
      (typed as unknown as unknown[])[i] = big ? BigInt(data[i] as number) : Number(data[i]);
    data = typed;
  }
  const t = data as TypedArray;
  return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
}

/** Bytes off the wire as a typed array (copied, so alignment never matters). */
export function tensorFromBytes(bytes: Uint8Array, datatype: string): TypedArray {
  const Ctor = DATATYPE_ARRAYS[datatype];
  if (!Ctor) throw new TypeError(`Cannot decode datatype ${datatype}`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
}

/** One batch of an update's rows: x rows of the model's inputs, y rows of its targets (or class indices). */
export interface UpdateRowsBatch {
  /** 'train' (default): rows to train on; 'holdout': rows the candidate is judged by. */
  set?: 'train' | 'holdout';
  /** Rows of inputs: an array of rows, or flat row-major values. */
  x: Float32Array | number[] | number[][];
  /** Rows of targets, as x (one class index a row for a sparse loss). */
  y: Float32Array | number[] | number[][];
}

/** What update() reports while the server trains. */
export type UpdateProgress =
  | { event: 'training'; model: string; baseVersion: string; rows: number; holdoutRows: number; epochs: number }
  | { event: 'epoch'; epoch: number; epochs: number; logs: Record<string, number> };

/** update()'s options. */
export interface UpdateOptions {
  model: string;
  /** The version to start from (default: the one unversioned requests reach). */
  version?: string;
  /** epochs, batch_size, learning_rate, optimizer, loss, seed, architecture (a candidate as JSON or an object). */
  parameters?: Record<string, boolean | number | string | object>;
  /** The rows, in batches: an array, or an (async) iterable that yields them as they are read. */
  batches: Iterable<UpdateRowsBatch> | AsyncIterable<UpdateRowsBatch>;
  /** Hears the training's events. */
  onProgress?: (progress: UpdateProgress) => void;
  /** Cancels the update (nothing of it stays unless it was already committed). */
  signal?: AbortSignal;
  /** REST only: send the rows as binary frames (default) or as NDJSON. */
  format?: 'binary' | 'json';
}

/** How an update ended. */
export interface UpdateOutcome {
  model: string;
  baseVersion: string;
  /** Whether the candidate beat the serving version by the model's margin and was committed. */
  promoted: boolean;
  /** The committed version (when promoted). */
  version?: string;
  /** Whether the committed version is serving. */
  serving: boolean;
  metric: string;
  improvement: number;
  /** The candidate's and the serving version's held-out scores. */
  candidate: Record<string, number>;
  servingMetrics: Record<string, number>;
  rows: number;
  holdoutRows: number;
  dataSha256: string;
  reason: string;
}

/** An update's event as both transports carry it: proto/maas_update.proto's UpdateResponse fields. */
export interface UpdateEventMessage {
  event?: string;
  model_name?: string;
  model_version?: string;
  base_version?: string;
  epoch?: number;
  epochs?: number;
  metrics?: Record<string, number>;
  serving_metrics?: Record<string, number>;
  rows?: number;
  holdout_rows?: number;
  promoted?: boolean;
  serving?: boolean;
  reason?: string;
  metric?: string;
  improvement?: number;
  data_sha256?: string;
}

/** The progress a `training` or `epoch` event reports (null for any other event). */
export function updateProgressOf(m: UpdateEventMessage): UpdateProgress | null {
  if (m.event === 'training')
    return {
      event: 'training',
      model: m.model_name ?? '',
      baseVersion: m.model_version ?? '',
      rows: m.rows ?? 0,
      holdoutRows: m.holdout_rows ?? 0,
      epochs: m.epochs ?? 0,
    };
  if (m.event === 'epoch') return { event: 'epoch', epoch: m.epoch ?? 0, epochs: m.epochs ?? 0, logs: m.metrics ?? {} };
  return null;
}

/** The outcome a `result` event reports. */
export function updateOutcomeOf(m: UpdateEventMessage): UpdateOutcome {
  return {
    model: m.model_name ?? '',
    baseVersion: m.base_version ?? '',
    promoted: m.promoted === true,
    ...(m.model_version ? { version: m.model_version } : {}),
    serving: m.serving === true,
    metric: m.metric ?? '',
    improvement: m.improvement ?? 0,
    candidate: m.metrics ?? {},
    servingMetrics: m.serving_metrics ?? {},
    rows: m.rows ?? 0,
    holdoutRows: m.holdout_rows ?? 0,
    dataSha256: m.data_sha256 ?? '',
    reason: m.reason ?? '',
  };
}

/** A batch's x or y as flat FP32 values. */
export function flatFloats(values: Float32Array | number[] | number[][]): Float32Array {
  if (values instanceof Float32Array) return values;
  if (values.length > 0 && Array.isArray(values[0])) return Float32Array.from((values as number[][]).flat());
  return Float32Array.from(values as number[]);
}

/** A federated round's settings (OpenRound's parameters). */
export interface RoundOptions {
  /** DP-FedAvg: clip each delta to this L2 norm (C). */
  clipNorm?: number;
  /** DP-FedAvg: Gaussian noise of σ·C on the sum (needs clipNorm). */
  noiseMultiplier?: number;
  /** Refuse a delta whose L2 norm is above this. */
  maxNorm?: number;
  /** Seed of the noise. */
  seed?: number;
  /** The round closes only with at least this many updates (default 1). */
  minClients?: number;
  /** The most updates a round takes (default 10 000). */
  maxClients?: number;
  /** δ of the (ε, δ) privacy report (default 1e-5). */
  delta?: number;
}

/** A federated round as the server describes it. */
export interface FederatedRound {
  model: string;
  roundId: string;
  baseVersion: string;
  /** The base version's weights in the model's order (getRound only). */
  weights: { shape: number[]; values: Float32Array }[];
  clients: number;
  samples: number;
  clipNorm: number;
  noiseMultiplier: number;
  maxNorm: number;
  minClients: number;
}

/** How a closed round ended. */
export interface FederatedRoundResult {
  model: string;
  roundId: string;
  baseVersion: string;
  clients: number;
  samples: number;
  clipped: number;
  refused: { client: string; reason: string }[];
  noiseStd: number;
  promoted: boolean;
  version?: string;
  serving: boolean;
  metric: string;
  improvement: number;
  candidate: Record<string, number>;
  servingMetrics: Record<string, number>;
  reason: string;
  /** The version lineage's privacy: ε at δ over its noised rounds (absent: none). */
  privacy?: { epsilon: number; delta: number; rounds: number };
}
