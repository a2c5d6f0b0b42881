/**
 * Deploy bench (issue 16's targets), the built package run as a user runs it, in one go:
 *   1. cold start of `maas serve` on the bundled repository to READY (/v2/health/ready answers
 *      200): a fresh packed cache each time (a container's first start), a warm one, and an
 *      s3:// repository (s3rver on loopback) with an empty and with a filled local copy;
 *   2. scaling from 1 to 2 replicas behind nginx (grpc_pass), h2load at 64 in flight over 4
 *      connections, against one replica reached directly and one process with 2 workers, the
 *      four set-ups' rounds interleaved;
 *   3. a replica killed under load behind nginx: closed-loop REST and gRPC clients, the requests
 *      that failed and the longest time the service went without an answer.
 *
 *   npm run build:ts && npx tsx bench/serve/replicas.ts [--parts cold,scale,kill] [--rounds 3] [--seconds 5] [--out FILE|-]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { GrpcInferenceClient, HttpInferenceClient } from '../../src/client/index.js';
import { usableCores } from '../../src/core/cores.js';
import { packageRoot } from '../../src/core/package-root.js';
import { stopChild } from './children.js';
import { grpcBodyFile, h2load, type LoadResult } from './loadgen.js';
import { freePort, NGINX, startNginx } from './nginx.js';
import { startCli, type CliServer } from './scale.js';
import { fmt, median, sleep } from './server-process.js';

const ROOT = packageRoot();
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const MODELS = join(ROOT, 'models');

interface Args {
  /** Sections to run: cold, scale, kill. */
  parts: Set<string>;
  rounds: number;
  seconds: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    parts: new Set(['cold', 'scale', 'kill']),
    rounds: 3,
    seconds: 5,
    out: join(ROOT, 'bench', 'RESULTS-deploy.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--parts') args.parts = new Set(argv[++i]!.split(','));
    else if (a === '--rounds') args.rounds = Number(argv[++i]);
    else if (a === '--seconds') args.seconds = Number(argv[++i]);
    else if (a === '--out') args.out = argv[++i]!;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

/** Milliseconds from spawning `maas serve` to its first 200 on /v2/health/ready. */
async function coldStartMs(args: string[], env: Record<string, string> = {}): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--http-port',
      String(port),
      '--grpc-port',
      '0',
      '--metrics-port',
      '0',
    ].concat('--log-level', 'warn', ...args),
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`maas serve exited: ${stderr}`);
      const ok = await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return performance.now() - started;
      if (performance.now() - started > 60_000) throw new Error('not ready in 60 s');
      await sleep(10);
    }
  } finally {
    await stopChild(child, 5000);
  }
}

/** s3rver on loopback holding the bundled repository under repository/. */
async function bundledBucket(): Promise<{ store: S3rver; endpoint: string }> {
  const store = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: await mkdtemp(join(tmpdir(), 'maas-bench-s3-')),
  });
  const { port } = await store.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await s3.send(new CreateBucketCommand({ Bucket: 'models' }));
  for (const entry of await readdir(MODELS, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    await s3.send(
      new PutObjectCommand({
        Bucket: 'models',
        Key: `repository/${relative(MODELS, path)}`,
        Body: await readFile(path),
      }),
    );
  }
  s3.destroy();
  return { store, endpoint };
}

async function coldStartSection(rounds: number): Promise<string[]> {
  const scratch = await mkdtemp(join(tmpdir(), 'maas-bench-cold-'));
  const { store, endpoint } = await bundledBucket();
  const s3env = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: endpoint,
  };
  const warmCache = join(scratch, 'warm-packed');
  const warmCopy = join(scratch, 'warm-copy');
  const kinds: [string, () => Promise<number>][] = [
    [
      'bundled repository, empty packed cache (a container’s first start)',
      async () => coldStartMs(['--model-repository', MODELS, '--packed-cache', await mkdtemp(join(scratch, 'p-'))]),
    ],
    [
      'bundled repository, warm packed cache',
      () => coldStartMs(['--model-repository', MODELS, '--packed-cache', warmCache]),
    ],
    [
      's3:// repository, empty local copy',
      async () =>
        coldStartMs(
          [
            '--model-repository',
            's3://models/repository',
            '--repository-cache',
            await mkdtemp(join(scratch, 'c-')),
            '--no-packed-cache',
          ],
          s3env,
        ),
    ],
    [
      's3:// repository, local copy up to date',
      () =>
        coldStartMs(
          ['--model-repository', 's3://models/repository', '--repository-cache', warmCopy, '--no-packed-cache'],
          s3env,
        ),
    ],
  ];
  try {
    // Fill the warm cache and copy once, unmeasured.
    await kinds[1]![1]();
    await kinds[3]![1]();
    const times = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++)
      for (const [name, run] of kinds) {
        const ms = await run();
        times.set(name, [...(times.get(name) ?? []), ms]);
        console.log(`  cold start, ${name}: ${fmt(ms, 0)} ms`);
      }
    const lines = [
      '## Cold start to READY (`maas serve`, the bundled repository: classic and classic_int8)',
      '',
      `From spawning the process to the first 200 on /v2/health/ready; ${rounds} interleaved rounds. Target ≤ 3 s (no Docker daemon here: measured from \`maas serve\`, as the image runs it).`,
      '',
      '| start | median ms | min | max |',
      '| --- | --- | --- | --- |',
    ];
    for (const [name, ms] of times)
      lines.push(`| ${name} | ${fmt(median(ms), 0)} | ${fmt(Math.min(...ms), 0)} | ${fmt(Math.max(...ms), 0)} |`);
    return [...lines, ''];
  } finally {
    await store.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** CPU seconds a process and its direct children (nginx's workers) have used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Fields after the command (which may hold spaces): state ppid … utime(14) stime(15).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(entry) === pid || Number(fields[1]) === pid) total += (Number(fields[11]) + Number(fields[12])) / ticks;
  }
  return total;
}

async function inferenceCount(server: CliServer): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/classic/stats`);
  const body = (await r.json()) as { model_stats: { inference_count: number }[] };
  return body.model_stats.reduce((n, s) => n + s.inference_count, 0);
}

async function scalingSection(rounds: number, seconds: number): Promise<string[]> {
  const replica = (workers: number) =>
    startCli(['--model-repository', MODELS, '--workers', String(workers), '--no-packed-cache']);
  const a = await replica(1);
  const b = await replica(1);
  const solo = await replica(1);
  const wide = await replica(2);
  const viaOne = await startNginx([{ http: solo.httpPort, grpc: solo.grpcPort }]);
  const viaTwo = await startNginx([
    { http: a.httpPort, grpc: a.grpcPort },
    { http: b.httpPort, grpc: b.grpcPort },
  ]);
  const setups: { name: string; port: number; servers: CliServer[]; proxy?: ChildProcess }[] = [
    { name: '1 replica (1 worker), direct', port: solo.grpcPort, servers: [solo] },
    { name: '1 replica (1 worker) behind nginx', port: viaOne.grpc, servers: [solo], proxy: viaOne.child },
    { name: '2 replicas (1 worker each) behind nginx', port: viaTwo.grpc, servers: [a, b], proxy: viaTwo.child },
    { name: '1 process, 2 workers, direct', port: wide.grpcPort, servers: [wide] },
  ];
  const body = await grpcBodyFile({
    model: 'classic',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 100], data: new Float32Array(100).fill(0.25) }],
  });
  const results = new Map<
    string,
    { load: LoadResult; answered: number; share: number[]; serverCpu: number; proxyCpu: number }[]
  >();
  const cpuOf = async (setup: (typeof setups)[number]) => ({
    server: (await Promise.all(setup.servers.map((s) => cpuSeconds(s.child.pid!)))).reduce((x, y) => x + y, 0),
    proxy: setup.proxy ? await cpuSeconds(setup.proxy.pid!) : 0,
  });
  try {
    for (let round = 0; round < rounds; round++)
      for (const setup of setups) {
        const before = await Promise.all(setup.servers.map(inferenceCount));
        const cpuBefore = await cpuOf(setup);
        const load = await h2load(setup.port, body, 64, seconds, { connections: 4 });
        const cpuAfter = await cpuOf(setup);
        const after = await Promise.all(setup.servers.map(inferenceCount));
        const deltas = after.map((n, i) => n - before[i]!);
        const answered = deltas.reduce((x, y) => x + y, 0);
        results.set(setup.name, [
          ...(results.get(setup.name) ?? []),
          {
            load,
            answered,
            share: deltas.map((d) => d / answered),
            serverCpu: cpuAfter.server - cpuBefore.server,
            proxyCpu: cpuAfter.proxy - cpuBefore.proxy,
          },
        ]);
        console.log(`  ${setup.name}: ${fmt(load.rps, 0)} req/s, p50 ${fmt(load.p50)} ms`);
      }
    const base = median(results.get(setups[1]!.name)!.map((r) => r.load.rps));
    const lines = [
      '## Scaling from 1 to 2 replicas behind nginx (model classic, batch-1 gRPC, h2load 64 in flight over 4 connections)',
      '',
      `Median of ${rounds} interleaved rounds of ${seconds} s. Every process here shares this machine's ${usableCores()} cores with h2load and nginx.`,
      '',
      '| set-up | req/s | p50 ms | p99 ms | vs 1 replica behind nginx | requests per replica | maas CPU ms / 1000 req | nginx CPU ms / 1000 req |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const setup of setups) {
      const runs = results.get(setup.name)!;
      const rps = median(runs.map((r) => r.load.rps));
      const mid = runs.find((r) => r.load.rps === rps)!;
      lines.push(
        `| ${setup.name} | ${fmt(rps, 0)} | ${fmt(mid.load.p50)} | ${fmt(mid.load.p99)} | ${fmt(rps / base)}× | ${mid.share.map((s) => `${fmt(s * 100, 0)}%`).join(' / ')} | ${fmt((mid.serverCpu / mid.answered) * 1e6, 0)} | ${setup.proxy ? fmt((mid.proxyCpu / mid.answered) * 1e6, 0) : '–'} |`,
      );
    }
    lines.push(
      '',
      `Every round (req/s): ${setups
        .map(
          (s) =>
            `${s.name}: ${results
              .get(s.name)!
              .map((r) => fmt(r.load.rps, 0))
              .join(' / ')}`,
        )
        .join('; ')}`,
      '',
    );
    return lines;
  } finally {
    for (const c of [viaOne.child, viaTwo.child]) c.kill('SIGKILL');
    for (const s of [a, b, solo, wide]) await stopChild(s.child, 5000);
  }
}

/** One kill under load: 4 REST and 4 gRPC closed-loop clients through nginx, replica A killed after 2 s. */
async function killRound(): Promise<{ failed: number; answered: number; gapMs: number; before: number }> {
  const replicas = [
    await startCli(['--model-repository', MODELS, '--workers', '1', '--no-packed-cache']),
    await startCli(['--model-repository', MODELS, '--workers', '1', '--no-packed-cache']),
  ];
  const proxy = await startNginx(replicas.map((r) => ({ http: r.httpPort, grpc: r.grpcPort })));
  const rest = new HttpInferenceClient(`http://127.0.0.1:${proxy.http}`);
  const grpc = new GrpcInferenceClient(`127.0.0.1:${proxy.grpc}`);
  const request = {
    model: 'classic',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 100], data: new Float32Array(100).fill(0.25) }],
  };
  let stop = false;
  let killedAt = 0;
  let failed = 0;
  const answers: number[] = [];
  const loop = async (client: HttpInferenceClient | GrpcInferenceClient) => {
    while (!stop) {
      try {
        await client.infer(request);
        answers.push(performance.now());
      } catch {
        if (killedAt > 0) failed++;
      }
    }
  };
  const loops = [...Array.from({ length: 4 }, () => loop(rest)), ...Array.from({ length: 4 }, () => loop(grpc))];
  try {
    await sleep(2000);
    const before = answers.length;
    killedAt = performance.now();
    replicas[0]!.child.kill('SIGKILL');
    await sleep(3000);
    const end = performance.now();
    stop = true;
    await Promise.all(loops);
    const after = [killedAt, ...answers.filter((t) => t >= killedAt && t <= end), end];
    let gapMs = 0;
    for (let i = 1; i < after.length; i++) gapMs = Math.max(gapMs, after[i]! - after[i - 1]!);
    return { failed, answered: after.length - 2, gapMs, before };
  } finally {
    stop = true;
    grpc.close();
    await rest.close();
    proxy.child.kill('SIGKILL');
    for (const r of replicas) await stopChild(r.child, 2000);
  }
}

async function killSection(rounds: number): Promise<string[]> {
  const lines = [
    '## A replica killed under load behind nginx (2 replicas, 4 REST + 4 gRPC closed-loop clients)',
    '',
    'SIGKILL of one replica 2 s into the load; counted over the 3 s after it. Target: only its in-flight requests lost, answers again within 1 s.',
    '',
    '| round | answers in the 2 s before | answers in the 3 s after | failed | longest gap without an answer after the kill |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (let round = 1; round <= rounds; round++) {
    const r = await killRound();
    console.log(`  kill round ${round}: ${r.failed} failed, longest gap ${fmt(r.gapMs, 0)} ms`);
    lines.push(`| ${round} | ${r.before} | ${r.answered} | ${r.failed} | ${fmt(r.gapMs, 0)} ms |`);
  }
  return [...lines, ''];
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!NGINX) throw new Error('the deploy bench drives Debian’s nginx: apt-get install nginx');
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '# Deploy bench',
    '',
    `${new Date().toISOString().slice(0, 10)}, ${cpu}, ${usableCores()} cores, Node ${process.version}; \`npx tsx bench/serve/replicas.ts --rounds ${args.rounds} --seconds ${args.seconds}\`.`,
    '',
    ...(args.parts.has('cold') ? await coldStartSection(args.rounds) : []),
    ...(args.parts.has('scale') ? await scalingSection(args.rounds, args.seconds) : []),
    ...(args.parts.has('kill') ? await killSection(args.rounds) : []),
  ];
  const text = `${lines.join('\n')}\n`;
  if (args.out === '-') console.log(text);
  else {
    writeFileSync(args.out, text);
    console.log(`wrote ${args.out}`);
  }
}

await main();
