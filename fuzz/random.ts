/**
 * The fuzzer's randomness: one stream per case, derived from the run's seed and the case's index
 * only, so any case replays alone (`--replay-network I`) and a run replays whole from its seed.
 */
import { Random } from '../src/core/random.js';

/** A 32-bit mix of the seed, the phase and the case index (splitmix32's finaliser). */
function mix(seed: number, phase: string, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < phase.length; i++) h = Math.imul(h ^ phase.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seeded stream with the choices a mutator makes. */
export class Rng {
  private readonly random: Random;

  constructor(seed: number) {
    this.random = new Random(seed);
  }

  /** The stream of case `index` of `phase` in the run seeded `seed`. */
  static forCase(seed: number, phase: 'network' | 'files', index: number): Rng {
    return new Rng(mix(seed, phase, index));
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.random.next() * n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.random.next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** One of `choices`, each as likely as its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let r = this.random.next() * choices.reduce((n, [, w]) => n + w, 0);
    for (const [value, weight] of choices) {
      r -= weight;
      if (r < 0) return value;
    }
    return choices[choices.length - 1]![0];
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.random.nextUint32() & 0xff;
    return out;
  }

  /** A length skewed to small values, sometimes large: most bugs sit at the edges. */
  length(max: number): number {
    return this.weighted([
      [this.below(4), 4],
      [this.below(64), 4],
      [this.below(Math.max(1, max)), 2],
      [max, 1],
    ]);
  }

  /** A uniform number in [0, 1). */
  unit(): number {
    return this.random.next();
  }
}

/** Values at the edges of the integer widths parsers use. */
export const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

/** One byte-level mutation, named for the case's description. */
type ByteMutation = (rng: Rng, data: Buffer) => { data: Buffer; what: string };

const BYTE_MUTATIONS: readonly (readonly [ByteMutation, number])[] = [
  [
    (rng, data) => {
      const out = Buffer.from(data);
      const flips = rng.between(1, 8);
      for (let i = 0; i < flips && out.length > 0; i++) out[rng.below(out.length)]! ^= 1 << rng.below(8);
      return { data: out, what: `flip ${flips} bits` };
    },
    5,
  ],
  [
    (rng, data) => {
      const out = Buffer.from(data);
      const at = rng.below(Math.max(1, out.length));
      if (out.length > 0) out[at] = rng.pick(INTERESTING_BYTES);
      return { data: out, what: `set byte ${at}` };
    },
    3,
  ],
  [
    (rng, data) => {
      const out = Buffer.from(data);
      if (out.length < 4) return { data: out, what: 'u32 (too short)' };
      const at = rng.below(out.length - 3);
      const value = rng.pick(INTERESTING_U32);
      if (rng.chance(0.5)) out.writeUInt32LE(value, at);
      else out.writeUInt32BE(value, at);
      return { data: out, what: `u32 ${value} at ${at}` };
    },
    3,
  ],
  [
    (rng, data) => {
      const at = rng.below(data.length + 1);
      return { data: data.subarray(0, at), what: `truncate to ${at}` };
    },
    2,
  ],
  [
    (rng, data) => {
      const extra = rng.chance(0.5) ? rng.bytes(rng.length(4096)) : Buffer.alloc(rng.length(4096));
      return { data: Buffer.concat([data, extra]), what: `extend by ${extra.length}` };
    },
    1,
  ],
  [
    (rng, data) => {
      const at = rng.below(data.length + 1);
      const n = Math.min(data.length - at, rng.length(256));
      return { data: Buffer.concat([data.subarray(0, at), data.subarray(at + n)]), what: `delete ${n} at ${at}` };
    },
    2,
  ],
  [
    (rng, data) => {
      const at = rng.below(data.length + 1);
      const n = Math.min(data.length - at, rng.length(256));
      const copies = rng.pick([1, 2, 16]);
      const piece = data.subarray(at, at + n);
      const repeated = Buffer.concat(Array.from({ length: copies }, () => piece));
      return {
        data: Buffer.concat([data.subarray(0, at + n), repeated, data.subarray(at + n)]),
        what: `repeat ${n} bytes at ${at} ×${copies}`,
      };
    },
    1,
  ],
  [
    (rng, data) => {
      const at = rng.below(data.length + 1);
      const inserted = rng.bytes(rng.length(64));
      return {
        data: Buffer.concat([data.subarray(0, at), inserted, data.subarray(at)]),
        what: `insert ${inserted.length} at ${at}`,
      };
    },
    2,
  ],
];

/** One to `max` byte-level mutations of `data` (a new buffer; `data` is left as it was). */
export function mutateBytes(rng: Rng, data: Buffer, max = 3): { data: Buffer; what: string } {
  let out = data;
  const steps: string[] = [];
  const rounds = rng.between(1, max);
  for (let i = 0; i < rounds; i++) {
    const mutated = rng.weighted(BYTE_MUTATIONS)(rng, out);
    out = mutated.data;
    steps.push(mutated.what);
  }
  return { data: out, what: steps.join(', ') };
}
