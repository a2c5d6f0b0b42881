/**
 * Two sections of the serving bench that run the real CLI (`maas serve` from dist/, as a user
 * does): serving processes (1 and 2, h2load over several connections, interleaved rounds), and
 * a model of a billion parameters (cold start without and with the packed cache, resident
 * memory, batch-1 and batch-64 latency, a hot reload's peak memory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GrpcInferenceClient, type InferOptions } from '../../src/client/index.js';
import { packageRoot } from '../../src/core/package-root.js';
import { writeLargeModel } from '../large-model.js';
import { grpcBodyFile, h2load, type LoadResult } from './loadgen.js';
import { stopChild } from './children.js';
import { fmt, median } from './server-process.js';

const CLI = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');

export interface CliServer {
  child: ChildProcess;
  grpcPort: number;
  httpPort: number;
  /** Milliseconds from spawn to the banner (every model loaded and warm, ports bound). */
  readyMs: number;
}

/** Starts `maas serve` with `args`; resolves when it (and, with --processes, every process) serves. */
export async function startCli(args: string[]): Promise<CliServer> {
  const started = performance.now();
  const ports = ['--http-port', '0', '--grpc-port', '0', '--metrics-port', '0'];
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--host', '127.0.0.1', '--log-level', 'warn', ...ports, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const group = args.includes('--processes') && args[args.indexOf('--processes') + 1] !== '1';
  let output = '';
  const bound = await new Promise<{ grpc: number; http: number }>((resolve, reject) => {
    const look = () => {
      const http = /REST\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      const grpc = /gRPC\s+127\.0\.0\.1:(\d+)/.exec(output);
      if (http && grpc && (!group || /serving processes \(pids/.test(output)))
        resolve({ grpc: Number(grpc[1]), http: Number(http[1]) });
    };
    child.stdout.on('data', (c: Buffer) => ((output += c.toString()), look()));
    child.stderr.on('data', (c: Buffer) => ((output += c.toString()), look()));
    child.once('exit', (code) => reject(new Error(`maas serve exited (${code}): ${output}`)));
  });
  return { child, grpcPort: bound.grpc, httpPort: bound.http, readyMs: performance.now() - started };
}

/**
 * Model `classic` from 1 and 2 serving processes, batch-1 gRPC requests under h2load at 64 and
 * 256 in flight over 4 connections, the servers' rounds interleaved.
 */
export async function processesSection(options: { seconds: number; rounds: number }): Promise<string[]> {
  const cache = await mkdtemp(join(tmpdir(), 'maas-bench-processes-'));
  const repository = join(packageRoot(), 'models');
  const servers = new Map<number, CliServer>();
  try {
    for (const n of [1, 2])
      servers.set(
        n,
        await startCli(['--model-repository', repository, '--processes', String(n), '--packed-cache', cache]),
      );
    const body = await grpcBodyFile({
      model: 'classic',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 100], data: new Float32Array(100).fill(0.25) }],
    });
    const results = new Map<string, LoadResult[]>();
    for (let round = 0; round < options.rounds; round++)
      for (const inFlight of [64, 256])
        for (const [n, server] of servers) {
          const r = await h2load(server.grpcPort, body, inFlight, options.seconds, { connections: 4 });
          const key = `${n}|${inFlight}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          console.log(`  processes ${n}, ${inFlight} in flight: ${fmt(r.rps, 0)} req/s, p50 ${fmt(r.p50)} ms`);
        }
    const lines = [
      '## Serving processes (`maas serve --processes N`, model classic, h2load over 4 connections)',
      '',
      `Median of ${options.rounds} interleaved rounds of ${options.seconds} s; each process has cores/N workers.`,
      '',
      '| processes | in flight | req/s | p50 ms | p99 ms | errors | vs 1 process |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const inFlight of [64, 256]) {
      const one = median((results.get(`1|${inFlight}`) ?? []).map((r) => r.rps));
      for (const n of [1, 2]) {
        const runs = results.get(`${n}|${inFlight}`) ?? [];
        const rps = median(runs.map((r) => r.rps));
        const mid = runs.find((r) => r.rps === rps)!;
        lines.push(
          `| ${n} | ${inFlight} | ${fmt(rps, 0)} | ${fmt(mid.p50)} | ${fmt(mid.p99)} | ${runs.reduce((e, r) => e + r.errors, 0)} | ${fmt(rps / one)}× |`,
        );
      }
    }
    lines.push(
      '',
      `Every round (req/s): ${[...results].map(([k, runs]) => `${k.replace('|', ' proc, ')} in flight: ${runs.map((r) => fmt(r.rps, 0)).join(' / ')}`).join('; ')}`,
      '',
    );
    return lines;
  } finally {
    for (const s of servers.values()) await stopChild(s.child, 5000);
    await rm(cache, { recursive: true, force: true });
  }
}

/** Rss and Pss (bytes) of a process, from /proc/<pid>/smaps_rollup. */
async function memoryOf(pid: number): Promise<{ rss: number; pss: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss') };
}

/** A repository version of the large model: its files hard-linked (no copy), as a new version directory. */
async function linkVersion(model: string, repository: string, version: number): Promise<void> {
  const dir = join(repository, 'large', String(version));
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(model)) await link(join(model, f), join(dir, f));
}

async function latencyMs(port: number, rows: number, width: number, times: number): Promise<number> {
  const client = new GrpcInferenceClient(`127.0.0.1:${port}`);
  const request = {
    model: 'large',
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [rows, width],
        data: Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i)),
      },
    ],
  } as InferOptions;
  try {
    await client.infer(request);
    const runs: number[] = [];
    for (let i = 0; i < times; i++) {
      const t = performance.now();
      await client.infer(request);
      runs.push(performance.now() - t);
    }
    return median(runs);
  } finally {
    client.close();
  }
}

/** Whether version `v` of model large is ready (REST). */
async function versionReady(httpPort: number, v: number): Promise<boolean> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/v2/models/large/versions/${v}/ready`).catch(() => null);
  return r?.status === 200;
}

/**
 * A billion-parameter int8 model (generated, seeded, under `dir`): cold start packing into an
 * empty cache, cold start from the cache (page cache warm), memory with 2 workers, latency, and
 * a hot reload to a new version with memory sampled throughout.
 */
export async function largeModelSection(options: {
  dir: string;
  layers: number;
  width: number;
  /** int8 (maas's int8 format, 1.2 GB packed at 8 × 12288²) or fp32 (4.8 GB packed). */
  precision: 'int8' | 'fp32';
}): Promise<string[]> {
  const { dir, layers, width, precision } = options;
  const int8 = precision === 'int8';
  const model = join(dir, 'model');
  if (!existsSync(join(model, 'model.json'))) {
    console.log(`  generating the ${layers} × ${width}² ${precision} model in ${model} (seeded) …`);
    await writeLargeModel(model, { layers, width, int8, seed: 7 });
  }
  const repository = join(dir, 'repo');
  const cache = join(dir, 'cache');
  await rm(repository, { recursive: true, force: true });
  await rm(cache, { recursive: true, force: true });
  await linkVersion(model, repository, 1);
  await writeFile(join(repository, 'large', 'config.json'), JSON.stringify({ max_batch_size: 64 }));
  const fileBytes = (await Promise.all((await readdir(model)).map((f) => stat(join(model, f))))).reduce(
    (n, s) => n + s.size,
    0,
  );
  const serveArgs = ['--model-repository', repository, '--packed-cache', cache, '--workers', '2'];
  const serveArgsPoll = [...serveArgs, '--model-control-mode', 'poll', '--repository-poll-secs', '1'];

  // 1. Cold, empty cache: streamed from the model file, packed into a new cache entry.
  const first = await startCli(serveArgsPoll);
  const packedBytes = (
    await Promise.all((await readdir(cache)).filter((f) => f.endsWith('.pack')).map((f) => stat(join(cache, f))))
  )[0]!.size;
  const memory = await memoryOf(first.child.pid!);
  const b1 = await latencyMs(first.grpcPort, 1, width, 20);
  const b64 = await latencyMs(first.grpcPort, 64, width, 6);
  const afterRequests = await memoryOf(first.child.pid!);

  // 2. Hot reload to version 2 (a new path: a new entry packed while version 1 serves).
  await linkVersion(model, repository, 2);
  let peak = afterRequests.rss;
  const reloadStart = performance.now();
  let reloadMs = NaN;
  while (performance.now() - reloadStart < 600_000) {
    peak = Math.max(peak, (await memoryOf(first.child.pid!)).rss);
    if (!Number.isFinite(reloadMs) && (await versionReady(first.httpPort, 2)))
      reloadMs = performance.now() - reloadStart;
    if (Number.isFinite(reloadMs) && !(await versionReady(first.httpPort, 1))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const afterReload = await memoryOf(first.child.pid!);
  await stopChild(first.child, 10_000);

  // 3. Cold, cache present (and in the page cache): mapped, not read or packed.
  const second = await startCli(serveArgs);
  const mapped = await memoryOf(second.child.pid!);
  const b1Mapped = await latencyMs(second.grpcPort, 1, width, 20);
  await stopChild(second.child, 10_000);

  const GB = (b: number) => (b / 1e9).toFixed(2);
  const params = layers * width * width;
  return [
    `## A model of ${(params / 1e9).toFixed(2)} billion parameters (${precision}, ${layers} × ${width}², 2 workers × 1 thread, one process)`,
    '',
    `Model files ${GB(fileBytes)} GB (${int8 ? "fp32 values on each column's int8 grid, maas's int8 format" : 'tfjs-layers fp32'}); packed ${precision} ${GB(packedBytes)} GB. Times are from spawning \`maas serve\` to its banner (every version loaded, warmed in both workers, ports bound), Node's start included. Memory from /proc/<pid>/smaps_rollup.`,
    '',
    '| measure | value | note |',
    '| --- | --- | --- |',
    `| cold start, empty packed cache | ${fmt(first.readyMs / 1000, 1)} s | streamed from the files at ${GB(fileBytes / (first.readyMs / 1000))} GB/s: read, digest, ${int8 ? 'requantize, ' : ''}pack, write the entry |`,
    `| cold start, packed cache present | ${fmt(second.readyMs / 1000, 2)} s | **${GB(packedBytes / (second.readyMs / 1000))} GB/s** of packed weights (target ≥ 1 GB/s) |`,
    `| RSS after the cold start, 2 workers | ${GB(memory.rss)} GB | **${fmt(memory.rss / packedBytes)}×** packed (target ≤ 1.1×); Pss ${GB(memory.pss)} GB |`,
    `| RSS after batch-1 and batch-64 requests | ${GB(afterRequests.rss)} GB | ${fmt(afterRequests.rss / packedBytes)}× packed |`,
    `| RSS from the cache, 2 workers | ${GB(mapped.rss)} GB | ${fmt(mapped.rss / packedBytes)}× packed |`,
    `| batch-1 latency (gRPC, median of 20) | ${fmt(b1, 1)} ms | ${GB(packedBytes / (b1 / 1000))} GB/s of weights streamed; from the cache: ${fmt(b1Mapped, 1)} ms |`,
    `| batch-64 latency (median of 6) | ${fmt(b64, 1)} ms | ${fmt((2 * params * 64) / (b64 / 1000) / 1e9, 0)} ${int8 ? 'GOP/s' : 'GFLOP/s'} |`,
    `| hot reload to version 2 (new entry packed while v1 serves) | ${fmt(reloadMs / 1000, 1)} s | peak RSS ${GB(peak)} GB = ${fmt(peak / packedBytes)}× packed (old and new: ≤ 2.2×); after v1 drained ${GB(afterReload.rss)} GB = ${fmt(afterReload.rss / packedBytes)}× |`,
    '',
  ];
}
