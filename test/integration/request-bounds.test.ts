/**
 * Bounds on what one request may make the server decode or hold: gRPC typed contents counted
 * against their shape and a cap before protobufjs decodes them; large REST JSON bodies parsed in a
 * thread, with the same answers and errors as on the event loop, and caps on what a body may open
 * and send back; and HTTP/1.1 pipelining held to a few requests running per connection.
 */
import { status } from '@grpc/grpc-js';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient, InferenceServerError } from '../../src/client/index.js';
import type { RunningServer } from '../../src/serving/server.js';
import type { Sequential } from '../../src/index.js';
import { addVersion, inputs, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 6;
const MAX_MESSAGE = 8 * 2 ** 20;
let model: Sequential;
/** Bodies of 1 KiB and more parsed in the thread; messages up to 8 MiB (so 2 Mi elements). */
let threaded: RunningServer;
/** The defaults, with at most 4 requests running per REST connection. */
let plain: RunningServer;

beforeAll(async () => {
  const root = await tempRepository();
  model = smallModel(WIDTH, 2, 41);
  await addVersion(root, 'm', 1, model, {
    max_batch_size: 32_768,
    dynamic_batching: {},
    parameters: { convert_input_datatypes: { string_value: 'true' } },
  });
  // Requests wait 300 ms for company in the queue: long enough to see how many run at once.
  await addVersion(root, 'slow', 1, smallModel(WIDTH, 2, 42), {
    max_batch_size: 64,
    dynamic_batching: { max_queue_delay_microseconds: 300_000 },
  });
  threaded = await startServer(root, { jsonThreadBytes: 1024, maxMessageBytes: MAX_MESSAGE });
  plain = await startServer(root, { maxInFlightPerConnection: 4 });
});
afterAll(async () => {
  await threaded?.close();
  await plain?.close();
});

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-5);
}

async function rawCall(server: RunningServer, message: object): Promise<InferenceServerError> {
  const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  try {
    const error = await (client as unknown as { call: (m: string, r: object) => Promise<unknown> })
      .call('ModelInfer', message)
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(InferenceServerError);
    return error as InferenceServerError;
  } finally {
    client.close();
  }
}

describe('gRPC typed contents are counted before they are decoded', () => {
  it('refuses more typed elements than --max-message-bytes / 4, even when the shape agrees', async () => {
    const n = MAX_MESSAGE / 4 + 1000; // 2.1 M packed bools: a 2 MB message, 17 MB once decoded
    const e = await rawCall(threaded, {
      model_name: 'm',
      id: 'big',
      inputs: [{ name: 'input', datatype: 'BOOL', shape: [n], contents: { bool_contents: new Array(n).fill(true) } }],
    });
    // The DataPlane would have said "unexpected shape": this answer comes from the count on the wire.
    expect(e.status).toBe(status.RESOURCE_EXHAUSTED);
    expect(e.code).toBe('MAAS_ERR_TOO_MANY_ELEMENTS');
    expect(e.message).toBe(
      `Expected at most ${MAX_MESSAGE / 4} typed elements in one request (--max-message-bytes / 4) but received ${n} by input 'input'`,
    );
  });

  it('refuses contents that disagree with their shape before the model is looked up', async () => {
    const e = await rawCall(threaded, {
      model_name: 'no-such-model',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], contents: { fp32_contents: [1, 2, 3] } }],
    });
    expect(e.status).toBe(status.INVALID_ARGUMENT);
    expect(e.code).toBe('MAAS_ERR_INFER_INPUT');
    expect(e.message).toBe(`unexpected number of elements 3 for input 'input', expecting ${WIDTH}`);
  });
});

describe('REST JSON bodies parsed in the thread', () => {
  const post = (server: RunningServer, path: string, body: string) =>
    fetch(`http://127.0.0.1:${server.httpPort}${path}`, { method: 'POST', body });
  const infer = (data: unknown, shape: number[], extra: object = {}, datatype = 'FP32') =>
    JSON.stringify({ id: 'j', inputs: [{ name: 'input', datatype, shape, data }], ...extra });

  it('answers flat, nested and converted data as the event loop does', async () => {
    const x = inputs(300, WIDTH, 3);
    const want = model.predict(x.slice()).values;
    const flat = await post(threaded, '/v2/models/m/infer', infer(Array.from(x), [300, WIDTH]));
    expect(flat.status).toBe(200);
    const body = (await flat.json()) as { id: string; outputs: { data: number[]; shape: number[] }[] };
    expect(body.id).toBe('j');
    expect(body.outputs[0]!.shape).toEqual([300, 2]);
    close(body.outputs[0]!.data, want);
    const rows = Array.from({ length: 300 }, (_, r) => Array.from(x.subarray(r * WIDTH, (r + 1) * WIDTH)));
    const nested = await post(threaded, '/v2/models/m/infer', infer(rows, [300, WIDTH]));
    close(((await nested.json()) as typeof body).outputs[0]!.data, want);
    const ints = Array.from({ length: 300 * WIDTH }, (_, i) => (i % 5) - 2);
    const converted = await post(threaded, '/v2/models/m/infer', infer(ints, [300, WIDTH], {}, 'INT32'));
    close(((await converted.json()) as typeof body).outputs[0]!.data, model.predict(Float32Array.from(ints)).values);
  });

  it('answers a 3 MB body at the default threshold (1 MiB)', async () => {
    const x = inputs(20_000, WIDTH, 4);
    const text = infer(Array.from(x), [20_000, WIDTH]);
    expect(text.length).toBeGreaterThan(2 ** 21);
    const response = await post(plain, '/v2/models/m/infer', text);
    expect(response.status).toBe(200);
    close(((await response.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data, model.predict(x).values);
  });

  const padding = { parameters: { note: 'x'.repeat(2000) } }; // above the 1 KiB threshold
  const errors: [string, () => string, number, RegExp][] = [
    [
      'element count against the shape',
      () => infer([1, 2, 3], [1, WIDTH], padding),
      400,
      /^unexpected number of elements 3 for input 'input', expecting 6$/,
    ],
    [
      'an element that is not a number',
      () => infer([1, 2, 'a', 4, 5, 6], [1, WIDTH], padding),
      400,
      /^Expected FP32 values for input 'input' but element 2 is "a"$/,
    ],
    [
      'not JSON',
      () => `{"inputs": [${'1,'.repeat(1000)}`,
      400,
      /^Expected a JSON inference request but parsing failed/,
    ],
    ['not an object', () => `[${'1,'.repeat(1000)}1]`, 400, /^Expected a JSON object as the inference request$/],
    [
      'more than 10 000 values besides the data',
      () => infer(Array.from(inputs(1, WIDTH, 5)), [1, WIDTH], { outputs: Array.from({ length: 20_000 }, () => ({})) }),
      413,
      /^Expected at most 10000 JSON values besides the inputs' numeric data/,
    ],
  ];
  for (const [what, body, statusCode, message] of errors) {
    it(what, async () => {
      const response = await post(threaded, '/v2/models/m/infer', body());
      expect(response.status).toBe(statusCode);
      expect(((await response.json()) as { error: string }).error).toMatch(message);
    });
  }

  it('parses the repository routes’ bodies there too', async () => {
    const response = await post(
      threaded,
      '/v2/repository/index',
      JSON.stringify({ ready: true, pad: 'x'.repeat(4000) }),
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as { name: string }[]).map((m) => m.name)).toEqual(['m', 'slow']);
  });

  it('refuses a body of too many objects and arrays before parsing it, on either side of the threshold', async () => {
    // 8 MiB of empty objects would parse into some 150 MB, slowly; 300 KB into 6 MB on the event loop.
    for (const [server, bytes] of [
      [threaded, MAX_MESSAGE - 100],
      [plain, 300_000],
    ] as const) {
      const response = await post(server, '/v2/models/m/infer', `{"inputs":[${'{},'.repeat(bytes / 3)}{}]}`);
      expect(response.status).toBe(413);
      expect(((await response.json()) as { error: string }).error).toBe(
        'Expected at most 100000 JSON objects and arrays in a body but it opens more',
      );
    }
    const x = inputs(2, WIDTH, 6);
    const after = await post(threaded, '/v2/models/m/infer', infer(Array.from(x), [2, WIDTH], padding));
    expect(after.status).toBe(200);
    close(((await after.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data, model.predict(x).values);
  });
});

describe('HTTP/1.1 pipelining', () => {
  /** Sends `count` infer requests in one write on one connection; resolves with what came back before it closed or answered all. */
  function pipeline(count: number): Promise<{ ids: string[]; closedEarly: boolean }> {
    return new Promise((resolve, reject) => {
      const socket = connect(plain.httpPort!, '127.0.0.1');
      let received = '';
      const ids = () => [...received.matchAll(/"id":"(p\d+)"/g)].map((m) => m[1]!);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString();
        if (ids().length === count) {
          socket.destroy();
          resolve({ ids: ids(), closedEarly: false });
        }
      });
      socket.on('close', () => resolve({ ids: ids(), closedEarly: ids().length < count }));
      socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
      let requests = '';
      for (let i = 0; i < count; i++) {
        const body = JSON.stringify({
          id: `p${i}`,
          inputs: [{ name: 'input', datatype: 'FP32', shape: [1, WIDTH], data: Array.from(inputs(1, WIDTH, i)) }],
        });
        requests += `POST /v2/models/slow/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      }
      socket.write(requests);
    });
  }

  async function running(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${plain.metricsPort}/metrics`)).text();
    return Number(/^maas_http_requests_in_flight (\d+)/m.exec(text)![1]);
  }

  it('runs 4 of a connection’s requests at once and answers all 8 in order', async () => {
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, await running());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const { ids, closedEarly } = await pipeline(8);
    sampling = false;
    await sampler;
    expect(closedEarly).toBe(false);
    expect(ids).toEqual(Array.from({ length: 8 }, (_, i) => `p${i}`));
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(4);
  });

  it('closes a connection that pipelines further ahead, and serves the next one', async () => {
    const { ids, closedEarly } = await pipeline(20);
    expect(closedEarly).toBe(true);
    expect(ids.length).toBeLessThan(20);
    expect((await pipeline(2)).ids).toEqual(['p0', 'p1']);
  });
});
