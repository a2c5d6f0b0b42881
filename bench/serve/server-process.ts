/**
 * A maas server in a child process for the serving benches: serve() from a checkout's own sources
 * (run under tsx, so one script can measure two commits), with serve()'s options as JSON. The child
 * prints its ports, and answers IPC requests for its resident memory. The load generators stay in
 * the parent, so the server's event loop and memory are its own.
 *
 *   child:  node --import tsx --expose-gc server-process.ts --child <checkout> <options json>
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** A running server child. */
export interface ServerProcess {
  child: ChildProcess;
  grpcPort: number | null;
  httpPort: number | null;
  metricsPort: number | null;
  /** The child's resident set in bytes; after two full collections when `gc`. */
  rss(gc?: boolean): Promise<number>;
  /** CPU seconds the child has used (all its threads: user + system), from /proc. */
  cpuSeconds(): number;
  /** The child's event-loop delay since the last call (p99 and max, ms): how long its loop was blocked. */
  loopDelay(): Promise<{ p99: number; max: number }>;
  /** SIGTERM (the server's own shutdown), then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/** What to start. */
export interface ServerProcessOptions {
  /** The maas source tree whose src/serving/server.ts runs (default: this one). */
  checkout?: string;
  /** serve()'s options (modelRepository and the ports at least); `logLevel` defaults to 'warn'. */
  options: Record<string, unknown>;
  /** Raise the child's open-file limit to this (`ulimit -n`, as root allows). */
  openFiles?: number;
  /** Run the checkout's built package (dist/, as `npm start` runs) rather than its sources under tsx. */
  built?: boolean;
}

const HERE = fileURLToPath(import.meta.url);

/** Starts the child and resolves once it listens. */
export async function startServerProcess({
  checkout,
  options,
  openFiles,
  built,
}: ServerProcessOptions): Promise<ServerProcess> {
  const dir = checkout ?? fileURLToPath(new URL('../..', import.meta.url));
  const node = [
    process.execPath,
    '--import',
    import.meta.resolve('tsx'),
    '--expose-gc',
    HERE,
    '--child',
    dir,
    JSON.stringify(options),
    ...(built ? ['--built'] : []),
  ];
  const quoted = node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // `exec` keeps the IPC descriptor and NODE_CHANNEL_FD, so the shell only sets the limit.
  const script = openFiles ? `ulimit -n ${openFiles} && exec ${quoted}` : `exec ${quoted}`;
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const ports = await new Promise<{ grpc: number | null; http: number | null; metrics: number | null }>((ok, fail) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY (\{.*\})/.exec(out);
      if (m) ok(JSON.parse(m[1]!) as { grpc: number | null; http: number | null; metrics: number | null });
    });
    child.once('exit', (code) => fail(new Error(`server child (${dir}) exited with ${code} before it was ready`)));
  });
  let asked = 0;
  const ask = <T>(question: object) =>
    new Promise<T>((ok) => {
      const id = ++asked;
      const onMessage = (m: { id: number; answer: T }) => {
        if (m.id !== id) return;
        child.off('message', onMessage);
        ok(m.answer);
      };
      child.on('message', onMessage);
      child.send({ id, ...question });
    });
  const rss = (gc = false) => ask<number>({ gc });
  const loopDelay = () => ask<{ p99: number; max: number }>({ loopDelay: true });
  const stop = () =>
    new Promise<void>((ok) => {
      if (child.exitCode !== null) return ok();
      child.once('exit', () => ok());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    });
  const cpuSeconds = () => {
    // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  return {
    child,
    grpcPort: ports.grpc,
    httpPort: ports.http,
    metricsPort: ports.metrics,
    rss,
    cpuSeconds,
    loopDelay,
    stop,
  };
}

async function child(dir: string, optionsJson: string, built: boolean): Promise<void> {
  const entry = built ? join(dir, 'dist', 'src', 'serving', 'server.js') : join(dir, 'src', 'serving', 'server.ts');
  const { serve } = (await import(pathToFileURL(entry).href)) as {
    serve: (o: object) => Promise<{
      grpcPort: number | null;
      httpPort: number | null;
      metricsPort: number | null;
      close(): Promise<void>;
    }>;
  };
  const { pino } = await import('pino');
  const options = JSON.parse(optionsJson) as Record<string, unknown>;
  const server = await serve({ ...options, logger: pino({ level: (options.logLevel as string) ?? 'warn' }) });
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  process.on('message', (m: { id: number; gc?: boolean; loopDelay?: boolean }) => {
    if (m.loopDelay) {
      process.send!({ id: m.id, answer: { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 } });
      delay.reset();
      return;
    }
    if (m.gc) {
      globalThis.gc?.();
      globalThis.gc?.();
    }
    process.send!({ id: m.id, answer: process.memoryUsage().rss });
  });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
  console.log(`READY ${JSON.stringify({ grpc: server.grpcPort, http: server.httpPort, metrics: server.metricsPort })}`);
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, process.argv[5] === '--built');

/** The p-th quantile of `values` (nearest rank), NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** The middle value (the upper one of an even count). */
export const median = (xs: number[]): number => percentile(xs, 0.5);

/** A number for a table: two decimals, or '–'. */
export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
