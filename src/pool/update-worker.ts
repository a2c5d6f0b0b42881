/**
 * The update thread: started for one task (its UpdateThreadData is the thread's workerData) — a
 * model update (trains the candidate with the native threads it was given, posts each epoch,
 * scores and stages it: lifecycle/update.ts), a federated round's close (lifecycle/federated-round.ts)
 * or reading a model file's weights — and posts the result. The pool then ends
 * the thread, and with it the heap that held the rows. It runs at the lowest priority: the CPU
 * it takes beyond its reserved workers is what inference leaves idle.
 */
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { MaasError } from '../core/errors.js';
import { runUpdate } from '../lifecycle/update.js';
import { baseWeights, runFederatedRound } from '../lifecycle/federated-round.js';
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
    const { task } = data;
    const result =
      task.kind === 'update'
        ? await runUpdate(task.job, (epoch) => post({ kind: 'epoch', epoch }))
        : task.kind === 'federated'
          ? await runFederatedRound(task.job)
          : await baseWeights(task.file);
    // Weights go back moved, not copied.
    const transfer =
      task.kind === 'weights' ? (result as { values: Float32Array }[]).map((w) => w.values.buffer as ArrayBuffer) : [];
    parentPort!.postMessage({ kind: 'done', result } satisfies FromUpdateWorker, transfer);
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
