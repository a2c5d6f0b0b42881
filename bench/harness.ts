/**
 * Timing for every suite: warm up, then repeat a call until a time budget is spent, in samples
 * long enough to swamp timer resolution; report the median. One harness for us and every peer,
 * sync or async, so the ratios compare like with like.
 */
import { performance } from 'node:perf_hooks';

/** One measured case. */
export interface Measurement {
  /** Median seconds per call. */
  median: number;
  /** Fastest and slowest sample, seconds per call. */
  min: number;
  max: number;
  /** Calls timed (warm-up excluded). */
  calls: number;
}

export interface TimeOptions {
  /** Seconds of timed calls to aim for (default 1.5). */
  budget?: number;
  /** Warm-up calls before timing (default 3). */
  warmup?: number;
  /** Fewest samples (default 5, fewer only when one call exceeds the budget). */
  minSamples?: number;
}

/** Times `fn` (sync or async); each sample groups enough calls to last >= 2 ms. */
export async function time(fn: () => unknown, options: TimeOptions = {}): Promise<Measurement> {
  const budget = options.budget ?? 1.5;
  const minSamples = options.minSamples ?? 5;
  for (let i = 0; i < (options.warmup ?? 3); i++) {
    await fn();
    await turnEventLoop();
  }
  // Calibrate: how many calls make a 2 ms sample.
  const t0 = performance.now();
  await fn();
  const once = Math.max((performance.now() - t0) / 1000, 1e-7);
  const perSample = Math.max(1, Math.floor(0.002 / once));
  const samples: number[] = [];
  const deadline = performance.now() + budget * 1000;
  let calls = 0;
  while (samples.length < minSamples || performance.now() < deadline) {
    const start = performance.now();
    for (let i = 0; i < perSample; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    samples.push((performance.now() - start) / 1000 / perSample);
    calls += perSample;
    // The event loop turns between samples (untimed), as it does between a server's requests:
    // finalizers run there, which is when maas's pooled outputs return for reuse.
    await turnEventLoop();
    if (samples.length >= minSamples && once > budget) break;
    if (samples.length >= 10_000) break;
  }
  samples.sort((a, b) => a - b);
  return {
    median: samples[Math.floor(samples.length / 2)]!,
    min: samples[0]!,
    max: samples[samples.length - 1]!,
    calls,
  };
}

function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Formats seconds as µs/ms/s with three significant digits. */
export function formatSeconds(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toPrecision(3)} µs`;
  if (s < 1) return `${(s * 1e3).toPrecision(3)} ms`;
  return `${s.toPrecision(3)} s`;
}
