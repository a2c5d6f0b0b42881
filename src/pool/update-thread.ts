/**
 * One thread per background task (a model update, a federated round's close, a model's weights
 * read): started for it, ended as soon as it answers or is cancelled. Rows and deltas are moved to
 * it, not copied; an update's epochs come back as they end.
 */
import { Worker } from 'node:worker_threads';
import { MaasError, isErrorCode } from '../core/errors.js';
import type { UpdateEpoch, UpdateJob } from '../lifecycle/update.js';
import { native } from '../native/index.js';
import { moduleEntry } from './entry.js';
import type { BackgroundResults, BackgroundTask, FromUpdateWorker, UpdateThreadData } from './messages.js';

/** runUpdateThread()'s settings. */
export interface UpdateThreadOptions {
  /** Native intra-op threads the update may use. */
  threads: number;
  /** The thread's JavaScript heap cap in MB. */
  heapMb: number;
  /** Ends the thread: the update is cancelled (rejects with the signal's reason). */
  signal: AbortSignal;
  /** Hears an update's epochs. */
  onEpoch?: (epoch: UpdateEpoch) => void;
}

/** The task's row and delta buffers, to move to the thread (each once). */
function buffersOf(task: BackgroundTask): ArrayBuffer[] {
  const views: Float32Array[] =
    task.kind === 'update'
      ? rowsOf(task.job)
      : task.kind === 'federated'
        ? task.job.updates.flatMap((u) => [...u.delta])
        : [];
  const buffers = new Set<ArrayBuffer>();
  // Only a buffer a view owns whole moves; a shared one is copied by the structured clone.
  for (const v of views)
    if (v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength)
      buffers.add(v.buffer);
  return [...buffers];
}

function rowsOf(job: UpdateJob): Float32Array[] {
  return [job.train.x, job.train.y, ...('file' in job.holdout ? [] : [job.holdout.x, job.holdout.y])];
}

/** Runs `task` in a new thread; resolves with its result, rejects with its coded error or the signal's reason. */
export async function runUpdateThread<K extends BackgroundTask['kind']>(
  task: Extract<BackgroundTask, { kind: K }>,
  options: UpdateThreadOptions,
): Promise<BackgroundResults[K]> {
  const { signal } = options;
  signal.throwIfAborted();
  const entry = moduleEntry('update-worker');
  const data: UpdateThreadData & { maasModule?: string } = {
    task,
    threads: options.threads,
    maasModule: entry.threadModule,
  };
  const thread = new Worker(entry.threadEntry, {
    execArgv: entry.execArgv,
    workerData: data,
    transferList: buffersOf(task),
    resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
  });
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<BackgroundResults[K]>((resolve, reject) => {
      thread.on('message', (message: FromUpdateWorker) => {
        if (message.kind === 'epoch') options.onEpoch?.(message.epoch);
        else if (message.kind === 'done') resolve(message.result as BackgroundResults[K]);
        else
          reject(new MaasError(isErrorCode(message.code) ? message.code : 'MAAS_ERR_NATIVE_INTERNAL', message.message));
      });
      thread.once('error', (error) =>
        reject(new MaasError('MAAS_ERR_NATIVE_INTERNAL', `The update thread failed: ${error.message}`)),
      );
      thread.once('exit', (code) =>
        reject(
          new MaasError('MAAS_ERR_NATIVE_INTERNAL', `The update thread ended (exit code ${code}) before answering`),
        ),
      );
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    await thread.terminate();
    native.releaseFreeMemory();
  }
}
