/**
 * Idle connections: other clients' latency while 10 000 connections sit open doing nothing, and
 * whether the server closes them on time. Half go to the REST port (half of those sent one request
 * and stay kept alive, half never sent anything), half to the gRPC port (an HTTP/2 preface and
 * settings, then nothing). The server (a child process) runs with a short idle time so the run
 * waits for the closes. Both processes get their open-file limit raised (`ulimit -n`, as root allows).
 *
 *   npx tsx bench/serve/idle-connections.ts [--idle 10000] [--idle-secs 60] [--rate 200] [--seconds 5] [--out FILE|-]
 *
 * Traffic: batch-1 infer of a 16 → 16 → 2 model, REST (keep-alive) and gRPC, each at --rate per
 * second open loop (latency from each request's due time), measured before the idle connections
 * open, while they are open, and after the server closed them.
 */
import { spawnSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { GrpcInferenceClient } from '../../src/client/index.js';
import { writeModel } from './repo.js';
import { fmt, percentile, sleep, startServerProcess, type ServerProcess } from './server-process.js';

interface Args {
  idle: number;
  idleSecs: number;
  rate: number;
  seconds: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    idle: 10_000,
    idleSecs: 60,
    rate: 200,
    seconds: 5,
    out: join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i]!;
    if (a === '--idle') args.idle = Number(next());
    else if (a === '--idle-secs') args.idleSecs = Number(next());
    else if (a === '--rate') args.rate = Number(next());
    else if (a === '--seconds') args.seconds = Number(next());
    else if (a === '--out') args.out = next();
    else throw new Error(`idle-connections: unknown argument ${a}`);
  }
  return args;
}

/** This process's open-file limit, raised by re-running under `ulimit -n` when it is too low. */
function ensureOpenFiles(needed: number): boolean {
  const current = Number(spawnSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  if (current >= needed || process.env.MAAS_BENCH_ULIMIT === String(needed)) return true;
  const argv = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const run = spawnSync('bash', ['-c', `ulimit -n ${needed} && exec ${quoted}`], {
    stdio: 'inherit',
    env: { ...process.env, MAAS_BENCH_ULIMIT: String(needed) },
  });
  process.exitCode = run.status ?? 1;
  return false;
}

/** One idle connection: when it last did something, and when the server closed it. */
interface Idle {
  kind: 'REST kept alive' | 'REST never used' | 'gRPC';
  socket: Socket;
  lastActivity: number;
  closedAt: number | null;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const H2_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const H2_SETTINGS_ACK = Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]);

function openIdle(kind: Idle['kind'], port: number): Promise<Idle> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const idle: Idle = { kind, socket, lastActivity: 0, closedAt: null };
    socket.on('error', (e: NodeJS.ErrnoException) => (idle.lastActivity === 0 ? reject(e) : undefined));
    socket.on('close', () => (idle.closedAt = performance.now()));
    socket.on('connect', () => {
      idle.lastActivity = performance.now();
      if (kind === 'REST never used') return resolve(idle);
      if (kind === 'gRPC') {
        socket.write(Buffer.concat([H2_PREFACE, H2_SETTINGS]));
        socket.once('data', () => {
          socket.write(H2_SETTINGS_ACK); // the server's settings, acknowledged
          idle.lastActivity = performance.now();
          resolve(idle);
        });
        return;
      }
      socket.write('GET /v2/health/live HTTP/1.1\r\nHost: b\r\n\r\n');
      socket.once('data', () => {
        idle.lastActivity = performance.now();
        resolve(idle);
      });
    });
  });
}

/** Open-loop traffic on both transports; latencies by the window they were due in. */
class Traffic {
  private readonly samples: { due: number; ms: number; transport: string }[] = [];
  errors = 0;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });
  private readonly grpc: GrpcInferenceClient;
  private ticker: NodeJS.Timeout | null = null;

  constructor(
    private readonly server: ServerProcess,
    private readonly rate: number,
  ) {
    this.grpc = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  }

  start(): void {
    const data = Float32Array.from({ length: 16 }, (_, i) => i / 16);
    const body = JSON.stringify({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 16], data: Array.from(data) }],
    });
    const t0 = performance.now();
    let sent = 0;
    this.ticker = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * this.rate);
      for (; sent < due; sent++) {
        const at = t0 + (sent * 1000) / this.rate;
        const done = (transport: string) => () => this.samples.push({ due: at, ms: performance.now() - at, transport });
        this.grpc
          .infer({ model: 's', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 16], data }] })
          .then(done('gRPC'), () => this.errors++);
        this.rest(body).then(done('REST'), () => this.errors++);
      }
    }, 2);
  }

  private rest(body: string): Promise<void> {
    return new Promise((ok, fail) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.server.httpPort!,
          path: '/v2/models/s/infer',
          method: 'POST',
          agent: this.agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? ok() : fail(new Error(String(res.statusCode)))));
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  }

  within(a: number, b: number, transport: string): number[] {
    return this.samples.filter((s) => s.transport === transport && s.due >= a && s.due < b).map((s) => s.ms);
  }

  /** Stops sending, lets the last answers arrive, then closes the clients. */
  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    await sleep(1000);
    this.agent.destroy();
    this.grpc.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const files = args.idle + 4096;
  if (!ensureOpenFiles(files)) return;
  const root = await mkdtemp(join(tmpdir(), 'maas-idle-'));
  await writeModel(root, 's', [16, 16, 2], { max_batch_size: 64, dynamic_batching: {} });
  const server = await startServerProcess({
    options: {
      modelRepository: root,
      host: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      metricsPort: null,
      workers: 1,
      connectionIdleMs: args.idleSecs * 1000,
      shutdownGraceMs: 1000,
    },
    openFiles: files,
  });
  const traffic = new Traffic(server, args.rate);
  const windows: { name: string; a: number; b: number; rssMb: number }[] = [];
  const window = async (name: string) => {
    const a = performance.now();
    await sleep(args.seconds * 1000);
    windows.push({ name, a, b: performance.now(), rssMb: (await server.rss()) / 2 ** 20 });
  };
  const idle: Idle[] = [];
  let openSeconds: number;
  try {
    traffic.start();
    await sleep(5000); // warm-up: both clients connected, the server's code paths compiled
    await window('before');
    const o0 = performance.now();
    const kinds: Idle['kind'][] = ['REST kept alive', 'REST never used', 'gRPC', 'gRPC'];
    for (let i = 0; i < args.idle; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, args.idle - i) }, (_, j) => {
        const kind = kinds[(i + j) % kinds.length]!;
        return openIdle(kind, kind === 'gRPC' ? server.grpcPort! : server.httpPort!);
      });
      idle.push(...(await Promise.all(batch)));
    }
    openSeconds = (performance.now() - o0) / 1000;
    console.error(`${idle.length} idle connections open in ${openSeconds.toFixed(1)} s`);
    await window(`with ${idle.length} idle`);
    const deadline = performance.now() + (args.idleSecs + 60) * 1000;
    while (idle.some((c) => c.closedAt === null) && performance.now() < deadline) await sleep(250);
    await window('after they closed');
  } finally {
    await traffic.stop();
    for (const c of idle) c.socket.destroy();
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }

  const lines = [
    `## ${args.idle} idle connections`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); server in a child process, 1 worker, --connection-idle-secs ${args.idleSecs}`,
    `- command: \`npx tsx bench/serve/idle-connections.ts ${process.argv.slice(2).join(' ')}\``,
    `- traffic: 16 → 16 → 2, batch 1, REST (keep-alive) and gRPC, ${args.rate} req/s each, open loop; idle: ${idle.length} connections opened in ${openSeconds.toFixed(1)} s (REST kept alive after one request, REST never used, gRPC preface and settings only)`,
    '',
    '| window | REST req | REST p50 ms | REST p99 ms | gRPC req | gRPC p50 ms | gRPC p99 ms | server RSS MB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const w of windows) {
    const r = traffic.within(w.a, w.b, 'REST');
    const g = traffic.within(w.a, w.b, 'gRPC');
    lines.push(
      `| ${w.name} | ${r.length} | ${fmt(percentile(r, 0.5))} | ${fmt(percentile(r, 0.99))} | ${g.length} | ${fmt(percentile(g, 0.5))} | ${fmt(percentile(g, 0.99))} | ${fmt(w.rssMb, 0)} |`,
    );
  }
  lines.push('', `Traffic errors: ${traffic.errors}.`, '');
  lines.push('| idle connections | count | closed | close after idle s: min | median | p99 | max |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const kind of ['REST kept alive', 'REST never used', 'gRPC'] as const) {
    const mine = idle.filter((c) => c.kind === kind);
    const after = mine.filter((c) => c.closedAt !== null).map((c) => (c.closedAt! - c.lastActivity) / 1000);
    lines.push(
      `| ${kind} | ${mine.length} | ${after.length} | ${fmt(Math.min(...after), 1)} | ${fmt(percentile(after, 0.5), 1)} | ${fmt(percentile(after, 0.99), 1)} | ${fmt(Math.max(...after), 1)} |`,
    );
  }
  const text = lines.join('\n') + '\n';
  console.log(text);
  if (args.out !== '-') await appendFile(args.out, `\n${text}`);
}

await main();
