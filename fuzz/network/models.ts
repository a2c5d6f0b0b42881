/** What the fuzzer and the server under fuzz agree on: the probe model and the ready message. */
import { Random } from '../../src/core/random.js';

/** The model the known-good requests go to; no fuzz case names it in a load or unload. */
export const PROBE_MODEL = 'probe';
/** The probe model's input width. */
export const PROBE_WIDTH = 4;
/** Two rows of seeded input in [-1, 1). */
export const PROBE_INPUT: Float32Array = (() => {
  const r = new Random(7);
  return Float32Array.from({ length: 2 * PROBE_WIDTH }, () => r.uniform(-1, 1));
})();

/** The target's first message: its ports, the probe's expected output, and its admin token when it has a token file. */
export interface TargetReady {
  grpcPort: number;
  httpPort: number;
  expected: number[];
  token?: string;
}
