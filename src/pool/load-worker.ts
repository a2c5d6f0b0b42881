/**
 * The load thread: started for one model file (its LoadRequest is the thread's workerData), it
 * opens the file (read, decrypt, parse, checksum, check, fold), packs the weights straight into a
 * shared-memory region and posts the region's descriptor, so a large model loads without
 * stalling the event loop that answers requests. The pool then ends the thread, and with it
 * the heap that held the file (and, for an encrypted file, its plaintext).
 */
import type { KeyObject } from 'node:crypto';
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { MaasError, isErrorCode } from '../core/errors.js';
import type { ModelKeys } from '../io/model-keys.js';
import type { KeyAnswer, KeyRequest, LoadReply, LoadRequest } from './messages.js';
import { openAndPack } from './open-and-pack.js';
import { sourceHooks } from './source-hooks.js';

// Loading is background work: at the lowest priority this thread takes only the CPU that the
// event loop and the inference workers leave idle. On Linux a nice value belongs to the calling
// thread (elsewhere it would be the whole process's, so it is left alone there).
if (process.platform === 'linux') {
  try {
    setPriority(constants.priority.PRIORITY_LOW);
  } catch {
    // not permitted here: the load still runs, at normal priority
  }
}

/** The keys of encrypted files, asked of the thread's owner (see KeyRequest). */
const keysFromOwner: ModelKeys = {
  key(keyId: string): Promise<KeyObject> {
    return new Promise((resolve, reject) => {
      const onAnswer = (answer: KeyAnswer) => {
        if (answer.keyId !== keyId) return;
        parentPort!.off('message', onAnswer);
        if (answer.ok) resolve(answer.key);
        else
          reject(new MaasError(isErrorCode(answer.code) ? answer.code : 'MAAS_ERR_MODEL_KEY_UNKNOWN', answer.message));
      };
      parentPort!.on('message', onAnswer);
      parentPort!.postMessage({ keyRequest: keyId } satisfies KeyRequest);
    });
  },
};

/** One load: the model, or the error's code and message (an Error's own fields do not cross threads). */
async function loadTask(request: LoadRequest): Promise<LoadReply> {
  try {
    await sourceHooks();
    return { ok: true, model: await openAndPack(request, keysFromOwner) };
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    return {
      ok: false,
      code: error instanceof MaasError ? error.code : typeof e?.code === 'string' ? e.code : '',
      message: String(e?.message ?? error),
    };
  }
}

void loadTask(workerData as LoadRequest).then((reply) => parentPort!.postMessage(reply));
