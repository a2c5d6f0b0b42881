/**
 * What the fuzzer found on the REST port, pinned: malformed HTTP/1.1 answered with a coded
 * `{"error"}` and a status other than 500, by the real server over raw sockets: the HTTP parser's
 * refusals, Expect, a missing Host, an Upgrade with a chunked body, CONNECT, and JSON nested past
 * the limit (which once overflowed the stack).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, jsonNestsDeeper } from '../../src/protocol/limits.js';
import type { RunningServer } from '../../src/serving/server.js';
import { addVersion, smallModel, startServer, tempRepository } from './server-helpers.js';

const WIDTH = 4;
let server: RunningServer;

beforeAll(async () => {
  const root = await tempRepository();
  await addVersion(root, 'm', 1, smallModel(WIDTH, 2, 5));
  await addVersion(root, 'spare', 1, smallModel(WIDTH, 1, 6));
  server = await startServer(root, { modelControlMode: 'explicit', loadModels: ['*'] });
});

afterAll(() => server?.close());

/** Writes raw bytes to the REST port and reads until the server closes or has answered in full. */
function raw(bytes: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.httpPort!, '127.0.0.1', () => socket.write(bytes));
    let received = '';
    const done = () => {
      const match = /^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n([^]*)$/.exec(received);
      if (!match) return reject(new Error(`no HTTP answer: ${JSON.stringify(received)}`));
      resolve({ status: Number(match[1]), body: match[2]! });
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      const head = received.indexOf('\r\n\r\n');
      if (length !== undefined && head >= 0 && received.length >= head + 4 + Number(length)) {
        socket.destroy();
        done();
      }
    });
    socket.on('close', done);
    socket.on('error', () => {});
  });
}

function expectCoded(answer: { status: number; body: string }, status: number, text: RegExp): void {
  expect(answer.status).toBe(status);
  const { error } = JSON.parse(answer.body) as { error: string };
  expect(error).toMatch(text);
}

const INFER = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,${WIDTH}],"data":[1,2,3,4]}]}`;

describe('REST: malformed HTTP/1.1 answers a coded {"error"}', () => {
  it('a request line or header the parser refuses: 400, and 431 past the header limit', async () => {
    expectCoded(await raw('G E T /v2 HTTP/1.1\r\nhost: x\r\n\r\n'), 400, /parser refused it.*HPE_/);
    expectCoded(
      await raw('POST /v2 HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n'),
      400,
      /well-formed HTTP\/1\.1 request/,
    );
    expectCoded(await raw(`GET /v2 HTTP/1.1\r\nhost: x\r\nx-big: ${'v'.repeat(20_000)}\r\n\r\n`), 431, /header size/);
  });

  it('Expect other than 100-continue: 417', async () => {
    expectCoded(await raw('GET /v2 HTTP/1.1\r\nhost: x\r\nexpect: garbage\r\n\r\n'), 417, /100-continue.*'garbage'/);
  });

  it('an HTTP/1.1 request without Host: 400', async () => {
    expectCoded(await raw('GET /v2 HTTP/1.1\r\n\r\n'), 400, /Host header/);
  });

  it('an Upgrade with a chunked body (whose chunk errors Node drops, leaving it unfinished): 400 at once', async () => {
    const request =
      'POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n' +
      'transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n';
    expectCoded(await raw(request), 400, /Upgrade header on a request with a Transfer-Encoding body/);
  });

  it('CONNECT: 405', async () => {
    expectCoded(await raw('CONNECT m:1 HTTP/1.1\r\nhost: x\r\n\r\n'), 405, /CONNECT is not allowed/);
  });

  it(`JSON nested deeper than ${MAX_JSON_DEPTH}: 400 (it once overflowed the stack: a 500)`, async () => {
    const deep = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);
    const inferBody = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,${WIDTH}],"data":${deep(100_000)}}]}`;
    const infer = `POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: ${inferBody.length}\r\n\r\n${inferBody}`;
    expectCoded(await raw(infer), 400, /nested at most 64/);
    const config = JSON.stringify(`{"max_batch_size":${deep(100_000)}}`);
    const loadBody = `{"parameters":{"config":${config}}}`;
    const load = `POST /v2/repository/models/spare/load HTTP/1.1\r\nhost: x\r\ncontent-length: ${loadBody.length}\r\n\r\n${loadBody}`;
    expectCoded(await raw(load), 400, /JSON model config nested at most 64/);
    // Nesting within the limit is still parsed, and answered on its merits.
    const ok = `POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: ${INFER.length}\r\n\r\n${INFER}`;
    expect((await raw(ok)).status).toBe(200);
  });

  it('jsonNestsDeeper counts arrays and objects, not brackets inside strings', () => {
    expect(jsonNestsDeeper('[[1]]', 2)).toBe(false);
    expect(jsonNestsDeeper('[[[1]]]', 2)).toBe(true);
    expect(jsonNestsDeeper('{"a":{"b":[1]}}', 2)).toBe(true);
    expect(jsonNestsDeeper('["[[[[", "\\"[[[["]', 1)).toBe(false);
  });
});
