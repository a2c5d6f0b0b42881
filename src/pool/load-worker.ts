/**
 * The load worker: a thread of the pool's loader that opens one model file (read, parse,
 * checksum, check, fold), packs its weights into a SharedArrayBuffer and answers with it, so a
 * large model loads without stalling the event loop that answers requests. The buffer is
 * shared, not copied, on the way out.
 */
import { constants, setPriority } from 'node:os';
import { MaasError } from '../core/errors.js';
import { openModelFile } from '../io/open.js';
import { packDenseStack, packInt8Stack } from '../model/packed.js';
import { readInt8 } from '../quant/load.js';
import { describeQuantization, int8PackLayers } from '../quant/model.js';
import type { LoadReply, LoadRequest, LoadedModel } from './messages.js';

// Run from the TypeScript sources (tests, benches), piscina requires this module through tsx's
// CommonJS hook; dynamic ESM imports (the HDF5 reader) need tsx's ESM hooks in this thread too.
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

let esmHooks: Promise<void> | null = null;
function sourceHooks(): Promise<void> {
  if (!import.meta.url.endsWith('.ts')) return Promise.resolve();
  const tsx = 'tsx/esm/api'; // a dev dependency: not a static import, so the build never needs it
  esmHooks ??= import(tsx).then((api: { register(): void }) => api.register());
  return esmHooks;
}

/** Opens and packs one model file, as the repository loads it (the fuzzer's file phase calls it too). */
export async function openAndPack({ path }: LoadRequest): Promise<LoadedModel> {
  await sourceHooks();
  const opened = await openModelFile(path);
  const { inputSize, outputSize } = opened;
  if (opened.precision === 'int8') {
    const { spec, int8Weights } = readInt8(opened);
    const packed = packInt8Stack(opened.layers, int8PackLayers(spec, int8Weights), spec.mode === 'dynamic');
    return { packed, inputSize, outputSize, quantization: describeQuantization(spec) };
  }
  return { packed: packDenseStack(opened.layers), inputSize, outputSize };
}

/** One load: the model, or the error's code and message (an Error's own fields do not cross threads). */
export default async function loadTask(request: LoadRequest): Promise<LoadReply> {
  try {
    return { ok: true, model: await openAndPack(request) };
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    return {
      ok: false,
      code: error instanceof MaasError ? error.code : typeof e?.code === 'string' ? e.code : '',
      message: String(e?.message ?? error),
    };
  }
}
