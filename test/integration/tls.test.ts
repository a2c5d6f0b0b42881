/**
 * TLS on every endpoint through the real gRPC and REST clients (and node:tls / node:https for the
 * raw handshake): the configured certificate served on gRPC, REST and metrics and plain text
 * refused; mutual TLS with and without a trusted client certificate; client certificates mapped
 * to scopes by the token file; certificate rotation, atomic and half-done, under concurrent traffic
 * with no failed request; the refusals at startup; and the safe default address.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GrpcInferenceClient,
  HttpInferenceClient,
  InferenceServerError,
  type ClientSecurity,
  type ClientTls,
} from '../../src/client/index.js';
import type { Sequential } from '../../src/index.js';
import { createToken } from '../../src/serving/auth/tokens.js';
import { writeTokenFile } from '../../src/serving/auth/token-store.js';
import type { RunningServer, ServeOptions } from '../../src/serving/server.js';
import type { TlsSettings } from '../../src/serving/auth/tls.js';
import { certificateAuthority, type Authority, type Issued } from './certificates.js';
import { addVersion, inputs, memoryLogger, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let root: string;
/** A repository without models, for servers that only need to start. */
let emptyRoot: string;
let model: Sequential;
let ca: Authority;
let otherCa: Authority;
/** Servers, clients and directories a test made; closed and removed after it. */
let cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  [root, emptyRoot] = await Promise.all([tempRepository(), tempRepository()]);
  model = smallModel(WIDTH, 2, 31);
  await addVersion(root, 'm', 1, model, { max_batch_size: 8, dynamic_batching: {} });
  await addVersion(root, 'n', 1, smallModel(WIDTH, 2, 37), { max_batch_size: 8 });
  [ca, otherCa] = await Promise.all([certificateAuthority('maas test CA'), certificateAuthority('another CA')]);
});

afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await cleanup();
});

afterAll(async () => {
  await Promise.all([root, emptyRoot].map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'maas-tls-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a certificate and key into `dir` and the settings that name them. */
async function tlsFiles(dir: string, issued: Issued, extra: Partial<TlsSettings> = {}): Promise<TlsSettings> {
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  await writeFile(certFile, issued.cert);
  await writeFile(keyFile, issued.key, { mode: 0o600 });
  return { certFile, keyFile, ...extra };
}

async function server(options: Partial<ServeOptions>): Promise<RunningServer> {
  const running = await startServer(root, { workers: 1, ...options });
  cleanups.push(() => running.close());
  return running;
}

function grpcClient(port: number | null, security: ClientSecurity = {}): GrpcInferenceClient {
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`, security);
  cleanups.push(() => client.close());
  return client;
}

function httpClient(port: number | null, security: ClientSecurity = {}, scheme = 'https'): HttpInferenceClient {
  return new HttpInferenceClient(`${scheme}://127.0.0.1:${port}`, security);
}

/** A certificate's serial number as node:tls prints a peer's. */
function serialOf(issued: Issued): string {
  return new X509Certificate(issued.cert).serialNumber;
}

/** The serial number of the certificate a new TLS connection to `port` is served. */
function servedSerial(port: number | null, alpn?: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        port: port!,
        ca: ca.cert,
        servername: 'localhost',
        ...(alpn ? { ALPNProtocols: alpn } : {}),
      },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.on('error', reject);
  });
}

/** The serials new connections to the gRPC, REST and metrics ports are served. */
async function servedSerials(running: RunningServer): Promise<string[]> {
  return Promise.all([
    servedSerial(running.grpcPort, ['h2']),
    servedSerial(running.httpPort),
    servedSerial(running.metricsPort),
  ]);
}

/** GET over https with `tls`: the status and body, or the error. */
function httpsText(port: number | null, path: string, tls: ClientTls): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsGet(
      {
        host: '127.0.0.1',
        port: port!,
        path,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: 'localhost',
        agent: false,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

/** The error `promise` rejects with (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  const outcome = await promise.then(
    () => ({ resolved: true as const }),
    (error: unknown) => ({ resolved: false as const, error }),
  );
  expect(outcome.resolved, 'expected the call to fail').toBe(false);
  return (outcome as { error: unknown }).error;
}

/** The InferenceServerError `promise` rejects with: its status and maas code. */
async function serverError(promise: Promise<unknown>): Promise<{ status: number; code?: string }> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(InferenceServerError);
  const { status, code } = error as InferenceServerError;
  return { status, ...(code !== undefined ? { code } : {}) };
}

const request = (x: Float32Array, rows: number) => ({
  model: 'm',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, WIDTH], data: x }],
});

/** Throws unless `data` is the model's prediction for `x`. */
function checkPrediction(x: Float32Array, data: ArrayLike<number>): void {
  const want = model.predict(x.slice()).values;
  if (data.length !== want.length) throw new Error(`expected ${want.length} outputs, got ${data.length}`);
  for (let i = 0; i < want.length; i++)
    if (!(Math.abs(data[i]! - want[i]!) <= 1e-5)) throw new Error(`output ${i}: ${data[i]} instead of ${want[i]}`);
}

/** One inference through `client`, checked against predict(). */
async function inferChecked(client: GrpcInferenceClient | HttpInferenceClient, seed: number): Promise<void> {
  const rows = 1 + (seed % 3);
  const x = inputs(rows, WIDTH, seed);
  const result = await client.infer(request(x, rows));
  checkPrediction(x, result.outputs[0]!.data as Float32Array);
}

/** Polls `check` until it returns true; throws with `what` when `deadlineMs` passes first. */
async function eventually(
  what: string | (() => string),
  check: () => Promise<boolean> | boolean,
  deadlineMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('TLS without client certificates', () => {
  it('serves inference and metadata over TLS on gRPC and REST, the configured certificate on every port, and /metrics over https', async () => {
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    const running = await server({ tls: await tlsFiles(await tempDir(), issued) });
    expect(running.tls).toBe(true);
    expect(await servedSerials(running)).toEqual([serialOf(issued), serialOf(issued), serialOf(issued)]);

    const grpc = grpcClient(running.grpcPort, { tls: { ca: ca.cert } });
    const rest = httpClient(running.httpPort, { tls: { ca: ca.cert } });
    // The certificate names localhost too: a server name of the client's own choosing.
    const restByName = new HttpInferenceClient(`https://localhost:${running.httpPort}`, {
      tls: { ca: ca.cert, servername: 'localhost' },
    });
    for (const client of [grpc, rest]) {
      expect((await client.serverMetadata()).name).toBe('maas');
      expect(await client.modelMetadata('m')).toMatchObject({ name: 'm', versions: ['1'] });
      await inferChecked(client, 1);
      await inferChecked(client, 2);
    }
    expect(await restByName.serverLive()).toBe(true);

    const metrics = await httpsText(running.metricsPort, '/metrics', { ca: ca.cert });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('nv_inference_request_success');
  });

  it('refuses plain-text clients and clients that do not trust the certificate', async () => {
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    const running = await server({ tls: await tlsFiles(await tempDir(), issued) });

    expect(await serverError(grpcClient(running.grpcPort).serverMetadata())).toMatchObject({
      status: status.UNAVAILABLE,
    });
    // A plain HTTP request to the TLS port gets no HTTP answer at all.
    await rejection(httpClient(running.httpPort, {}, 'http').serverMetadata());
    await rejection(httpClient(running.metricsPort, {}, 'http').serverLive());
    // The server's certificate checked against another CA.
    expect(
      await serverError(grpcClient(running.grpcPort, { tls: { ca: otherCa.cert } }).serverMetadata()),
    ).toMatchObject({ status: status.UNAVAILABLE });
    await rejection(httpClient(running.httpPort, { tls: { ca: otherCa.cert } }).serverMetadata());
  });
});

describe('mutual TLS (client certificates required)', () => {
  it('refuses a client without a certificate or with one from another CA, and serves one from the trusted CA', async () => {
    const dir = await tempDir();
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    const caFile = join(dir, 'clients-ca.crt');
    await writeFile(caFile, ca.cert);
    const running = await server({ tls: await tlsFiles(dir, issued, { caFile }) });

    const trusted = await ca.issue({ subject: 'CN=batch job', client: true });
    const foreign = await otherCa.issue({ subject: 'CN=batch job', client: true });
    const none: ClientTls = { ca: ca.cert };
    const wrong: ClientTls = { ca: ca.cert, cert: foreign.cert, key: foreign.key };
    const good: ClientTls = { ca: ca.cert, cert: trusted.cert, key: trusted.key };

    for (const tls of [none, wrong]) {
      expect(
        await serverError(grpcClient(running.grpcPort, { tls }).infer(request(inputs(1, WIDTH, 3), 1))),
      ).toMatchObject({ status: status.UNAVAILABLE });
      await rejection(httpClient(running.httpPort, { tls }).infer(request(inputs(1, WIDTH, 3), 1)));
      await rejection(httpsText(running.metricsPort, '/metrics', tls));
    }

    const grpc = grpcClient(running.grpcPort, { tls: good });
    const rest = httpClient(running.httpPort, { tls: good });
    for (const client of [grpc, rest]) {
      expect(await client.modelMetadata('m')).toMatchObject({ name: 'm' });
      await inferChecked(client, 4);
    }
    expect((await httpsText(running.metricsPort, '/metrics', good)).status).toBe(200);
  });
});

describe('optional client certificates mapped by the token file', () => {
  it('grants a mapped certificate its scopes and models only, refuses a caller with neither, and still takes tokens', async () => {
    const dir = await tempDir();
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    const caFile = join(dir, 'clients-ca.crt');
    await writeFile(caFile, ca.cert);
    const tokenFile = join(dir, 'tokens.json');
    const { token, record } = await createToken({ name: 'ci', scopes: ['infer', 'metadata'] });
    await writeTokenFile(tokenFile, {
      version: 1,
      tokens: [record],
      certificates: [{ subject: 'CN=reporting', scopes: ['metadata'], models: ['m'] }],
    });
    const running = await server({
      tls: await tlsFiles(dir, issued, { caFile, clientCertificates: 'optional' }),
      tokenFile,
    });

    // The grant names CN only: the certificate's other attributes do not matter.
    const reporting = await ca.issue({ subject: 'CN=reporting,O=example', client: true });
    const withCertificate: ClientSecurity = { tls: { ca: ca.cert, cert: reporting.cert, key: reporting.key } };
    const grpc = grpcClient(running.grpcPort, withCertificate);
    const rest = httpClient(running.httpPort, withCertificate);
    expect(await grpc.modelMetadata('m')).toMatchObject({ name: 'm' });
    expect(await rest.modelMetadata('m')).toMatchObject({ name: 'm' });
    const x = inputs(1, WIDTH, 5);
    expect(await serverError(grpc.infer(request(x, 1)))).toEqual({
      status: status.PERMISSION_DENIED,
      code: 'MAAS_ERR_PERMISSION_DENIED',
    });
    expect(await serverError(rest.infer(request(x, 1)))).toMatchObject({ status: 403 });
    // Its grant lists model m only.
    expect(await serverError(grpc.modelMetadata('n'))).toMatchObject({ status: status.PERMISSION_DENIED });
    expect(await serverError(rest.modelMetadata('n'))).toMatchObject({ status: 403 });

    const anonymous: ClientSecurity = { tls: { ca: ca.cert } };
    expect(await serverError(grpcClient(running.grpcPort, anonymous).modelMetadata('m'))).toEqual({
      status: status.UNAUTHENTICATED,
      code: 'MAAS_ERR_UNAUTHENTICATED',
    });
    expect(await serverError(httpClient(running.httpPort, anonymous).modelMetadata('m'))).toMatchObject({
      status: 401,
    });

    const withToken: ClientSecurity = { tls: { ca: ca.cert }, token };
    await inferChecked(grpcClient(running.grpcPort, withToken), 6);
    await inferChecked(httpClient(running.httpPort, withToken), 7);
  });
});

describe('certificate rotation', () => {
  it('rotates atomically and half-done under gRPC and REST traffic with no failed request', async () => {
    const dir = await tempDir();
    const first = await ca.issue({ subject: 'CN=maas server 1', server: true });
    const settings = await tlsFiles(dir, first, { reloadIntervalMs: 100 });
    const { logger, records } = memoryLogger();
    const running = await server({ tls: settings, logger });
    const security: ClientSecurity = { tls: { ca: ca.cert } };

    // Per transport: 2 loops on one long-lived client, 2 that connect anew for every request, so
    // handshakes happen throughout the rotations.
    const failures: string[] = [];
    let completed = 0;
    let stop = false;
    const loop = async (name: string, make: () => GrpcInferenceClient | HttpInferenceClient, fresh: boolean) => {
      let client = make();
      for (let i = 0; !stop; i++) {
        try {
          await inferChecked(client, i);
          completed++;
        } catch (error) {
          failures.push(`${name} request ${i}: ${String(error)}`);
        }
        if (fresh) {
          if (client instanceof GrpcInferenceClient) client.close();
          client = make();
        }
      }
      if (client instanceof GrpcInferenceClient) client.close();
    };
    const loops = [0, 1, 2, 3].flatMap((i) => [
      loop(`gRPC ${i}`, () => new GrpcInferenceClient(`127.0.0.1:${running.grpcPort}`, security), i % 2 === 1),
      loop(`REST ${i}`, () => httpClient(running.httpPort, security), i % 2 === 1),
    ]);
    const stopLoops = async () => {
      stop = true;
      await Promise.all(loops);
    };
    cleanups.push(stopLoops);
    const progressed = async (what: string) => {
      const before = completed;
      await eventually(`more requests ${what}`, () => completed >= before + 16);
    };
    const serving = async (issued: Issued) => {
      const want = serialOf(issued);
      let seen: string[] = [];
      await eventually(
        () => `new connections served serial ${want} (gRPC, REST, metrics last served ${seen.join(', ')})`,
        async () => (seen = await servedSerials(running)).every((serial) => serial === want),
      );
    };

    await progressed('before any rotation');
    expect(await servedSerials(running)).toEqual(Array(3).fill(serialOf(first)));

    // Atomic: new files renamed over the old ones.
    const second = await ca.issue({ subject: 'CN=maas server 2', server: true });
    await writeFile(join(dir, 'next.crt'), second.cert);
    await writeFile(join(dir, 'next.key'), second.key, { mode: 0o600 });
    await rename(join(dir, 'next.crt'), settings.certFile);
    await rename(join(dir, 'next.key'), settings.keyFile);
    await serving(second);
    await progressed('after the atomic rotation');

    // Half-done: the new certificate beside the old key is refused, and the old pair stays in
    // force until the key follows.
    const third = await ca.issue({ subject: 'CN=maas server 3', server: true });
    const refusalsBefore = records.filter((r) => r.msg.startsWith('TLS files not reloaded')).length;
    await writeFile(settings.certFile, third.cert);
    await eventually(
      'the mismatched pair reported',
      () => records.filter((r) => r.msg.startsWith('TLS files not reloaded')).length > refusalsBefore,
    );
    expect(await servedSerials(running)).toEqual(Array(3).fill(serialOf(second)));
    await progressed('while the pair is mismatched');
    await writeFile(settings.keyFile, third.key);
    await serving(third);
    await progressed('after the second rotation');

    await stopLoops();
    expect(failures).toEqual([]);
    expect(completed).toBeGreaterThan(0);
    expect(records.filter((r) => r.msg.startsWith('TLS certificate reloaded')).length).toBeGreaterThanOrEqual(2);
  });
});

describe('refusals at startup', () => {
  it('refuses a key that does not match the certificate, and required client certificates without a CA', async () => {
    const dir = await tempDir();
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    const other = await ca.issue({ subject: 'CN=other', server: true });
    const certFile = join(dir, 'server.crt');
    const keyFile = join(dir, 'other.key');
    await writeFile(certFile, issued.cert);
    await writeFile(keyFile, other.key);
    await expect(server({ tls: { certFile, keyFile } })).rejects.toMatchObject({ code: 'MAAS_ERR_TLS_CONFIG' });
    // A certificate cut short, as a half-written file would be.
    await writeFile(join(dir, 'cut.crt'), issued.cert.slice(0, issued.cert.length / 2));
    await expect(
      server({ tls: { certFile: join(dir, 'cut.crt'), keyFile: (await tlsFiles(dir, issued)).keyFile } }),
    ).rejects.toMatchObject({ code: 'MAAS_ERR_TLS_CONFIG' });
    await expect(
      server({ tls: { ...(await tlsFiles(dir, issued)), clientCertificates: 'required' } }),
    ).rejects.toMatchObject({ code: 'MAAS_ERR_AUTH_CONFIG' });
  });
});

describe('the default address', () => {
  /** A server that only starts: no models, no ports. */
  const bare = (options: Partial<ServeOptions> = {}) =>
    server({ modelRepository: emptyRoot, grpcPort: null, httpPort: null, metricsPort: null, ...options });

  it('is this machine only without TLS or tokens, every address with TLS', async () => {
    expect((await bare()).host).toBe('127.0.0.1');
    const issued = await ca.issue({ subject: 'CN=maas server', server: true });
    expect((await bare({ tls: await tlsFiles(await tempDir(), issued) })).host).toBe('0.0.0.0');
  });

  it('warns when asked to serve plain text on every address', async () => {
    const { logger, records } = memoryLogger('warn');
    const running = await bare({ host: '0.0.0.0', logger });
    expect(running.host).toBe('0.0.0.0');
    expect(running.tls).toBe(false);
    expect(records.some((r) => r.level === 40 && r.msg.includes('plain text'))).toBe(true);
  });
});
