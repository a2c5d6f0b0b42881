/**
 * Shared test helpers: a reproducible seed (MAAS_TEST_SEED or printed), guarded buffers that
 * expose out-of-bounds reads (NaN past the end) and writes (a sentinel past the end).
 */
import { Random } from '../src/core/random.js';
import { MaasError } from '../src/core/errors.js';
import type { BatchingPolicy } from '../src/serving/batcher.js';

/** The seed of this run: MAAS_TEST_SEED when set, else random and printed so a failure can be replayed. */
export const TEST_SEED: number = (() => {
  const fromEnv = process.env.MAAS_TEST_SEED;
  if (fromEnv !== undefined && fromEnv !== '') return Number(fromEnv) >>> 0;
  const seed = (Math.random() * 2 ** 32) >>> 0;
  console.log(`MAAS_TEST_SEED=${seed}`);
  return seed;
})();

/** A Random seeded from TEST_SEED and a per-test salt. */
export function rng(salt: number): Random {
  return new Random((TEST_SEED ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
}

/** Written after the end of inputs: a kernel that reads past the end turns its output NaN. */
export const READ_GUARD = Number.NaN;
/** Written after the end of outputs: must survive the call unchanged. */
export const WRITE_GUARD = -7777.25;
const GUARD_FLOATS = 64;

/** `length` random values in [-1, 1) in a view whose backing buffer continues with NaN. */
export function guardedInput(r: Random, length: number): Float32Array {
  const backing = new Float32Array(length + GUARD_FLOATS).fill(READ_GUARD);
  for (let i = 0; i < length; i++) backing[i] = r.uniform(-1, 1);
  return backing.subarray(0, length);
}

/** A rows×cols matrix with row stride ld >= cols; the gaps and the tail hold `fill`. */
export function stridedMatrix(r: Random | null, rows: number, cols: number, ld: number, fill: number): Float32Array {
  const length = (rows - 1) * ld + cols;
  const backing = new Float32Array(length + GUARD_FLOATS).fill(fill);
  if (r) for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) backing[i * ld + j] = r.uniform(-1, 1);
  return backing.subarray(0, length);
}

/** True when every float after the view's end, up to the guard size, still equals `fill`. */
export function tailIntact(view: Float32Array, fill: number): boolean {
  const backing = new Float32Array(view.buffer, view.byteOffset, view.length + GUARD_FLOATS);
  for (let i = view.length; i < backing.length; i++) if (!Object.is(backing[i], fill)) return false;
  return true;
}

/** "m7n33k129": the shape string failure messages carry. */
export function shapeName(m: number, n: number, k: number): string {
  return `m${m}n${n}k${k}`;
}

/** "CODE: message" of the MaasError `fn` throws (or resolves to, when it returns a promise), or 'no error'. */
export async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return e instanceof MaasError ? `${e.code}: ${e.message}` : `not a MaasError: ${String(e)}`;
  }
  return 'no error';
}

/** The synchronous twin of errorOf, for calls that must throw before returning. */
export function syncErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof MaasError ? `${e.code}: ${e.message}` : `not a MaasError: ${String(e)}`;
  }
  return 'no error';
}

/** A batching policy for batcher tests: 8 rows, dynamic, no delay or limits, unless `over` says otherwise. */
export function testPolicy(over: Partial<BatchingPolicy> = {}): BatchingPolicy {
  return {
    maxBatchSize: 8,
    dynamic: true,
    preferredBatchSizes: [],
    maxQueueDelayUs: 0,
    maxQueueSize: 0,
    maxQueueBytes: 0,
    defaultTimeoutUs: 0,
    allowTimeoutOverride: true,
    priorityLevels: 0,
    defaultPriorityLevel: 0,
    ...over,
  };
}
