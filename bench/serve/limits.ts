/**
 * Oversized requests: a 1.5 GB request must be refused fast and without the server holding it.
 * Three ways in, each repeated: REST with a declared Content-Length, REST chunked (no length: the
 * server must count), and gRPC with a message prefix declaring 1.5 GB. The client streams zeros
 * as fast as the server takes them until it is answered; the server (a child process, default
 * limits: 64 MiB) has its resident memory sampled every few milliseconds meanwhile.
 *
 *   npx tsx bench/serve/limits.ts [--repeat 3] [--max-message-bytes N] [--out FILE|-]
 *
 * A chunked body has no length to refuse on: the server refuses it when what arrived passes the
 * limit, so its cost follows the limit, not the request (`--max-message-bytes` shows that).
 */
import { connect as http2Connect, constants } from 'node:http2';
import { connect } from 'node:net';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { writeModel } from './repo.js';
import { fmt, sleep, startServerProcess, type ServerProcess } from './server-process.js';

const DECLARED = 1.5 * 2 ** 30;
const CHUNK = Buffer.alloc(1 << 20);

interface Outcome {
  /** From the first byte sent to the answer. */
  ms: number;
  /** Body bytes the client got out before the answer. */
  sent: number;
  answer: string;
}

/** Writes `head`, then CHUNK (wrapped by `frame`) until `answered` says so; resolves with the outcome. */
function streamUntilAnswered(
  write: (b: Buffer) => boolean,
  onDrain: (f: () => void) => void,
  frame: (b: Buffer) => Buffer,
  answered: Promise<string>,
  start: number,
): Promise<Outcome> {
  let sent = 0;
  let done = false;
  const pump = () => {
    while (!done && sent < DECLARED) {
      sent += CHUNK.length;
      if (!write(frame(CHUNK))) return onDrain(pump);
    }
  };
  pump();
  return answered.then((answer) => {
    done = true;
    return { ms: performance.now() - start, sent, answer };
  });
}

function rest(port: number, chunked: boolean): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      const start = performance.now();
      const answered = new Promise<string>((ok) => {
        let text = '';
        socket.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          const line = /^HTTP\/1\.1 (\d+)/.exec(text);
          if (line) ok(`HTTP ${line[1]}`);
        });
        socket.on('close', () => ok(text ? text.split('\r\n')[0]! : 'closed without an answer'));
      });
      socket.on('error', () => {}); // the server closes on the rest of the body once it answered
      const head = chunked
        ? 'POST /v2/models/s/infer HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
        : `POST /v2/models/s/infer HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: ${DECLARED}\r\n\r\n`;
      socket.write(head);
      const frame = chunked
        ? (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')])
        : (b: Buffer) => b;
      streamUntilAnswered(
        (b) => socket.write(b),
        (f) => socket.once('drain', f),
        frame,
        answered,
        start,
      ).then((o) => {
        socket.destroy();
        resolve(o);
      }, reject);
    });
  });
}

function grpc(port: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    session.on('connect', () => {
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: '/inference.GRPCInferenceService/ModelInfer',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.on('error', () => {});
      const start = performance.now();
      const answered = new Promise<string>((ok) => {
        const status = (headers: Record<string, string | string[] | undefined>) => {
          const code = headers['grpc-status'];
          const message = headers['grpc-message'];
          if (typeof code === 'string')
            ok(`grpc-status ${code}: ${decodeURIComponent(typeof message === 'string' ? message : '')}`);
        };
        stream.on('response', status);
        stream.on('trailers', status);
        stream.on('close', () => ok('stream closed'));
      });
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(DECLARED, 1);
      stream.write(prefix);
      streamUntilAnswered(
        (b) => stream.write(b),
        (f) => stream.once('drain', f),
        (b) => b,
        answered,
        start,
      ).then((o) => {
        stream.close();
        session.destroy();
        resolve(o);
      }, reject);
    });
  });
}

/** Runs `attempt` while sampling the server's RSS; growth is against a collected baseline. */
async function sampled(
  server: ServerProcess,
  attempt: () => Promise<Outcome>,
): Promise<Outcome & { growthMb: number; afterGcMb: number }> {
  const base = await server.rss(true);
  let max = base;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      max = Math.max(max, await server.rss());
      await sleep(5);
    }
  })();
  const outcome = await attempt();
  await sleep(200); // whatever the server still holds shows up now
  sampling = false;
  await sampler;
  max = Math.max(max, await server.rss());
  const after = await server.rss(true);
  return { ...outcome, growthMb: (max - base) / 2 ** 20, afterGcMb: (after - base) / 2 ** 20 };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const option = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const repeat = Number(option('--repeat') ?? 3);
  const limit = option('--max-message-bytes') === undefined ? undefined : Number(option('--max-message-bytes'));
  const outAt = argv.indexOf('--out');
  const out =
    outAt >= 0 ? argv[outAt + 1]! : join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md');
  const root = await mkdtemp(join(tmpdir(), 'maas-limits-'));
  const server = await startServerProcess({
    options: {
      modelRepository: root,
      host: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      metricsPort: null,
      workers: 1,
      shutdownGraceMs: 1000,
      ...(limit === undefined ? {} : { maxMessageBytes: limit }),
    },
  }).catch(async (error: unknown) => {
    await rm(root, { recursive: true, force: true });
    throw error;
  });
  await writeModel(root, 's', [16, 16, 2]); // not loaded: the requests never get that far
  const cases: [string, () => Promise<Outcome>][] = [
    ['REST, Content-Length 1.5 GB', () => rest(server.httpPort!, false)],
    ['REST, chunked (no length), 1.5 GB', () => rest(server.httpPort!, true)],
    ['gRPC, message prefix declaring 1.5 GB', () => grpc(server.grpcPort!)],
  ];
  const lines = [
    '## Oversized requests: 1.5 GB refused',
    '',
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); server in a child process, --max-message-bytes ${limit === undefined ? '64 MiB (default)' : `${limit / 2 ** 20} MiB`}`,
    `- command: \`npx tsx bench/serve/limits.ts ${argv.join(' ')}\``,
    '- each case once first as a warm-up (not counted); the client streams zeros as fast as the server takes them until it is answered; the server RSS is sampled every 5 ms; growth is the largest sample over a baseline taken after a full GC',
    '',
    '| request | try | refused in ms | sent before the answer MB | RSS growth max MB | RSS after GC MB | answer |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  try {
    // Warm-up, not counted: the first call of each path compiles it (some 10-20 MB of code and
    // heap on a cold server), which is not what a request costs.
    for (const [, attempt] of cases) await attempt();
    for (const [name, attempt] of cases) {
      for (let i = 1; i <= repeat; i++) {
        const r = await sampled(server, attempt);
        const row = `| ${name} | ${i} | ${fmt(r.ms, 1)} | ${fmt(r.sent / 2 ** 20, 0)} | ${fmt(r.growthMb, 1)} | ${fmt(r.afterGcMb, 1)} | ${r.answer.slice(0, 90)} |`;
        console.error(row);
        lines.push(row);
      }
    }
  } finally {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
  const text = lines.join('\n') + '\n';
  console.log(text);
  if (out !== '-') await appendFile(out, `\n${text}`);
}

await main();
