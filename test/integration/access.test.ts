/**
 * Access control through the real clients: every RPC and every REST route (and /metrics) called
 * with no token, a wrong, an expired and a revoked token, a token for another model, a token
 * without the call's scope, and the right token; the tables must name every RPC of the service
 * and every route of the REST table, so a new one without a scope fails here. Then the token
 * header (Triton's restricted-API form), refusals that do not reveal which models exist, rate
 * and concurrency limits with Retry-After, and the audit trail.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GrpcInferenceClient,
  InferenceServerError,
  type InferOptions,
  type UpdateOptions,
} from '../../src/client/index.js';
import { explainService, federatedService, inferenceService, updateService } from '../../src/protocol/grpc.js';
import { addTokenRecord } from '../../src/serving/auth/token-store.js';
import { createToken, SCOPES, type Scope } from '../../src/serving/auth/tokens.js';
import { RPC_ACCESS } from '../../src/serving/grpc/access.js';
import { routes } from '../../src/serving/http/server.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let dir: string;
let root: string;
let tokenFile: string;
let server: RunningServer;

/** Tokens by (scope, model) — '' for a token over every model — made once each. */
const tokens = new Map<string, Promise<string>>();
function tokenFor(scope: Scope, model: string): Promise<string> {
  const key = `${scope}/${model}`;
  let token = tokens.get(key);
  if (!token) {
    token = createToken({ name: key, scopes: [scope], ...(model ? { models: [model] } : {}) }).then(
      async ({ token: text, record }) => {
        await addTokenRecord(tokenFile, record);
        return text;
      },
    );
    tokens.set(key, token);
  }
  return token;
}

let expired: string;
let revoked: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maas-access-'));
  tokenFile = join(dir, 'tokens.json');
  root = await tempRepository();
  for (const [name, seed] of [
    ['alpha', 1],
    ['beta', 2],
    ['gamma', 3],
  ] as const) {
    // Explanations on, and held-out rows for updates and federated rounds: their RPCs and routes
    // are in the tables too. Compiled: a round's close judges by the saved loss.
    const model = smallModel(WIDTH, 2, seed);
    model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
    await addVersion(root, name, 1, model, {
      parameters: {
        explain_method: { string_value: 'integratedGradients' },
        update_holdout: { string_value: 'holdout.json' },
      },
    });
    await writeFile(join(root, name, 'holdout.json'), JSON.stringify({ x: [[0.1, 0.2, 0.3, 0.4]], y: [[1, 0]] }));
  }
  const old = await createToken(
    { name: 'old', scopes: ['admin'], expiresInDays: 1 },
    new Date(Date.now() - 3 * 86_400_000),
  );
  const gone = await createToken({ name: 'gone', scopes: ['admin'] });
  await addTokenRecord(tokenFile, old.record);
  await addTokenRecord(tokenFile, { ...gone.record, revoked: true });
  expired = old.token;
  revoked = gone.token;
  // Every token the tables use exists before the server reads the file.
  for (const scope of SCOPES) for (const model of ['', 'alpha', 'beta', 'gamma']) await tokenFor(scope, model);
  server = await startServer(root, {
    workers: 1,
    tokenFile,
    tokenHeader: 'triton-token',
    modelControlMode: 'explicit',
    loadModels: ['*'],
  });
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
});

/** What a call's model is: one model, every model, or none (a server-wide call). */
type Target = 'alpha' | 'gamma' | 'all' | 'none';
type Outcome = 'ok' | 'unauthenticated' | 'denied';

/** A token that holds the call's scope on another model, or on every model for the right one. */
function modelOf(target: Target): string {
  return target === 'alpha' || target === 'gamma' ? target : '';
}

/** The credential variants, each with the outcome a call of `scope` on `target` must have. */
async function variants(scope: Scope, target: Target): Promise<{ name: string; token?: string; expect: Outcome }[]> {
  const openHealth = scope === 'health' && (target === 'none' || target === 'all');
  const refused = (outcome: Outcome): Outcome => (openHealth ? 'ok' : outcome);
  const right = await tokenFor(scope, modelOf(target));
  const otherScope: Scope = scope === 'infer' ? 'metadata' : 'infer';
  return [
    { name: 'no token', expect: refused('unauthenticated') },
    {
      name: 'wrong token',
      token: right.slice(0, -1) + (right.endsWith('A') ? 'B' : 'A'),
      expect: refused('unauthenticated'),
    },
    { name: 'expired token', token: expired, expect: refused('unauthenticated') },
    { name: 'revoked token', token: revoked, expect: refused('unauthenticated') },
    {
      name: 'token for another model',
      token: await tokenFor(scope, 'beta'),
      // A server-wide call names no model; health is open to any identity on its own models.
      expect: target === 'none' ? 'ok' : refused('denied'),
    },
    // Any identity may ask after health.
    {
      name: 'token without the scope',
      token: await tokenFor(otherScope, modelOf(target)),
      expect: scope === 'health' ? 'ok' : 'denied',
    },
    { name: 'the right token', token: right, expect: 'ok' },
  ];
}

function outcomeOf(error: unknown): string {
  if (error === null) return 'ok';
  if (!(error instanceof InferenceServerError)) return `unexpected ${(error as Error).message}`;
  if (error.status === Number(status.UNAUTHENTICATED) && error.code === 'MAAS_ERR_UNAUTHENTICATED')
    return 'unauthenticated';
  if (error.status === Number(status.PERMISSION_DENIED) && error.code === 'MAAS_ERR_PERMISSION_DENIED') return 'denied';
  // A stream answers a refused message on the stream: the error travels as its message.
  if (/^The credentials do not allow this call/.test(error.message)) return 'denied';
  return `unexpected ${error.status} ${error.code ?? ''} ${error.message}`;
}

function inferOptions(model: string): InferOptions {
  return { model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: inputs(1, WIDTH, 5) }] };
}

/** Clients that submitted to the access table's round (each needs its own name). */
let submitted = 0;

/** A small update of `model` (saved uncompiled: the loss comes as a parameter). */
function updateOptions(model: string): UpdateOptions {
  const x = inputs(8, WIDTH, 6);
  const y = Float32Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 1 : 0));
  return {
    model,
    parameters: { epochs: 1, loss: 'categoricalCrossentropy' },
    batches: [{ x, y }], // judged on the model's update_holdout file
  };
}

interface RpcCase {
  rpc: string;
  scope: Scope;
  target: Target;
  call: (client: GrpcInferenceClient) => Promise<unknown>;
}

// Unload comes before load, so the right token's unload of gamma is undone by its load.
const RPC_CASES: RpcCase[] = [
  { rpc: 'ServerLive', scope: 'health', target: 'none', call: (c) => c.serverLive() },
  { rpc: 'ServerReady', scope: 'health', target: 'none', call: (c) => c.serverReady() },
  { rpc: 'ModelReady', scope: 'health', target: 'alpha', call: (c) => c.modelReady('alpha') },
  { rpc: 'ServerMetadata', scope: 'metadata', target: 'none', call: (c) => c.serverMetadata() },
  { rpc: 'ModelMetadata', scope: 'metadata', target: 'alpha', call: (c) => c.modelMetadata('alpha') },
  { rpc: 'ModelConfig', scope: 'metadata', target: 'alpha', call: (c) => c.modelConfig('alpha') },
  { rpc: 'ModelStatistics', scope: 'metadata', target: 'alpha', call: (c) => c.modelStatistics('alpha') },
  { rpc: 'ModelStatistics', scope: 'metadata', target: 'all', call: (c) => c.modelStatistics() },
  { rpc: 'RepositoryIndex', scope: 'repository', target: 'all', call: (c) => c.repositoryIndex() },
  { rpc: 'RepositoryModelUnload', scope: 'repository', target: 'gamma', call: (c) => c.unloadModel('gamma') },
  { rpc: 'RepositoryModelLoad', scope: 'repository', target: 'gamma', call: (c) => c.loadModel('gamma') },
  { rpc: 'ModelInfer', scope: 'infer', target: 'alpha', call: (c) => c.infer(inferOptions('alpha')) },
  { rpc: 'ModelExplain', scope: 'explain', target: 'alpha', call: (c) => c.explain(inferOptions('alpha')) },
  // After gamma's load: an update may promote a version of gamma, which no other case pins.
  { rpc: 'Update', scope: 'update', target: 'gamma', call: (c) => c.update(updateOptions('gamma')) },
  // A round on gamma: opened, read, given one update, closed — each by the right token only.
  { rpc: 'OpenRound', scope: 'update', target: 'gamma', call: (c) => c.openRound('gamma') },
  { rpc: 'GetRound', scope: 'update', target: 'gamma', call: (c) => c.getRound('gamma') },
  {
    rpc: 'SubmitUpdate',
    scope: 'update',
    target: 'gamma',
    call: async (c) => {
      const round = await c.getRound('gamma').catch(() => ({ roundId: 'none', weights: [] }));
      const delta = round.weights.map((t) => new Float32Array(t.values.length));
      return c.submitUpdate('gamma', round.roundId, { client: `c${++submitted}`, samples: 1, delta });
    },
  },
  {
    rpc: 'CloseRound',
    scope: 'update',
    target: 'gamma',
    call: async (c) => c.closeRound('gamma', (await c.getRound('gamma').catch(() => ({ roundId: 'none' }))).roundId),
  },
  {
    rpc: 'ModelStreamInfer',
    scope: 'infer',
    target: 'alpha',
    call: async (c) => {
      const stream = c.openStream();
      try {
        return await stream.send(inferOptions('alpha'));
      } finally {
        stream.end();
      }
    },
  },
];

describe('gRPC access control', () => {
  it('has a rule for every RPC of the service, and the table calls each one', () => {
    const methods = [
      ...Object.keys(inferenceService().service),
      ...Object.keys(explainService().service),
      ...Object.keys(updateService().service),
      ...Object.keys(federatedService().service),
    ].sort();
    expect(Object.keys(RPC_ACCESS).sort()).toEqual(methods);
    expect([...new Set(RPC_CASES.map((c) => c.rpc))].sort()).toEqual(methods);
    for (const c of RPC_CASES) expect(RPC_ACCESS[c.rpc]!.scope, c.rpc).toBe(c.scope);
  });

  it('answers every RPC by its credentials', async () => {
    const seen: string[] = [];
    for (const c of RPC_CASES) {
      for (const variant of await variants(c.scope, c.target)) {
        const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`, {
          ...(variant.token ? { token: variant.token } : {}),
        });
        try {
          const error = await c.call(client).then(
            () => null,
            (e: unknown) => e,
          );
          seen.push(`${c.rpc}(${c.target}) ${variant.name}: ${outcomeOf(error)}`);
          expect(outcomeOf(error), `${c.rpc} on ${c.target} with ${variant.name}`).toBe(variant.expect);
        } finally {
          client.close();
        }
      }
    }
    expect(seen.length).toBe(RPC_CASES.length * 7);
  });

  it('takes the token in the configured header, and refuses without revealing which models exist', async () => {
    const token = await tokenFor('metadata', 'alpha');
    const viaHeader = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`, { token, tokenHeader: 'triton-token' });
    try {
      expect((await viaHeader.modelMetadata('alpha')).name).toBe('alpha');
      const existing = (await viaHeader.modelMetadata('beta').catch((e: unknown) => e)) as InferenceServerError;
      const missing = (await viaHeader.modelMetadata('no-such-model').catch((e: unknown) => e)) as InferenceServerError;
      expect(existing).toBeInstanceOf(InferenceServerError);
      expect([missing.status, missing.code, missing.message]).toEqual([
        existing.status,
        existing.code,
        existing.message,
      ]);
      expect(existing.message).not.toMatch(/beta/);
    } finally {
      viaHeader.close();
    }
  });
});

interface RouteCase {
  /** The route table's `${method} ${path}` this case calls. */
  route: string;
  scope: Scope;
  target: Target;
  method: 'GET' | 'POST';
  url: string;
  body?: string;
}

const models = '/v2/models/{name}[/versions/{version}]';
const ROUTE_CASES: RouteCase[] = [
  { route: 'GET /v2', scope: 'metadata', target: 'none', method: 'GET', url: '/v2' },
  { route: 'GET /v2/health/live', scope: 'health', target: 'none', method: 'GET', url: '/v2/health/live' },
  { route: 'GET /v2/health/ready', scope: 'health', target: 'none', method: 'GET', url: '/v2/health/ready' },
  { route: 'GET /v2/models/stats', scope: 'metadata', target: 'all', method: 'GET', url: '/v2/models/stats' },
  { route: `GET ${models}`, scope: 'metadata', target: 'alpha', method: 'GET', url: '/v2/models/alpha' },
  { route: `GET ${models}`, scope: 'metadata', target: 'alpha', method: 'GET', url: '/v2/models/alpha/versions/1' },
  { route: `GET ${models}/ready`, scope: 'health', target: 'alpha', method: 'GET', url: '/v2/models/alpha/ready' },
  { route: `GET ${models}/config`, scope: 'metadata', target: 'alpha', method: 'GET', url: '/v2/models/alpha/config' },
  { route: `GET ${models}/stats`, scope: 'metadata', target: 'alpha', method: 'GET', url: '/v2/models/alpha/stats' },
  { route: `GET ${models}/card`, scope: 'metadata', target: 'alpha', method: 'GET', url: '/v2/models/alpha/card' },
  {
    route: `POST ${models}/infer`,
    scope: 'infer',
    target: 'alpha',
    method: 'POST',
    url: '/v2/models/alpha/infer',
    body: JSON.stringify({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: [0.1, 0.2, 0.3, 0.4] }],
    }),
  },
  {
    route: `POST ${models}/explain`,
    scope: 'explain',
    target: 'alpha',
    method: 'POST',
    url: '/v2/models/alpha/explain',
    body: JSON.stringify({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: [0.1, 0.2, 0.3, 0.4] }],
    }),
  },
  {
    route: 'POST /v2/repository/index',
    scope: 'repository',
    target: 'all',
    method: 'POST',
    url: '/v2/repository/index',
    body: '{}',
  },
  {
    route: 'GET /v2/repository/models/{name}/routing',
    scope: 'repository',
    target: 'alpha',
    method: 'GET',
    url: '/v2/repository/models/alpha/routing',
  },
  {
    route: 'POST /v2/repository/models/{name}/routing',
    scope: 'repository',
    target: 'alpha',
    method: 'POST',
    url: '/v2/repository/models/alpha/routing',
    body: '{"labels":{}}',
  },
  {
    route: 'POST /v2/repository/models/{name}/unload',
    scope: 'repository',
    target: 'gamma',
    method: 'POST',
    url: '/v2/repository/models/gamma/unload',
    body: '{}',
  },
  {
    route: 'POST /v2/repository/models/{name}/load',
    scope: 'repository',
    target: 'gamma',
    method: 'POST',
    url: '/v2/repository/models/gamma/load',
    body: '{}',
  },
  {
    route: `POST ${models}/update`,
    scope: 'update',
    target: 'gamma',
    method: 'POST',
    url: '/v2/models/gamma/update',
    body: JSON.stringify({
      parameters: { epochs: 1, loss: 'categoricalCrossentropy' },
      batches: [{ x: [[0.1, 0.2, 0.3, 0.4]], y: [[1, 0]] }],
    }),
  },
];

function statusOutcome(code: number): string {
  return code === 401 ? 'unauthenticated' : code === 403 ? 'denied' : code === 200 ? 'ok' : `unexpected ${code}`;
}

async function call(port: number, c: { method: string; url: string; body?: string }, headers: Record<string, string>) {
  const response = await fetch(`http://127.0.0.1:${port}${c.url}`, {
    method: c.method,
    headers: { ...headers, ...(c.body ? { 'content-type': 'application/json' } : {}) },
    ...(c.body ? { body: c.body } : {}),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

describe('REST access control', () => {
  it('gives every route of the table a scope, and the table calls each one', () => {
    const table = routes(server.dataplane);
    for (const route of table) expect(SCOPES, `${route.method} ${route.path}`).toContain(route.scope);
    expect([...new Set(ROUTE_CASES.map((c) => c.route))].sort()).toEqual(
      table.map((r) => `${r.method} ${r.path}`).sort(),
    );
    for (const c of ROUTE_CASES)
      expect(table.find((r) => `${r.method} ${r.path}` === c.route)!.scope, c.route).toBe(c.scope);
  });

  it('answers every route by its credentials', async () => {
    for (const c of ROUTE_CASES) {
      for (const variant of await variants(c.scope, c.target)) {
        const answer = await call(
          server.httpPort!,
          c,
          variant.token ? { authorization: `Bearer ${variant.token}` } : {},
        );
        expect(statusOutcome(answer.status), `${c.method} ${c.url} with ${variant.name}: ${answer.text}`).toBe(
          variant.expect,
        );
        if (answer.status === 401) expect(JSON.parse(answer.text)).toEqual({ error: 'Missing or invalid credentials' });
      }
    }
  });

  it('guards /metrics with the metadata scope over every model', async () => {
    const metrics = { method: 'GET', url: '/metrics' };
    expect((await call(server.metricsPort!, metrics, {})).status).toBe(401);
    const limited = await tokenFor('metadata', 'alpha');
    expect((await call(server.metricsPort!, metrics, { authorization: `Bearer ${limited}` })).status).toBe(403);
    const all = await tokenFor('metadata', '');
    const answer = await call(server.metricsPort!, metrics, { authorization: `Bearer ${all}` });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('nv_inference_request_success');
  });

  it('takes the token in the configured header, and refuses without revealing which models exist', async () => {
    const token = await tokenFor('metadata', 'alpha');
    const get = (url: string) => call(server.httpPort!, { method: 'GET', url }, { 'triton-token': token });
    expect((await get('/v2/models/alpha')).status).toBe(200);
    const existing = await get('/v2/models/beta');
    const missing = await get('/v2/models/no-such-model');
    expect(existing.status).toBe(403);
    expect([missing.status, missing.text]).toEqual([existing.status, existing.text]);
  });
});

describe('rate limits and the audit trail', () => {
  let limited: RunningServer;
  let auditFile: string;
  const caller: Record<'rest' | 'grpc' | 'streamer' | 'admin', string> = {
    rest: '',
    grpc: '',
    streamer: '',
    admin: '',
  };

  beforeAll(async () => {
    const file = join(dir, 'limited-tokens.json');
    auditFile = join(dir, 'audit.jsonl');
    for (const name of Object.keys(caller) as (keyof typeof caller)[]) {
      const made = await createToken({ name, scopes: name === 'admin' ? ['admin'] : ['infer', 'metadata'] });
      await addTokenRecord(file, made.record);
      caller[name] = made.token;
    }
    limited = await startServer(root, {
      workers: 1,
      tokenFile: file,
      auditLog: auditFile,
      rateLimits: { ratePerSecond: 0.5, burst: 3, concurrent: 1 },
      modelControlMode: 'explicit',
      loadModels: ['alpha'],
    });
  });

  afterAll(() => limited?.close());

  it('refuses a caller over its rate with 429 and Retry-After, and leaves other callers alone', async () => {
    const get = (token: string) =>
      call(limited.httpPort!, { method: 'GET', url: '/v2/models/alpha' }, { authorization: `Bearer ${token}` });
    for (let i = 0; i < 3; i++) expect((await get(caller.rest)).status).toBe(200);
    const over = await get(caller.rest);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(over.text).error).toMatch(/Too many requests/);
    expect((await get(caller.grpc)).status).toBe(200);
  });

  it('answers RESOURCE_EXHAUSTED on gRPC, per request and per concurrent call', async () => {
    const client = new GrpcInferenceClient(`127.0.0.1:${limited.grpcPort}`, { token: caller.grpc });
    const streamer = new GrpcInferenceClient(`127.0.0.1:${limited.grpcPort}`, { token: caller.streamer });
    try {
      // grpc's bucket had one request over REST above: two more pass, the next is over the rate.
      await client.modelMetadata('alpha');
      await client.modelMetadata('alpha');
      const over = (await client.modelMetadata('alpha').catch((e: unknown) => e)) as InferenceServerError;
      expect([over.status, over.code]).toEqual([status.RESOURCE_EXHAUSTED, 'MAAS_ERR_RATE_LIMITED']);
      // An open stream holds the streamer's one concurrent slot: a unary call waits its turn.
      const stream = streamer.openStream();
      expect((await stream.send(inferOptions('alpha'))).outputs[0]!.data.length).toBe(2);
      const busy = (await streamer.modelMetadata('alpha').catch((e: unknown) => e)) as InferenceServerError;
      expect([busy.status, busy.code]).toEqual([status.RESOURCE_EXHAUSTED, 'MAAS_ERR_RATE_LIMITED']);
      expect(busy.message).toMatch(/at once/);
      stream.end();
    } finally {
      client.close();
      streamer.close();
    }
  });

  it('records administrative calls and refusals one by one, inference as counts, never a payload', async () => {
    const admin = new GrpcInferenceClient(`127.0.0.1:${limited.grpcPort}`, { token: caller.admin });
    const stranger = new GrpcInferenceClient(`127.0.0.1:${limited.grpcPort}`, {
      token: 'maas_0123456789abcdef_' + 'x'.repeat(43),
    });
    try {
      await admin.loadModel('gamma');
      await admin.infer(inferOptions('gamma'));
      await admin.infer(inferOptions('gamma'));
      await expect(stranger.modelMetadata('alpha')).rejects.toMatchObject({ code: 'MAAS_ERR_UNAUTHENTICATED' });
    } finally {
      admin.close();
      stranger.close();
    }
    await limited.close(); // flushes the counts and the file
    const lines = (await readFile(auditFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const adminId = lines.find((l) => l.name === 'admin')?.identity;
    expect(adminId).toMatch(/^token:[0-9a-f]{16}$/);
    expect(lines).toContainEqual(
      expect.objectContaining({
        event: 'action',
        action: 'RepositoryModelLoad',
        model: 'gamma',
        result: 'ok',
        identity: adminId,
        transport: 'grpc',
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        event: 'denied',
        action: 'ModelMetadata',
        code: 'MAAS_ERR_UNAUTHENTICATED',
        reason: 'unknown',
        identity: null,
      }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ event: 'denied', code: 'MAAS_ERR_RATE_LIMITED' }));
    expect(lines).toContainEqual(
      expect.objectContaining({ event: 'inference', identity: adminId, model: 'gamma', requests: 2, failures: 0 }),
    );
    for (const line of lines) {
      expect(typeof line.time).toBe('string');
      expect(Object.keys(line)).not.toContain('inputs');
    }
  });
});
