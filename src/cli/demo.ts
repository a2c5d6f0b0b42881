/**
 * `maas demo`: builds the example model S (100 → 64 relu → 32 relu → 1 sigmoid), predicts a
 * batch and prints the kernel it chose and its latency at batch 1, 32 and 1024.
 */
import { performance } from 'node:perf_hooks';
import { dense, sequential } from '../index.js';
import { Random } from '../core/random.js';
import { initializers } from '../layers/initializers.js';
import { backendInfo } from '../runtime.js';

/** Options of the demo command. */
export interface DemoOptions {
  batch: number;
  seed: number;
  print: (line: string) => void;
}

/** Builds model S, predicts `batch` random rows, prints the summary, outputs and latencies. */
export function runDemo({ batch, seed, print }: DemoOptions): void {
  const info = backendInfo();
  print(
    `maas demo: CPU ${info.brand.trim() || 'unknown'}, ISA ${info.isa}, kernel ${info.f32Kernel}, ${info.threads} thread(s)`,
  );
  const model = sequential({
    layers: [
      dense({
        units: 64,
        activation: 'relu',
        inputShape: [100],
        kernelInitializer: initializers.glorotUniform({ seed }),
      }),
      dense({ units: 32, activation: 'relu', kernelInitializer: initializers.glorotUniform({ seed: seed + 1 }) }),
      dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: seed + 2 }) }),
    ],
  });
  model.summary(65, undefined, print);
  const rng = new Random(seed);
  const x = Float32Array.from({ length: batch * 100 }, () => rng.normal());
  const y = model.predict(x);
  const shown = Math.min(batch, 5);
  print(
    `predict: input [${batch},100] -> output [${y.shape.join(',')}]; first ${shown}: ${Array.from(y.values.subarray(0, shown), (v) => v.toFixed(6)).join(', ')}`,
  );
  for (const b of [1, 32, 1024]) {
    const xb =
      x.length >= b * 100 ? x.subarray(0, b * 100) : Float32Array.from({ length: b * 100 }, () => rng.normal());
    const iterations = b === 1024 ? 200 : 2000;
    for (let i = 0; i < 50; i++) model.predict(xb);
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) model.predict(xb);
    const us = ((performance.now() - t0) / iterations) * 1000;
    print(
      `latency at batch ${String(b).padStart(4)}: ${us.toFixed(2).padStart(8)} µs per call (${((b * 1e6) / us).toFixed(0)} rows/s)`,
    );
  }
  model.dispose();
}
