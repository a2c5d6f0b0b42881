/**
 * One load thread per model file: started for the load, ended as soon as it answers (or when the
 * load is stopped), and the allocator's free pages handed back after it, so nothing of a model
 * file stays resident once its weights are packed.
 */
import { Worker } from 'node:worker_threads';
import { MaasError } from '../core/errors.js';
import type { ModelKeys } from '../io/model-keys.js';
import { native } from '../native/index.js';
import { moduleEntry } from './entry.js';
import type { FromLoadWorker, KeyAnswer, LoadReply, LoadRequest } from './messages.js';

/** Answers the thread's request for a key from `keys`; a failure goes back as its code and message. */
function answerKeyRequest(thread: Worker, keys: ModelKeys, keyId: string): void {
  // Through a promise: a ModelKeys that throws instead of rejecting still gets its answer back.
  Promise.resolve(keyId)
    .then((id) => keys.key(id))
    .then(
      (key) => thread.postMessage({ keyId, ok: true, key } satisfies KeyAnswer),
      (error: unknown) =>
        thread.postMessage({
          keyId,
          ok: false,
          code: error instanceof MaasError ? error.code : '',
          message: error instanceof Error ? error.message : String(error),
        } satisfies KeyAnswer),
    );
}

/**
 * Runs `request` in a new thread with a heap cap of `heapMb`; `signal` ends the thread; `keys`
 * answers the thread's requests for the keys of encrypted files. Rejects with the signal's
 * reason, or with the thread's own error (out of heap, a crash).
 */
export async function runLoadThread(
  request: LoadRequest,
  heapMb: number,
  signal: AbortSignal,
  keys: ModelKeys,
): Promise<LoadReply> {
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
      thread.on('message', (message: FromLoadWorker) => {
        if ('keyRequest' in message) answerKeyRequest(thread, keys, message.keyRequest);
        else resolve(message);
      });
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
