/**
 * One slow model beside a fast one on the shared workers: the fast model's latency alone, then
 * while clients keep the slow model busy (large batches over gRPC raw contents). The server
 * runs in this process from the sources; run it from another checkout to compare versions.
 *
 *   npx tsx bench/serve/slow-neighbour.ts [--seconds 10] [--slow-clients 8]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { GrpcInferenceClient, dense, initializers, sequential } from '../../src/index.js';
import { serve } from '../../src/serving/server.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, 'slow-clients': { type: 'string', default: '8' } },
});
const seconds = Number(values.seconds);
const slowClients = Number(values['slow-clients']);

function stack(widths: number[]) {
  return sequential({
    layers: widths.slice(1).map((units, i) =>
      dense({
        units,
        activation: 'relu',
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
        kernelInitializer: initializers.glorotUniform({ seed: i + 1 }),
      }),
    ),
  });
}

const root = await mkdtemp(join(tmpdir(), 'maas-neighbour-'));
const SLOW = [1024, 2048, 2048, 2048, 10];
const SLOW_ROWS = 256;
await mkdir(join(root, 'slow'));
await stack(SLOW).save(join(root, 'slow', '1'));
await mkdir(join(root, 'fast'));
await stack([100, 64, 32, 1]).save(join(root, 'fast', '1'));
const server = await serve({
  modelRepository: root,
  grpcPort: 0,
  httpPort: 0,
  metricsPort: null,
  logger: pino({ level: 'silent' }),
});
const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
const input = async (model: string) => (await client.modelMetadata(model)).inputs[0]!.name;
const [slowInput, fastInput] = [await input('slow'), await input('fast')];
const fastRow = new Float32Array(100).fill(0.25);
const slowBatch = new Float32Array(SLOW_ROWS * SLOW[0]!).fill(0.01);

async function fastLatencies(ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t = performance.now();
    await client.infer({
      model: 'fast',
      inputs: [{ name: fastInput, datatype: 'FP32', shape: [1, 100], data: fastRow }],
    });
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

let slowDone = 0;
let stopSlow = false;
async function slowLane() {
  while (!stopSlow) {
    await client.infer({
      model: 'slow',
      inputs: [{ name: slowInput, datatype: 'FP32', shape: [SLOW_ROWS, SLOW[0]!], data: slowBatch }],
    });
    slowDone++;
  }
}

const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
try {
  await fastLatencies(1000); // warm
  const alone = await fastLatencies(seconds * 1000);
  const lanes = Array.from({ length: slowClients }, slowLane);
  await new Promise((r) => setTimeout(r, 500));
  const slowStart = slowDone;
  const t0 = performance.now();
  const beside = await fastLatencies(seconds * 1000);
  const slowRate = (slowDone - slowStart) / ((performance.now() - t0) / 1000);
  stopSlow = true;
  await Promise.all(lanes);
  console.log(`CPU: ${cpus()[0]?.model}, ${cpus().length} cores`);
  console.log(
    `slow model ${SLOW.join('-')}, ${SLOW_ROWS} rows per request, ${slowClients} clients: ${slowRate.toFixed(1)} req/s`,
  );
  console.log('| fast model (100-64-32-1, batch 1) | requests | p50 ms | p99 ms |');
  console.log('| --- | --- | --- | --- |');
  console.log(`| alone | ${alone.length} | ${q(alone, 0.5).toFixed(2)} | ${q(alone, 0.99).toFixed(2)} |`);
  console.log(
    `| beside the busy slow model | ${beside.length} | ${q(beside, 0.5).toFixed(2)} | ${q(beside, 0.99).toFixed(2)} |`,
  );
} finally {
  client.close();
  await server.close();
  await rm(root, { recursive: true, force: true });
}
