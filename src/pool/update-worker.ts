/**
 * The update thread: started for one model update (its UpdateThreadData is the thread's
 * workerData), it trains the candidate with the native threads it was given, posts each epoch,
 * scores and stages the candidate (lifecycle/update.ts), and posts the verdict. The pool then ends
 * the thread, and with it the heap that held the rows. It runs at the lowest priority: the CPU
 * it takes beyond its reserved workers is what inference leaves idle.
 */
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { MaasError } from '../core/errors.js';
import { runUpdate } from '../lifecycle/update.js';
import { native } from '../native/index.js';
import type { FromUpdateWorker, UpdateThreadData } from './messages.js';
import { sourceHooks } from './source-hooks.js';

if (process.platform === 'linux') {
  try {
    setPriority(constants.priority.PRIORITY_LOW);
  } catch {
    // not permitted here: the update still runs, at normal priority
  }
}

const post = (message: FromUpdateWorker) => parentPort!.postMessage(message);
const data = workerData as UpdateThreadData;

async function update(): Promise<void> {
  try {
    await sourceHooks();
    native.setThreads(data.threads);
    const verdict = await runUpdate(data.job, (epoch) => post({ kind: 'epoch', epoch }));
    post({ kind: 'done', verdict });
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    post({
      kind: 'failed',
      code: error instanceof MaasError ? error.code : typeof e?.code === 'string' ? e.code : '',
      message: String(e?.message ?? error),
    });
  }
}

void update();
