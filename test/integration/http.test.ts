/**
 * The REST endpoint through fetch and the REST client: every route, JSON and binary tensor data,
 * and errors mapped to HTTP statuses with {error} bodies.
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../src/protocol/limits.js';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpInferenceClient, InferenceServerError } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import type { Sequential } from '../../src/index.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 6;
let server: RunningServer;
let base: string;
let client: HttpInferenceClient;
let model: Sequential;

beforeAll(async () => {
  const root = await tempRepository();
  model = smallModel(WIDTH, 2, 21);
  await addVersion(root, 'm', 1, model, { max_batch_size: 16, dynamic_batching: {} });
  server = await startServer(root);
  base = `http://127.0.0.1:${server.httpPort}`;
  client = new HttpInferenceClient(base);
});

afterAll(async () => {
  await server?.close();
});

const get = (path: string) => fetch(base + path);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(base + path, {
    method: 'POST',
    body: (typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body)) as BodyInit,
    headers,
  });

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-6);
}

describe('REST routes', () => {
  it('GET /v2, health, model metadata, ready, config and stats', async () => {
    expect(await (await get('/v2')).json()).toMatchObject({
      name: 'maas',
      extensions: expect.arrayContaining(['binary_tensor_data']),
    });
    expect((await get('/v2/health/live')).status).toBe(200);
    expect((await get('/v2/health/ready')).status).toBe(200);
    expect(await (await get('/v2/models/m')).json()).toEqual({
      name: 'm',
      versions: ['1'],
      platform: 'maas_dense',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, WIDTH] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 2] }],
    });
    expect((await get('/v2/models/m/versions/1')).status).toBe(200);
    const ready = await get('/v2/models/m/versions/1/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ name: 'm', ready: true });
    expect(await (await get('/v2/models/m/config')).json()).toMatchObject({
      name: 'm',
      max_batch_size: 16,
      dynamic_batching: { max_queue_delay_microseconds: 0 },
    });
    const stats = await (await get('/v2/models/m/stats')).json();
    expect(stats.model_stats[0]).toMatchObject({ name: 'm', version: '1', memory_usage: [{ type: 'CPU' }] });
    expect((await (await get('/v2/models/stats')).json()).model_stats).toHaveLength(1);
    expect(await client.serverReady()).toBe(true);
    expect(await client.modelReady('m')).toBe(true);
  });

  it('POST /v2/repository/index', async () => {
    expect(await (await post('/v2/repository/index', {})).json()).toEqual([
      { name: 'm', version: '1', state: 'READY', reason: '' },
    ]);
    expect(await client.repositoryIndex(true)).toHaveLength(1);
  });

  it('infers from JSON data (flat and nested) and answers JSON', async () => {
    const x = inputs(2, WIDTH, 3);
    const want = model.predict(x.slice()).values;
    const flat = await post('/v2/models/m/infer', {
      id: 'j1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, WIDTH], data: Array.from(x) }],
    });
    const body = await flat.json();
    expect(body).toMatchObject({
      model_name: 'm',
      model_version: '1',
      id: 'j1',
      outputs: [{ name: 'output', datatype: 'FP32', shape: [2, 2] }],
    });
    close(body.outputs[0].data, want);
    const nested = [Array.from(x.subarray(0, WIDTH)), Array.from(x.subarray(WIDTH))];
    const r2 = await (
      await post('/v2/models/m/versions/1/infer', {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, WIDTH], data: nested }],
      })
    ).json();
    close(r2.outputs[0].data, want);
  });

  it('infers with the binary tensor data extension both ways', async () => {
    const x = inputs(3, WIDTH, 4);
    const want = model.predict(x.slice()).values;
    const r = await client.infer({
      model: 'm',
      id: 'b1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [3, WIDTH], data: x }],
    });
    expect(r.id).toBe('b1');
    close(r.outputs[0]!.data as Float32Array, want);
    // by hand: JSON header, then the bytes; ask for binary output on the one output
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'input', datatype: 'FP32', shape: [3, WIDTH], parameters: { binary_data_size: x.byteLength } },
        ],
        outputs: [{ name: 'output', parameters: { binary_data: true } }],
      }),
    );
    const response = await post(
      '/v2/models/m/infer',
      Buffer.concat([header, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]),
      { 'Inference-Header-Content-Length': String(header.length) },
    );
    expect(response.status).toBe(200);
    const headerLength = Number(response.headers.get('inference-header-content-length'));
    const bytes = new Uint8Array(await response.arrayBuffer());
    const json = JSON.parse(Buffer.from(bytes.subarray(0, headerLength)).toString());
    expect(json.outputs[0]).toEqual({
      name: 'output',
      datatype: 'FP32',
      shape: [3, 2],
      parameters: { binary_data_size: 24 },
    });
    close(new Float32Array(bytes.slice(headerLength).buffer), want);
  });

  it('typed JSON through the client, with parameters', async () => {
    const x = inputs(1, WIDTH, 5);
    const r = await client.infer({
      model: 'm',
      typed: true,
      parameters: { priority: 0, timeout: 5_000_000 },
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: Array.from(x) }],
    });
    close(r.outputs[0]!.data as Float32Array, model.predict(x.slice()).values);
  });
});

describe('REST errors', () => {
  const cases: [string, () => Promise<Response>, number, RegExp][] = [
    [
      'unknown model',
      () => post('/v2/models/zz/infer', { inputs: [] }),
      400,
      /^Request for unknown model: 'zz' is not found$/,
    ],
    ['unknown model metadata', () => get('/v2/models/zz'), 400, /unknown model: 'zz'/],
    ['unknown version', () => get('/v2/models/m/versions/3/config'), 400, /'m' version 3 is not found/],
    [
      'body not JSON',
      () => post('/v2/models/m/infer', '{nope'),
      400,
      /Expected a JSON inference request but parsing failed/,
    ],
    ['inputs missing', () => post('/v2/models/m/infer', { outputs: [] }), 400, /Expected an inputs array/],
    [
      'wrong datatype for the data',
      () =>
        post('/v2/models/m/infer', {
          inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: ['a', 'b', 'c', 'd', 'e', 'f'] }],
        }),
      400,
      /Expected FP32 values for input 'input' but element 0 is "a"/,
    ],
    [
      'element count',
      () =>
        post('/v2/models/m/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: [1, 2] }] }),
      400,
      /unexpected number of elements 2 for input 'input', expecting 6/,
    ],
    [
      'binary size beyond the body',
      () =>
        post(
          '/v2/models/m/infer',
          '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,6],"parameters":{"binary_data_size":24}}]}',
          { 'Inference-Header-Content-Length': '99' },
        ),
      400,
      /Inference-Header-Content-Length in \[0, 98\]/,
    ],
    [
      'binary data short',
      () =>
        post(
          '/v2/models/m/infer',
          '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,6],"parameters":{"binary_data_size":24}}]}1234',
          { 'Inference-Header-Content-Length': '98' },
        ),
      400,
      /binary_data_size of input 'input' within the 4 bytes left/,
    ],
    ['unknown route', () => get('/v3/whatever'), 404, /Expected a KServe v2 path/],
    [
      'malformed %-escape in a model name',
      () => get('/v2/models/%E0%A4%A'),
      400,
      /^Expected a path segment with valid %-escapes but received '%E0%A4%A'$/,
    ],
    [
      'malformed %-escape in a version',
      () => post('/v2/models/m/versions/%ZZ/infer', { inputs: [] }),
      400,
      /valid %-escapes but received '%ZZ'/,
    ],
    ['wrong method', () => get('/v2/models/m/infer'), 405, /GET is not allowed/],
    ['load outside explicit mode', () => post('/v2/repository/models/m/load', {}), 503, /explicit/],
  ];
  for (const [what, send, statusCode, message] of cases) {
    it(what, async () => {
      const response = await send();
      expect(response.status).toBe(statusCode);
      expect((await response.json()).error).toMatch(message);
    });
  }

  it('refuses a body declared above 64 MiB with 413 before reading it, and one that grows past it', async () => {
    // Declared: only the headers are sent; the answer comes without the body.
    const declared = await new Promise<{ status: number; body: string }>((done, fail) => {
      const req = request({
        host: '127.0.0.1',
        port: server.httpPort!,
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json', 'content-length': String(1.5 * 2 ** 30) },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => done({ status: res.statusCode!, body }));
      });
      req.on('error', fail);
      req.write('{');
    });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error).toBe(
      `Expected a body of at most ${DEFAULT_MAX_MESSAGE_BYTES} bytes (--max-message-bytes) but received a declared ${1.5 * 2 ** 30}`,
    );
    // Chunked, no declared length: cut off once it passes the limit, answered while the client still sends.
    const grown = await new Promise<{ status: number; body: string }>((done, fail) => {
      const req = request({
        host: '127.0.0.1',
        port: server.httpPort!,
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json' },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => done({ status: res.statusCode!, body }));
      });
      req.on('error', (e) => {
        if (!answered) fail(e); // after the answer, the server closing on our unsent rest is expected
      });
      const chunk = Buffer.alloc(2 ** 20, 0x20);
      let sent = 0;
      const pump = () => {
        while (!answered && sent * chunk.length <= DEFAULT_MAX_MESSAGE_BYTES) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
      };
      pump();
    });
    expect(grown.status).toBe(413);
    expect(JSON.parse(grown.body).error).toBe(
      `Expected a body of at most ${DEFAULT_MAX_MESSAGE_BYTES} bytes (--max-message-bytes) but received more`,
    );
  });

  it('a client that keeps sending after its refusal still reads the 413: the server lingers before closing', async () => {
    // Closing on unread bytes resets the connection, and a reset can destroy the answer unread.
    const chunk = Buffer.alloc(2 ** 20);
    for (let attempt = 0; attempt < 3; attempt++) {
      const seen = await new Promise<string>((done) => {
        const socket = connect(server.httpPort!, '127.0.0.1');
        let text = '';
        let stop = false;
        socket.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (!text.includes('\r\n')) return;
          stop = true;
          socket.destroy();
        });
        socket.on('error', () => {});
        socket.on('close', () => done(text.split('\r\n')[0] ?? ''));
        socket.write(`POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: ${1.5 * 2 ** 30}\r\n\r\n`);
        // The client reads only after a while, as a busy one would: by then the server has answered.
        socket.pause();
        setTimeout(() => socket.resume(), 300);
        const pump = () => {
          while (!stop) if (!socket.write(chunk)) return void socket.once('drain', pump);
          socket.end();
        };
        pump();
      });
      expect(seen).toBe('HTTP/1.1 413 Payload Too Large');
    }
  });

  it('the client raises InferenceServerError with the status, and the server still serves', async () => {
    const e = await client
      .infer({ model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 5], data: new Float32Array(5) }] })
      .catch((error: unknown) => error);
    expect(e).toBeInstanceOf(InferenceServerError);
    expect((e as InferenceServerError).status).toBe(400);
    const x = inputs(1, WIDTH, 6);
    close(
      (await client.infer({ model: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: x }] }))
        .outputs[0]!.data as Float32Array,
      model.predict(x.slice()).values,
    );
  });
});
