/**
 * A file-phase child: loads model files the way the repository does (openAndPack, the load
 * worker's own function, then the warm-up's finiteness check) and answers with the outputs on a
 * given input, or with the error it refused the file with. Runs in its own process so that a
 * crash or a hang in a parser (HDF5 in WebAssembly, protobuf, the addon) ends only this child.
 */
import { MaasError, isErrorCode, messageOf } from '../../src/core/errors.js';
import { openPackedRegion } from '../../src/model/packed.js';
import { native } from '../../src/native/index.js';
import { openAndPack } from '../../src/pool/open-and-pack.js';
import type { LoadJob, LoadReply } from './messages.js';

async function load(job: LoadJob): Promise<LoadReply> {
  try {
    const { region, inputSize, outputSize } = await openAndPack({ path: job.path, tag: 0 });
    const handle = openPackedRegion(region);
    native.closeRegion(region.fd); // the handle keeps its own mapping
    try {
      // The repository's warm-up: a version whose output on zeros is not finite is refused.
      const warm = new Float32Array(outputSize);
      handle.predict(new Float32Array(inputSize), 1, warm);
      if (!warm.every(Number.isFinite)) return { kind: 'refused-at-warmup' };
      if (inputSize !== job.inputSize || outputSize !== job.outputSize)
        return { kind: 'loaded', inputSize, outputSize, output: new Float32Array(0) };
      const output = new Float32Array(job.rows * outputSize);
      handle.predict(job.input.slice(), job.rows, output);
      return { kind: 'loaded', inputSize, outputSize, output };
    } finally {
      handle.dispose();
    }
  } catch (error) {
    const coded = error instanceof MaasError && isErrorCode(error.code);
    return {
      kind: 'refused',
      coded,
      code: coded ? error.code : null,
      name: (error as Error)?.constructor?.name ?? typeof error,
      message: messageOf(error).slice(0, 500),
      unforeseen: coded ? unforeseen(job.path, error) : null,
    };
  }
}

/**
 * What a reader did not foresee, though refused with a code: the loader boundary (asLoader) turned an
 * engine error (a TypeError on a field of the wrong type) into one, its message then "Cannot
 * read the model file <path>: …"; or the addon refused what the checks above it let through
 * (MAAS_ERR_NATIVE_*: "a bug above it").
 */
function unforeseen(path: string, error: MaasError): string | null {
  if (error.code === 'MAAS_ERR_NATIVE_INVALID_ARGUMENT' || error.code === 'MAAS_ERR_NATIVE_INTERNAL')
    return `${error.code}: ${error.message}`.slice(0, 300);
  if (!error.message.startsWith(`Cannot read the model file ${path}: `) || !(error.cause instanceof Error)) return null;
  return `${error.cause.constructor.name}: ${error.cause.message}`.slice(0, 300);
}

process.on('message', (job: LoadJob) => {
  void load(job).then((reply) => process.send!(reply));
});
process.on('disconnect', () => process.exit(0));
// HDF5's WebAssembly compiles on first use, seconds on a busy machine: done before the first
// job, so that the job timeout measures the load alone.
await (
  await import('h5wasm/node')
).default.ready;
process.send!({ kind: 'ready' });
