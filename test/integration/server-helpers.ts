/**
 * Integration helpers: model repositories written to temporary directories, and the real server
 * started on ephemeral ports with its logs silenced.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Random, dense, initializers, sequential, type Sequential } from '../../src/index.js';
import { serve, type RunningServer, type ServeOptions } from '../../src/serving/server.js';
import { InferenceServerError } from '../../src/client/index.js';

/** A small seeded model: in → 16 relu → out (softmax when out > 1, else sigmoid). */
export function smallModel(inputs: number, outputs: number, seed: number): Sequential {
  return sequential({
    layers: [
      dense({
        units: 16,
        activation: 'relu',
        inputShape: [inputs],
        kernelInitializer: initializers.glorotUniform({ seed }),
        biasInitializer: initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: seed + 7 }),
      }),
      dense({
        units: outputs,
        activation: outputs > 1 ? 'softmax' : 'sigmoid',
        kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

/** Writes `model` as `<root>/<name>/<version>/` and, when given, `<root>/<name>/config.json`. */
export async function addVersion(
  root: string,
  name: string,
  version: number,
  model: Sequential,
  config?: object,
): Promise<void> {
  await mkdir(join(root, name), { recursive: true });
  await model.save(join(root, name, String(version)));
  if (config) await writeFile(join(root, name, 'config.json'), JSON.stringify(config));
}

export async function tempRepository(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'maas-repo-'));
}

/** A pino logger that keeps its records in memory, parsed. */
export function memoryLogger(level = 'info') {
  const records: { level: number; msg: string; [field: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level }, stream), records };
}

/** The server on ephemeral ports, two workers, silent logs. */
export function startServer(modelRepository: string, options: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return serve({
    modelRepository,
    grpcPort: 0,
    httpPort: 0,
    metricsPort: 0,
    workers: 2,
    logger: pino({ level: 'silent' }),
    ...options,
  });
}

/** Seeded inputs in [-1, 1). */
export function inputs(rows: number, width: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: rows * width }, () => r.uniform(-1, 1));
}

/** The InferenceServerError `work` rejects with (a test fails if it resolves, or rejects with another error). */
export async function refusal(work: Promise<unknown>): Promise<InferenceServerError> {
  const error = await work.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(error instanceof InferenceServerError))
    throw new Error(
      `expected an InferenceServerError but the call ${error === null ? 'resolved' : `threw ${error instanceof Error ? error.message : JSON.stringify(error)}`}`,
    );
  return error;
}

/**
 * The ports `maas serve` (a child process started with piped output) prints in its banner:
 * resolves once the REST line (and the gRPC one, when `grpc` is asked for) is out; rejects with
 * the output if the process exits first.
 */
export function bannerPorts(child: ChildProcess, grpc = false): Promise<{ http: number; grpc: number }> {
  let output = '';
  return new Promise((resolve, reject) => {
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      const http = /REST\s+http:\/\/127\.0\.0\.1:(\d+)\/v2/.exec(output);
      const grpcLine = /gRPC\s+127\.0\.0\.1:(\d+)/.exec(output);
      if (http && (grpcLine || !grpc)) resolve({ http: Number(http[1]), grpc: Number(grpcLine?.[1] ?? NaN) });
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    child.once('exit', (code) => reject(new Error(`maas serve exited (${code}): ${output}`)));
  });
}

/** Waits until `condition` holds, asking every `everyMs`; fails naming `what` after `ms`. */
export async function until(condition: () => Promise<boolean>, what: string, ms = 20_000, everyMs = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
