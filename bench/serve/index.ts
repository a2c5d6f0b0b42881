/**
 * The serving bench (`npm run bench:serve`), in one run:
 *   (a) a bare @grpc/grpc-js echo server answering with maas's response size: the transport ceiling;
 *   (b) maas serving model S, batch-1 requests;
 *   (c) model L with dynamic batching on and off;
 * each as a closed-loop concurrency sweep (our gRPC client) and, at concurrency 64, under h2load;
 * then the resident memory of a server holding a ≥ 200 MB model with 1 and with 2 workers; then
 * `maas serve --processes 1` against `--processes 2`, and a model of a billion parameters
 * (generated once into --large-dir, 6 GB of disk: cold start, memory, latency, hot reload).
 * Servers run in child processes from the built package (dist/, as `npm start` runs them); writes
 * bench/RESULTS-serve.md.
 *
 *   npm run bench:serve                       # sweep 1,4,16,64,256; 3 s per point
 *   npm run bench:serve -- --seconds 1 --concurrency 1,64
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcInferenceClient, type InferOptions } from '../../src/client/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { inputRows, modelL, modelS, workloadModel } from '../workloads.js';
import type { DenseSpec } from '../peers/onnx.js';
import { Random } from '../../src/core/random.js';
import { closedLoop, grpcBodyFile, h2load, type LoadResult } from './loadgen.js';
import { rssOf, startChild, stopChild, type Rss } from './children.js';
import { ceilingSection } from './ceiling.js';
import { recordsSection } from './records.js';
import { largeModelSection, processesSection } from './scale.js';

interface Args {
  /** Parts to run: ceiling, a, b, c, rss, processes, large, large-fp32 (not by default: 15 GB of disk), records. */
  parts: Set<string>;
  seconds: number;
  /** Interleaved rounds at concurrency 64. */
  rounds: number;
  concurrency: number[];
  out: string;
  /** Where the billion-parameter model is generated (once) and served from. */
  largeDir: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    parts: new Set(['ceiling', 'a', 'b', 'c', 'rss', 'processes', 'large', 'records']),
    seconds: 3,
    rounds: 3,
    concurrency: [1, 4, 16, 64, 256],
    out: join(packageRoot(), 'bench', 'RESULTS-serve.md'),
    largeDir: join(tmpdir(), 'maas-bench-large'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seconds') args.seconds = Number(argv[++i]);
    else if (a === '--parts') args.parts = new Set(argv[++i]!.split(','));
    else if (a === '--large-dir') args.largeDir = argv[++i]!;
    else if (a === '--rounds') args.rounds = Number(argv[++i]);
    else if (a === '--concurrency') args.concurrency = argv[++i]!.split(',').map(Number);
    else if (a === '--out') args.out = argv[++i]!;
    else
      throw new Error(
        `bench:serve: unknown argument ${a} (use --parts ceiling,a,b,c,rss,processes,large,large-fp32,records --large-dir DIR --seconds S --rounds N --concurrency 1,64 --out FILE)`,
      );
  }
  if (!args.concurrency.includes(64)) args.concurrency.push(64);
  return args;
}

async function writeModel(root: string, name: string, layers: DenseSpec[], config: object): Promise<void> {
  await mkdir(join(root, name), { recursive: true });
  const model = workloadModel(layers);
  await model.save(join(root, name, '1'));
  model.dispose();
  await writeFile(join(root, name, 'config.json'), JSON.stringify(config));
}

/** A seeded stack of the given widths (relu between, linear last). */
function bigStack(widths: number[]): DenseSpec[] {
  const r = new Random(5);
  return widths.slice(1).map((out, i) => ({
    in: widths[i]!,
    out,
    weights: Float32Array.from({ length: widths[i]! * out }, () => r.uniform(-0.02, 0.02)),
    bias: null,
    activation: i === widths.length - 2 ? 'linear' : 'relu',
    alpha: 0,
  }));
}

const request = (model: string, width: number): InferOptions => ({
  model,
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, width], data: inputRows(1, width, 3) }],
});

interface Row {
  target: string;
  generator: string;
  result: LoadResult;
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

function logRow(target: string, generator: string, r: LoadResult): void {
  const latency =
    generator === 'h2load'
      ? `mean ${fmt(r.p50)} ms  max ${fmt(r.p99)} ms`
      : `p50 ${fmt(r.p50)} ms  p99 ${fmt(r.p99)} ms`;
  console.log(
    `${target.padEnd(24)} ${generator.padEnd(11)} c=${String(r.concurrency).padStart(3)}  ${fmt(r.rps, 0).padStart(7)} req/s  ${latency}  errors ${r.errors}`,
  );
}

/** The node-client sweep at every concurrency but 64 (measured in interleaved rounds instead). */
async function sweep(target: Target, args: Args, rows: Row[]): Promise<void> {
  for (const c of args.concurrency.filter((c) => c !== 64)) {
    const result = await closedLoop(`127.0.0.1:${target.port}`, target.request, c, args.seconds);
    rows.push({ target: target.name, generator: 'node client', result });
    logRow(target.name, 'node client', result);
  }
}

/** The median run by req/s. */
function median(results: LoadResult[]): LoadResult {
  return [...results].sort((x, y) => x.rps - y.rps)[Math.floor(results.length / 2)]!;
}

/**
 * Concurrency 64, the targets' point: every target in turn, both generators, `rounds` times, so
 * the machine's drift hits every target alike; the median round of each is reported.
 */
async function interleavedRounds(targets: Target[], args: Args, rows: Row[]): Promise<Map<string, LoadResult[]>> {
  const samples = new Map<string, LoadResult[]>();
  const bodies = new Map<Target, string>();
  for (const t of targets) bodies.set(t, await grpcBodyFile(t.request));
  for (let round = 0; round < args.rounds; round++) {
    for (const t of targets) {
      for (const generator of ['node client', 'h2load'] as const) {
        const r =
          generator === 'h2load'
            ? await h2load(t.port, bodies.get(t)!, 64, args.seconds)
            : await closedLoop(`127.0.0.1:${t.port}`, t.request, 64, args.seconds);
        const key = `${t.name}|${generator}`;
        samples.set(key, [...(samples.get(key) ?? []), r]);
        logRow(t.name, generator, r);
      }
    }
  }
  for (const body of bodies.values()) await rm(body, { force: true });
  for (const t of targets) {
    for (const generator of ['node client', 'h2load'])
      rows.push({ target: t.name, generator, result: median(samples.get(`${t.name}|${generator}`)!) });
  }
  return samples;
}

interface Target {
  name: string;
  port: number;
  request: InferOptions;
}

/** Successful ModelInfer calls the server counted (h2load only sees HTTP statuses). */
async function successCount(port: number, model: string): Promise<number> {
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  try {
    const [stats] = await client.modelStatistics(model);
    return stats?.inference_stats.success.count ?? 0;
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const workers = availableParallelism();
  const rows: Row[] = [];
  const root = await mkdtemp(join(tmpdir(), 'maas-bench-serve-'));
  const S = modelS();
  const L = modelL();
  await writeModel(join(root, 's'), 'S', S.layers, { max_batch_size: 256, dynamic_batching: {} });
  await writeModel(join(root, 'l'), 'L_batched', L.layers, { max_batch_size: 64, dynamic_batching: {} });
  await writeModel(join(root, 'l'), 'L_unbatched', L.layers, { max_batch_size: 64 });
  console.log(
    `bench:serve: ${cpus()[0]?.model.trim()}, ${workers} cores, servers with ${workers} workers × 1 thread, ${args.seconds} s per point`,
  );

  const ceiling = args.parts.has('ceiling')
    ? await ceilingSection({ seconds: args.seconds, rounds: args.rounds, workers })
    : [];
  let server: { child: ChildProcess; port: number };
  // Every server runs from the start (idle ones cost nothing) so the rounds can interleave them.
  const targets: Target[] = [];
  const children: ChildProcess[] = [];
  const start = async (args: string[]) => {
    const started = await startChild(args);
    children.push(started.child);
    return started.port;
  };
  if (args.parts.has('a')) {
    // (a) the transport ceiling: the same request decoded, an answer of model S's size
    targets.push({
      name: '(a) grpc-js echo',
      port: await start(['echo', String(S.layers[S.layers.length - 1]!.out)]),
      request: request('echo', 100),
    });
  }
  let sPort = NaN;
  if (args.parts.has('b')) {
    sPort = await start(['maas', join(root, 's'), String(workers)]);
    targets.push({ name: '(b) maas S', port: sPort, request: request('S', 100) });
  }
  if (args.parts.has('c')) {
    const lPort = await start(['maas', join(root, 'l'), String(workers)]);
    targets.push({ name: '(c) maas L batched', port: lPort, request: request('L_batched', 1024) });
    targets.push({ name: '(c) maas L unbatched', port: lPort, request: request('L_unbatched', 1024) });
  }
  for (const t of targets) await sweep(t, args, rows);
  const samples = await interleavedRounds(targets, args, rows);
  const sOk = Number.isFinite(sPort) ? await successCount(sPort, 'S') : NaN;
  for (const child of children) await stopChild(child);
  const rss: ({ workers: number } & Rss)[] = [];
  let bigBytes = NaN;
  if (args.parts.has('rss')) {
    // A model of ≥ 200 MB with 1 and 2 workers (after warm-up every worker holds its handle)
    const bigRoot = join(root, 'big');
    const big = bigStack([1024, 8192, 4096, 2048]);
    bigBytes = big.reduce((n, l) => n + l.weights.byteLength, 0);
    await writeModel(bigRoot, 'big', big, { max_batch_size: 8 });
    for (const w of [1, 2]) {
      server = await startChild(['maas', bigRoot, String(w)]);
      const client = new GrpcInferenceClient(`127.0.0.1:${server.port}`);
      await Promise.all(Array.from({ length: 8 }, () => client.infer(request('big', 1024))));
      client.close();
      rss.push({ workers: w, ...(await rssOf(server.child)) });
      await stopChild(server.child);
    }
  }
  const scale: string[] = [];
  if (args.parts.has('processes'))
    scale.push(...(await processesSection({ seconds: args.seconds, rounds: args.rounds })));
  if (args.parts.has('large'))
    scale.push(...(await largeModelSection({ dir: args.largeDir, layers: 8, width: 12288, precision: 'int8' })));
  if (args.parts.has('large-fp32'))
    scale.push(
      ...(await largeModelSection({ dir: `${args.largeDir}-fp32`, layers: 8, width: 12288, precision: 'fp32' })),
    );
  if (args.parts.has('records'))
    scale.push(...(await recordsSection({ seconds: args.seconds, rounds: args.rounds, workers })));
  report(args, rows, samples, { sOk, rss, bigBytes, workers, ceiling, scale });
}

function report(
  args: Args,
  rows: Row[],
  samples: Map<string, LoadResult[]>,
  extra: {
    sOk: number;
    rss: ({ workers: number } & Rss)[];
    bigBytes: number;
    workers: number;
    ceiling: string[];
    scale: string[];
  },
): void {
  const at = (target: string, generator: string, c = 64) =>
    rows.find((r) => r.target === target && r.generator === generator && r.result.concurrency === c)?.result;
  const MB = (b: number) => (b / 1e6).toFixed(1);
  const lines: string[] = [
    '# Serving bench results',
    '',
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model.trim()} (${extra.workers} cores); servers: ${extra.workers} workers × 1 native thread, in a child process; the load generator shares the same cores`,
    `- command: \`npm run bench:serve${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}\``,
    `- ${args.seconds} s per point after a warm-up; closed loop (each caller sends its next request when the answer arrives); batch-1 requests, raw FP32 tensors`,
    '',
    ...extra.ceiling,
    '| target | generator | concurrency | req/s | p50 ms | p90 ms | p99 ms | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const order = [...new Set(rows.map((r) => r.target))];
  const sorted = [...rows].sort(
    (x, y) =>
      order.indexOf(x.target) - order.indexOf(y.target) ||
      x.generator.localeCompare(y.generator) ||
      x.result.concurrency - y.result.concurrency,
  );
  for (const { target, generator, result: r } of sorted) {
    const c = r.concurrency === 64 ? `64 (median of ${args.rounds})` : String(r.concurrency);
    lines.push(
      `| ${target} | ${generator} | ${c} | ${fmt(r.rps, 0)} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${r.errors} |`,
    );
  }
  lines.push('', `Concurrency 64, every round (targets interleaved, req/s): `);
  for (const [key, runs] of samples)
    lines.push(`- ${key.replace('|', ', ')}: ${runs.map((r) => fmt(r.rps, 0)).join(' / ')}`);
  const ratio = (a?: LoadResult, b?: LoadResult) => (a && b ? a.rps / b.rps : NaN);
  const echoNode = at('(a) grpc-js echo', 'node client');
  const sNode = at('(b) maas S', 'node client');
  const echoH2 = at('(a) grpc-js echo', 'h2load');
  const sH2 = at('(b) maas S', 'h2load');
  const lOn = at('(c) maas L batched', 'node client');
  const lOff = at('(c) maas L unbatched', 'node client');
  const lOnH2 = at('(c) maas L batched', 'h2load');
  const lOffH2 = at('(c) maas L unbatched', 'h2load');
  const [r1, r2] = extra.rss;
  const perWorker = r1 && r2 ? r2.rssAfterGc - r1.rssAfterGc : NaN;
  const perWorkerRaw = r1 && r2 ? r2.rss - r1.rss : NaN;
  lines.push(
    '',
    '## Targets (concurrency 64, same run)',
    '',
    `- (b)/(a), node client: ${fmt(sNode?.rps ?? NaN, 0)} / ${fmt(echoNode?.rps ?? NaN, 0)} req/s = **${fmt(ratio(sNode, echoNode) * 100, 1)}%** (target ≥ 80%)`,
    `- (b)/(a), h2load: ${fmt(sH2?.rps ?? NaN, 0)} / ${fmt(echoH2?.rps ?? NaN, 0)} req/s = **${fmt(ratio(sH2, echoH2) * 100, 1)}%**; the server counted ${extra.sOk} successful S requests in the whole (b) run`,
    `- (c) L batched / unbatched, node client: ${fmt(lOn?.rps ?? NaN, 0)} / ${fmt(lOff?.rps ?? NaN, 0)} req/s = **${fmt(ratio(lOn, lOff), 2)}×** (target ≥ 5×); batched p99/p50 = **${fmt((lOn?.p99 ?? NaN) / (lOn?.p50 ?? NaN), 2)}** (target ≤ 3)`,
    `- (c) L batched / unbatched, h2load: ${fmt(lOnH2?.rps ?? NaN, 0)} / ${fmt(lOffH2?.rps ?? NaN, 0)} req/s = **${fmt(ratio(lOnH2, lOffH2), 2)}×**`,
    `- RSS with a ${MB(extra.bigBytes)} MB model, after a full GC: 1 worker ${MB(r1?.rssAfterGc ?? NaN)} MB, 2 workers ${MB(r2?.rssAfterGc ?? NaN)} MB: the second worker adds ${MB(perWorker)} MB = **${fmt((perWorker / extra.bigBytes) * 100, 1)}%** of the model (target < 5%). Before the GC (the loader's transient copies not yet collected): ${MB(r1?.rss ?? NaN)} → ${MB(r2?.rss ?? NaN)} MB (${MB(perWorkerRaw)} MB)`,
    '',
  );
  lines.push(...extra.scale);
  writeFileSync(args.out, lines.join('\n'));
  console.log(lines.slice(-8).join('\n'));
  console.log(`wrote ${args.out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
