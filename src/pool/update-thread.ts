/**
 * One thread per model update: started when the update's rows are in, ended as soon as it
 * answers or is cancelled. Its rows are moved to it, not copied; its epochs come back as they end.
 */
import { Worker } from 'node:worker_threads';
import { MaasError, isErrorCode } from '../core/errors.js';
import type { UpdateEpoch, UpdateJob, UpdateVerdict } from '../lifecycle/update.js';
import { native } from '../native/index.js';
import { moduleEntry } from './entry.js';
import type { FromUpdateWorker, UpdateThreadData } from './messages.js';

/** runUpdateThread()'s settings. */
export interface UpdateThreadOptions {
  /** Native intra-op threads the update may use. */
  threads: number;
  /** The thread's JavaScript heap cap in MB. */
  heapMb: number;
  /** Ends the thread: the update is cancelled (rejects with the signal's reason). */
  signal: AbortSignal;
  onEpoch: (epoch: UpdateEpoch) => void;
}

/** The job's row buffers, to move to the thread (each once). */
function buffersOf(job: UpdateJob): ArrayBuffer[] {
  const views = [job.train.x, job.train.y, ...('file' in job.holdout ? [] : [job.holdout.x, job.holdout.y])];
  const buffers = new Set<ArrayBuffer>();
  for (const v of views) if (v.buffer instanceof ArrayBuffer) buffers.add(v.buffer);
  return [...buffers];
}

/** Runs `job` in a new thread; resolves with its verdict, rejects with its coded error or the signal's reason. */
export async function runUpdateThread(job: UpdateJob, options: UpdateThreadOptions): Promise<UpdateVerdict> {
  const { signal } = options;
  signal.throwIfAborted();
  const entry = moduleEntry('update-worker');
  const data: UpdateThreadData & { maasModule?: string } = {
    job,
    threads: options.threads,
    maasModule: entry.threadModule,
  };
  const thread = new Worker(entry.threadEntry, {
    execArgv: entry.execArgv,
    workerData: data,
    transferList: buffersOf(job),
    resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
  });
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<UpdateVerdict>((resolve, reject) => {
      thread.on('message', (message: FromUpdateWorker) => {
        if (message.kind === 'epoch') options.onEpoch(message.epoch);
        else if (message.kind === 'done') resolve(message.verdict);
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
