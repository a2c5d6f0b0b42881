/**
 * Soak: a server (a child process, explicit model control) under mixed traffic for a set time —
 * gRPC unary and streaming, REST JSON and binary, four models, a share of bad requests — while one
 * model is loaded and unloaded over and over through the repository API. Every answer is checked
 * against the model run here; every error is checked against what the request deserved.
 *
 *   npm run soak                       (60 s)
 *   npx tsx bench/soak.ts --seconds 120 [--callers 12] [--workers 2] [--out FILE]
 *
 * Reports requests served, p50/p99 per kind, the server's RSS (start after warm-up, end, max,
 * and after a full GC), the load/unload cycles, and every unexpected failure. Expected failures are
 * the bad requests' own errors, and a request for the cycling model refused while it is not
 * loaded (MODEL_UNAVAILABLE / unknown model: docs/serving.md, "unload once its queued requests
 * finish"); a request the server accepted and then failed because of an unload is unexpected.
 * Exits 1 when anything unexpected happened.
 */
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  GrpcInferenceClient,
  HttpInferenceClient,
  InferenceServerError,
  type InferOptions,
} from '../src/client/index.js';
import { Random } from '../src/core/random.js';
import { loadModel, type Sequential } from '../src/index.js';
import { writeModel } from './serve/repo.js';
import { fmt, percentile, sleep, startServerProcess } from './serve/server-process.js';

interface Args {
  seconds: number;
  callers: number;
  workers: number;
  out: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 60, callers: 12, workers: 2, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i]!;
    if (a === '--seconds') args.seconds = Number(next());
    else if (a === '--callers') args.callers = Number(next());
    else if (a === '--workers') args.workers = Number(next());
    else if (a === '--out') args.out = next();
    else throw new Error(`soak: unknown argument ${a} (use --seconds S --callers N --workers W --out FILE)`);
  }
  return args;
}

/** The models served: name, widths, config. `cycler` is the one loaded and unloaded. */
const MODELS: { name: string; widths: number[]; config: object }[] = [
  { name: 'small', widths: [16, 16, 2], config: { max_batch_size: 64, dynamic_batching: {} } },
  {
    name: 'medium',
    widths: [256, 128, 10],
    config: { max_batch_size: 32, dynamic_batching: { max_queue_delay_microseconds: 500 } },
  },
  { name: 'nobatch', widths: [8, 8, 1], config: { max_batch_size: 0 } },
  { name: 'cycler', widths: [64, 32, 4], config: { max_batch_size: 16, dynamic_batching: {} } },
];

/** An input and the answer the model gives here. */
interface Case {
  model: string;
  x: Float32Array;
  rows: number;
  width: number;
  want: Float32Array;
}

type Kind = 'grpc' | 'grpc-stream' | 'rest-json' | 'rest-binary' | 'bad' | 'cycler';

class Tally {
  readonly latencies = new Map<Kind, number[]>();
  readonly served = new Map<Kind, number>();
  readonly expected = new Map<string, number>();
  readonly unexpected: string[] = [];
  unexpectedCount = 0;

  ok(kind: Kind, ms: number): void {
    this.served.set(kind, (this.served.get(kind) ?? 0) + 1);
    let list = this.latencies.get(kind);
    if (!list) this.latencies.set(kind, (list = []));
    list.push(ms);
  }

  expectedError(what: string): void {
    this.expected.set(what, (this.expected.get(what) ?? 0) + 1);
  }

  fail(what: string): void {
    this.unexpectedCount++;
    if (this.unexpected.length < 20) this.unexpected.push(what);
  }
}

function closeEnough(got: ArrayLike<number>, want: Float32Array): boolean {
  if (got.length !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (!(Math.abs(got[i]! - want[i]!) <= 1e-5)) return false;
  return true;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Whether an error is the cycling model being absent, which the protocol answers that way. */
function isNotLoaded(e: unknown): boolean {
  return /no ready version|unknown model|is not found/.test(messageOf(e));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = await mkdtemp(join(tmpdir(), 'maas-soak-'));
  for (const m of MODELS) await writeModel(root, m.name, m.widths, m.config);
  const local = new Map<string, Sequential>();
  for (const m of MODELS) local.set(m.name, await loadModel(join(root, m.name, '1')));
  const r = new Random(2026);
  const cases: Case[] = MODELS.flatMap((m) =>
    [1, 3, 7].map((rows) => {
      const width = m.widths[0]!;
      const n = m.name === 'nobatch' ? 1 : rows;
      const x = Float32Array.from({ length: n * width }, () => r.uniform(-1, 1));
      return { model: m.name, x, rows: n, width, want: local.get(m.name)!.predict(x.slice()).values };
    }),
  );
  const server = await startServerProcess({
    options: {
      modelRepository: root,
      host: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      metricsPort: null,
      workers: args.workers,
      modelControlMode: 'explicit',
      loadModels: ['small', 'medium', 'nobatch'],
      shutdownGraceMs: 2000,
    },
  });
  const grpc = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
  const rest = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
  const stream = grpc.openStream();
  const tally = new Tally();
  const rss: number[] = [];
  let stop = false;
  let cycles = 0;
  let measuring = false;

  const options = (c: Case, typed = false): InferOptions => ({
    model: c.model,
    typed,
    inputs: [
      { name: 'input', datatype: 'FP32', shape: c.model === 'nobatch' ? [c.width] : [c.rows, c.width], data: c.x },
    ],
  });
  const steady = cases.filter((c) => c.model !== 'cycler');
  const cyclerCases = cases.filter((c) => c.model === 'cycler');

  /** One request of a kind drawn by weight; checked; timed. */
  const one = async (rand: Random) => {
    const roll = rand.uniform(0, 1);
    const c = steady[Math.floor(rand.uniform(0, steady.length))]!;
    const start = performance.now();
    const record = (kind: Kind) => measuring && tally.ok(kind, performance.now() - start);
    const check = (kind: Kind, data: ArrayLike<number>) =>
      closeEnough(data, c.want) ? record(kind) : tally.fail(`${kind} ${c.model}: wrong answer`);
    try {
      if (roll < 0.3)
        check('grpc', (await grpc.infer(options(c, rand.uniform(0, 1) < 0.3))).outputs[0]!.data as Float32Array);
      else if (roll < 0.45) check('grpc-stream', (await stream.send(options(c))).outputs[0]!.data as Float32Array);
      else if (roll < 0.65) check('rest-json', (await rest.infer(options(c, true))).outputs[0]!.data as Float32Array);
      else if (roll < 0.85) check('rest-binary', (await rest.infer(options(c))).outputs[0]!.data as Float32Array);
      else if (roll < 0.95) {
        const k = cyclerCases[Math.floor(rand.uniform(0, cyclerCases.length))]!;
        const useRest = rand.uniform(0, 1) < 0.5;
        try {
          const result = useRest ? await rest.infer(options(k)) : await grpc.infer(options(k));
          if (closeEnough(result.outputs[0]!.data as Float32Array, k.want)) record('cycler');
          else tally.fail('cycler: wrong answer');
        } catch (error) {
          if (isNotLoaded(error)) tally.expectedError('cycler not loaded');
          else tally.fail(`cycler ${useRest ? 'REST' : 'gRPC'}: ${messageOf(error)}`);
        }
      } else await bad(rand, c);
    } catch (error) {
      tally.fail(`${c.model}: ${messageOf(error)}`);
    }
  };

  /** A bad request, and the error it must get. */
  const bad = async (rand: Random, c: Case) => {
    const which = Math.floor(rand.uniform(0, 4));
    const expect = async (what: string, call: Promise<unknown>, wanted: RegExp) => {
      try {
        await call;
        tally.fail(`${what}: answered instead of refused`);
      } catch (error) {
        if (error instanceof InferenceServerError && wanted.test(error.message)) {
          tally.expectedError(what);
          if (measuring) tally.ok('bad', 0);
        } else tally.fail(`${what}: ${messageOf(error)}`);
      }
    };
    const wrongShape: InferOptions = {
      model: c.model,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, c.width + 1], data: new Float32Array(c.width + 1) }],
    };
    if (which === 0) await expect('wrong shape (gRPC)', grpc.infer(wrongShape), /unexpected shape/);
    else if (which === 1)
      await expect('wrong shape (REST)', rest.infer({ ...wrongShape, typed: true }), /unexpected shape/);
    else if (which === 2) await expect('unknown model', grpc.infer({ ...options(c), model: 'nope' }), /unknown model/);
    else {
      const response = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/${c.model}/infer`, {
        method: 'POST',
        body: '{"inputs": [',
      });
      const body = (await response.json()) as { error?: string };
      if (response.status === 400 && /parsing failed/.test(body.error ?? '')) {
        tally.expectedError('malformed JSON');
        if (measuring) tally.ok('bad', 0);
      } else tally.fail(`malformed JSON: ${response.status} ${body.error}`);
    }
  };

  const caller = async (seed: number) => {
    const rand = new Random(seed);
    while (!stop) await one(rand);
  };

  /** Loads and unloads `cycler`, alternating transports, sometimes with a config override. */
  const cycle = async () => {
    const rand = new Random(77);
    while (!stop) {
      const viaRest = cycles % 2 === 0;
      const config = rand.uniform(0, 1) < 0.3 ? { max_batch_size: 8, dynamic_batching: {} } : undefined;
      try {
        if (viaRest) await rest.loadModel('cycler', config ? { config } : {});
        else await grpc.loadModel('cycler', config ? { config } : {});
      } catch (error) {
        tally.fail(`load cycler: ${messageOf(error)}`);
      }
      await sleep(rand.uniform(300, 1500));
      try {
        if (viaRest) await rest.unloadModel('cycler');
        else await grpc.unloadModel('cycler');
      } catch (error) {
        tally.fail(`unload cycler: ${messageOf(error)}`);
      }
      cycles++;
      await sleep(rand.uniform(200, 800));
    }
  };

  const t0 = performance.now();
  const sampler = (async () => {
    while (!stop) {
      await sleep(1000);
      if (measuring) rss.push(await server.rss());
    }
  })();
  const workers = [...Array.from({ length: args.callers }, (_, i) => caller(100 + i)), cycle()];
  try {
    await sleep(3000); // warm-up: every path compiled, the pool's threads busy once
    const rssStart = await server.rss(true);
    measuring = true;
    const m0 = performance.now();
    const progress = setInterval(() => {
      const served = [...tally.served.values()].reduce((a, b) => a + b, 0);
      console.error(
        `${((performance.now() - m0) / 1000).toFixed(0)} s: ${served} served, ${tally.unexpectedCount} unexpected, ${cycles} load/unload cycles, RSS ${fmt((rss.at(-1) ?? 0) / 2 ** 20, 0)} MB`,
      );
    }, 10_000);
    await sleep(args.seconds * 1000);
    clearInterval(progress);
    measuring = false;
    stop = true;
    await Promise.all(workers);
    await sampler;
    const seconds = (performance.now() - m0) / 1000;
    const rssEndGc = await server.rss(true);
    const rssEnd = rss.at(-1) ?? NaN;
    const mb = (b: number) => fmt(b / 2 ** 20, 0);
    const served = [...tally.served.values()].reduce((a, b) => a + b, 0);
    const lines = [
      `## Soak: ${args.seconds} s of mixed traffic with load/unload cycles`,
      '',
      `- date: ${new Date().toISOString()}`,
      `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); server in a child process, ${args.workers} workers, explicit model control`,
      `- command: \`npx tsx bench/soak.ts ${process.argv.slice(2).join(' ')}\``,
      `- ${args.callers} closed-loop callers: gRPC unary (30 %, some typed), gRPC stream (15 %), REST JSON (20 %), REST binary (20 %), the cycling model (10 %), bad requests (5 %); models ${MODELS.map((m) => `${m.name} ${m.widths.join('→')}`).join(', ')}; answers checked against the model run in the bench`,
      '',
      `Served ${served} requests in ${seconds.toFixed(0)} s (${fmt(served / seconds, 0)}/s), ${cycles} load/unload cycles of \`cycler\`, ${tally.unexpectedCount} unexpected failures.`,
      '',
      '| kind | served | p50 ms | p99 ms |',
      '| --- | --- | --- | --- |',
      ...[...tally.latencies]
        .filter(([kind]) => kind !== 'bad')
        .map(([kind, l]) => `| ${kind} | ${l.length} | ${fmt(percentile(l, 0.5))} | ${fmt(percentile(l, 0.99))} |`),
      `| bad requests refused as expected | ${tally.served.get('bad') ?? 0} | | |`,
      '',
      `Expected errors: ${[...tally.expected].map(([what, n]) => `${what} ${n}`).join(', ') || 'none'}.`,
      '',
      `Server RSS: ${mb(rssStart)} MB at the start (after GC), ${mb(rssEnd)} MB at the end, ${mb(Math.max(...rss))} MB at most, ${mb(rssEndGc)} MB at the end after GC (drift ${fmt((rssEndGc - rssStart) / 2 ** 20, 1)} MB).`,
      '',
      ...(tally.unexpected.length > 0
        ? ['Unexpected failures (first 20):', '', ...tally.unexpected.map((u) => `- ${u}`), '']
        : []),
    ];
    const text = lines.join('\n');
    console.log(text);
    if (args.out) await appendFile(args.out, `\n${text}\n`);
    process.exitCode = tally.unexpectedCount > 0 ? 1 : 0;
  } finally {
    stop = true;
    stream.end();
    grpc.close();
    await server.stop();
    await rm(root, { recursive: true, force: true });
    console.error(`soak finished after ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
}

await main();
