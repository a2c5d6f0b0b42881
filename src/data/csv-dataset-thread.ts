/**
 * The thread that reads a CSV file for csvDataset, so that parsing and preparing rows runs on
 * another core while the training step runs on the caller's: one fitting pass, or one batch pass
 * whose batches are moved (not copied) to the caller, never more than the caller's credit ahead.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MaasError } from '../core/errors.js';
import {
  batchPass,
  fileChunks,
  fitPass,
  type BatchPassOptions,
  type BatchPassResult,
  type FitPassOptions,
} from './csv-passes.js';

/** What the caller asks of the thread. */
export type DataThreadJob =
  | { job: 'fit'; path: string; options: FitPassOptions }
  | { job: 'batches'; path: string; options: BatchPassOptions; credit: number };

/** What the thread answers. */
export type DataThreadReply =
  | { type: 'fitted'; result: Awaited<ReturnType<typeof fitPass>> }
  | { type: 'batch'; x: Float32Array; y: Float32Array; rows: number }
  | ({ type: 'end' } & BatchPassResult)
  | { type: 'error'; code: string; message: string };

/** The caller's credit: one more batch may be sent. */
export interface DataThreadCredit {
  type: 'credit';
}

const port = parentPort!;
const job = workerData as DataThreadJob;

async function run(): Promise<void> {
  if (job.job === 'fit') {
    port.postMessage({
      type: 'fitted',
      result: await fitPass(fileChunks(job.path), job.options),
    } satisfies DataThreadReply);
    return;
  }
  let credit = job.credit;
  let wake: (() => void) | null = null;
  port.on('message', (m: DataThreadCredit) => {
    if (m.type !== 'credit') return;
    credit++;
    wake?.();
  });
  const pass = batchPass(fileChunks(job.path), job.options);
  for (;;) {
    const next = await pass.next();
    if (next.done) {
      port.postMessage({ type: 'end', ...next.value } satisfies DataThreadReply);
      return;
    }
    while (credit === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
    credit--;
    const { x, y, rows } = next.value;
    port.postMessage({ type: 'batch', x, y, rows } satisfies DataThreadReply, [
      x.buffer as ArrayBuffer,
      y.buffer as ArrayBuffer,
    ]);
  }
}

run().then(
  () => port.close(),
  (e: unknown) => {
    const coded = e instanceof MaasError;
    port.postMessage({
      type: 'error',
      code: coded ? e.code : 'MAAS_ERR_DATA_FORMAT',
      message: (e as Error).message ?? String(e),
    } satisfies DataThreadReply);
    port.close();
  },
);
