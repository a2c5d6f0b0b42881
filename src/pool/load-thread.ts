/**
 * One load thread per model file: started for the load, ended as soon as it answers (or when the
 * load is stopped), and the allocator's free pages handed back after it, so nothing of a model
 * file stays resident once its weights are packed.
 */
import { Worker } from 'node:worker_threads';
import { native } from '../native/index.js';
import { moduleEntry } from './entry.js';
import type { LoadReply, LoadRequest } from './messages.js';

/**
 * Runs `request` in a new thread with a heap cap of `heapMb`; `signal` ends the thread. Rejects
 * with the signal's reason, or with the thread's own error (out of heap, a crash).
 */
export async function runLoadThread(request: LoadRequest, heapMb: number, signal: AbortSignal): Promise<LoadReply> {
  signal.throwIfAborted();
  const entry = moduleEntry('load-worker');
  const thread = new Worker(entry.threadEntry, {
    execArgv: entry.execArgv,
    workerData: { ...request, maasModule: entry.threadModule },
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
  });
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<LoadReply>((resolve, reject) => {
      thread.once('message', resolve);
      thread.once('error', reject);
      thread.once('exit', (code) => reject(new Error(`the load thread ended (exit code ${code}) before answering`)));
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    await thread.terminate();
    native.releaseFreeMemory();
  }
}
