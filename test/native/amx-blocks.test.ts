/**
 * Past 1 MiB of B the AMX drivers size an A block by K (up to 512 rows in about 1 MiB), while a
 * stack sizes its per-thread scratch once, for its widest layer. A narrower layer after a wide one
 * packs more rows per block than the wide one: these stacks (K 4100, then 2048 for int8 and 1024
 * for bf16, each with B past 1 MiB, 512 rows) overran the scratch when it was sized by the widest
 * layer's own block. Each AMX kernel runs
 * them on one thread and two and must agree with a non-AMX kernel of its family. The emulations
 * run the same driver, so where AMX is absent they carry the check.
 */
import { describe, expect, it } from 'vitest';
import {
  ACTIVATION_CODES,
  native,
  type NativeLayerSpec,
  type NativeQuantLayerSpec,
} from '../../src/native/index.js';
import { rng } from '../helpers.js';

const ROWS = 512;
const info = native.cpuInfo();

interface Layer {
  in: number;
  out: number;
  weights: Float32Array;
  bias: Float32Array;
}

function layers(widths: number[], seed: number): Layer[] {
  const r = rng(seed);
  return widths.slice(1).map((out, i) => {
    const inW = widths[i]!;
    const weights = new Float32Array(inW * out).map(() => (r.next() - 0.5) / Math.sqrt(inW));
    return { in: inW, out, weights, bias: new Float32Array(out).map(() => r.next() - 0.5) };
  });
}

function specs(ls: Layer[]): NativeLayerSpec[] {
  return ls.map((l, i) => ({
    in: l.in,
    out: l.out,
    activation: i + 1 < ls.length ? ACTIVATION_CODES.relu : ACTIVATION_CODES.linear,
    alpha: 0,
    hasBias: true,
  }));
}

function input(k: number): Float32Array {
  const r = rng(11);
  return new Float32Array(ROWS * k).map(() => r.next() * 2 - 1);
}

/** The stack packed for `kernel` (fp32 family), run on `threads` threads. */
function runF32(kernel: string, ls: Layer[], x: Float32Array, threads: number): Float32Array {
  const bytes = new Uint8Array(native.packedStackByteLength(specs(ls), kernel));
  native.packStack(specs(ls), ls.map((l) => l.weights), ls.map((l) => l.bias), bytes, kernel);
  const handle = new native.DenseStackHandle(bytes);
  native.setThreads(threads);
  const y = new Float32Array(ROWS * ls[ls.length - 1]!.out);
  handle.predict(x, ROWS, y);
  handle.dispose();
  return y;
}

/** The stack quantized per channel for `kernel` (int8 family, the batch's own range), run on `threads`. */
function runInt8(kernel: string, ls: Layer[], x: Float32Array, threads: number): Float32Array {
  const qspecs: NativeQuantLayerSpec[] = specs(ls).map((s) => ({ ...s, int8: true, inMin: 0, inMax: 0 }));
  const weights = ls.map((l) => {
    const scales = new Float32Array(l.out);
    for (let i = 0; i < l.in; i++) for (let j = 0; j < l.out; j++) scales[j] = Math.max(scales[j]!, Math.abs(l.weights[i * l.out + j]!) / 127);
    const q = new Int8Array(l.in * l.out);
    for (let i = 0; i < l.in; i++) for (let j = 0; j < l.out; j++) q[i * l.out + j] = Math.round(l.weights[i * l.out + j]! / scales[j]!);
    return { q, scales };
  });
  const bytes = new Uint8Array(native.packedQuantizedByteLength(qspecs, kernel));
  native.packQuantized(qspecs, true, weights.map((w) => w.q), weights.map((w) => w.scales), ls.map((l) => l.bias), bytes, kernel);
  const handle = new native.QuantizedStackHandle(bytes);
  native.setThreads(threads);
  const y = new Float32Array(ROWS * ls[ls.length - 1]!.out);
  handle.predict(x, ROWS, y);
  handle.dispose();
  return y;
}

function worstRelative(got: Float32Array, want: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return worst;
}

describe('AMX kernels in a stack whose narrower layer packs more rows per A block', () => {
  const bf16 = info.f32Kernels.filter((k) => k.weights === 'bf16' && k.name.includes('amx'));
  const bf16Peer = info.f32Kernels.find((k) => k.weights === 'bf16' && k.supported && !k.name.includes('amx'));
  for (const kernel of bf16) {
    const skip = !kernel.supported || !bf16Peer;
    it.skipIf(skip)(`${kernel.name}: 4100 → 1024 → 544 → 8 at ${ROWS} rows agrees with ${bf16Peer?.name ?? 'a bf16 kernel'}${skip ? ' (skipped: not on this CPU)' : ''}`, () => {
      const ls = layers([4100, 1024, 544, 8], 21);
      const x = input(4100);
      const want = runF32(bf16Peer!.name, ls, x, 1);
      for (const threads of [1, 2]) expect(worstRelative(runF32(kernel.name, ls, x, threads), want)).toBeLessThan(1e-3);
    }, 120_000);
  }
  const int8 = info.int8Kernels.filter((k) => k.name.includes('amx'));
  const int8Peer = info.int8Kernels.find((k) => k.supported && !k.name.includes('amx') && k.isa !== 'avx2' && k.isa !== 'scalar');
  for (const kernel of int8) {
    const skip = !kernel.supported || !int8Peer;
    it.skipIf(skip)(`${kernel.name}: 4100 → 2048 → 544 → 8 at ${ROWS} rows matches ${int8Peer?.name ?? 'a u8 kernel'} exactly${skip ? ' (skipped: not on this CPU)' : ''}`, () => {
      const ls = layers([4100, 2048, 544, 8], 22);
      const x = input(4100);
      const want = runInt8(int8Peer!.name, ls, x, 1);
      for (const threads of [1, 2]) expect(Array.from(runInt8(kernel.name, ls, x, threads))).toEqual(Array.from(want));
    }, 120_000);
  }
});
