/**
 * Reload bench: p99 latency of model S traffic while a ≈ 200 MB version of another model loads
 * into the same server (explicit model control: RepositoryModelLoad), against the p99 of the same
 * traffic with no load running. Each `--checkout` is a maas source tree (its src/ run under tsx in
 * a child process, 2 workers); checkouts are interleaved round by round so they share the noise.
 *
 *   npx tsx bench/serve/reload-p99.ts --checkout before=/tmp/maas-base --checkout after=.
 *   npx tsx bench/serve/reload-p99.ts --checkout after=. --rounds 1 --loads 1 --out -
 *
 * Requests are batch-1 gRPC ModelInfer calls sent open-loop at --rate per second from this
 * process, each timed from when it was due (no coordinated omission). A request belongs to the window (quiet or loading) in which it was sent; the loading
 * window runs from the RepositoryModelLoad call to its answer (the version READY).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, appendFile, readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { forkServer, stopChild } from './children.js';

interface Args {
  checkouts: { label: string; dir: string }[];
  rounds: number;
  loads: number;
  rate: number;
  quietSeconds: number;
  bigMb: number;
  workers: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    checkouts: [],
    rounds: 3,
    loads: 2,
    rate: 400,
    quietSeconds: 3,
    bigMb: 200,
    workers: 2,
    out: join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i]!;
    if (a === '--checkout') {
      const v = next();
      const eq = v.indexOf('=');
      const dir = resolve(eq > 0 ? v.slice(eq + 1) : v);
      args.checkouts.push({ label: eq > 0 ? v.slice(0, eq) : basename(dir), dir });
    } else if (a === '--rounds') args.rounds = Number(next());
    else if (a === '--loads') args.loads = Number(next());
    else if (a === '--rate') args.rate = Number(next());
    else if (a === '--quiet-seconds') args.quietSeconds = Number(next());
    else if (a === '--big-mb') args.bigMb = Number(next());
    else if (a === '--workers') args.workers = Number(next());
    else if (a === '--out') args.out = next();
    else
      throw new Error(
        `reload-p99: unknown argument ${a} (use --checkout [label=]DIR --rounds N --loads N --rate REQ_PER_S --quiet-seconds S --big-mb MB --workers W --out FILE|-)`,
      );
  }
  if (args.checkouts.length === 0) args.checkouts.push({ label: 'this', dir: resolve('.') });
  return args;
}

// ---------------------------------------------------------------------------------------------
// The server child: serve() from a checkout's own sources.

async function child(dir: string, repo: string, workers: number): Promise<void> {
  const { serve } = (await import(pathToFileURL(join(dir, 'src', 'serving', 'server.ts')).href)) as {
    serve: (o: object) => Promise<{ grpcPort: number }>;
  };
  const { pino } = await import('pino');
  const server = await serve({
    modelRepository: repo,
    host: '127.0.0.1',
    grpcPort: 0,
    httpPort: null,
    metricsPort: null,
    workers,
    modelControlMode: 'explicit',
    loadModels: ['s'],
    logger: pino({ level: 'warn' }),
  });
  console.log(`READY ${server.grpcPort}`);
}

// ---------------------------------------------------------------------------------------------
// The driver.

function startChild(dir: string, repo: string, workers: number): Promise<{ child: ChildProcess; port: number }> {
  return forkServer(
    fileURLToPath(import.meta.url),
    ['--child', dir, repo, String(workers)],
    ['--import', import.meta.resolve('tsx')],
    `server child (${dir})`,
  );
}

interface Sample {
  start: number;
  ms: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

interface RoundResult {
  label: string;
  round: number;
  quiet: number[];
  loading: number[];
  loadSeconds: number[];
  errors: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(args: Args, label: string, dir: string, repo: string, round: number): Promise<RoundResult> {
  const { GrpcInferenceClient } = await import('../../src/client/index.js');
  const { inputRows } = await import('../workloads.js');
  const { child: proc, port } = await startChild(dir, repo, args.workers);
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  const control = new GrpcInferenceClient(`127.0.0.1:${port}`);
  const request = {
    model: 's',
    inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, 100], data: inputRows(1, 100, 3) }],
  };
  const samples: Sample[] = [];
  let errors = 0;
  // Open loop: requests go out at a fixed rate whether or not earlier ones were answered, and a
  // latency counts from the time a request was due, so a stalled server is charged for every
  // request it held up (a closed loop would send only `concurrency` requests into a stall).
  const send = (due: number) => {
    client.infer(request).then(
      () => samples.push({ start: due, ms: performance.now() - due }),
      () => errors++,
    );
  };
  const t0 = performance.now();
  let sent = 0;
  const ticker = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * args.rate);
    for (; sent < due; sent++) send(t0 + (sent * 1000) / args.rate);
  }, 2);
  const quietWindows: [number, number][] = [];
  const loadWindows: [number, number][] = [];
  const loadSeconds: number[] = [];
  try {
    await sleep(1000); // warm-up
    for (let i = 0; i < args.loads; i++) {
      const q0 = performance.now();
      await sleep(args.quietSeconds * 1000);
      quietWindows.push([q0, performance.now()]);
      const l0 = performance.now();
      await control.loadModel('big');
      const l1 = performance.now();
      loadWindows.push([l0, l1]);
      loadSeconds.push((l1 - l0) / 1000);
      await control.unloadModel('big');
      await sleep(1000); // the unloaded weights are freed; GC settles
    }
    clearInterval(ticker);
    await sleep(2000); // the last answers arrive
  } finally {
    clearInterval(ticker);
    client.close();
    control.close();
    await stopChild(proc, 5000);
  }
  const within = (windows: [number, number][]) =>
    samples.filter((s) => windows.some(([a, b]) => s.start >= a && s.start < b)).map((s) => s.ms);
  return { label, round, quiet: within(quietWindows), loading: within(loadWindows), loadSeconds, errors };
}

async function writeRepository(root: string, bigMb: number): Promise<string> {
  const { modelS, workloadModel } = await import('../workloads.js');
  const { Random } = await import('../../src/core/random.js');
  await mkdir(join(root, 's'), { recursive: true });
  const s = workloadModel(modelS().layers);
  await s.save(join(root, 's', '1'));
  s.dispose();
  // The big model: 2048 → W relu → W relu → W relu → 2048, W chosen for ≈ bigMb MB of fp32 weights.
  const bytes = bigMb * 1e6;
  const w = Math.ceil((-4096 + Math.sqrt(4096 ** 2 + 4 * 2 * (bytes / 4))) / 4 / 64) * 64;
  const widths = [2048, w, w, w, 2048];
  const r = new Random(5);
  const layers = widths.slice(1).map((out, i) => {
    const weights = new Float32Array(widths[i]! * out);
    for (let j = 0; j < weights.length; j++) weights[j] = r.uniform(-0.02, 0.02);
    return {
      in: widths[i]!,
      out,
      weights,
      bias: null,
      activation: i === widths.length - 2 ? ('linear' as const) : ('relu' as const),
      alpha: 0,
    };
  });
  const big = workloadModel(layers);
  await big.save(join(root, 'big', '1'));
  big.dispose();
  const total = layers.reduce((n, l) => n + l.weights.byteLength, 0);
  return `${widths.join(' → ')} (${(total / 1e6).toFixed(0)} MB fp32)`;
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = await mkdtemp(join(tmpdir(), 'maas-reload-'));
  try {
    const bigShape = await writeRepository(root, args.bigMb);
    console.error(`repository ${root}: s = 100 → 64 → 32 → 1, big = ${bigShape}`);
    const results: RoundResult[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      // Interleaved, and the order alternates, so neither checkout always runs first.
      const order = round % 2 === 1 ? args.checkouts : [...args.checkouts].reverse();
      for (const { label, dir } of order) {
        const r = await measure(args, label, dir, root, round);
        results.push(r);
        console.error(
          `round ${round} ${label}: quiet p99 ${fmt(percentile(r.quiet, 0.99))} ms (${r.quiet.length} req), ` +
            `loading p99 ${fmt(percentile(r.loading, 0.99))} ms (${r.loading.length} req), ` +
            `load ${r.loadSeconds.map((s) => s.toFixed(2)).join('/')} s, errors ${r.errors}`,
        );
      }
    }
    const lines: string[] = [];
    lines.push('## Hot reload: model S p99 while a 200 MB model loads');
    lines.push('');
    lines.push(`- date: ${new Date().toISOString()}`);
    lines.push(
      `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); server: ${args.workers} workers × 1 native thread in a child process (sources under tsx); the load generator shares the cores`,
    );
    lines.push(
      `- command: \`npx tsx bench/serve/reload-p99.ts ${process.argv
        .slice(2)
        .map((a) => a.replace(/=\/.*$/, '=…'))
        .join(' ')}\``,
    );
    lines.push(
      `- model S (100 → 64 → 32 → 1) at ${args.rate} req/s open loop (latency from each request's due time), gRPC, batch 1; big = ${bigShape} loaded by RepositoryModelLoad (explicit mode) ${args.loads}× per round after ${args.quietSeconds} s quiet, unloaded after each; ${args.rounds} rounds, checkouts interleaved`,
    );
    lines.push('');
    lines.push(
      '| checkout | round | quiet req | quiet p50 ms | quiet p99 ms | loading req | loading p50 ms | loading p99 ms | loading max ms | p99 ratio | load s | errors |',
    );
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    const row = (label: string, round: string, quiet: number[], loading: number[], secs: number[], errors: number) => {
      const q99 = percentile(quiet, 0.99),
        l99 = percentile(loading, 0.99);
      lines.push(
        `| ${label} | ${round} | ${quiet.length} | ${fmt(percentile(quiet, 0.5))} | ${fmt(q99)} | ${loading.length} | ${fmt(percentile(loading, 0.5))} | ${fmt(l99)} | ${fmt(Math.max(...loading))} | ${fmt(l99 / q99)} | ${secs.map((s) => s.toFixed(2)).join(' / ')} | ${errors} |`,
      );
    };
    for (const r of results) row(r.label, String(r.round), r.quiet, r.loading, r.loadSeconds, r.errors);
    for (const { label } of args.checkouts) {
      const mine = results.filter((r) => r.label === label);
      row(
        `**${label}**`,
        'all',
        mine.flatMap((r) => r.quiet),
        mine.flatMap((r) => r.loading),
        mine.flatMap((r) => r.loadSeconds),
        mine.reduce((n, r) => n + r.errors, 0),
      );
    }
    lines.push('');
    const text = lines.join('\n');
    console.log(text);
    if (args.out !== '-') {
      const existing = await readFile(args.out, 'utf8').catch(() => '');
      if (existing) await appendFile(args.out, `\n${text}`);
      else await writeFile(args.out, `${text}`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
else await main();
