/**
 * Load generators for the serving bench: a closed loop over our gRPC client (each of C callers
 * sends its next request when the previous answer arrives), and Debian's h2load (nghttp2) driving
 * the same ModelInfer request as raw gRPC frames, as a second, non-Node generator.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { GrpcInferenceClient, type GrpcClientOptions, type InferOptions } from '../../src/client/index.js';
import { encodeInferRequest } from '../../src/client/grpc.js';
import { inferenceService } from '../../src/protocol/grpc.js';

/** One point of a sweep. */
export interface LoadResult {
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Runs `concurrency` callers in a closed loop for `seconds` (after a warm-up), latencies in ms. */
export async function closedLoop(
  address: string,
  request: InferOptions,
  concurrency: number,
  seconds: number,
  clientOptions: GrpcClientOptions = {},
): Promise<LoadResult> {
  const client = new GrpcInferenceClient(address, clientOptions);
  return closedLoopOf((r) => client.infer(r), request, concurrency, seconds).finally(() => client.close());
}

/** The closed loop over any infer call (a REST client, a client with TLS and a token). */
export async function closedLoopOf(
  infer: (request: InferOptions) => Promise<unknown>,
  request: InferOptions,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  const warmEnd = performance.now() + Math.min(1000, seconds * 250);
  let measuring = false;
  let stop = false;
  const latencies: number[] = [];
  let errors = 0;
  const caller = async () => {
    while (!stop) {
      const start = performance.now();
      try {
        await infer(request);
        if (measuring) latencies.push(performance.now() - start);
      } catch {
        if (measuring) errors++;
      }
    }
  };
  const callers = Array.from({ length: concurrency }, caller);
  await new Promise((r) => setTimeout(r, Math.max(0, warmEnd - performance.now())));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(callers);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    requests: latencies.length,
    errors,
    seconds: elapsed,
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
  };
}

let bodyFiles = 0;

/** The request as one length-prefixed gRPC message, the body h2load sends (a new file per call). */
export async function grpcBodyFile(request: InferOptions): Promise<string> {
  const method = inferenceService().service.ModelInfer!;
  const message = method.requestSerialize(encodeInferRequest(request));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const path = join(tmpdir(), `maas-h2load-${process.pid}-${++bodyFiles}.bin`);
  await writeFile(path, frame);
  return path;
}

/**
 * h2load with `concurrency` streams (over one connection unless told) for `seconds`. h2load counts HTTP status
 * only; gRPC errors travel in trailers, so callers check the server's success count separately.
 */
export async function h2load(
  port: number,
  bodyFile: string,
  concurrency: number,
  seconds: number,
  options: { tls?: boolean; headers?: Record<string, string>; connections?: number } = {},
): Promise<LoadResult> {
  // `concurrency` streams in all, spread over the connections (several serving processes take
  // connections, not streams, in turn).
  const connections = options.connections ?? 1;
  const extra = Object.entries(options.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  // Every request's latency (h2load's log: start µs, status, duration µs per line) gives percentiles.
  const log = join(tmpdir(), `maas-h2load-${process.pid}-${++bodyFiles}.log`);
  const args = [
    '--log-file',
    log,
    '-c',
    String(connections),
    '-m',
    String(Math.ceil(concurrency / connections)),
    '-D',
    String(seconds),
    '--warm-up-time',
    '1',
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    ...extra,
    '-d',
    bodyFile,
    // With https h2load negotiates h2 by ALPN and does not check the certificate.
    `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/inference.GRPCInferenceService/ModelInfer`,
  ];
  const { stdout } = await promisify(execFile)('h2load', args, { maxBuffer: 1 << 24 });
  const durations = (await readFile(log, 'utf8'))
    .split('\n')
    .map((line) => Number(line.split('\t')[2]))
    .filter(Number.isFinite)
    .sort((x, y) => x - y);
  await rm(log, { force: true });
  const quantile = (q: number) =>
    durations.length > 0 ? durations[Math.min(durations.length - 1, Math.floor(q * durations.length))]! / 1000 : NaN;
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  const unit = (value: string, u: string) => Number(value) * (u === 'us' ? 1e-3 : u === 's' ? 1e3 : 1);
  const lat = /time for request:\s+(\S+?)(us|ms|s)\s+(\S+?)(us|ms|s)\s+(\S+?)(us|ms|s)/.exec(stdout);
  const done = num(/requests: \d+ total, \d+ started, (\d+) done/);
  const failed = num(/\d+ succeeded, (\d+) failed/);
  const rps = num(/finished in [\d.]+\w+, ([\d.]+) req\/s/);
  return {
    concurrency,
    requests: done,
    errors: failed,
    seconds,
    rps,
    // Percentiles of the logged requests (the warm-up's are not logged); the mean when none were.
    p50: durations.length > 0 ? quantile(0.5) : lat ? unit(lat[5]!, lat[6]!) : NaN,
    p90: quantile(0.9),
    p99: quantile(0.99),
  };
}
