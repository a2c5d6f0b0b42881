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
  const [m] = await timeInterleaved([fn], { ...options, rounds: 1 });
  return m!;
}

/**
 * Times several implementations of one case in turn, round after round (each round spends
 * budget / rounds on each), so the machine's drift over the case hits every one alike; the median
 * is over all of an implementation's samples. Ratios between them are what a shared, noisy host
 * can report honestly.
 */
export async function timeInterleaved(
  fns: readonly (() => unknown)[],
  options: TimeOptions & { rounds?: number } = {},
): Promise<Measurement[]> {
  const rounds = options.rounds ?? 3;
  const budget = (options.budget ?? 1.5) / rounds;
  const minSamples = options.minSamples ?? 5;
  const runs = [];
  for (const fn of fns) {
    for (let i = 0; i < (options.warmup ?? 3); i++) {
      await fn();
      await turnEventLoop();
    }
    // Calibrate: how many calls make a 2 ms sample.
    const t0 = performance.now();
    await fn();
    const once = Math.max((performance.now() - t0) / 1000, 1e-7);
    runs.push({ fn, once, perSample: Math.max(1, Math.floor(0.002 / once)), samples: [] as number[], calls: 0 });
  }
  for (let round = 0; round < rounds; round++) {
    for (const run of runs) {
      // The last round makes up the samples a slow case still lacks.
      const least = round === rounds - 1 ? minSamples : Math.ceil(minSamples / rounds);
      const deadline = performance.now() + budget * 1000;
      let taken = 0;
      while (taken < least || performance.now() < deadline) {
        const start = performance.now();
        for (let i = 0; i < run.perSample; i++) {
          const r = run.fn();
          if (r instanceof Promise) await r;
        }
        run.samples.push((performance.now() - start) / 1000 / run.perSample);
        run.calls += run.perSample;
        taken++;
        // The event loop turns between samples (untimed), as it does between a server's requests:
        // finalizers run there, which is when maas's undisposed outputs return to its pool.
        await turnEventLoop();
        if (run.samples.length >= minSamples && run.once > budget) break;
        if (taken >= 10_000) break;
      }
    }
  }
  return runs.map(({ samples, calls }) => {
    samples.sort((a, b) => a - b);
    return {
      median: samples[Math.floor(samples.length / 2)]!,
      min: samples[0]!,
      max: samples[samples.length - 1]!,
      calls,
    };
  });
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

/**
 * A peak probe's best of three runs, each sized to about 0.3 s from a trial of `trial`
 * iterations, in G(FL)OP/s: `probe(iterations)` returns the work it did and the seconds it took.
 */
export function bestPeak(probe: (iterations: number) => { work: number; seconds: number }, trial: number): number {
  const first = probe(trial);
  const iterations = Math.ceil((trial * 0.3) / Math.max(first.seconds, 1e-6));
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const { work, seconds } = probe(iterations);
    best = Math.max(best, work / seconds / 1e9);
  }
  return best;
}
