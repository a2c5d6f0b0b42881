/**
 * Thread vs process workers: executions per second and latency through InferencePool.run for
 * the small model (batch 1) and a larger one (batch 64), one execution at a time and 32 in
 * flight, the two isolations interleaved in each round.
 *
 *   npx tsx bench/serve/worker-isolation.ts [--rounds 3] [--seconds 2]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { InferencePool, dense, initializers, sequential, type WorkerIsolation } from '../../src/index.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '2' } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);

function build(widths: number[]) {
  return sequential({
    layers: widths.slice(1).map((units, i) =>
      dense({
        units,
        activation: i === widths.length - 2 ? 'linear' : 'relu',
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
        kernelInitializer: initializers.glorotUniform({ seed: i + 1 }),
      }),
    ),
  });
}

const cases = [
  { name: 'S 100-64-32-1, batch 1', widths: [100, 64, 32, 1], rows: 1 },
  { name: 'L 1024-1024-1024-10, batch 64', widths: [1024, 1024, 1024, 10], rows: 64 },
];

async function measure(
  pool: InferencePool,
  weights: Parameters<InferencePool['run']>[0],
  inputSize: number,
  outputSize: number,
  rows: number,
  inFlight: number,
) {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  let done = 0;
  const lane = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await pool.run(weights, new Float32Array(rows * inputSize).fill(0.5), rows, outputSize);
      latencies.push(performance.now() - t);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  latencies.sort((a, b) => a - b);
  return {
    perSecond: done / seconds,
    p50: latencies[Math.floor(latencies.length / 2)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'maas-iso-'));
const rowsOut: string[] = [];
try {
  const pools = Object.fromEntries(
    (['thread', 'process'] as WorkerIsolation[]).map((isolation) => [isolation, new InferencePool({ isolation })]),
  ) as Record<WorkerIsolation, InferencePool>;
  for (const c of cases) {
    await build(c.widths).save(join(dir, c.name.split(' ')[0]!));
    const results: Record<string, { perSecond: number; p50: number; p99: number }[]> = {};
    const attached = new Map<WorkerIsolation, Parameters<InferencePool['run']>[0]>();
    for (const [isolation, pool] of Object.entries(pools) as [WorkerIsolation, InferencePool][]) {
      const loaded = await pool.load(join(dir, c.name.split(' ')[0]!, 'model.json'));
      const weights = {
        key: c.name,
        format: loaded.region.format,
        fd: loaded.region.fd,
        byteLength: loaded.region.byteLength,
      };
      pool.attach(weights);
      attached.set(isolation, weights);
      await measure(pool, weights, c.widths[0]!, c.widths.at(-1)!, c.rows, 4); // warm
    }
    for (let round = 0; round < rounds; round++) {
      for (const inFlight of [1, 32]) {
        for (const [isolation, pool] of Object.entries(pools) as [WorkerIsolation, InferencePool][]) {
          const r = await measure(pool, attached.get(isolation)!, c.widths[0]!, c.widths.at(-1)!, c.rows, inFlight);
          (results[`${inFlight}|${isolation}`] ??= []).push(r);
        }
      }
    }
    for (const inFlight of [1, 32]) {
      const best = (isolation: string) =>
        results[`${inFlight}|${isolation}`]!.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
      const t = best('thread');
      const p = best('process');
      rowsOut.push(
        `| ${c.name} | ${inFlight} | ${t.perSecond.toFixed(0)} | ${p.perSecond.toFixed(0)} | ${(p.perSecond / t.perSecond).toFixed(2)} | ${(t.p50 * 1000).toFixed(0)} / ${(t.p99 * 1000).toFixed(0)} | ${(p.p50 * 1000).toFixed(0)} / ${(p.p99 * 1000).toFixed(0)} |`,
      );
    }
    for (const [isolation, pool] of Object.entries(pools) as [WorkerIsolation, InferencePool][])
      await pool.detach(attached.get(isolation)!.key);
  }
  await Promise.all(Object.values(pools).map((p) => p.close()));
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(`rounds ${rounds} × ${seconds} s, best round of each; workers = cores`);
console.log(
  '| model | in flight | thread exec/s | process exec/s | process/thread | thread p50/p99 µs | process p50/p99 µs |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const row of rowsOut) console.log(row);
