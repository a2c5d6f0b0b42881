/**
 * A pool worker: keeps one light native handle per live model version, each over the shared
 * packed weights, and runs synchronous predicts. Nothing here copies weights.
 */
import { workerData } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { native, type NativeModelHandle } from '../native/index.js';
import { openPackedModel } from '../model/packed.js';
import { RESULT_HEADER_BYTES, type InferTask, type SharedWeights, type WorkerOptions } from './messages.js';

const options = workerData as WorkerOptions;
native.setThreads(options.threadsPerWorker);

const handles = new Map<string, NativeModelHandle>();
let liveEpoch = -1;

function handleFor(weights: SharedWeights): NativeModelHandle {
  let handle = handles.get(weights.key);
  if (!handle) {
    handle = openPackedModel(weights);
    handles.set(weights.key, handle);
  }
  return handle;
}

/** Drops the handles of versions that were unloaded, so their shared weights can be freed. */
function retire(live: string[]): void {
  const keep = new Set(live);
  for (const [key, handle] of handles) {
    if (!keep.has(key)) {
      handle.dispose();
      handles.delete(key);
    }
  }
}

export default function infer(task: InferTask): ArrayBuffer {
  if (task.liveEpoch !== liveEpoch) {
    retire(task.live);
    liveEpoch = task.liveEpoch;
  }
  const handle = handleFor(task.weights);
  const result = new ArrayBuffer(RESULT_HEADER_BYTES + task.rows * task.outputSize * 4);
  const y = new Float32Array(result, RESULT_HEADER_BYTES);
  const start = process.hrtime.bigint();
  handle.predict(task.x, task.rows, y);
  new Float64Array(result, 0, 1)[0] = Number(process.hrtime.bigint() - start);
  return Piscina.move(result) as ArrayBuffer;
}
