/**
 * The REST adapter: the same protocol over HTTP/1.1 (KServe v2 REST with Triton's binary tensor
 * data extension), on node:http with a small route table. Each route decodes, calls the DataPlane
 * once and encodes; `httpStatus` is the one error mapping.
 */
import { UI_HEADERS, type UiAsset } from './ui.js';
import {
  DEFAULT_CONNECTION_IDLE_MS,
  DEFAULT_JSON_THREAD_BYTES,
  DEFAULT_MAX_HTTP_CONNECTIONS,
  DEFAULT_MAX_IN_FLIGHT_PER_HTTP_CONNECTION,
  DEFAULT_MAX_MESSAGE_BYTES,
  maxRequestElements,
} from '../../protocol/limits.js';
import { BINARY_HEADER_LENGTH, ERROR_CODE_HEADER } from '../../protocol/http.js';
import {
  STATUS_CODES,
  createServer as createPlainServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createTlsServer, type ServerOptions as TlsServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { ERRORS, MaasError, describeValue, messageOf, type ErrorEntry, type ErrorKind } from '../../core/errors.js';

import { ALL_MODELS, credentialsOf, type AccessControl, type Caller, type Credentials } from '../auth/access.js';
import type { Release } from '../auth/rate-limit.js';
import type { Scope } from '../auth/tokens.js';
import { type Body, readBody } from './body.js';
import { ConnectionGate } from './connections.js';
import { receiveUpdate } from './update.js';
import { JsonBodies } from './json-body.js';
import type { BodyKind } from './json-parse.js';
import {
  Cancellation,
  explainMessage,
  outputBytes,
  updateEventMessage,
  updateResultMessage,
  type DataPlane,
  type InferInput,
  type InferRequest,
  type InferResponse,
  type Parameters,
  type VersionRouting,
} from '../dataplane.js';

/** HTTP status per error kind (Triton answers bad requests with 400, unavailable with 503). */
const STATUS: Record<ErrorKind, number> = {
  InvalidArgument: 400,
  FailedPrecondition: 400,
  NotFound: 404,
  Unavailable: 503,
  ResourceExhausted: 429,
  Unimplemented: 501,
  Unauthenticated: 401,
  PermissionDenied: 403,
  Cancelled: 400,
  Internal: 500,
};

/** The one mapping from errors to an HTTP status and `{error}` body. */
export function httpError(error: unknown): {
  status: number;
  body: { error: string };
  headers?: Record<string, string>;
} {
  if (error instanceof MaasError) {
    const entry: ErrorEntry = ERRORS[error.code];
    const status = entry.httpStatus ?? STATUS[error.kind];
    // The body is Triton's; the code travels in a header, as it does in gRPC's trailers.
    const coded = { [ERROR_CODE_HEADER]: error.code };
    if (error.retryAfterMs === undefined) return { status, body: { error: error.message }, headers: coded };
    const seconds = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
    return { status, body: { error: error.message }, headers: { ...coded, 'retry-after': seconds } };
  }
  return { status: 500, body: { error: `internal error: ${messageOf(error)}` } };
}

/** What a route's handler gets. */
export interface Context {
  method: string;
  params: (string | undefined)[];
  req: IncomingMessage;
  res: ServerResponse;
  /** Reads the body (a JSON-only one into blocks the parse thread can take, once it is large). */
  body: () => Promise<Body>;
  /** Parses a JSON object body, on the event loop or in the parse thread by size. */
  parseJson: (body: Body | Uint8Array, kind: BodyKind) => Promise<Record<string, unknown>>;
  cancellation: Cancellation;
  /** The largest body (or, for a streamed body, message) the server takes. */
  limit: number;
}

type Reply = {
  status?: number;
  json?: unknown;
  /** A file's bytes as they are (the /ui page's). */
  file?: UiAsset;
  binary?: { header: unknown; blobs: Uint8Array[] };
  headers?: Record<string, string>;
  /** The handler wrote the answer itself (a stream of events). */
  streamed?: true;
} | void;

/**
 * One route: its method and path, the scope a caller needs, and whether its path names the model
 * (`model: 'path'`, the first captured segment) or covers every model (`'all'`).
 */
export interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  /** A readable form of the path for the audit trail and the route table test. */
  path: string;
  scope: Scope;
  model?: 'path' | 'all';
  /** Passes without credentials (the /ui page's files, which hold no data). */
  open?: true;
  handle: (ctx: Context) => Reply | Promise<Reply>;
}

const NAME = '([^/]+)';
const VERSION = `(?:/versions/${NAME})?`;

/** A path segment, %-decoded; a malformed escape is the client's error. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    const shown = segment.length > 64 ? `${segment.slice(0, 64)}…` : segment;
    throw new MaasError('MAAS_ERR_HTTP_PATH', `Expected a path segment with valid %-escapes but received '${shown}'`);
  }
}

async function json(ctx: Context): Promise<Record<string, unknown>> {
  const body = await ctx.body();
  return body.size === 0 ? {} : ctx.parseJson(body, 'request body');
}

/** Splits an infer body into its JSON header and binary part (binary tensor data extension). */
function splitInferBody(req: IncomingMessage, body: Buffer): { header: Buffer; binary: Buffer } {
  const declared = req.headers[BINARY_HEADER_LENGTH];
  const headerLength = Number(declared);
  if (!Number.isInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
    throw new MaasError(
      'MAAS_ERR_HTTP_BODY',
      `Expected Inference-Header-Content-Length in [0, ${body.length}] but received ${describeValue(declared)}`,
    );
  }
  if (headerLength === 0) {
    throw new MaasError(
      'MAAS_ERR_HTTP_BODY',
      'A raw binary body without a JSON header (Inference-Header-Content-Length: 0) is not supported: send a JSON header naming the input, then its bytes',
    );
  }
  return { header: body.subarray(0, headerLength), binary: body.subarray(headerLength) };
}

/** An infer body's JSON header, parsed, and its binary part. */
async function readInferBody(ctx: Context): Promise<{ header: Record<string, unknown>; binary: Buffer }> {
  const body = await ctx.body();
  if (ctx.req.headers[BINARY_HEADER_LENGTH] === undefined)
    return { header: await ctx.parseJson(body, 'inference request'), binary: Buffer.alloc(0) };
  const { header, binary } = splitInferBody(ctx.req, body.bytes());
  return { header: await ctx.parseJson(header, 'inference request'), binary };
}

function parametersOf(value: unknown, what: string): Parameters | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new MaasError(
      'MAAS_ERR_INFER_PARAMETER',
      `Expected an object for ${what} but received ${describeValue(value)}`,
    );
  return value as Parameters;
}

/**
 * A REST inference request (a parsed JSON header, and the binary tensors after it) as the DataPlane
 * takes it. An input's data is a JSON array, or a typed array when the parse thread packed it.
 */
export function decodeInferBody(
  model: string,
  version: string | undefined,
  header: Record<string, unknown>,
  binary: Buffer,
): { request: InferRequest; binaryOutputs: boolean } {
  // Raw JSON records (for a model saved with its preparation pipeline) stand in for the inputs.
  const records = header.records;
  if (records !== undefined && header.inputs !== undefined)
    throw new MaasError('MAAS_ERR_INFER_INPUT', 'An inference request carries records or inputs, not both');
  if (records === undefined && !Array.isArray(header.inputs))
    throw new MaasError(
      'MAAS_ERR_INFER_INPUT',
      `Expected an inputs array (or records) in the inference request but received ${describeValue(header.inputs)}`,
    );
  const inputsIn = (header.inputs ?? []) as unknown[];
  let offset = 0;
  const inputs = inputsIn.map((item: unknown, i: number): InferInput => {
    const raw = item as Record<string, unknown>;
    if (typeof raw !== 'object' || raw === null)
      throw new MaasError('MAAS_ERR_INFER_INPUT', `Expected an object for inputs[${i}]`);
    const { name, datatype, shape, data } = raw;
    if (
      typeof name !== 'string' ||
      typeof datatype !== 'string' ||
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isInteger(d))
    ) {
      throw new MaasError(
        'MAAS_ERR_INFER_INPUT',
        `Expected inputs[${i}] to have a string name, a string datatype and an integer shape but received name ${describeValue(name)}, datatype ${describeValue(datatype)}, shape ${describeValue(shape)}`,
      );
    }
    const parameters = parametersOf(raw.parameters, `inputs[${i}].parameters`);
    const input: InferInput = { name, datatype, shape: shape as number[], parameters };
    const size = parameters?.binary_data_size;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > binary.length) {
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `Expected binary_data_size of input '${name}' within the ${binary.length - offset} bytes left in the body but received ${describeValue(size)}`,
        );
      }
      if (data !== undefined)
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `input '${name}' has both binary data and JSON data; send one of them`,
        );
      input.raw = binary.subarray(offset, offset + size);
      offset += size;
    } else {
      if (!Array.isArray(data) && !ArrayBuffer.isView(data))
        throw new MaasError(
          'MAAS_ERR_INFER_INPUT',
          `Expected a data array (or binary_data_size) for input '${name}' but received ${describeValue(data)}`,
        );
      input.values = data as ArrayLike<unknown>;
      // Packed by the parse thread for this request alone: nothing else holds it.
      if (data instanceof Float32Array) input.handedOver = true;
    }
    return input;
  });
  if (offset !== binary.length)
    throw new MaasError(
      'MAAS_ERR_HTTP_BODY',
      `The body has ${binary.length - offset} bytes of binary data no input claims`,
    );
  const parameters = parametersOf(header.parameters, 'parameters');
  const outputs = header.outputs === undefined ? [] : header.outputs;
  if (!Array.isArray(outputs))
    throw new MaasError('MAAS_ERR_INFER_OUTPUT', `Expected an outputs array but received ${describeValue(outputs)}`);
  return {
    request: {
      model,
      version,
      id: typeof header.id === 'string' ? header.id : undefined,
      parameters,
      inputs,
      ...(records !== undefined ? { records } : {}),
      outputs: outputs.map((o: Record<string, unknown>, i: number) => {
        if (typeof o?.name !== 'string')
          throw new MaasError(
            'MAAS_ERR_INFER_OUTPUT',
            `Expected a string name for outputs[${i}] but received ${describeValue(o?.name)}`,
          );
        return { name: o.name, parameters: parametersOf(o.parameters, `outputs[${i}].parameters`) };
      }),
    },
    binaryOutputs: parameters?.binary_data_output === true,
  };
}

/** A response as JSON, or as a JSON header plus binary blobs for outputs that asked for binary_data. */
export function encodeInferResponse(response: InferResponse, binaryOutputs: boolean): Reply {
  const blobs: Uint8Array[] = [];
  const outputs = response.outputs.map((o) => {
    const binary = typeof o.parameters?.binary_data === 'boolean' ? o.parameters.binary_data : binaryOutputs;
    const base = { name: o.name, datatype: o.datatype, shape: o.shape };
    if (!binary) return { ...base, data: o.datatype === 'BYTES' ? o.data : Array.from(o.data) };
    const bytes = outputBytes(o);
    blobs.push(bytes);
    return { ...base, parameters: { binary_data_size: bytes.byteLength } };
  });
  const header = {
    model_name: response.model,
    model_version: response.version,
    ...(response.id ? { id: response.id } : {}),
    outputs,
  };
  return blobs.length > 0 ? { binary: { header, blobs } } : { json: header };
}

/** A model's routing as REST answers it: its labels and the canary's percent (none: no labels). */
function routingMessage(routing: VersionRouting | null): { labels: Record<string, number>; canary_percent: number } {
  return { labels: routing?.labels ?? {}, canary_percent: routing?.canaryPercent ?? 0 };
}

/** The /ui page: GET /ui (and /ui/) and each of its files by name; nothing else under /ui. */
export function uiRoutes(assets: ReadonlyMap<string, UiAsset>): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/ui(?:\/([^/]*))?$/,
      path: '/ui/{file}',
      scope: 'health',
      open: true,
      handle: (ctx) => {
        const file = assets.get(ctx.params[0] ?? '');
        if (!file) throw new MaasError('MAAS_ERR_HTTP_ROUTE', `The /ui page has no file '${ctx.params[0]}'`);
        return { file, headers: UI_HEADERS };
      },
    },
  ];
}

/** Every REST route of the service, bound to one DataPlane; each names its scope. */
export function routes(dataplane: DataPlane): Route[] {
  const models = '/v2/models/{name}[/versions/{version}]';
  return [
    {
      method: 'GET',
      pattern: /^\/v2\/?$/,
      path: '/v2',
      scope: 'metadata',
      handle: () => ({ json: dataplane.serverMetadata() }),
    },
    {
      method: 'GET',
      pattern: /^\/v2\/health\/live$/,
      path: '/v2/health/live',
      scope: 'health',
      handle: () => ({ status: dataplane.live() ? 200 : 503 }),
    },
    {
      method: 'GET',
      pattern: /^\/v2\/health\/ready$/,
      path: '/v2/health/ready',
      scope: 'health',
      handle: () => ({ status: dataplane.ready() ? 200 : 503 }),
    },
    {
      method: 'GET',
      pattern: /^\/v2\/models\/stats$/,
      path: '/v2/models/stats',
      scope: 'metadata',
      model: 'all',
      handle: () => ({ json: { model_stats: dataplane.modelStatistics() } }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/?$`),
      path: models,
      scope: 'metadata',
      model: 'path',
      handle: ({ params: [m, v] }) => ({ json: dataplane.modelMetadata(m!, v) }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/ready$`),
      path: `${models}/ready`,
      scope: 'health',
      model: 'path',
      handle: ({ params: [m, v] }) => {
        const ready = dataplane.modelReady(m!, v);
        return { status: ready ? 200 : 503, json: { name: m, ready } };
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/config$`),
      path: `${models}/config`,
      scope: 'metadata',
      model: 'path',
      handle: ({ params: [m, v] }) => ({ json: dataplane.modelConfig(m!, v) }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/stats$`),
      path: `${models}/stats`,
      scope: 'metadata',
      model: 'path',
      handle: ({ params: [m, v] }) => ({ json: { model_stats: dataplane.modelStatistics(m, v) } }),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/infer$`),
      path: `${models}/infer`,
      scope: 'infer',
      model: 'path',
      handle: async (ctx) => {
        const [m, v] = ctx.params;
        const { header, binary } = await readInferBody(ctx);
        const { request, binaryOutputs } = decodeInferBody(m!, v, header, binary);
        return encodeInferResponse(await dataplane.infer(request, ctx.cancellation), binaryOutputs);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/card$`),
      path: `${models}/card`,
      scope: 'metadata',
      model: 'path',
      handle: (ctx) => ({ json: dataplane.modelCard(ctx.params[0]!, ctx.params[1]) }),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/explain$`),
      path: `${models}/explain`,
      scope: 'explain',
      model: 'path',
      handle: async (ctx) => {
        const [m, v] = ctx.params;
        const { header, binary } = await readInferBody(ctx);
        const { request } = decodeInferBody(m!, v, header, binary);
        return { json: explainMessage(await dataplane.explain(request)) };
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/update$`),
      path: `${models}/update`,
      scope: 'update',
      model: 'path',
      handle: (ctx) => serveUpdate(dataplane, ctx),
    },
    {
      method: 'POST',
      pattern: /^\/v2\/repository\/index$/,
      path: '/v2/repository/index',
      scope: 'repository',
      model: 'all',
      handle: async (ctx) => ({ json: await dataplane.repositoryIndex(Boolean((await json(ctx)).ready)) }),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/repository/models/${NAME}/load$`),
      path: '/v2/repository/models/{name}/load',
      scope: 'repository',
      model: 'path',
      handle: async (ctx) => {
        const parameters = ((await json(ctx)).parameters ?? {}) as Record<string, unknown>;
        await dataplane.loadModel(ctx.params[0]!, parameters);
        return { json: {} };
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v2/repository/models/${NAME}/routing$`),
      path: '/v2/repository/models/{name}/routing',
      scope: 'repository',
      model: 'path',
      handle: (ctx) => ({ json: routingMessage(dataplane.modelRouting(ctx.params[0]!)) }),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/repository/models/${NAME}/routing$`),
      path: '/v2/repository/models/{name}/routing',
      scope: 'repository',
      model: 'path',
      handle: async (ctx) => {
        const body = await json(ctx);
        const routing = await dataplane.setModelRouting(ctx.params[0]!, body.labels, body.canary_percent);
        return { json: routingMessage(routing) };
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v2/repository/models/${NAME}/unload$`),
      path: '/v2/repository/models/{name}/unload',
      scope: 'repository',
      model: 'path',
      handle: async (ctx) => {
        await json(ctx);
        await dataplane.unloadModel(ctx.params[0]!);
        return { json: {} };
      },
    },
  ];
}

/**
 * The update route: the body's rows into a session (a refusal so far is an ordinary error
 * answer), then the training's events as NDJSON lines, the last a "result" or an "error".
 * The connection closing before the result cancels the update.
 */
async function serveUpdate(dataplane: DataPlane, ctx: Context): Promise<Reply> {
  const [model, version] = ctx.params;
  const session = await receiveUpdate(dataplane, model!, version, ctx);
  const { res } = ctx;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const line = (value: unknown) => void (!res.destroyed && res.write(`${JSON.stringify(value)}\n`));
  const onClose = () => {
    if (!res.writableFinished) void session.cancel('the client closed the connection');
  };
  res.on('close', onClose);
  if (res.destroyed) onClose(); // the client left before the listener was there
  try {
    line(updateResultMessage(await session.run((event) => line(updateEventMessage(event)))));
  } catch (error) {
    line({
      event: 'error',
      code: error instanceof MaasError ? error.code : 'internal',
      error: httpError(error).body.error,
    });
  } finally {
    res.off('close', onClose);
    res.end();
  }
  return { streamed: true };
}

/** The credentials of a REST request: a bearer token, the token header, or a verified client certificate. */
export function restCredentials(req: IncomingMessage, tokenHeader?: string): Credentials {
  const socket = req.socket as Partial<TLSSocket>;
  return credentialsOf(req.headers.authorization, tokenHeader ? req.headers[tokenHeader] : undefined, () =>
    socket.authorized === true ? socket.getPeerCertificate?.() : undefined,
  );
}

/** A REST request's admission: the caller and its concurrent-request slot. */
interface Admission {
  caller: Caller;
  release: Release;
  model: string | undefined;
}

/**
 * The route hook: authenticates, authorizes the route's scope on the model its path names, and
 * takes a slot under the caller's limits; resolves null for an open route (server health).
 */
async function admit(
  access: AccessControl,
  route: Route,
  req: IncomingMessage,
  pathModel: string | undefined,
  tokenHeader: string | undefined,
): Promise<Admission | null> {
  if (access.isOpen(route.scope, route.model === 'path')) return null;
  const caller = await access.authenticate({
    transport: 'rest',
    peer: req.socket.remoteAddress ?? 'unknown',
    action: `${route.method} ${route.path}`,
    credentials: restCredentials(req, tokenHeader),
  });
  const model = route.model === 'path' ? pathModel : undefined;
  access.authorize(caller, route.scope, route.model === 'all' ? ALL_MODELS : model);
  return { caller, release: access.admit(caller), model };
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || reply?.streamed) return;
  const status = reply?.status ?? 200;
  if (reply?.binary) {
    const header = Buffer.from(JSON.stringify(reply.binary.header));
    const length = header.length + reply.binary.blobs.reduce((n, b) => n + b.byteLength, 0);
    res.writeHead(status, {
      ...reply.headers,
      'content-type': 'application/octet-stream',
      'content-length': length,
      [BINARY_HEADER_LENGTH]: header.length,
    });
    res.write(header);
    for (const blob of reply.binary.blobs) res.write(blob);
    res.end();
    return;
  }
  if (reply?.file) {
    res.writeHead(status, {
      ...reply.headers,
      'content-type': reply.file.type,
      'content-length': reply.file.bytes.length,
    });
    res.end(reply.file.bytes);
    return;
  }
  if (reply?.json === undefined) {
    res.writeHead(status, { ...reply?.headers, 'content-length': 0 });
    res.end();
    return;
  }
  const body = Buffer.from(JSON.stringify(reply.json));
  res.writeHead(status, { ...reply.headers, 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/** A started REST endpoint. */
export interface HttpEndpoint {
  server: Server;
  /** The bound port. */
  port: number;
  /** Its connections' running requests. */
  connections: ConnectionGate;
}

/** What Node's HTTP parser refused, as the registry's error for it. */
function parserError(error: Error & { code?: string; reason?: string }): MaasError {
  const why = `${error.reason ?? error.message} (${error.code ?? 'no code'})`;
  if (error.code === 'HPE_HEADER_OVERFLOW')
    return new MaasError(
      'MAAS_ERR_HTTP_HEADERS_TOO_LARGE',
      `Expected a request line and headers within the server's header size limit but received more: ${why}`,
    );
  if (error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW')
    return new MaasError(
      'MAAS_ERR_MESSAGE_TOO_LARGE',
      `Expected chunk extensions within the parser's limit but received more: ${why}`,
    );
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new MaasError(
      'MAAS_ERR_HTTP_REQUEST_TIMEOUT',
      `The request did not arrive within the server's request timeout: ${why}`,
    );
  return new MaasError(
    'MAAS_ERR_HTTP_REQUEST',
    `Expected a well-formed HTTP/1.1 request but the parser refused it: ${why}`,
  );
}

/** Writes an error answer straight onto a socket Node no longer parses requests from, then closes it. */
function answerOnSocket(socket: Duplex, status: number, body: { error: string }): void {
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
    () => socket.destroy(), // the rest of what the client sends is never read
  );
}

/**
 * Answers a request Node's parser refused (a bad request line, header or chunk) with the same
 * `{error}` body as every other error, then closes the connection, as Node's own answer would.
 * Like Node, it writes nothing into a response already under way, and nothing to a reset socket.
 */
function answerParserError(error: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const { status, body } = httpError(parserError(error));
  answerOnSocket(socket, status, body);
}

/** CONNECT hands the socket over instead of making a request: refused like any other method without a route. */
function refuseConnect(req: IncomingMessage, socket: Duplex): void {
  const error = new MaasError('MAAS_ERR_HTTP_ROUTE', `CONNECT is not allowed on ${(req.url ?? '').slice(0, 64)}`);
  answerOnSocket(socket, 405, { error: error.message });
}

/**
 * A request refused before its body is read (an Expect other than 100-continue, or bad framing),
 * answered with a coded error; the unread body ends the connection.
 */
function refuseRequest(res: ServerResponse, error: MaasError): void {
  const { status, body } = httpError(error);
  res.shouldKeepAlive = false;
  send(res, { status, json: body });
}

/**
 * The request's framing, refused before its body is read: HTTP/1.1 requires a Host header (RFC
 * 9112 §3.2; Node's own refusal has no body), and a chunked body that also asks for an Upgrade
 * can never end (Node ignores the upgrade, but its parser drops any error in the chunks that
 * follow, so the body neither completes nor fails).
 */
function badFraming(req: IncomingMessage): MaasError | null {
  if (req.httpVersion === '1.1' && req.headers.host === undefined)
    return new MaasError('MAAS_ERR_HTTP_REQUEST', 'Expected a Host header in an HTTP/1.1 request but received none');
  if (req.headers.upgrade !== undefined && req.headers['transfer-encoding'] !== undefined)
    return new MaasError(
      'MAAS_ERR_HTTP_REQUEST',
      `Expected no Upgrade header on a request with a Transfer-Encoding body (maas serves REST over HTTP/1.1) but received ${describeValue(req.headers.upgrade)}`,
    );
  return null;
}

/** The REST endpoint's settings. */
export interface HttpServerOptions {
  host?: string;
  port: number;
  maxBodyBytes?: number;
  /** A connection with nothing in flight is closed after this long, used or not (default 65 s). */
  connectionIdleMs?: number;
  /** A connection older than this is closed after its next answer (default 0: no limit). */
  connectionMaxAgeMs?: number;
  /** Requests of one connection that run at once (pipelining; default 32). */
  maxInFlightPerConnection?: number;
  /** JSON bodies of this many bytes or more are parsed in a thread (default 1 MiB). */
  jsonThreadBytes?: number;
  /** Access control; every route is checked against it (default: none). */
  access?: AccessControl;
  /** A header that carries a bare token (Triton's restricted-API form), besides Authorization. */
  tokenHeader?: string;
  /** TLS: the server's options (certificate, key, CA, client certificates); absent: plain HTTP. */
  tls?: TlsEndpoint;
  /** The /ui page's files (loadUiAssets): with them the page is served at /ui. */
  ui?: ReadonlyMap<string, UiAsset>;
}

/** What a TLS endpoint needs: its first options, and a way to follow certificate changes. */
export interface TlsEndpoint {
  options: TlsServerOptions;
  /** Calls back with new certificate options; returns a function that stops it. */
  onChange: (listener: (options: TlsServerOptions) => void) => () => void;
}

/** A plain or TLS node:http server; a TLS one follows certificate changes for new connections. */
function createHttpServer(
  tls: TlsEndpoint | undefined,
  options: TlsServerOptions,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  if (!tls) return createPlainServer(options, listener);
  const server = createTlsServer({ ...options, ...tls.options }, listener);
  const stop = tls.onChange((next) => server.setSecureContext(next));
  server.on('close', stop);
  // A handshake that fails (a client without a required certificate, a wrong CA) is the client's.
  server.on('tlsClientError', () => {});
  return server;
}

/** Starts the REST server; resolves with it and the port it bound (port 0 picks one). */
export async function startHttpServer(
  dataplane: DataPlane,
  logger: Logger,
  options: HttpServerOptions,
): Promise<HttpEndpoint> {
  const table = [...routes(dataplane), ...(options.ui ? uiRoutes(options.ui) : [])];
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const threadBytes = options.jsonThreadBytes ?? DEFAULT_JSON_THREAD_BYTES;
  const jsonBodies = new JsonBodies({ threadBytes, maxElements: maxRequestElements(limit), maxBodyBytes: limit });
  const parseJson = (body: Body | Uint8Array, kind: BodyKind) => jsonBodies.parse(body, kind);
  const connections = new ConnectionGate(
    options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT_PER_HTTP_CONNECTION,
    options.connectionMaxAgeMs ?? 0,
  );
  const access = options.access?.active ? options.access : undefined;
  const tokenHeader = options.tokenHeader?.toLowerCase();
  const server = createHttpServer(options.tls, { requireHostHeader: false }, (req, res) =>
    connections.admit(req, res, () => handle(req, res)),
  );
  const finish = (admission: Admission | null, route: Route, result: string) => {
    if (!admission || !access) return;
    admission.release();
    access.record(admission.caller, route.scope, admission.model, result);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const framing = badFraming(req);
    if (framing) return refuseRequest(res, framing);
    // The client went away: its connection closed before the answer was written.
    const cancellation = new Cancellation((abort) => {
      if (res.closed) abort();
      else res.on('close', () => !res.writableFinished && abort());
    });
    const path = (req.url ?? '/').split('?')[0]!;
    let methodMatched = false;
    for (const route of table) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      if (route.method !== req.method) {
        methodMatched = true;
        continue;
      }
      const context = (params: (string | undefined)[]): Context => ({
        method: req.method!,
        params,
        req,
        res,
        // A body with binary tensors is needed in one buffer; a JSON one may go to the parse thread.
        body: () => readBody(req, res, limit, req.headers[BINARY_HEADER_LENGTH] === undefined ? threadBytes : Infinity),
        parseJson,
        cancellation,
        limit,
      });
      let admission: Admission | null = null;
      Promise.resolve()
        .then(async () => {
          // Decoded inside the chain: a malformed %-escape is this request's 400, not an uncaught throw.
          const params = match.slice(1).map((p) => (p === undefined ? p : decodeSegment(p)));
          if (access && !route.open) admission = await admit(access, route, req, params[0], tokenHeader);
          return route.handle(context(params));
        })
        .then(
          (reply) => {
            finish(admission, route, 'ok');
            send(res, reply);
          },
          (error: unknown) => {
            finish(admission, route, error instanceof MaasError ? error.code : 'internal');
            const { status, body, headers } = httpError(error);
            if (status >= 500 && status !== 503) logger.error({ err: error, path }, 'request failed');
            send(res, { status, json: body, ...(headers ? { headers } : {}) });
          },
        );
      return;
    }
    const error = new MaasError(
      'MAAS_ERR_HTTP_ROUTE',
      methodMatched
        ? `${req.method} is not allowed on ${path}`
        : `Expected a KServe v2 path (/v2, /v2/health/..., /v2/models/..., /v2/repository/...) but received ${req.method} ${path}`,
    );
    send(res, { status: methodMatched ? 405 : 404, json: { error: error.message } });
  };
  const idleMs = options.connectionIdleMs ?? DEFAULT_CONNECTION_IDLE_MS;
  server.keepAliveTimeout = idleMs;
  // keepAliveTimeout starts after an answer; this timer also covers a connection that never asks.
  server.timeout = idleMs;
  server.on('timeout', (socket: Socket) => connections.closeIfIdle(socket));
  server.maxConnections = DEFAULT_MAX_HTTP_CONNECTIONS;
  server.on('close', () => void jsonBodies.close());
  server.on('clientError', answerParserError);
  server.on('connect', refuseConnect);
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    refuseRequest(
      res,
      new MaasError(
        'MAAS_ERR_HTTP_EXPECTATION',
        `Expected no Expect header or 'Expect: 100-continue' but received ${describeValue(req.headers.expect)}`,
      ),
    ),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve((server.address() as AddressInfo).port));
  });
  return { server, port, connections };
}

/** The metrics endpoint's settings. */
export interface MetricsServerOptions {
  host?: string;
  port: number;
  /** Access control: /metrics needs the metadata scope over every model unless metrics are open. */
  access?: AccessControl;
  tokenHeader?: string;
  tls?: TlsEndpoint;
}

/** Starts the Prometheus endpoint (GET /metrics) on its own port, as Triton does. */
export async function startMetricsServer(
  text: () => Promise<string>,
  contentType: string,
  options: MetricsServerOptions,
): Promise<{ server: Server; port: number }> {
  const access = options.access?.enabled ? options.access : undefined;
  const tokenHeader = options.tokenHeader?.toLowerCase();
  const server = createHttpServer(options.tls, {}, (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('metrics are at GET /metrics\n');
      return;
    }
    const allowed =
      !access || access.isOpen('metrics', false)
        ? Promise.resolve()
        : access.check(
            {
              transport: 'metrics',
              peer: req.socket.remoteAddress ?? 'unknown',
              action: 'GET /metrics',
              credentials: restCredentials(req, tokenHeader),
            },
            'metadata',
            ALL_MODELS,
          );
    allowed
      .then(() => text())
      .then(
        (body) => {
          res.writeHead(200, { 'content-type': contentType });
          res.end(body);
        },
        (error: unknown) => {
          const { status, body, headers } = httpError(error);
          res.writeHead(status, { ...headers, 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        },
      );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve((server.address() as AddressInfo).port));
  });
  return { server, port };
}
