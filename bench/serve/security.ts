/**
 * What TLS and token checks cost: model S served plain, with a token file, with TLS, and with
 * both, at 64 requests in flight, driven by our gRPC client, by h2load (raw gRPC frames, TLS by
 * ALPN) and by our REST client (keep-alive, binary tensors), in interleaved rounds so drift hits
 * every target alike. Each server is a child process from the sources; the median round of each
 * target and generator is reported with its ratio to plain text in the same run.
 *
 *   npx tsx bench/serve/security.ts [--seconds 3] [--rounds 3] [--out FILE|-]
 */
import { appendFile, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpInferenceClient, type GrpcClientOptions, type InferOptions } from '../../src/client/index.js';
import { addTokenRecord } from '../../src/serving/auth/token-store.js';
import { createToken } from '../../src/serving/auth/tokens.js';
import { certificateAuthority } from '../../test/integration/certificates.js';
import { inputRows, modelS, workloadModel } from '../workloads.js';
import { closedLoop, closedLoopOf, grpcBodyFile, h2load, type LoadResult } from './loadgen.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? argv[at + 1]! : fallback;
};
const seconds = Number(option('seconds', '3'));
const rounds = Number(option('rounds', '3'));
const out = option('out', join(fileURLToPath(new URL('../..', import.meta.url)), 'bench', 'RESULTS-serve.md'));
const CONCURRENCY = 64;

const dir = await mkdtemp(join(tmpdir(), 'maas-bench-security-'));
const repository = join(dir, 'repo');
const S = modelS();
await mkdir(join(repository, 'S'), { recursive: true });
const model = workloadModel(S.layers);
await model.save(join(repository, 'S', '1'));
model.dispose();
await writeFile(join(repository, 'S', 'config.json'), JSON.stringify({ max_batch_size: 256, dynamic_batching: {} }));

const ca = await certificateAuthority('bench CA');
const leaf = await ca.issue({ subject: 'CN=bench', server: true });
const files = {
  ca: join(dir, 'ca.pem'),
  cert: join(dir, 'cert.pem'),
  key: join(dir, 'key.pem'),
  tokens: join(dir, 'tokens.json'),
};
await writeFile(files.ca, ca.cert);
await writeFile(files.cert, leaf.cert);
await writeFile(files.key, leaf.key);
const { token, record } = await createToken({ name: 'bench', scopes: ['infer', 'metadata'], models: ['S'] });
await addTokenRecord(files.tokens, record);

interface Target {
  name: string;
  tls: boolean;
  token: boolean;
  server?: ServerProcess;
}
const targets: Target[] = [
  { name: 'plain', tls: false, token: false },
  { name: 'token', tls: false, token: true },
  { name: 'TLS', tls: true, token: false },
  { name: 'TLS + token', tls: true, token: true },
];
for (const t of targets)
  t.server = await startServerProcess({
    built: true, // as npm start runs: compiled, not under tsx
    options: {
      modelRepository: repository,
      host: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      metricsPort: null,
      workers: 1,
      ...(t.tls ? { tls: { certFile: files.cert, keyFile: files.key } } : {}),
      ...(t.token ? { tokenFile: files.tokens } : {}),
    },
  });

const request: InferOptions = {
  model: 'S',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 100], data: inputRows(1, 100, 3) }],
};
const body = await grpcBodyFile(request);
const generators = ['node gRPC', 'h2load gRPC', 'node REST'] as const;
type Generator = (typeof generators)[number];

/** One point, with the server's CPU time per answered request (steadier than req/s on a shared machine). */
async function run(t: Target, generator: Generator): Promise<LoadResult & { cpuUs: number }> {
  const before = t.server!.cpuSeconds();
  const result = await load(t, generator);
  const spent = t.server!.cpuSeconds() - before;
  // The load includes a warm-up the result does not count: scale the CPU to the measured share.
  return { ...result, cpuUs: (spent * 1e6) / (result.requests * (1 + warmupShare(generator))) };
}

/** The warm-up the generator runs before it measures, as a share of the measured time. */
function warmupShare(generator: Generator): number {
  return generator === 'h2load gRPC' ? 1 / seconds : Math.min(1, seconds * 0.25) / seconds;
}

async function load(t: Target, generator: Generator): Promise<LoadResult> {
  const security = {
    ...(t.tls ? { tls: { ca: ca.cert, servername: 'localhost' } } : {}),
    ...(t.token ? { token } : {}),
  } satisfies GrpcClientOptions;
  if (generator === 'node gRPC')
    return closedLoop(`127.0.0.1:${t.server!.grpcPort}`, request, CONCURRENCY, seconds, security);
  if (generator === 'h2load gRPC')
    return h2load(t.server!.grpcPort!, body, CONCURRENCY, seconds, {
      tls: t.tls,
      ...(t.token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });
  const client = new HttpInferenceClient(`${t.tls ? 'https' : 'http'}://127.0.0.1:${t.server!.httpPort}`, security);
  return closedLoopOf((r) => client.infer(r), request, CONCURRENCY, seconds);
}

const samples = new Map<string, (LoadResult & { cpuUs: number })[]>();
try {
  for (let round = 0; round < rounds; round++)
    for (const generator of generators)
      for (const t of targets) {
        const result = await run(t, generator);
        const key = `${t.name}|${generator}`;
        samples.set(key, [...(samples.get(key) ?? []), result]);
        console.log(
          `round ${round + 1} ${generator.padEnd(12)} ${t.name.padEnd(12)} ${result.rps.toFixed(0).padStart(6)} req/s  ${result.cpuUs.toFixed(1).padStart(6)} µs server CPU/request  errors ${result.errors}`,
        );
      }
} finally {
  for (const t of targets) await t.server?.stop();
  await rm(body, { force: true });
  await rm(dir, { recursive: true, force: true });
}

const median = <T extends LoadResult>(results: T[]): T =>
  [...results].sort((a, b) => a.rps - b.rps)[Math.floor(results.length / 2)]!;
const lines = [
  `## TLS and token overhead (${new Date().toISOString().slice(0, 10)})`,
  '',
  `- Command: \`npx tsx bench/serve/security.ts --seconds ${seconds} --rounds ${rounds}\``,
  `- CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, shared with other work); each server: 1 worker in a child process running the built package (dist/); the load generator shares the cores; server CPU is all its threads (main and worker), from /proc, per measured request`,
  `- Model S (100 → 64 → 32 → 1), batch-1 requests, ${CONCURRENCY} in flight, dynamic batching on; median of ${rounds} interleaved rounds of ${seconds} s; TLS 1.3 (ECDSA P-256), one connection per generator; the token is checked on every request (its scrypt hash once, then remembered)`,
  '',
  '| generator | target | req/s | vs plain | server CPU µs/request | vs plain | p50 ms | p99 ms | errors |',
  '|---|---|--:|--:|--:|--:|--:|--:|--:|',
];
for (const generator of generators) {
  const plain = median(samples.get(`plain|${generator}`)!);
  for (const t of targets) {
    const r = median(samples.get(`${t.name}|${generator}`)!);
    const latency = generator.startsWith('h2load') ? ['–', '–'] : [r.p50.toFixed(2), r.p99.toFixed(2)];
    lines.push(
      `| ${generator} | ${t.name} | ${r.rps.toFixed(0)} | ${(r.rps / plain.rps).toFixed(2)}× | ${r.cpuUs.toFixed(1)} | ${(r.cpuUs / plain.cpuUs).toFixed(2)}× | ${latency[0]} | ${latency[1]} | ${r.errors} |`,
    );
  }
}
const text = lines.join('\n') + '\n';
console.log(`\n${text}`);
if (out !== '-') await appendFile(out, `\n${text}`);
