/**
 * A pool worker, as a thread of the serving process or a process of its own: keeps one light
 * native handle per model version, each over its own read-only mapping of the version's shared
 * region, and runs synchronous predicts. Nothing here copies weights.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MaasError } from '../core/errors.js';
import { native, type NativeInputGradientHandle, type NativeModelHandle } from '../native/index.js';
import { openInputGradients, openPackedRegion } from '../model/packed.js';
import { runExplainTask } from '../explain/task.js';
import {
  RESULT_HEADER_BYTES,
  type FromWorker,
  type SharedWeights,
  type ToWorker,
  type WorkerFault,
  type WorkerOptions,
} from './messages.js';

/** How this worker talks to the pool: a thread's port, or a process's IPC channel. */
interface Channel {
  options: WorkerOptions;
  send(message: FromWorker, transfer?: ArrayBuffer[]): void;
  onMessage(listener: (message: ToWorker) => void): void;
}

function threadChannel(): Channel {
  const port = parentPort!;
  return {
    options: workerData as WorkerOptions,
    send: (message, transfer) => port.postMessage(message, transfer ?? []),
    onMessage: (listener) => port.on('message', listener),
  };
}

function processChannel(): Channel {
  const send = process.send!.bind(process);
  return {
    options: JSON.parse(process.env.MAAS_WORKER_OPTIONS ?? '{}') as WorkerOptions,
    send: (message) => void send(message),
    onMessage: (listener) => process.on('message', listener as (message: unknown) => void),
  };
}

const channel = parentPort ? threadChannel() : processChannel();
const { options } = channel;
const inServingProcess = options.servingPid === process.pid;
native.setThreads(options.threadsPerWorker);

const handles = new Map<string, NativeModelHandle>();
const gradientHandles = new Map<string, NativeInputGradientHandle>();

/** Runs `open` over a region of the serving process: directly in a thread, through /proc from a process. */
function overRegion<T>(region: { fd: number; byteLength: number }, open: (fd: number) => T): T {
  if (inServingProcess) return open(region.fd);
  const fd = native.openRegion(`/proc/${options.servingPid}/fd/${region.fd}`);
  try {
    return open(fd);
  } finally {
    native.closeRegion(fd);
  }
}

/**
 * The version's handle, opened on first use: a thread maps the region through the serving
 * process's descriptor; a process opens its own descriptor through /proc first, maps, and closes it.
 */
function handleFor(weights: SharedWeights): NativeModelHandle {
  let handle = handles.get(weights.key);
  if (handle) return handle;
  handle = overRegion(weights, (fd) => openPackedRegion({ ...weights, fd }));
  handles.set(weights.key, handle);
  return handle;
}

/** The version's input-gradient handle over its round trip (null when it was loaded without one). */
function gradientsFor(weights: SharedWeights): NativeInputGradientHandle | null {
  const roundTrip = weights.roundTrip;
  if (!roundTrip) return null;
  let handle = gradientHandles.get(weights.key);
  if (!handle) {
    handle = overRegion(roundTrip, (fd) => openInputGradients({ fd, byteLength: roundTrip.byteLength }));
    gradientHandles.set(weights.key, handle);
  }
  return handle;
}

function explain(message: Extract<ToWorker, { kind: 'explain' }>): void {
  try {
    const start = process.hrtime.bigint();
    const explanations = runExplainTask(
      handleFor(message.weights),
      gradientsFor(message.weights),
      message.task,
      message.weights.format === 'fp32',
    );
    const computeNs = Number(process.hrtime.bigint() - start);
    channel.send({ kind: 'explained', id: message.id, explanations, computeNs });
  } catch (error) {
    sendError(message.id, error);
  }
}

function infer(message: Extract<ToWorker, { kind: 'infer' }>): void {
  try {
    const handle = handleFor(message.weights);
    const result = new ArrayBuffer(RESULT_HEADER_BYTES + message.rows * message.outputSize * 4);
    const y = new Float32Array(result, RESULT_HEADER_BYTES);
    const start = process.hrtime.bigint();
    handle.predict(message.x, message.rows, y);
    new Float64Array(result, 0, 1)[0] = Number(process.hrtime.bigint() - start);
    channel.send({ kind: 'result', id: message.id, result }, [result]);
  } catch (error) {
    sendError(message.id, error);
  }
}

/** An execution's failure, with its code (an uncoded one is the addon's internal error). */
function sendError(id: number, error: unknown): void {
  const code = error instanceof MaasError ? error.code : 'MAAS_ERR_NATIVE_INTERNAL';
  channel.send({ kind: 'error', id, code, message: (error as Error).message });
}

/** The version is gone: its handle unmaps the weights now, not at some later collection. */
function retire(key: string): void {
  handles.get(key)?.dispose();
  handles.delete(key);
  gradientHandles.get(key)?.dispose();
  gradientHandles.delete(key);
  channel.send({ kind: 'retired', key });
}

/** Test hooks only: the faults a worker must survive being the victim of. */
function fault(kind: WorkerFault): void {
  if (!options.testHooks) return;
  if (kind === 'exit') process.exit(70);
  if (kind === 'abort') process.abort();
  if (kind === 'oom') {
    const hoard: number[][] = [];
    for (;;) hoard.push(Array.from({ length: 1 << 20 }, (_, i) => i));
  }
}

channel.onMessage((message) => {
  if (message.kind === 'infer') infer(message);
  else if (message.kind === 'explain') explain(message);
  else if (message.kind === 'retire') retire(message.key);
  else if (message.kind === 'ping') channel.send({ kind: 'pong', id: message.id });
  else fault(message.fault);
});
channel.send({ kind: 'ready' });
