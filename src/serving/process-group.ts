/**
 * Several serving processes on one machine: `maas serve --processes N`. One event loop saturates
 * one core on parsing, batching and answering; N processes run N event loops.
 *
 * Built on node:cluster rather than SO_REUSEPORT: Node exposes no SO_REUSEPORT for HTTP/2
 * servers (grpc-js owns its listening sockets), while cluster shares the listening ports through
 * the primary for every server kind, and gives the IPC channel the group needs anyway. On Linux
 * the primary hands each new connection to the next process in turn; HTTP/2 keeps a client's
 * calls on its connection, so load spreads across processes by connection.
 *
 * The weights are shared through the packed cache (pool/packed-cache.ts): the first process
 * starts alone and packs every model into the cache, the others start after it and map the same
 * files, so N processes × W workers hold one copy in the page cache. What must be the same in
 * every process goes through the primary: a repository load or unload (the process that got
 * the call runs it, then every other one), and /metrics, which answers with the sum over all
 * processes (prom-client's AggregatorRegistry).
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { MaasError } from '../core/errors.js';
import type { ControlOperation, ServingPeers } from './dataplane.js';

const ENV_INDEX = 'MAAS_PROCESS_INDEX';
const ENV_COUNT = 'MAAS_PROCESS_COUNT';

/** The messages between the primary and the serving processes. */
type GroupMessage =
  | { type: 'maas:ready' }
  | { type: 'maas:broadcast'; id: number; operation: ControlOperation }
  | { type: 'maas:broadcast-done'; id: number; error?: string }
  | { type: 'maas:apply'; id: number; operation: ControlOperation }
  | { type: 'maas:applied'; id: number; error?: string }
  | { type: 'maas:metrics'; id: number }
  | { type: 'maas:metrics-text'; id: number; text?: string; error?: string };

function isGroupMessage(message: unknown): message is GroupMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return typeof type === 'string' && type.startsWith('maas:');
}

/** One serving process's side of the group: what serve() takes as its processGroup option. */
export interface ProcessGroup extends ServingPeers {
  /** This process's place in the group: 0 for the one that starts first, and the group's size. */
  readonly index: number;
  readonly count: number;
  /** Every process's metrics, aggregated (Prometheus text). */
  metrics(): Promise<string>;
  /** Runs, in this process, the operations other processes broadcast; `registry` is what metrics() sums. */
  serve(apply: (operation: ControlOperation) => Promise<void>, registry: Registry): void;
  /** Tells the primary that this process serves (the next one may start). */
  ready(): void;
}

/** The group this process serves in, when the primary of `maas serve --processes N` started it; else null. */
export function joinProcessGroup(): ProcessGroup | null {
  if (!cluster.isWorker || process.env[ENV_INDEX] === undefined || !process.send) return null;
  const send = (message: GroupMessage) => process.send!(message);
  const waiting = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  const ask = (message: (id: number) => GroupMessage) =>
    new Promise<string>((resolve, reject) => {
      const id = ++nextId;
      waiting.set(id, { resolve, reject });
      send(message(id));
    });
  let apply: ((operation: ControlOperation) => Promise<void>) | null = null;
  process.on('message', (message: unknown) => {
    if (!isGroupMessage(message)) return; // prom-client's own requests, answered by its listener
    if (message.type === 'maas:apply') {
      const run = apply ? apply(message.operation) : Promise.reject(new Error('this process is still starting'));
      run.then(
        () => send({ type: 'maas:applied', id: message.id }),
        (error: unknown) => send({ type: 'maas:applied', id: message.id, error: (error as Error).message }),
      );
      return;
    }
    if (message.type !== 'maas:broadcast-done' && message.type !== 'maas:metrics-text') return;
    const pending = waiting.get(message.id);
    if (!pending) return;
    waiting.delete(message.id);
    if (message.error !== undefined) pending.reject(new MaasError('MAAS_ERR_PEER_FAILED', message.error));
    else pending.resolve(message.type === 'maas:metrics-text' ? (message.text ?? '') : '');
  });
  return {
    index: Number(process.env[ENV_INDEX]),
    count: Number(process.env[ENV_COUNT]),
    broadcast: (operation) => ask((id) => ({ type: 'maas:broadcast', id, operation })).then(() => {}),
    metrics: () => ask((id) => ({ type: 'maas:metrics', id })),
    serve(handler, registry) {
      apply = handler;
      AggregatorRegistry.setRegistries([registry]);
      new AggregatorRegistry(); // installs prom-client's answer to the primary's metric requests
    },
    ready: () => send({ type: 'maas:ready' }),
  };
}

/** What the primary reports as the group starts and stops. */
export interface GroupEvents {
  started(pids: number[]): void;
  /** A serving process stopped on its own (it is started again a second later). */
  stopped(index: number, code: number | null, signal: string | null): void;
  restarted(index: number, pid: number): void;
  failed(message: string): void;
}

/**
 * Runs as the primary of a group of `count` serving processes: each is this program started
 * again (cluster.fork) with its index in the environment. Process 0 starts first and packs the
 * models into the cache; the others start once it serves. A process that dies is started
 * again; SIGINT or SIGTERM stops them all (each shuts down gracefully) and then the primary.
 * Resolves once every process serves.
 */
export async function runProcessGroup(count: number, events: GroupEvents): Promise<void> {
  const aggregator = new AggregatorRegistry();
  const members: (Worker | null)[] = Array.from({ length: count }, () => null);
  let stopping = false;
  let nextApply = 0;
  const applying = new Map<number, { left: Set<Worker>; errors: string[]; done: (error?: string) => void }>();

  const settleApply = (worker: Worker, id: number, error?: string) => {
    const pending = applying.get(id);
    if (!pending || !pending.left.delete(worker)) return;
    if (error !== undefined) pending.errors.push(`process ${members.indexOf(worker)}: ${error}`);
    if (pending.left.size === 0) {
      applying.delete(id);
      pending.done(pending.errors.length > 0 ? pending.errors.join('; ') : undefined);
    }
  };

  const onMessage = (worker: Worker, message: unknown) => {
    if (!isGroupMessage(message)) return;
    const reply = (m: GroupMessage) => worker.isConnected() && worker.send(m);
    switch (message.type) {
      case 'maas:broadcast': {
        const others = members.filter((m): m is Worker => m !== null && m !== worker && m.isConnected());
        const id = ++nextApply;
        const done = (error?: string) =>
          reply({ type: 'maas:broadcast-done', id: message.id, ...(error !== undefined ? { error } : {}) });
        if (others.length === 0) return done();
        applying.set(id, { left: new Set(others), errors: [], done });
        for (const other of others) other.send({ type: 'maas:apply', id, operation: message.operation });
        return;
      }
      case 'maas:applied':
        return settleApply(worker, message.id, message.error);
      case 'maas:metrics':
        aggregator.clusterMetrics().then(
          (text) => reply({ type: 'maas:metrics-text', id: message.id, text }),
          (error: unknown) => reply({ type: 'maas:metrics-text', id: message.id, error: (error as Error).message }),
        );
        return;
      default:
        return;
    }
  };
  cluster.on('message', onMessage);

  /** Starts process `index`; resolves when it serves, rejects when it exits before. */
  const start = (index: number) =>
    new Promise<Worker>((resolve, reject) => {
      const worker = cluster.fork({ [ENV_INDEX]: String(index), [ENV_COUNT]: String(count) });
      members[index] = worker;
      let serving = false;
      worker.on('message', (message: unknown) => {
        if (isGroupMessage(message) && message.type === 'maas:ready' && !serving) {
          serving = true;
          resolve(worker);
        }
      });
      worker.on('exit', (code, signal) => {
        // Whatever it was still applying counts as failed, so no broadcast waits forever.
        for (const id of [...applying.keys()]) settleApply(worker, id, 'the process stopped');
        if (members[index] === worker) members[index] = null;
        if (!serving) return reject(new Error(`serving process ${index} exited (code ${code}) before serving`));
        if (stopping) return;
        events.stopped(index, code, signal);
        setTimeout(() => {
          if (stopping) return;
          start(index).then(
            (again) => events.restarted(index, again.process.pid!),
            (error: unknown) => events.failed((error as Error).message),
          );
        }, 1000).unref();
      });
    });

  const stop = () => {
    if (stopping) return;
    stopping = true;
    const alive = members.filter((m): m is Worker => m !== null);
    if (alive.length === 0) process.exit(0);
    let left = alive.length;
    for (const worker of alive) {
      worker.once('exit', () => {
        if (--left === 0) process.exit(0);
      });
      worker.process.kill('SIGTERM');
    }
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  try {
    const first = await start(0);
    const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1)));
    events.started([first, ...rest].map((w) => w.process.pid!));
  } catch (error) {
    stopping = true;
    for (const m of members) m?.process.kill('SIGTERM');
    throw error;
  }
}
