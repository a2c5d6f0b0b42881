/**
 * A link to one inference worker, whichever its isolation: a worker thread (messages transfer
 * buffers) or a child process (messages are serialized over its IPC channel; a native abort or an
 * out-of-memory kill ends only that process).
 */
import { fork } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { moduleEntry } from './entry.js';
import type { FromWorker, ToWorker, WorkerIsolation, WorkerOptions } from './messages.js';

/** A worker's JavaScript heap cap (MB): it holds only handles and one batch at a time. */
const WORKER_HEAP_MB = 512;

/** What the pool hears from a link. */
export interface LinkEvents {
  message(message: FromWorker): void;
  /** The worker is gone, for the reason in words (an exit code, a signal, an error). */
  exit(reason: string): void;
}

export interface WorkerLink {
  /** The worker's process id (the serving process's for a thread). */
  readonly pid: number;
  send(message: ToWorker, transfer?: ArrayBuffer[]): void;
  terminate(): Promise<void>;
}

export function startWorker(isolation: WorkerIsolation, options: WorkerOptions, events: LinkEvents): WorkerLink {
  return isolation === 'process' ? startProcess(options, events) : startThread(options, events);
}

function startThread(options: WorkerOptions, events: LinkEvents): WorkerLink {
  const entry = moduleEntry('worker');
  const worker = new Worker(entry.threadEntry, {
    execArgv: entry.execArgv,
    workerData: { ...options, maasModule: entry.threadModule },
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
  });
  let failure: Error | null = null;
  worker.on('message', (message: FromWorker) => events.message(message));
  worker.on('error', (error) => (failure = error));
  worker.on('exit', (code) => events.exit(failure ? failure.message : `exit code ${code}`));
  worker.unref();
  return {
    pid: process.pid,
    send: (message, transfer) => worker.postMessage(message, transfer ?? []),
    terminate: async () => void (await worker.terminate()),
  };
}

function startProcess(options: WorkerOptions, events: LinkEvents): WorkerLink {
  const entry = moduleEntry('worker');
  const child = fork(entry.module, [], {
    execArgv: [...entry.execArgv, `--max-old-space-size=${WORKER_HEAP_MB}`],
    serialization: 'advanced',
    env: { ...process.env, MAAS_WORKER_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let failure: Error | null = null;
  child.on('message', (message: FromWorker) => events.message(message));
  child.on('error', (error) => (failure = error));
  child.on('exit', (code, signal) =>
    events.exit(failure ? failure.message : signal ? `signal ${signal}` : `exit code ${code}`),
  );
  // The pool keeps the process alive while executions run; an idle worker never does.
  child.unref();
  child.channel?.unref();
  return {
    get pid() {
      return child.pid ?? -1;
    },
    // A send to a process that just died fails here; its exit event fails what it was running.
    send: (message) => void child.send(message, () => {}),
    terminate: async () => {
      child.ref(); // its exit must keep the process alive until it is seen
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
