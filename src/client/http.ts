/**
 * A client for the same protocol over REST (fetch): JSON for metadata, and binary tensor data
 * (Inference-Header-Content-Length) for inference unless `typed` asks for JSON data.
 */
import type { ModelMetadata, ServerMetadata } from '../protocol/metadata.js';
import { BINARY_HEADER_LENGTH, ERROR_CODE_HEADER } from '../protocol/http.js';
import type { ModelStatisticsEntry } from '../protocol/statistics.js';
import type { ModelExplainResponse } from '../protocol/explain.js';
import { Agent, fetch, type Dispatcher, type Response } from 'undici';
import {
  InferenceServerError,
  requestedOutput,
  stringsFromBytes,
  tensorBytes,
  tokenHeaders,
  type ClientSecurity,
  tensorFromBytes,
  type ExplainOptions,
  type InferOptions,
  type InferResult,
  type TypedArray,
  flatFloats,
  type UpdateOptions,
  type UpdateOutcome,
  type UpdateRowsBatch,
  type UpdateEventMessage,
  updateOutcomeOf,
  updateProgressOf,
} from './types.js';

/** A REST client for one base URL (http://host:port). */
export class HttpInferenceClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly dispatcher: Dispatcher | undefined;

  /**
   * Talks to a server at `baseUrl` (for example 'http://localhost:8000', or 'https://…' with
   * `tls` for a CA, a client certificate or a server name of your own).
   */
  constructor(baseUrl: string, options: ClientSecurity = {}) {
    this.base = baseUrl.replace(/\/$/, '');
    this.headers = tokenHeaders(options);
    const tls = options.tls;
    this.dispatcher = tls
      ? new Agent({
          connect: {
            ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
            ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
            ...(tls.key !== undefined ? { key: tls.key } : {}),
            ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
          },
        })
      : undefined;
  }

  /** Closes the client's TLS connections (a plain client holds none of its own); it cannot be used after. */
  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const response = await fetch(this.base + path, {
      method,
      signal,
      dispatcher: this.dispatcher,
      headers: { ...this.headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (!response.ok && response.status !== 503) await raise(response);
    return response;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    if (!response.ok) await raise(response);
    return (await response.json()) as T;
  }

  /**
   * Updates a model from new rows (maas's update extension): streams the batches, reports the
   * training through onProgress, and resolves with the outcome — promoted as a new version, or
   * kept. Rejects with an InferenceServerError when the server refuses or the update fails.
   */
  async update(options: UpdateOptions): Promise<UpdateOutcome> {
    const binary = (options.format ?? 'binary') === 'binary';
    const response = await fetch(`${this.base}${modelPath(options.model, options.version ?? '')}/update`, {
      method: 'POST',
      signal: options.signal,
      dispatcher: this.dispatcher,
      headers: { ...this.headers, 'content-type': binary ? 'application/octet-stream' : 'application/x-ndjson' },
      body: updateBody(options, binary),
      duplex: 'half',
    });
    if (!response.ok) await raise(response);
    for await (const event of ndjson(response)) {
      if (event.event === 'error')
        throw new InferenceServerError(String(event.error), response.status, String(event.code));
      if (event.event === 'result') return updateOutcomeOf(event);
      const progress = updateProgressOf(event);
      if (progress) options.onProgress?.(progress);
    }
    throw new InferenceServerError('The update answer ended before its result', response.status);
  }

  /** Whether the server is live (ServerLive). */
  async serverLive(): Promise<boolean> {
    return (await this.request('GET', '/v2/health/live')).status === 200;
  }

  /** Whether the server is ready: every model that should serve has a ready version (ServerReady). */
  async serverReady(): Promise<boolean> {
    return (await this.request('GET', '/v2/health/ready')).status === 200;
  }

  /** Whether a model (or one version of it) is ready to infer (ModelReady). */
  async modelReady(name: string, version = ''): Promise<boolean> {
    return (await this.request('GET', `${modelPath(name, version)}/ready`)).status === 200;
  }

  /** The server's name, version and protocol extensions (ServerMetadata). */
  serverMetadata(): Promise<ServerMetadata> {
    return this.json('GET', '/v2');
  }

  /** A model's versions, platform, inputs and outputs (ModelMetadata). */
  modelMetadata(name: string, version = ''): Promise<ModelMetadata> {
    return this.json('GET', modelPath(name, version));
  }

  /** A model's completed configuration, Triton's fields (ModelConfig). */
  modelConfig(name: string, version = ''): Promise<Record<string, unknown>> {
    return this.json('GET', `${modelPath(name, version)}/config`);
  }

  /** Triton's statistics of one model, or of every model when `name` is empty (ModelStatistics). */
  async modelStatistics(name = '', version = ''): Promise<ModelStatisticsEntry[]> {
    const path = name ? `${modelPath(name, version)}/stats` : '/v2/models/stats';
    return (await this.json<{ model_stats: ModelStatisticsEntry[] }>('GET', path)).model_stats;
  }

  /** Every model in the repository with its versions' states; `ready` lists ready ones only (RepositoryIndex). */
  repositoryIndex(ready = false): Promise<{ name: string; version?: string; state?: string; reason?: string }[]> {
    return this.json('POST', '/v2/repository/index', { ready });
  }

  /** Loads or reloads a model, optionally with a configuration replacing config.json; explicit control mode only (RepositoryModelLoad). */
  async loadModel(name: string, options: { config?: object } = {}): Promise<void> {
    await this.json(
      'POST',
      `/v2/repository/models/${encodeURIComponent(name)}/load`,
      options.config ? { parameters: { config: JSON.stringify(options.config) } } : {},
    );
  }

  /** Unloads a model once its queued requests finish; explicit control mode only (RepositoryModelUnload). */
  async unloadModel(name: string): Promise<void> {
    await this.json('POST', `/v2/repository/models/${encodeURIComponent(name)}/unload`, {});
  }

  /** A model's version labels and the canary's percent of unversioned requests (maas's routing route). */
  async routing(name: string): Promise<{ labels: Record<string, number>; canaryPercent: number }> {
    const r = await this.json<{ labels: Record<string, number>; canary_percent: number }>(
      'GET',
      `/v2/repository/models/${encodeURIComponent(name)}/routing`,
    );
    return { labels: r.labels, canaryPercent: r.canary_percent };
  }

  /** Sets a model's labels and canary percent at once, in every serving process; answers the routing now. */
  async setRouting(
    name: string,
    routing: { labels: Record<string, number>; canaryPercent?: number },
  ): Promise<{ labels: Record<string, number>; canaryPercent: number }> {
    const r = await this.json<{ labels: Record<string, number>; canary_percent: number }>(
      'POST',
      `/v2/repository/models/${encodeURIComponent(name)}/routing`,
      {
        labels: routing.labels,
        ...(routing.canaryPercent !== undefined ? { canary_percent: routing.canaryPercent } : {}),
      },
    );
    return { labels: r.labels, canaryPercent: r.canary_percent };
  }

  /** Explains each row (maas's explain extension, POST …/explain); rejects with an InferenceServerError. */
  async explain(options: ExplainOptions): Promise<ModelExplainResponse> {
    if (options.records && options.inputs) throw new TypeError('Send records or inputs, not both');
    const inputs = (options.inputs ?? []).map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: Array.from(t.data as ArrayLike<number | bigint | boolean | string>, (v) =>
        typeof v === 'bigint' ? Number(v) : v,
      ),
    }));
    const body = {
      ...(options.id ? { id: options.id } : {}),
      ...(options.records ? { records: options.records } : { inputs }),
      parameters: { ...(options.parameters ?? {}), ...(options.method ? { method: options.method } : {}) },
    };
    const response = await fetch(`${this.base}${modelPath(options.model, options.version ?? '')}/explain`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: options.timeoutMs
        ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), ...(options.signal ? [options.signal] : [])])
        : options.signal,
      dispatcher: this.dispatcher,
      headers: { ...this.headers, 'content-type': 'application/json' },
    });
    if (!response.ok) await raise(response);
    return (await response.json()) as ModelExplainResponse;
  }

  /** Runs one inference request (ModelInfer); rejects with an InferenceServerError. */
  async infer(options: InferOptions): Promise<InferResult> {
    const typed = options.typed === true;
    if (options.records && options.inputs) throw new TypeError('Send records or inputs, not both');
    const blobs: Uint8Array[] = [];
    const inputs = (options.inputs ?? []).map((t) => {
      const base = { name: t.name, datatype: t.datatype, shape: t.shape };
      if (typed || t.datatype === 'BYTES')
        return {
          ...base,
          data: Array.from(t.data as ArrayLike<number | bigint | boolean | string>, (v) =>
            typeof v === 'bigint' ? Number(v) : v,
          ),
        };
      const bytes = tensorBytes(t);
      blobs.push(bytes);
      return { ...base, parameters: { binary_data_size: bytes.byteLength } };
    });
    const header = Buffer.from(
      JSON.stringify({
        ...(options.id ? { id: options.id } : {}),
        ...(options.records ? { records: options.records } : { inputs }),
        ...(options.outputs
          ? {
              outputs: options.outputs.map((o) => {
                const { name, parameters } = requestedOutput(o);
                return { name, parameters: { binary_data: !typed, ...parameters } };
              }),
            }
          : {}),
        parameters: { ...(options.parameters ?? {}), binary_data_output: !typed },
      }),
    );
    const body = Buffer.concat([header, ...blobs]);
    const signal = options.timeoutMs
      ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), ...(options.signal ? [options.signal] : [])])
      : options.signal;
    const response = await fetch(`${this.base}${modelPath(options.model, options.version ?? '')}/infer`, {
      method: 'POST',
      body,
      signal,
      dispatcher: this.dispatcher,
      headers: {
        ...this.headers,
        ...(typed
          ? { 'content-type': 'application/json' }
          : { 'content-type': 'application/octet-stream', [BINARY_HEADER_LENGTH]: String(header.length) }),
      },
    });
    if (!response.ok) await raise(response);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const headerLength = Number(response.headers.get(BINARY_HEADER_LENGTH) ?? bytes.length);
    const parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, headerLength).toString('utf8')) as {
      model_name: string;
      model_version: string;
      id?: string;
      outputs: {
        name: string;
        datatype: string;
        shape: number[];
        data?: number[] | string[];
        parameters?: { binary_data_size?: number };
      }[];
    };
    let offset = headerLength;
    return {
      model: parsed.model_name,
      version: parsed.model_version,
      ...(parsed.id ? { id: parsed.id } : {}),
      outputs: parsed.outputs.map((o) => {
        let data: TypedArray | string[];
        const size = o.parameters?.binary_data_size;
        if (size !== undefined) {
          const blob = bytes.subarray(offset, offset + size);
          data = o.datatype === 'BYTES' ? stringsFromBytes(blob) : tensorFromBytes(blob, o.datatype);
          offset += size;
        } else {
          data = o.datatype === 'BYTES' ? ((o.data ?? []) as string[]) : Float32Array.from((o.data ?? []) as number[]);
        }
        return { name: o.name, datatype: o.datatype, shape: o.shape, data };
      }),
    };
  }
}

/** A batch as one binary frame: 4-byte length, JSON header, x's then y's FP32 bytes. */
function updateFrame(header: object, x?: Float32Array, y?: Float32Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(json.length, 0);
  const parts: Uint8Array[] = [prefix, json];
  for (const v of [x, y]) if (v) parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return Buffer.concat(parts);
}

/** The update body: the parameters, then each batch, as frames or NDJSON lines. */
async function* updateBody(options: UpdateOptions, binary: boolean): AsyncGenerator<Uint8Array> {
  const parameters = options.parameters ?? {};
  yield binary ? updateFrame({ parameters }) : Buffer.from(`${JSON.stringify({ parameters })}\n`);
  for await (const batch of options.batches) {
    const set = batch.set ?? 'train';
    if (binary) {
      const x = flatFloats(batch.x);
      const y = flatFloats(batch.y);
      yield updateFrame({ set, x: { binary_data_size: x.byteLength }, y: { binary_data_size: y.byteLength } }, x, y);
    } else {
      const plain = (v: UpdateRowsBatch['x']) => (v instanceof Float32Array ? Array.from(v) : v);
      yield Buffer.from(`${JSON.stringify({ set, x: plain(batch.x), y: plain(batch.y) })}\n`);
    }
  }
}

/** An NDJSON response's objects, as they arrive. */
async function* ndjson(response: Response): AsyncGenerator<UpdateEventMessage & { error?: unknown; code?: unknown }> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) yield JSON.parse(line) as UpdateEventMessage;
    }
  }
  if (pending.trim()) yield JSON.parse(pending) as UpdateEventMessage;
}

function modelPath(name: string, version: string): string {
  return `/v2/models/${encodeURIComponent(name)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
}

async function raise(response: Response): Promise<never> {
  let message = `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: string };
    if (body.error) message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  throw new InferenceServerError(message, response.status, response.headers.get(ERROR_CODE_HEADER) ?? undefined);
}
